#include "xp/io/shards.hpp"

#include <glob.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "xp/core/error.hpp"

namespace xp {

ShardInfo read_shard_header(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) throw InputError("cannot open token shard '" + path + "': " + std::strerror(errno));
  int32_t header[shard_header_ints] = {};
  const size_t got = std::fread(header, sizeof(int32_t), shard_header_ints, file);
  std::fseek(file, 0, SEEK_END);
  const int64_t bytes = std::ftell(file);
  std::fclose(file);
  if (got != shard_header_ints)
    throw InputError("token shard '" + path + "' is truncated: " + std::to_string(bytes) +
                     " bytes, shorter than the 1024-byte header");
  if (header[0] != shard_magic)
    throw InputError("token shard '" + path + "' has magic " + std::to_string(header[0]) + ", expected " +
                     std::to_string(shard_magic) + " (not an llm.c token shard)");
  if (header[1] != shard_version)
    throw InputError("token shard '" + path + "' has version " + std::to_string(header[1]) + ", expected " +
                     std::to_string(shard_version));
  const int64_t tokens = header[2];
  const int64_t expected = int64_t{shard_header_ints} * 4 + 2 * tokens;
  if (tokens < 0 || bytes != expected)
    throw InputError("token shard '" + path + "' is truncated or corrupt: header says " + std::to_string(tokens) +
                     " tokens (" + std::to_string(expected) + " bytes), file has " + std::to_string(bytes) +
                     " bytes");
  return {path, tokens, header[shard_tokenizer_slot], header[shard_vocab_slot]};
}

void write_shard(const std::string& path, const std::vector<uint16_t>& tokens, int32_t tokenizer,
                 int32_t vocab_size) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  XP_REQUIRE(file, "cannot write token shard '" + path + "': " + std::strerror(errno));
  int32_t header[shard_header_ints] = {};
  header[0] = shard_magic;
  header[1] = shard_version;
  header[2] = static_cast<int32_t>(tokens.size());
  header[shard_tokenizer_slot] = tokenizer;
  header[shard_vocab_slot] = vocab_size;
  bool ok = std::fwrite(header, sizeof(int32_t), shard_header_ints, file) == shard_header_ints;
  ok = ok && std::fwrite(tokens.data(), sizeof(uint16_t), tokens.size(), file) == tokens.size();
  ok = (std::fclose(file) == 0) && ok;
  XP_REQUIRE(ok, "failed writing token shard '" + path + "': " + std::strerror(errno));
}

std::vector<std::string> expand_glob(const std::string& pattern, const std::string& key) {
  glob_t matches{};
  const int rc = glob(pattern.c_str(), 0, nullptr, &matches);
  std::vector<std::string> paths;
  if (rc == 0)
    for (size_t i = 0; i < matches.gl_pathc; ++i) paths.emplace_back(matches.gl_pathv[i]);
  globfree(&matches);
  if (paths.empty()) throw InputError(key + " '" + pattern + "' matches no files");
  std::sort(paths.begin(), paths.end());
  return paths;
}

ShardSource::ShardSource(const std::string& pattern, const std::string& key, int seq_len, int vocab_size,
                         int64_t batch_sequences)
    : seq_len_(seq_len), vocab_size_(vocab_size) {
  const int64_t needed = batch_sequences * seq_len + 1;
  for (const std::string& path : expand_glob(pattern, key)) {
    ShardInfo info = read_shard_header(path);
    if (info.tokens < needed)
      throw InputError("token shard '" + path + "' holds " + std::to_string(info.tokens) +
                       " tokens, fewer than one global batch needs (" + std::to_string(needed) +
                       "); lower batch_size, grad_accum_steps or seq_len, or write larger shards");
    if (info.vocab_size > vocab_size)  // xp_prep recorded the tokenizer: a mismatch is known before step 1
      throw InputError("token shard '" + path + "' was made by the " + shard_tokenizer_name(info.tokenizer) +
                       " tokenizer, vocabulary " + std::to_string(info.vocab_size) + ", larger than vocab_size = " +
                       std::to_string(vocab_size) + "; set vocab_size = " + std::to_string(info.vocab_size));
    shards_.push_back(info);
  }
}

ShardSource::~ShardSource() {
  if (file_) std::fclose(file_);
}

void ShardSource::align(int64_t sequences) {
  XP_REQUIRE(cursor.shard >= 0 && cursor.shard < static_cast<int64_t>(shards_.size()),
             "data cursor at shard " + std::to_string(cursor.shard) + " but train_data has " +
                 std::to_string(shards_.size()) + " shard(s): was the checkpoint written with other data?");
  if (cursor.position + sequences * seq_len_ + 1 <= shards_[cursor.shard].tokens) return;
  cursor.position = 0;
  if (++cursor.shard == static_cast<int64_t>(shards_.size())) {
    cursor.shard = 0;
    ++cursor.epoch;
  }
}

void ShardSource::read(int64_t first, int count, int32_t* tokens) {
  const ShardInfo& shard = shards_[cursor.shard];
  if (open_shard_ != cursor.shard) {
    if (file_) std::fclose(file_);
    file_ = std::fopen(shard.path.c_str(), "rb");
    XP_REQUIRE(file_, "cannot open token shard '" + shard.path + "': " + std::strerror(errno));
    open_shard_ = cursor.shard;
  }
  // Rows overlap by one token (targets are inputs shifted by one), so read one contiguous span.
  const int64_t start = cursor.position + first * seq_len_;
  const int64_t span = int64_t{count} * seq_len_ + 1;
  XP_REQUIRE(start + span <= shard.tokens, "read past the end of token shard '" + shard.path + "'");
  buffer_.resize(span);
  const bool ok = std::fseek(file_, shard_header_ints * 4L + 2 * start, SEEK_SET) == 0 &&
                  std::fread(buffer_.data(), sizeof(uint16_t), span, file_) == static_cast<size_t>(span);
  XP_REQUIRE(ok, "failed reading token shard '" + shard.path + "' at token " + std::to_string(start));
  for (int row = 0; row < count; ++row)
    for (int t = 0; t <= seq_len_; ++t) {
      const uint16_t token = buffer_[int64_t{row} * seq_len_ + t];
      XP_REQUIRE(token < vocab_size_, "token shard '" + shard.path + "' holds token " + std::to_string(token) +
                                          " at position " + std::to_string(start + int64_t{row} * seq_len_ + t) +
                                          ", outside vocab_size " + std::to_string(vocab_size_));
      tokens[int64_t{row} * (seq_len_ + 1) + t] = token;
    }
}

void ShardSource::advance(int64_t sequences) { cursor.position += sequences * seq_len_; }

std::string ShardSource::describe() const {
  int64_t total = 0;
  for (const ShardInfo& shard : shards_) total += shard.tokens;
  return std::to_string(shards_.size()) + " shard(s), " + std::to_string(total) + " tokens";
}

}  // namespace xp
