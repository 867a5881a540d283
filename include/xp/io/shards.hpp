#pragma once
// Token shards in llm.c's format: 256 int32 header (magic 20240520, version 1, token count), then
// uint16 tokens. A glob names the shards; they are read in sorted order, wrapping around.
#include <cstdio>
#include <string>
#include <vector>

#include "xp/io/token_source.hpp"

namespace xp {

constexpr int32_t shard_magic = 20240520;
constexpr int32_t shard_version = 1;
constexpr int shard_header_ints = 256;
// header[3] and header[4]: the tokenizer that made the tokens and its vocabulary size, as xp_prep records
// them (llm.c's own scripts leave both 0: unrecorded). Readers that know only llm.c's three ints ignore them.
constexpr int shard_tokenizer_slot = 3;
constexpr int shard_vocab_slot = 4;
enum ShardTokenizer : int32_t { shard_tokenizer_unrecorded = 0, shard_tokenizer_byte = 1, shard_tokenizer_gpt2 = 2 };
inline const char* shard_tokenizer_name(int32_t tokenizer) {
  return tokenizer == shard_tokenizer_byte ? "byte" : tokenizer == shard_tokenizer_gpt2 ? "gpt2" : "unrecorded";
}

struct ShardInfo {
  std::string path;
  int64_t tokens = 0;
  int32_t tokenizer = shard_tokenizer_unrecorded;
  int32_t vocab_size = 0;  // 0: unrecorded
};

// Reads and checks one shard header against the file size; throws InputError naming the file.
ShardInfo read_shard_header(const std::string& path);

// Writes a shard (the converter in tools/ and tests use it); aborts on I/O failure.
void write_shard(const std::string& path, const std::vector<uint16_t>& tokens,
                 int32_t tokenizer = shard_tokenizer_unrecorded, int32_t vocab_size = 0);

// Sorted paths matching `pattern`; throws InputError when nothing matches.
std::vector<std::string> expand_glob(const std::string& pattern, const std::string& key);

class ShardSource : public TokenSource {
 public:
  ShardSource(const std::string& pattern, const std::string& key, int seq_len, int vocab_size,
              int64_t batch_sequences);
  ~ShardSource() override;
  void align(int64_t sequences) override;
  void read(int64_t first, int count, int32_t* tokens) override;
  void advance(int64_t sequences) override;
  std::string describe() const override;

 private:
  std::vector<ShardInfo> shards_;
  int seq_len_, vocab_size_;
  std::FILE* file_ = nullptr;
  int64_t open_shard_ = -1;
  std::vector<uint16_t> buffer_;
};

}  // namespace xp
