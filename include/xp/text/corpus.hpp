#pragma once
// The text xp_prep reads: documents from plain files (one each) and JSON Lines (one per line, its `text`
// field), checked as UTF-8, handed out in segments cut where GPT-2's pre-tokenizer restarts, so a large file
// streams in bounded memory and its parts, encoded in parallel, give the ids of the whole.
#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace xp {

struct Segment {
  std::string text;  // [0, end) is to be encoded; a byte past `end` only lets the pattern look ahead
  size_t end = 0;
  bool starts_document = false;
};

struct WorkUnit {
  size_t segment = 0, begin = 0, end = 0;  // bytes [begin, end) of segments[segment]
};

// A position p in [from, limit) where no GPT-2 piece crosses and matching restarts as if the text began
// there: text[p-1] is '\n' and text[p] an ASCII character other than whitespace (a whitespace run holding
// '\n' is a piece of its own, and the pattern looks behind nothing). The first such p (the last, when
// `last`), or std::string_view::npos.
size_t safe_cut(std::string_view text, size_t from, size_t limit, bool last = false);

// The segments as units of about unit_bytes each, cut at safe_cut()s, in order; an empty document is one
// empty unit (it still gets its separator).
std::vector<WorkUnit> split_units(const std::vector<Segment>& segments, size_t unit_bytes);

class CorpusReader {
 public:
  // INPUT.jsonl files are JSON Lines, others plain text, read block_bytes at a time. Throws InputError
  // when a file cannot be read.
  explicit CorpusReader(std::vector<std::string> paths, size_t block_bytes = size_t{16} << 20);
  // Replaces `batch` by the next segments, about `bytes` of text in all; false when nothing is left.
  // Throws InputError naming the file and byte offset of invalid UTF-8, or the line of bad JSON.
  bool read_batch(size_t bytes, std::vector<Segment>& batch);
  uint64_t total_bytes() const { return total_bytes_; }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  bool next_segment(Segment& segment);
  bool next_line(Segment& segment);
  bool next_block(Segment& segment);
  void check_utf8(std::string_view text, uint64_t file_offset, bool more_follows, size_t* valid_end) const;

  std::vector<std::string> paths_;
  size_t block_bytes_;
  size_t index_ = 0;  // the file being read
  std::ifstream in_;
  bool jsonl_ = false, document_started_ = false;
  std::string carry_;          // bytes read but not yet handed out
  uint64_t carry_offset_ = 0;  // offset of carry_[0] (or of the next line) in the file
  int64_t line_ = 0;
  uint64_t total_bytes_ = 0, bytes_read_ = 0;
};

}  // namespace xp
