#include "xp/text/corpus.hpp"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "xp/core/error.hpp"
#include "xp/text/utf8.hpp"

namespace xp {
namespace {

bool ascii_non_space(char c) {
  return static_cast<unsigned char>(c) < 0x80 && c != ' ' && c != '\t' && c != '\n' && c != '\v' && c != '\f' &&
         c != '\r';
}

}  // namespace

size_t safe_cut(std::string_view text, size_t from, size_t limit, bool last) {
  limit = std::min(limit, text.size());
  const size_t first = std::max<size_t>(from, 1);
  auto cut_at = [&](size_t p) { return text[p - 1] == '\n' && ascii_non_space(text[p]); };
  if (last) {
    for (size_t p = limit; p-- > first;)
      if (cut_at(p)) return p;
  } else {
    for (size_t p = first; p < limit; ++p)
      if (cut_at(p)) return p;
  }
  return std::string_view::npos;
}

std::vector<WorkUnit> split_units(const std::vector<Segment>& segments, size_t unit_bytes) {
  std::vector<WorkUnit> units;
  for (size_t s = 0; s < segments.size(); ++s) {
    const Segment& segment = segments[s];
    if (segment.end == 0 && segment.starts_document) units.push_back({s, 0, 0});
    for (size_t begin = 0; begin < segment.end;) {
      size_t cut = begin + unit_bytes >= segment.end ? segment.end : safe_cut(segment.text, begin + unit_bytes, segment.end);
      if (cut == std::string_view::npos) cut = segment.end;
      units.push_back({s, begin, cut});
      begin = cut;
    }
  }
  return units;
}

CorpusReader::CorpusReader(std::vector<std::string> paths, size_t block_bytes)
    : paths_(std::move(paths)), block_bytes_(std::max<size_t>(block_bytes, 1)) {
  for (const std::string& path : paths_) {
    std::error_code error;
    const uintmax_t size = std::filesystem::file_size(path, error);
    if (error || std::filesystem::is_directory(path))
      throw InputError("cannot read input '" + path + "'" + (error ? ": " + error.message() : ": a folder"));
    total_bytes_ += size;
  }
}

void CorpusReader::check_utf8(std::string_view text, uint64_t file_offset, bool more_follows, size_t* valid_end) const {
  const size_t bad = utf8_invalid_offset(text, more_follows, valid_end);
  if (bad != utf8_valid)
    throw InputError("'" + paths_[index_] + "': invalid UTF-8 at byte " + std::to_string(file_offset + bad) +
                     (jsonl_ ? " (line " + std::to_string(line_) + ")" : ""));
}

bool CorpusReader::read_batch(size_t bytes, std::vector<Segment>& batch) {
  batch.clear();
  size_t text_bytes = 0;
  Segment segment;
  while (text_bytes < bytes && next_segment(segment)) {
    text_bytes += segment.end + 1;  // + 1: a batch of empty documents ends too
    batch.push_back(std::move(segment));
    segment = Segment();
  }
  return !batch.empty();
}

bool CorpusReader::next_segment(Segment& segment) {
  while (index_ < paths_.size()) {
    if (!in_.is_open()) {
      in_.open(paths_[index_], std::ios::binary);
      if (!in_) throw InputError("cannot read input '" + paths_[index_] + "'");
      jsonl_ = std::filesystem::path(paths_[index_]).extension() == ".jsonl";
      document_started_ = false;
      carry_.clear();
      carry_offset_ = 0;
      line_ = 0;
    }
    if (jsonl_ ? next_line(segment) : next_block(segment)) return true;
    in_.close();
    ++index_;
  }
  return false;
}

// One JSON Lines document; false at the end of the file. Blank lines are skipped.
bool CorpusReader::next_line(Segment& segment) {
  std::string line;
  while (std::getline(in_, line)) {
    ++line_;
    const uint64_t offset = carry_offset_;
    const size_t consumed = line.size() + (in_.eof() ? 0 : 1);
    carry_offset_ += consumed;
    bytes_read_ += consumed;
    check_utf8(line, offset, false, nullptr);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json document;
    try {
      document = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& error) {
      throw InputError("'" + paths_[index_] + "' line " + std::to_string(line_) + ": not JSON (" + error.what() + ")");
    }
    if (!document.is_object() || !document.contains("text") || !document["text"].is_string())
      throw InputError("'" + paths_[index_] + "' line " + std::to_string(line_) + ": no string field \"text\"");
    segment.text = document["text"].get<std::string>();
    segment.end = segment.text.size();
    segment.starts_document = true;
    return true;
  }
  return false;
}

// The next part of a plain file's one document, cut at a safe_cut(); false once the file is handed out.
bool CorpusReader::next_block(Segment& segment) {
  while (true) {
    const size_t old = carry_.size();
    carry_.resize(old + block_bytes_);
    in_.read(&carry_[old], static_cast<std::streamsize>(block_bytes_));
    const size_t got = static_cast<size_t>(in_.gcount());
    carry_.resize(old + got);
    bytes_read_ += got;
    if (got < block_bytes_) {  // the end of the file: the rest is the document's last segment
      check_utf8(carry_, carry_offset_, false, nullptr);
      if (carry_.empty() && document_started_) return false;
      segment.text = std::move(carry_);
      segment.end = segment.text.size();
      segment.starts_document = !document_started_;
      carry_.clear();
      document_started_ = true;
      return true;
    }
    size_t valid_end = 0;
    check_utf8(carry_, carry_offset_, true, &valid_end);
    const size_t cut = safe_cut(carry_, 1, valid_end, true);
    if (cut == std::string_view::npos) continue;  // no cut yet: read on, the segment grows
    segment.text = carry_.substr(0, cut + 1);
    segment.end = cut;
    segment.starts_document = !document_started_;
    document_started_ = true;
    carry_.erase(0, cut);
    carry_offset_ += cut;
    return true;
  }
}

}  // namespace xp
