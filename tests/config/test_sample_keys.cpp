// The [sample] deck keys: read from a deck table or the command line, written back by config_to_toml
// (a prompt with newlines, quotes and non-ASCII text survives), and bad values refused by name.
#include <gtest/gtest.h>

#include <string>

#include "support.hpp"
#include "xp/config/deck.hpp"

namespace xp::test {
namespace {

TEST(SampleKeys, DeckTableAndOverridesSetThem) {
  const ScratchDir dir("xp_test_sample_keys");
  const std::string deck = dir.write("deck.in", "[sample]\nsample_every = 50\nsample_prompt = \"Once\\n\\\"upon\\\" é\"\n"
                                                "temperature = 0.7\n");
  const Config config = load_config(deck, {"top_k=40", "sample.sample_tokens=12"});
  EXPECT_EQ(config.sample.sample_every, 50);
  EXPECT_EQ(config.sample.sample_tokens, 12);
  EXPECT_EQ(config.sample.sample_prompt, "Once\n\"upon\" \xc3\xa9");
  EXPECT_EQ(config.sample.temperature, 0.7);
  EXPECT_EQ(config.sample.top_k, 40);

  const Config back = load_config(dir.write("back.in", config_to_toml(config)), {});
  EXPECT_EQ(back.sample.sample_prompt, config.sample.sample_prompt);
  EXPECT_EQ(back.sample.temperature, config.sample.temperature);
  EXPECT_EQ(back.sample.sample_every, config.sample.sample_every);
  EXPECT_EQ(Config{}.sample.sample_every, 0) << "samples are off unless asked for";
}

TEST(SampleKeys, BadValuesAreRefused) {
  EXPECT_NE(input_error([] { load_config("", {"temperature=-0.5"}); }).find("temperature"), std::string::npos);
  EXPECT_NE(input_error([] { load_config("", {"top_k=-1"}); }).find("top_k"), std::string::npos);
  EXPECT_NE(input_error([] { load_config("", {"sample_tokens=0"}); }).find("sample_tokens"), std::string::npos);
  EXPECT_NE(input_error([] { load_config("", {"run.sample_every=3"}); }).find("belongs in table [sample]"),
            std::string::npos);
}

}  // namespace
}  // namespace xp::test
