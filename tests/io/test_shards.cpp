// llm.c token shards: the header check, rows of T+1 tokens at the cursor, moving between shards and
// epochs, and an InputError naming the file for every kind of bad shard.
#include "xp/io/shards.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "support.hpp"

namespace xp::test {
namespace {

namespace fs = std::filesystem;

constexpr int vocab = 1000;

// Tokens first, first+1, ... so every token says where it came from.
std::vector<uint16_t> counting(int count, int first = 0) {
  std::vector<uint16_t> tokens(count);
  std::iota(tokens.begin(), tokens.end(), static_cast<uint16_t>(first));
  return tokens;
}

std::vector<int32_t> read_rows(ShardSource& source, int64_t first, int count, int seq_len) {
  std::vector<int32_t> tokens(int64_t{count} * (seq_len + 1), -1);
  source.read(first, count, tokens.data());
  return tokens;
}

std::vector<int32_t> span(int first, int count) {
  std::vector<int32_t> tokens(count);
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

// Overwrites one int32 of the header.
void patch_header(const std::string& path, int index, int32_t value) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(index * 4);
  file.write(reinterpret_cast<const char*>(&value), 4);
}

TEST(Shards, HeaderRecordsTheTokenizer) {
  ScratchDir dir("xp_shards");
  write_shard(dir.file("gpt2.bin"), counting(10), shard_tokenizer_gpt2, 50257);
  const ShardInfo gpt2 = read_shard_header(dir.file("gpt2.bin"));
  EXPECT_EQ(gpt2.tokens, 10);
  EXPECT_EQ(gpt2.tokenizer, shard_tokenizer_gpt2);
  EXPECT_EQ(gpt2.vocab_size, 50257);
  EXPECT_STREQ(shard_tokenizer_name(gpt2.tokenizer), "gpt2");
  write_shard(dir.file("plain.bin"), counting(10));  // as llm.c's scripts write them: unrecorded
  EXPECT_EQ(read_shard_header(dir.file("plain.bin")).tokenizer, shard_tokenizer_unrecorded);
  EXPECT_EQ(read_shard_header(dir.file("plain.bin")).vocab_size, 0);
}

TEST(Shards, RecordedVocabularyLargerThanTheModelsIsNamed) {
  ScratchDir dir("xp_shards");
  write_shard(dir.file("gpt2.bin"), counting(100), shard_tokenizer_gpt2, 50257);
  const std::string message = input_error([&] { ShardSource(dir.file("*.bin"), "train_data", 4, 256, 1); });
  EXPECT_NE(message.find("gpt2 tokenizer, vocabulary 50257, larger than vocab_size = 256"), std::string::npos) << message;
  ShardSource(dir.file("*.bin"), "train_data", 4, 50304, 1);  // a padded vocabulary holds it
}

TEST(Shards, HeaderGivesTheTokenCount) {
  const ScratchDir dir("xp_test_shards");
  write_shard(dir.file("a.bin"), counting(300));
  EXPECT_EQ(fs::file_size(dir.file("a.bin")), 1024u + 2 * 300);
  const ShardInfo info = read_shard_header(dir.file("a.bin"));
  EXPECT_EQ(info.tokens, 300);
  EXPECT_EQ(info.path, dir.file("a.bin"));
}

// T = 4: row r of the batch is tokens [4r, 4r + 5), so neighbouring rows share one token.
TEST(Shards, RowsAreTPlusOneTokensOverlappingByOne) {
  const ScratchDir dir("xp_test_shards");
  write_shard(dir.file("a.bin"), counting(100));
  ShardSource source(dir.file("*.bin"), "train_data", 4, vocab, 3);
  source.align(3);
  const std::vector<int32_t> batch = read_rows(source, 0, 3, 4);
  EXPECT_EQ(batch, (std::vector<int32_t>{0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 8, 9, 10, 11, 12}));
  EXPECT_EQ(read_rows(source, 1, 2, 4), (std::vector<int32_t>{4, 5, 6, 7, 8, 8, 9, 10, 11, 12}));
  source.advance(3);
  EXPECT_EQ(source.cursor.position, 12);
  source.align(3);
  EXPECT_EQ(source.cursor.position, 12);
  EXPECT_EQ(read_rows(source, 2, 1, 4), span(20, 5));
}

// Shards of 20 and 30 tokens, T = 4, batches of 3 rows (13 tokens).
TEST(Shards, AlignMovesToTheNextShardAndWrapsWithANewEpoch) {
  const ScratchDir dir("xp_test_shards");
  write_shard(dir.file("train_000.bin"), counting(20, 0));
  write_shard(dir.file("train_001.bin"), counting(30, 100));
  ShardSource source(dir.file("train_*.bin"), "train_data", 4, vocab, 3);
  source.align(3);
  EXPECT_EQ(read_rows(source, 0, 1, 4), span(0, 5));
  source.advance(3);
  source.align(3);  // 12 + 13 > 20: the batch does not fit in the rest of the first shard
  EXPECT_EQ(source.cursor.shard, 1);
  EXPECT_EQ(source.cursor.position, 0);
  EXPECT_EQ(source.cursor.epoch, 0);
  EXPECT_EQ(read_rows(source, 0, 1, 4), span(100, 5));
  source.advance(3);
  source.align(3);  // 12 + 13 <= 30: still fits
  EXPECT_EQ(source.cursor.shard, 1);
  EXPECT_EQ(read_rows(source, 0, 3, 4).back(), 100 + 24);
  source.advance(3);
  source.align(3);  // 24 + 13 > 30: back to the first shard
  EXPECT_EQ(source.cursor.shard, 0);
  EXPECT_EQ(source.cursor.position, 0);
  EXPECT_EQ(source.cursor.epoch, 1);
  EXPECT_EQ(read_rows(source, 1, 1, 4), span(4, 5));
}

TEST(Shards, GlobIsReadInSortedOrder) {
  const ScratchDir dir("xp_test_shards");
  write_shard(dir.file("s_2.bin"), counting(20, 200));
  write_shard(dir.file("s_0.bin"), counting(20, 0));
  write_shard(dir.file("s_1.bin"), counting(20, 100));
  write_shard(dir.file("other.bin"), counting(20, 500));
  EXPECT_EQ(expand_glob(dir.file("s_*.bin"), "train_data"),
            (std::vector<std::string>{dir.file("s_0.bin"), dir.file("s_1.bin"), dir.file("s_2.bin")}));
  ShardSource source(dir.file("s_*.bin"), "train_data", 8, vocab, 2);
  for (int shard = 0; shard < 3; ++shard) {
    source.align(2);
    EXPECT_EQ(read_rows(source, 0, 1, 8), span(100 * shard, 9)) << shard;
    source.advance(2);
  }
  EXPECT_NE(source.describe().find("3 shard(s), 60 tokens"), std::string::npos) << source.describe();
}

TEST(Shards, WrongMagicIsNamed) {
  const ScratchDir dir("xp_test_shards");
  write_shard(dir.file("a.bin"), counting(50));
  patch_header(dir.file("a.bin"), 0, 12345);
  const std::string message = input_error([&] { read_shard_header(dir.file("a.bin")); });
  EXPECT_NE(message.find("'" + dir.file("a.bin") + "' has magic 12345, expected 20240520"), std::string::npos)
      << message;
  EXPECT_NE(input_error([&] { ShardSource(dir.file("*.bin"), "train_data", 4, vocab, 1); }).find(dir.file("a.bin")),
            std::string::npos);
}

TEST(Shards, WrongVersionIsNamed) {
  const ScratchDir dir("xp_test_shards");
  write_shard(dir.file("a.bin"), counting(50));
  patch_header(dir.file("a.bin"), 1, 2);
  const std::string message = input_error([&] { read_shard_header(dir.file("a.bin")); });
  EXPECT_NE(message.find("'" + dir.file("a.bin") + "' has version 2, expected 1"), std::string::npos) << message;
}

TEST(Shards, TokenCountMustMatchTheFileSize) {
  const ScratchDir dir("xp_test_shards");
  write_shard(dir.file("short.bin"), counting(50));
  fs::resize_file(dir.file("short.bin"), 1024 + 2 * 40);
  std::string message = input_error([&] { read_shard_header(dir.file("short.bin")); });
  EXPECT_NE(message.find("'" + dir.file("short.bin") + "' is truncated or corrupt: header says 50 tokens"),
            std::string::npos)
      << message;
  write_shard(dir.file("long.bin"), counting(50));
  fs::resize_file(dir.file("long.bin"), 1024 + 2 * 60);
  message = input_error([&] { read_shard_header(dir.file("long.bin")); });
  EXPECT_NE(message.find(dir.file("long.bin")), std::string::npos) << message;
}

TEST(Shards, FileShorterThanTheHeaderIsNamed) {
  const ScratchDir dir("xp_test_shards");
  std::ofstream(dir.file("tiny.bin")) << "not a shard";
  const std::string message = input_error([&] { read_shard_header(dir.file("tiny.bin")); });
  EXPECT_NE(message.find("'" + dir.file("tiny.bin") + "' is truncated"), std::string::npos) << message;
  EXPECT_NE(message.find("1024-byte header"), std::string::npos) << message;
}

TEST(Shards, GlobMatchingNothingNamesKeyAndPattern) {
  const ScratchDir dir("xp_test_shards");
  const std::string pattern = dir.file("missing_*.bin");
  const std::string message = input_error([&] { ShardSource(pattern, "val_data", 4, vocab, 1); });
  EXPECT_EQ(message, "val_data '" + pattern + "' matches no files");
}

TEST(Shards, ShardSmallerThanOneGlobalBatchIsNamed) {
  const ScratchDir dir("xp_test_shards");
  write_shard(dir.file("a.bin"), counting(100));
  write_shard(dir.file("b.bin"), counting(32));
  ShardSource(dir.file("*.bin"), "train_data", 4, vocab, 7);  // 7·4 + 1 = 29 tokens fit in both
  const std::string message = input_error([&] { ShardSource(dir.file("*.bin"), "train_data", 4, vocab, 8); });
  EXPECT_NE(message.find("'" + dir.file("b.bin") + "' holds 32 tokens, fewer than one global batch needs (33)"),
            std::string::npos)
      << message;
}

}  // namespace
}  // namespace xp::test
