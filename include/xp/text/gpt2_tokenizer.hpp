#pragma once
// GPT-2's byte-level BPE: the regex pre-tokenizer (PCRE2), bytes mapped to tokens, and merges applied by
// rank, as OpenAI's encoder and tiktoken's `encode_ordinary` do (tests/text compares with tiktoken).
//
//   Gpt2Tokenizer tokenizer = Gpt2Tokenizer::load("path/to/gpt2");   // a folder or a ranks file
//   Gpt2Encoder encoder(tokenizer);                                   // one per thread: cache, match state
//   std::vector<int32_t> ids;
//   encoder.encode_ordinary("Hello world", ids);                     // appends {15496, 995}
//   std::string text = tokenizer.decode(ids);                         // "Hello world"
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace xp {

class Gpt2Tokenizer {
 public:
  // `path` is a folder holding vocab.json + merges.txt (Hugging Face's names) or encoder.json + vocab.bpe
  // (OpenAI's names for the same files), or a tiktoken ranks file (lines "base64-bytes rank", e.g.
  // gpt2.tiktoken). Nothing is downloaded. Throws InputError naming the file and the problem.
  static Gpt2Tokenizer load(const std::string& path);

  int vocab_size() const { return static_cast<int>(token_bytes_.size()); }
  int32_t eot_token() const { return eot_; }  // <|endoftext|>: 50256 for GPT-2
  const std::string& source() const { return source_; }

  // The bytes of the tokens, concatenated (<|endoftext|> gives its literal text). Bytes, not necessarily
  // UTF-8: a token list cut inside a character decodes to part of it. Throws InputError on an unknown id.
  std::string decode(const std::vector<int32_t>& ids) const;

  // The whole text, as tiktoken's encode_ordinary (one encoder, no cache kept).
  std::vector<int32_t> encode_ordinary(std::string_view text) const;

  // BPE of one pre-tokenized piece: appends its token ids.
  void encode_piece(std::string_view piece, std::vector<int32_t>& ids) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t token;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  void add_merge(int32_t left, int32_t right, int32_t rank, int32_t token);

  std::vector<std::string> token_bytes_;  // id -> bytes
  int32_t byte_token_[256] = {};          // byte -> id of the one-byte token
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t eot_ = -1;
  std::string source_;

  friend class Gpt2VocabReader;
};

// Per-thread state: PCRE2 match data and JIT stack, and a cache of pieces already merged (text repeats
// words, so most pieces are cache hits).
class Gpt2Encoder {
 public:
  explicit Gpt2Encoder(const Gpt2Tokenizer& tokenizer);
  ~Gpt2Encoder();
  Gpt2Encoder(const Gpt2Encoder&) = delete;
  Gpt2Encoder& operator=(const Gpt2Encoder&) = delete;
  Gpt2Encoder(Gpt2Encoder&&) noexcept;

  // Appends the ids of `text` (valid UTF-8; checked by the caller).
  void encode_ordinary(std::string_view text, std::vector<int32_t>& ids) { encode_range(text, 0, text.size(), ids); }

  // Appends the ids of the pieces of `text` that start in [begin, end). The pattern's lookahead sees past
  // `end`, so cutting a text at a safe_cut() (text/corpus.hpp) and encoding the parts gives the ids of the whole text.
  void encode_range(std::string_view text, size_t begin, size_t end, std::vector<int32_t>& ids);

 private:
  struct Matcher;
  const Gpt2Tokenizer* tokenizer_;
  std::unique_ptr<Matcher> matcher_;
  std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace xp
