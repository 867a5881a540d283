// The input deck (TOML + key=value overrides, validation, error messages), the model presets, the
// parallel layout check and the parameter table that every buffer is laid out from.
#include "xp/config/deck.hpp"

#include <gtest/gtest.h>

#include <iomanip>
#include <set>

#include "support.hpp"
#include "xp/model/layout.hpp"
#include "xp/parallel/topology.hpp"

namespace xp::test {
namespace {

Config from_deck(const std::string& text, const std::vector<std::string>& overrides = {}) {
  const ScratchDir dir("xp_test_deck");
  return load_config(dir.write("deck.in", text), overrides);
}

std::string deck_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
  const ScratchDir dir("xp_test_deck");
  const std::string path = dir.write("deck.in", text);
  return input_error([&] { load_config(path, overrides); });
}

void expect_same_float(double a, double b, const char* key) {
  EXPECT_EQ(a, b) << key << ": " << std::setprecision(17) << a << " vs " << b;
}

// Every field, so a key that is read into the wrong field or lost on the way shows up by name.
void expect_same(const Config& a, const Config& b) {
  EXPECT_EQ(a.model.model, b.model.model);
  EXPECT_EQ(a.model.n_layer, b.model.n_layer);
  EXPECT_EQ(a.model.n_head, b.model.n_head);
  EXPECT_EQ(a.model.n_embd, b.model.n_embd);
  EXPECT_EQ(a.model.seq_len, b.model.seq_len);
  EXPECT_EQ(a.model.vocab_size, b.model.vocab_size);
  EXPECT_EQ(a.train.steps, b.train.steps);
  EXPECT_EQ(a.train.seed, b.train.seed);
  EXPECT_EQ(a.train.batch_size, b.train.batch_size);
  EXPECT_EQ(a.train.grad_accum_steps, b.train.grad_accum_steps);
  expect_same_float(a.train.lr, b.train.lr, "lr");
  expect_same_float(a.train.min_lr, b.train.min_lr, "min_lr");
  EXPECT_EQ(a.train.warmup_steps, b.train.warmup_steps);
  expect_same_float(a.train.weight_decay, b.train.weight_decay, "weight_decay");
  expect_same_float(a.train.beta1, b.train.beta1, "beta1");
  expect_same_float(a.train.beta2, b.train.beta2, "beta2");
  expect_same_float(a.train.eps, b.train.eps, "eps");
  expect_same_float(a.train.grad_clip_norm, b.train.grad_clip_norm, "grad_clip_norm");
  expect_same_float(a.train.init_std, b.train.init_std, "init_std");
  EXPECT_EQ(a.data.train_data, b.data.train_data);
  EXPECT_EQ(a.data.val_data, b.data.val_data);
  EXPECT_EQ(a.data.eval_every, b.data.eval_every);
  EXPECT_EQ(a.data.eval_batches, b.data.eval_batches);
  EXPECT_EQ(a.data.synthetic_branching, b.data.synthetic_branching);
  EXPECT_EQ(a.parallel.tp_size, b.parallel.tp_size);
  EXPECT_EQ(a.parallel.pp_stages, b.parallel.pp_stages);
  EXPECT_EQ(a.parallel.dp_size, b.parallel.dp_size);
  EXPECT_EQ(a.parallel.threads, b.parallel.threads);
  EXPECT_EQ(a.parallel.zero_stage, b.parallel.zero_stage);
  EXPECT_EQ(a.parallel.world_size, b.parallel.world_size);
  expect_same_float(a.parallel.device_memory, b.parallel.device_memory, "device_memory");
  EXPECT_EQ(a.run.run_dir, b.run.run_dir);
  EXPECT_EQ(a.run.log_every, b.run.log_every);
  expect_same_float(a.run.peak_tflops, b.run.peak_tflops, "peak_tflops");
  EXPECT_EQ(a.run.checkpoint_every, b.run.checkpoint_every);
  EXPECT_EQ(a.run.final_checkpoint, b.run.final_checkpoint);
  EXPECT_EQ(a.run.keep_last, b.run.keep_last);
  EXPECT_EQ(a.run.resume, b.run.resume);
  EXPECT_EQ(a.sample.sample_every, b.sample.sample_every);
  EXPECT_EQ(a.sample.sample_tokens, b.sample.sample_tokens);
  EXPECT_EQ(a.sample.sample_prompt, b.sample.sample_prompt);
  expect_same_float(a.sample.temperature, b.sample.temperature, "temperature");
  EXPECT_EQ(a.sample.top_k, b.sample.top_k);
  EXPECT_EQ(a.model.model, b.model.model);
}

Config round_trip(const Config& config) {
  const ScratchDir dir("xp_test_deck");
  return load_config(dir.write("config.toml", config_to_toml(config)), {});
}

TEST(Deck, NoDeckGivesTheDefaults) { expect_same(load_config("", {}), Config{}); }

TEST(Deck, ReadsFlatKeys) {
  const Config config = from_deck("steps = 7\nlr = 1e-3\nn_layer = 3\ntrain_data = \"a/*.bin\"\n"
                                  "tp_size = 1\nrun_dir = \"out\"\ngrad_accum_steps = 2\n");
  EXPECT_EQ(config.train.steps, 7);
  EXPECT_EQ(config.train.lr, 1e-3);
  EXPECT_EQ(config.model.n_layer, 3);
  EXPECT_EQ(config.data.train_data, "a/*.bin");
  EXPECT_EQ(config.parallel.tp_size, 1);
  EXPECT_EQ(config.run.run_dir, "out");
  EXPECT_EQ(config.train.grad_accum_steps, 2);
}

TEST(Deck, ReadsKeysInsideTheirTables) {
  const Config config = from_deck(
      "[model]\nn_layer = 3\nn_head = 4\nn_embd = 32\n"
      "[train]\nsteps = 11\nmin_lr = 1e-5\nseed = 7\n"
      "[data]\nval_data = \"v/*.bin\"\neval_every = 5\n"
      "[parallel]\ndp_size = 2\npp_stages = \"auto\"\n"
      "[run]\nlog_every = 3\npeak_tflops = 12.5\n");
  EXPECT_EQ(config.model.n_layer, 3);
  EXPECT_EQ(config.model.n_head, 4);
  EXPECT_EQ(config.model.n_embd, 32);
  EXPECT_EQ(config.train.steps, 11);
  EXPECT_EQ(config.train.min_lr, 1e-5);
  EXPECT_EQ(config.train.seed, 7u);
  EXPECT_EQ(config.data.val_data, "v/*.bin");
  EXPECT_EQ(config.data.eval_every, 5);
  EXPECT_EQ(config.parallel.dp_size, 2);
  EXPECT_EQ(config.parallel.pp_stages, 0);
  EXPECT_EQ(config.run.log_every, 3);
  EXPECT_EQ(config.run.peak_tflops, 12.5);
}

TEST(Deck, KeyInTheWrongTableNamesTheRightOne) {
  const std::string message = deck_error("[model]\nn_layer = 2\nsteps = 5\n");
  EXPECT_NE(message.find("deck.in:3"), std::string::npos) << message;
  EXPECT_NE(message.find("belongs in table [train]"), std::string::npos) << message;
}

TEST(Deck, OverrideBeatsTheDeck) {
  EXPECT_EQ(from_deck("steps = 5\n", {"steps=9"}).train.steps, 9);
  EXPECT_EQ(from_deck("[train]\nsteps = 5\n", {"train.steps=9"}).train.steps, 9);
  EXPECT_EQ(from_deck("[train]\nlr = 1e-3\n", {"lr=2e-3"}).train.lr, 2e-3);
}

TEST(Deck, OverrideStringsNeedNoQuotes) {
  const Config config = from_deck("tp_size = 1\n", {"train_data=data/*.bin", "tp_size=auto", "run_dir=runs/x",
                                                    "val_data=\"quoted.bin\""});
  EXPECT_EQ(config.data.train_data, "data/*.bin");
  EXPECT_EQ(config.parallel.tp_size, 0);
  EXPECT_EQ(config.run.run_dir, "runs/x");
  EXPECT_EQ(config.data.val_data, "quoted.bin");
}

TEST(Deck, GradClipNoneDisablesClipping) {
  EXPECT_EQ(from_deck("grad_clip_norm = \"none\"\n").train.grad_clip_norm, 0.0);
  EXPECT_EQ(load_config("", {"grad_clip_norm=none"}).train.grad_clip_norm, 0.0);
  EXPECT_EQ(load_config("", {"grad_clip_norm=0.5"}).train.grad_clip_norm, 0.5);
  const std::string message = input_error([] { load_config("", {"grad_clip_norm=off"}); });
  EXPECT_NE(message.find("none"), std::string::npos) << message;
}

TEST(Deck, FinalCheckpointIsABoolean) {
  EXPECT_TRUE(Config{}.run.final_checkpoint);
  EXPECT_FALSE(from_deck("[run]\nfinal_checkpoint = false\n").run.final_checkpoint);
  EXPECT_TRUE(from_deck("final_checkpoint = false\n", {"final_checkpoint=true"}).run.final_checkpoint);
  Config off;
  off.run.final_checkpoint = false;
  EXPECT_FALSE(round_trip(off).run.final_checkpoint);
  const std::string message = deck_error("final_checkpoint = 0\n");
  EXPECT_NE(message.find("key 'final_checkpoint' expects true or false, got 0"), std::string::npos) << message;
}

TEST(Deck, UnknownKeySuggestsTheNearestOne) {
  std::string message = deck_error("steps = 3\nstpes = 10\n");
  EXPECT_NE(message.find("deck.in:2"), std::string::npos) << message;
  EXPECT_NE(message.find("did you mean 'steps'"), std::string::npos) << message;
  message = input_error([] { load_config("", {"stpes=10"}); });
  EXPECT_NE(message.find("did you mean 'steps'"), std::string::npos) << message;
  EXPECT_EQ(closest_key("stpes"), "steps");
  EXPECT_EQ(closest_key("qqqqqqqqqqqq"), "");
}

TEST(Deck, UnknownKeyInsideATableSuggestsTheNearestOne) {
  const std::string message = deck_error("[train]\nstpes = 10\n");
  EXPECT_NE(message.find("deck.in:2"), std::string::npos) << message;
  EXPECT_NE(message.find("did you mean 'steps'"), std::string::npos) << message;
}

TEST(Deck, MalformedTomlQuotesFileAndLine) {
  const std::string message = deck_error("steps = 10\n\nlr = = 3\n");
  EXPECT_NE(message.find("deck.in:3"), std::string::npos) << message;
  EXPECT_NE(message.find("malformed TOML"), std::string::npos) << message;
}

TEST(Deck, WrongTypeNamesKeyAndExpectedType) {
  const std::string message = deck_error("[train]\nsteps = \"ten\"\n");
  EXPECT_NE(message.find("deck.in:2"), std::string::npos) << message;
  EXPECT_NE(message.find("'steps' expects integer >= 1, got ten"), std::string::npos) << message;
  EXPECT_NE(deck_error("n_layer = 2.5\n").find("'n_layer' expects integer"), std::string::npos);
  EXPECT_NE(deck_error("train_data = 3\n").find("'train_data' expects a string"), std::string::npos);
}

TEST(Deck, OutOfRangeNamesTheAllowedRange) {
  std::string message = deck_error("batch_size = 0\n");
  EXPECT_NE(message.find("deck.in:1"), std::string::npos) << message;
  EXPECT_NE(message.find("'batch_size' expects integer >= 1, got 0"), std::string::npos) << message;
  message = deck_error("\nlr = -1\n");
  EXPECT_NE(message.find("deck.in:2"), std::string::npos) << message;
  EXPECT_NE(message.find("'lr' expects float in [0.0, 10.0]"), std::string::npos) << message;
  EXPECT_NE(deck_error("min_lr = 1e-3\nlr = 1e-4\n").find("min_lr"), std::string::npos);
  EXPECT_NE(deck_error("vocab_size = 70000\n").find("65536"), std::string::npos);
  EXPECT_NE(deck_error("n_layer = 3000000000\n").find("'n_layer' expects"), std::string::npos);
}

TEST(Deck, WidthMustBeDivisibleByHeads) {
  const std::string message = deck_error("n_embd = 100\nn_head = 3\n");
  EXPECT_NE(message.find("n_embd 100 is not divisible by n_head 3"), std::string::npos) << message;
  EXPECT_NE(message.find("1, 2, 4, 5, 10, 20, 25, 50, 100"), std::string::npos) << message;
}

TEST(Deck, MissingDeckFileIsNamed) {
  const ScratchDir dir("xp_test_deck");
  const std::string path = dir.path() + "/absent.in";
  const std::string message = input_error([&] { load_config(path, {}); });
  EXPECT_NE(message.find("cannot read input deck '" + path + "'"), std::string::npos) << message;
}

TEST(Deck, DirectoryIsNotADeck) {
  const ScratchDir dir("xp_test_deck");
  const std::string message = input_error([&] { load_config(dir.path(), {}); });
  EXPECT_NE(message.find(dir.path()), std::string::npos) << message;
}

TEST(Deck, SameKeyTwiceIsRejected) {
  const std::string message = deck_error("steps = 3\n[train]\nsteps = 4\n");
  EXPECT_NE(message.find("'steps' is also set at"), std::string::npos) << message;
  EXPECT_NE(message.find("deck.in:1"), std::string::npos) << message;
  EXPECT_NE(message.find("deck.in:3"), std::string::npos) << message;
}

TEST(Deck, ResolvedConfigReadsBackUnchanged) {
  const Config config = load_config("", {"model=gpt2", "n_layer=3", "steps=77", "seed=99", "lr=3e-4", "min_lr=3e-5",
                                         "warmup_steps=5", "eps=1e-8", "grad_clip_norm=none", "beta2=0.99",
                                         "train_data=data/*.bin", "val_data=val/*.bin", "eval_every=10",
                                         "tp_size=1", "dp_size=auto", "threads=3", "run_dir=runs/trip",
                                         "log_every=4", "peak_tflops=auto"});
  expect_same(round_trip(config), config);
  expect_same(round_trip(Config{}), Config{});
}

// config.toml must reproduce the run: every digit of a float, and strings that need escaping.
TEST(Deck, ResolvedConfigKeepsEveryDigit) {
  Config config;
  config.train.lr = 0.1234567890123456;
  config.train.init_std = 1.0 / 3.0;
  expect_same(round_trip(config), config);
}

TEST(Deck, ResolvedConfigEscapesStrings) {
  Config config;
  config.data.train_data = "data/shard\\[0\\]*.bin";
  config.run.run_dir = "runs/\"quoted\"";
  expect_same(round_trip(config), config);
}

TEST(Deck, HelpListsEveryKey) {
  const std::string help = describe_keys();
  for (const DeckKey& key : deck_keys()) {
    EXPECT_NE(help.find("  " + key.name + " "), std::string::npos) << key.name;
    EXPECT_NE(help.find("[" + key.section + "]"), std::string::npos) << key.section;
    EXPECT_NE(help.find(key.type), std::string::npos) << key.name;
  }
}

struct PublishedShape {
  const char* name;
  int n_layer, n_head, n_embd;
};

TEST(Presets, SetThePublishedShapes) {
  for (const PublishedShape& shape : {PublishedShape{"gpt2", 12, 12, 768}, PublishedShape{"gpt2-medium", 24, 16, 1024},
                                      PublishedShape{"gpt2-large", 36, 20, 1280},
                                      PublishedShape{"gpt2-xl", 48, 25, 1600}}) {
    const ModelConfig model = from_deck(std::string("[model]\nmodel = \"") + shape.name + "\"\n").model;
    EXPECT_EQ(model.model, shape.name);
    EXPECT_EQ(model.n_layer, shape.n_layer) << shape.name;
    EXPECT_EQ(model.n_head, shape.n_head) << shape.name;
    EXPECT_EQ(model.n_embd, shape.n_embd) << shape.name;
    EXPECT_EQ(model.seq_len, 1024) << shape.name;
    EXPECT_EQ(model.vocab_size, 50257) << shape.name;
    EXPECT_EQ(model.padded_vocab(), 50304) << shape.name;
  }
}

TEST(Presets, ExplicitShapeKeysWinInAnyOrder) {
  EXPECT_EQ(from_deck("n_layer = 3\nmodel = \"gpt2\"\n").model.n_layer, 3);
  EXPECT_EQ(from_deck("model = \"gpt2\"\nn_layer = 3\n").model.n_layer, 3);
  EXPECT_EQ(from_deck("[model]\nn_layer = 3\nmodel = \"gpt2-xl\"\n").model.n_embd, 1600);
  EXPECT_EQ(from_deck("model = \"gpt2\"\n", {"n_layer=4"}).model.n_layer, 4);
  EXPECT_EQ(from_deck("n_layer = 5\n", {"model=gpt2"}).model.n_layer, 5);
  EXPECT_EQ(from_deck("seq_len = 256\n", {"model=gpt2"}).model.seq_len, 256);
}

TEST(Presets, UnknownPresetListsTheAllowedOnes) {
  const std::string message = deck_error("\nmodel = \"gpt3\"\n");
  EXPECT_NE(message.find("deck.in:2"), std::string::npos) << message;
  EXPECT_NE(message.find("custom, gpt2, gpt2-medium, gpt2-large, gpt2-xl"), std::string::npos) << message;
}

TEST(Layout, ProductMustEqualTheWorld) {
  ParallelConfig parallel;
  parallel.dp_size = 3;
  const std::string message = input_error([&] { choose_layout(parallel, ModelConfig{}, 2); });
  EXPECT_EQ(message.rfind("tp_size 1 × pp_stages 1 × dp_size 3 = 3 ≠ 2 ranks", 0), 0u) << message;
}

TEST(Layout, AutoDataParallelFillsTheWorld) {
  for (int world : {1, 2, 3, 4, 8}) {
    const Layout layout = choose_layout(ParallelConfig{}, ModelConfig{}, world);
    EXPECT_EQ(layout.dp, world);
    EXPECT_EQ(layout.tp, 1);
    EXPECT_EQ(layout.pp, 1);
  }
  ParallelConfig parallel;
  parallel.tp_size = 2;
  const Layout split = choose_layout(parallel, ModelConfig{}, 4);
  EXPECT_EQ(split.tp, 2);
  EXPECT_EQ(split.dp, 2);
  ModelConfig three_heads;
  three_heads.n_head = 3;
  three_heads.n_embd = 96;
  EXPECT_NE(input_error([&] { choose_layout(parallel, three_heads, 4); }).find("n_head 3 is not divisible by tp_size 2"),
            std::string::npos);
  parallel.tp_size = 1;
  parallel.pp_stages = 4;
  EXPECT_NE(input_error([&] { choose_layout(parallel, ModelConfig{}, 4); }).find("pp_stages 4 > n_layer 2"),
            std::string::npos);
}

TEST(Layout, CountMatchesTheTableForEveryPreset) {
  for (const char* name : {"custom", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}) {
    ModelConfig model;
    apply_model_preset(name, model, "test");
    EXPECT_EQ(count_parameters(model), ParameterLayout(model).total()) << name;
  }
}

TEST(Layout, Gpt2SmallHas124MParameters) {
  ModelConfig model;
  apply_model_preset("gpt2", model, "test");
  constexpr int64_t C = 768;
  const int64_t expected = 50304 * C + 1024 * C + 12 * (12 * C * C + 13 * C) + 2 * C;
  ASSERT_EQ(expected, 124'475'904);
  EXPECT_EQ(ParameterLayout(model).total(), expected);
  EXPECT_EQ(count_parameters(model), expected);
}

TEST(Layout, TensorsAreContiguousAndOnlyMatricesDecay) {
  ModelConfig model;
  model.n_layer = 3;
  const ParameterLayout layout(model);
  const int64_t C = model.n_embd;
  std::set<std::string> names;
  int64_t next = 0;
  for (const TensorInfo& tensor : layout.tensors()) {
    EXPECT_TRUE(names.insert(tensor.name).second) << "duplicate " << tensor.name;
    EXPECT_EQ(tensor.offset, next) << tensor.name;
    int64_t size = 1;
    for (int64_t extent : tensor.shape) size *= extent;
    EXPECT_EQ(tensor.size, size) << tensor.name;
    EXPECT_EQ(tensor.decay, tensor.shape.size() == 2) << tensor.name;
    next += tensor.size;
  }
  EXPECT_EQ(next, layout.total());
  EXPECT_EQ(layout.tensors().size(), 2u + 12u * model.n_layer + 2u);
  EXPECT_EQ(layout.find("wte.weight").shape, (std::vector<int64_t>{model.padded_vocab(), C}));
  EXPECT_EQ(layout.find("wpe.weight").shape, (std::vector<int64_t>{model.seq_len, C}));
  EXPECT_EQ(layout.find("h.2.attn.qkv.weight").shape, (std::vector<int64_t>{3 * C, C}));
  EXPECT_EQ(layout.find("h.2.mlp.proj.weight").shape, (std::vector<int64_t>{C, 4 * C}));
  EXPECT_EQ(layout.find("ln_f.bias").offset + C, layout.total());
  EXPECT_EQ(layout.block(1).qkv_w, layout.find("h.1.attn.qkv.weight").offset);
  EXPECT_EQ(layout.block(2).fcproj_b, layout.find("h.2.mlp.proj.bias").offset);
  EXPECT_EQ(layout.wpe(), layout.find("wpe.weight").offset);
}

}  // namespace
}  // namespace xp::test
