// The pipeline partition, the auto layout and its errors, and the per-stage memory estimate that
// `--dry-run` prints, with memory numbers checked against hand-computed bytes.
#include "xp/parallel/topology.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <numeric>

#include "support.hpp"
#include "xp/config/deck.hpp"
#include "xp/model/layout.hpp"
#include "xp/model/partition.hpp"
#include "xp/train/fit_check.hpp"

namespace xp::test {
namespace {

ModelConfig shape(int n_layer, int n_head, int n_embd, int seq_len, int vocab_size) {
  ModelConfig model;
  model.n_layer = n_layer;
  model.n_head = n_head;
  model.n_embd = n_embd;
  model.seq_len = seq_len;
  model.vocab_size = vocab_size;
  return model;
}
ModelConfig gpt2_124m() { return shape(12, 12, 768, 1024, 50257); }

// Both in the order the tests read best: tp, pp, dp.
Layout layout_of(int tp, int pp, int dp) { return Layout{dp, tp, pp}; }
ParallelConfig degrees(int tp, int pp, int dp) { return ParallelConfig{tp, pp, dp}; }

std::vector<int> layer_counts(const std::vector<StageRange>& ranges) {
  std::vector<int> counts;
  for (const StageRange& range : ranges) counts.push_back(range.layers());
  return counts;
}

int64_t largest_cost(const ModelConfig& model, const std::vector<int>& counts) {
  int64_t worst = 0;
  for (size_t s = 0; s < counts.size(); ++s) {
    int64_t cost = counts[s] * block_cost(model);
    if (s == 0) cost += embedding_cost(model);
    if (s + 1 == counts.size()) cost += embedding_cost(model);
    worst = std::max(worst, cost);
  }
  return worst;
}

// The smallest largest-stage cost over every composition of n_layer into `stages` positive parts.
int64_t brute_force_best(const ModelConfig& model, int stages) {
  int64_t best = INT64_MAX;
  std::vector<int> counts(stages, 1);
  std::function<void(int, int)> place = [&](int stage, int left) {
    if (stage == stages - 1) {
      counts[stage] = left;
      best = std::min(best, largest_cost(model, counts));
      return;
    }
    for (int n = 1; n <= left - (stages - 1 - stage); ++n) {
      counts[stage] = n;
      place(stage + 1, left - n);
    }
  };
  place(0, model.n_layer);
  return best;
}

Config tiny_config() {
  Config config;
  config.model = shape(2, 2, 8, 4, 100);  // padded vocabulary 128
  config.train.batch_size = 2;
  config.train.grad_accum_steps = 1;
  config.parallel.device_memory = 1e9;
  return config;
}

Config deck(const char* name, std::vector<std::string> overrides = {}) {
  overrides.push_back("device_memory=80GB");
  return load_config(std::string(XP_SOURCE_DIR "/inputs/") + name, overrides);
}

}  // namespace

TEST(Partition, OneStageHoldsEverything) {
  const std::vector<StageRange> ranges = partition_layers(gpt2_124m(), 1);
  ASSERT_EQ(ranges.size(), 1u);
  EXPECT_EQ(ranges[0].first_layer, 0);
  EXPECT_EQ(ranges[0].last_layer, 12);
  EXPECT_TRUE(ranges[0].has_embedding);
  EXPECT_TRUE(ranges[0].has_head);
}

TEST(Partition, GPT2SmallOnTwoThreeFourStages) {
  // wte (50304 × 768) is worth ~4.5 blocks and weighs on both ends, so the end stages get fewer layers.
  EXPECT_EQ(layer_counts(partition_layers(gpt2_124m(), 2)), (std::vector<int>{6, 6}));
  EXPECT_EQ(layer_counts(partition_layers(gpt2_124m(), 3)), (std::vector<int>{2, 7, 3}));
  EXPECT_EQ(layer_counts(partition_layers(gpt2_124m(), 4)), (std::vector<int>{1, 5, 5, 1}));
}

TEST(Partition, SmallVocabularySplitsEvenly) {
  const ModelConfig model = shape(12, 16, 1024, 1024, 2);
  EXPECT_EQ(layer_counts(partition_layers(model, 2)), (std::vector<int>{6, 6}));
  EXPECT_EQ(layer_counts(partition_layers(model, 3)), (std::vector<int>{4, 4, 4}));
  EXPECT_EQ(layer_counts(partition_layers(model, 4)), (std::vector<int>{3, 3, 3, 3}));
  // Ties go to fewer layers on earlier stages.
  EXPECT_EQ(layer_counts(partition_layers(model, 5)), (std::vector<int>{1, 3, 3, 3, 2}));
}

TEST(Partition, ContiguousFlaggedAndOptimal) {
  for (const ModelConfig& model : {gpt2_124m(), shape(10, 4, 64, 32, 5000), shape(9, 2, 256, 512, 300)}) {
    for (int stages = 1; stages <= model.n_layer; ++stages) {
      SCOPED_TRACE("n_layer " + std::to_string(model.n_layer) + ", stages " + std::to_string(stages));
      const std::vector<StageRange> ranges = partition_layers(model, stages);
      ASSERT_EQ(int(ranges.size()), stages);
      int next = 0;
      for (int s = 0; s < stages; ++s) {
        EXPECT_EQ(ranges[s].first_layer, next);
        EXPECT_GE(ranges[s].layers(), 1);
        EXPECT_EQ(ranges[s].has_embedding, s == 0);
        EXPECT_EQ(ranges[s].has_head, s == stages - 1);
        next = ranges[s].last_layer;
      }
      EXPECT_EQ(next, model.n_layer);
      EXPECT_EQ(largest_cost(model, layer_counts(ranges)), brute_force_best(model, stages));
    }
  }
}

TEST(Partition, LargeModelsAreFast) {
  const ModelConfig model = shape(200, 64, 8192, 2048, 50257);
  EXPECT_EQ(int(partition_layers(model, 64).size()), 64);
  EXPECT_EQ(layer_counts(partition_layers(model, 8)).back(), 25);
}

TEST(Partition, MoreStagesThanLayersIsAnError) {
  EXPECT_EQ(input_error([] { partition_layers(shape(8, 2, 64, 64, 256), 9); }),
            "pp_stages 9 > n_layer 8: every pipeline stage needs at least one layer (use pp_stages ≤ 8)");
  EXPECT_NE(input_error([] { partition_layers(shape(8, 2, 64, 64, 256), 0); }).find("pp_stages 0"), std::string::npos);
}

TEST(Topology, AutoLayoutFollowsTheSeedHeuristic) {
  const ParallelConfig automatic;
  const auto expect = [&](const Config& config, int tp, int pp, int dp) {
    const Layout layout = choose_layout(automatic, config.model, 8);
    EXPECT_EQ(layout.tp, tp) << config.model.n_embd;
    EXPECT_EQ(layout.pp, pp) << config.model.n_embd;
    EXPECT_EQ(layout.dp, dp) << config.model.n_embd;
  };
  expect(deck("gpt2.in"), 1, 1, 8);
  expect(deck("gpt2_1p3b.in"), 1, 1, 8);
  expect(deck("gpt2_7b.in"), 2, 1, 4);
  expect(deck("gpt2_30b.in"), 4, 2, 1);
  expect(deck("gpt2_40b.in"), 4, 2, 1);
  // A small model with a long context leaves the first tier.
  ModelConfig long_context = gpt2_124m();
  long_context.seq_len = 4096;
  EXPECT_EQ(choose_layout(automatic, long_context, 8).tp, 2);
}

TEST(Topology, AutoDegreesShrinkToTheWorld) {
  const ModelConfig big = deck("gpt2_30b.in").model;
  const Layout four = choose_layout(ParallelConfig{}, big, 4);
  EXPECT_EQ(four.tp * 10 + four.pp, 41);
  const Layout two = choose_layout(ParallelConfig{}, big, 2);
  EXPECT_EQ(two.tp * 10 + two.pp, 21);
  const Layout sixteen = choose_layout(ParallelConfig{}, big, 16);
  EXPECT_EQ(sixteen.tp * 100 + sixteen.pp * 10 + sixteen.dp, 422);
}

TEST(Topology, IntegersOverride) {
  const Layout a = choose_layout(degrees(2, 0, 0), gpt2_124m(), 8);
  EXPECT_EQ(a.tp * 100 + a.pp * 10 + a.dp, 214);
  const Layout b = choose_layout(degrees(0, 2, 0), gpt2_124m(), 8);
  EXPECT_EQ(b.tp * 100 + b.pp * 10 + b.dp, 124);
  const Layout c = choose_layout(degrees(0, 0, 2), deck("gpt2_30b.in").model, 8);
  EXPECT_EQ(c.tp * 100 + c.pp * 10 + c.dp, 412);
  const Layout d = choose_layout(degrees(8, 1, 1), deck("gpt2_40b.in").model, 8);
  EXPECT_EQ(d.tp * 100 + d.pp * 10 + d.dp, 811);
}

TEST(Topology, ImpossibleProductNamesEveryFactorAndAWayOut) {
  EXPECT_EQ(input_error([] { choose_layout(degrees(4, 2, 2), deck("gpt2_40b.in").model, 8); }),
            "tp_size 4 × pp_stages 2 × dp_size 2 = 16 ≠ 8 ranks; with 8 ranks try tp_size 4, pp_stages 2, dp_size 1");
  EXPECT_EQ(input_error([] { choose_layout(degrees(3, 0, 0), gpt2_124m(), 8); }),
            "tp_size 3 × pp_stages 1 × dp_size 2 = 6 ≠ 8 ranks; with 8 ranks try tp_size 4, pp_stages 1, dp_size 2");
}

TEST(Topology, HeadsMustDivideAmongTensorRanks) {
  EXPECT_EQ(input_error([] { choose_layout(degrees(8, 1, 1), gpt2_124m(), 8); }),
            "n_head 12 is not divisible by tp_size 8: each tensor-parallel rank needs whole attention heads; "
            "with 8 ranks try tp_size 4, pp_stages 1, dp_size 2");
  // The auto tp steps down to a divisor of the heads instead (30 B-class shape with 6 heads).
  EXPECT_EQ(choose_layout(ParallelConfig{}, shape(48, 6, 7680, 2048, 50257), 8).tp, 2);
}

TEST(Topology, StagesMustHaveLayers) {
  const std::string message = input_error([] { choose_layout(degrees(1, 4, 1), shape(2, 2, 64, 64, 256), 4); });
  EXPECT_EQ(message.rfind("pp_stages 4 > n_layer 2: every pipeline stage needs at least one layer (use pp_stages ≤ 2)", 0), 0u)
      << message;
  EXPECT_NE(message.find("try tp_size 1, pp_stages 2, dp_size 2"), std::string::npos) << message;
}

TEST(Topology, RankMapMatchesTheDesign) {
  EXPECT_EQ(rank_map(layout_of(2, 2, 2)),
            "tp groups: [0,1] [2,3] [4,5] [6,7]\n"
            "pp groups: [0,2] [1,3] [4,6] [5,7]   (stage 0 → stage 1)\n"
            "dp groups: [0,4] [1,5] [2,6] [3,7]\n");
  EXPECT_EQ(rank_map(layout_of(4, 2, 1)),
            "tp groups: [0,1,2,3] [4,5,6,7]\n"
            "pp groups: [0,4] [1,5] [2,6] [3,7]   (stage 0 → stage 1)\n"
            "dp groups: [0] [1] [2] [3] [4] [5] [6] [7]\n");
}

TEST(Memory, TinyModelExactBytesOnCpu) {
  // 2816 parameters: wte 128·8 + wpe 4·8 + 2 blocks of 12·64 + 13·8 + ln_f 16.
  const Config config = tiny_config();
  ASSERT_EQ(count_parameters(config.model), 2816);
  const MemoryPlan plan = estimate_memory(config, layout_of(1, 1, 1), false);
  ASSERT_EQ(plan.stages.size(), 1u);
  const StageMemory& s = plan.stages[0];
  EXPECT_EQ(s.parameters, 2816);
  EXPECT_EQ(s.weights, 4 * 2816);
  EXPECT_EQ(s.grads, 4 * 2816);
  EXPECT_EQ(s.optimizer, 8 * 2816);
  // GPT2's buffers at B = 2, T = 4 (N = 8 tokens, C = 8, NH = 2, Vp = 128), in floats:
  //   saved: encoded 64; per layer ln1, residual2, ln2, residual3 4·64, LayerNorm stats 4·8,
  //          qkv 192, atty 64, fch 256, att 2·2·4·4 = 864 × 2 layers; lnf 64 + stats 16,
  //          logits 8·128, lse 8, losses 8, the cross-entropy's row partials 3·8 → 2936
  //   token ids: inputs and targets, 8 int32 each → 16
  //   working: forward scratch, dresidual, dC 3·64, d3C 192, d4C 256, the recomputed GELU output 256,
  //            attention scratch 2·2·4 → 912
  EXPECT_EQ(s.activations, 4.0 * (2936 + 16 + 912));
  EXPECT_EQ(s.comm_buffers, 0);
  EXPECT_EQ(s.total, 4 * 2816 * 4 + 4.0 * 3864);
  EXPECT_TRUE(plan.fits);
  EXPECT_EQ(plan.available, 1e9);
}

TEST(Memory, TinyModelOnGpuWithPipelineAndReplicas) {
  Config config = tiny_config();
  config.train.grad_accum_steps = 4;
  const MemoryPlan plan = estimate_memory(config, layout_of(1, 2, 2), true);
  ASSERT_EQ(plan.stages.size(), 2u);
  const StageMemory& first = plan.stages[0];
  const StageMemory& last = plan.stages[1];
  EXPECT_EQ(first.parameters, 1024 + 32 + 872);  // wte, wpe, block 0
  EXPECT_EQ(last.parameters, 872 + 16 + 1024);   // block 1, ln_f, the tied wte
  EXPECT_EQ(first.weights, 6 * 1928.0);           // fp32 master + bf16 copy
  EXPECT_EQ(first.optimizer, 8 * 1928.0);         // zero_stage 0: every replica holds m and v
  // In bf16 units, fp32 statistics and int32 token ids counting twice; head size 4 takes the Kokkos
  // attention, which keeps its probabilities: per layer 4·64 + 2·(4·8) stats + 512 + 2·(2·2·4·4) = 960;
  // head lnf 64 + 2·(7·8) stats (LayerNorm 2, lse, losses, row partials 3) + logits 1024 = 1200;
  // working 3·64 + 11·64 + 2·(2·2·4 + 3·64) fp32 attention scratch = 1312, + the received output
  // gradient 64 before the last stage; tokens 2·(2·8) per micro-batch. Stage 0 holds 2 micro-batches
  // under 1F1B (input 64 + one layer), stage 1 one.
  EXPECT_EQ(first.activations, 2.0 * (2 * (64 + 960) + 1312 + 64 + 2 * 32));
  EXPECT_EQ(last.activations, 2.0 * ((64 + 960 + 1200) + 1312 + 32));
  // bf16 send + receive buffers of one boundary (2·64·2 B) + an fp32 all-reduce bucket of the stage.
  EXPECT_EQ(first.comm_buffers, 2 * 64 * 2 + 4 * 1928.0);
}

// GPT-2 124M on GPU: head size 64 takes the fused attention, which keeps one fp32 log-sum-exp per
// query and head instead of the T×T probabilities (12 · 1024² floats per sequence and layer).
TEST(Memory, FusedAttentionKeepsNoProbabilitiesOnGpu) {
  Config config;
  config.model = shape(12, 12, 768, 1024, 50257);
  config.train.batch_size = 32;
  const double N = 32 * 1024, NC = N * 768, B_NH_T = 32 * 12 * 1024;
  const double per_layer = 4 * NC + 2 * 4 * N + 8 * NC + 2 * B_NH_T;
  const double head = NC + 2 * 7 * N + N * 50304;
  // The fused backward's fp32 workspace (its default, deterministic dQ path keeps no dq accumulator):
  // D and 4 floats of alignment slack.
  const double working = 3 * NC + 11 * NC + 2 * (B_NH_T + 4);
  const double tokens = 2 * 2 * N;  // inputs and targets, int32
  const StageMemory s = estimate_memory(config, layout_of(1, 1, 1), true).stages.at(0);
  EXPECT_EQ(s.activations, 2.0 * (NC + 12 * per_layer + head + working + tokens));
  EXPECT_LT(s.total / double(1 << 30), 40.0);  // fits an 80 GB H100 with room to spare
}

TEST(Memory, ZeroOneDividesOptimizerStateByReplicas) {
  Config config = tiny_config();
  const double unsharded = estimate_memory(config, layout_of(1, 1, 4), false).stages[0].optimizer;
  config.parallel.zero_stage = 1;
  const StageMemory sharded = estimate_memory(config, layout_of(1, 1, 4), false).stages[0];
  EXPECT_EQ(unsharded, 8 * 2816);
  EXPECT_EQ(sharded.optimizer, 8 * 2816 / 4.0);
  EXPECT_EQ(sharded.weights, 4 * 2816);
}

TEST(Memory, TensorParallelDividesSplitParameters) {
  // Split: wte 1024 and per block qkv 192 + 24, attn.proj.weight 64, fc 256 + 32, mlp.proj.weight 256
  // (2672 in all); replicated: wpe, LayerNorms, the two row-parallel biases, ln_f (144).
  const Config config = tiny_config();
  EXPECT_EQ(estimate_memory(config, layout_of(2, 1, 1), false).stages[0].parameters, 144 + 2672 / 2);
  EXPECT_EQ(estimate_memory(config, layout_of(2, 1, 1), false).stages[0].weights, 4 * 1480);
}

TEST(Memory, DetectsHostMemoryPerRank) {
  const double one = detect_device_memory(1);
  ASSERT_GT(one, 0);
  EXPECT_NEAR(detect_device_memory(4) * 4 / one, 1.0, 0.2);
}

TEST(Memory, AdviceNamesTheKnobInOrder) {
  const auto need = [](const Config& config, const Layout& layout) {
    double worst = 0;
    for (const StageMemory& s : estimate_memory(config, layout, false).stages) worst = std::max(worst, s.total);
    return worst;
  };
  const auto advice_between = [&](Config config, const Layout& layout, double fits, double too_big) {
    config.parallel.device_memory = (fits + too_big) / 2;
    const MemoryPlan plan = estimate_memory(config, layout, false);
    EXPECT_FALSE(plan.fits);
    return plan.advice;
  };
  // Pipeline stages first.
  Config config = tiny_config();
  EXPECT_EQ(advice_between(config, layout_of(1, 1, 2), need(config, layout_of(1, 2, 1)), need(config, layout_of(1, 1, 2)))
                .rfind("raise pp_stages to 2 (tp_size 1, pp_stages 2, dp_size 1", 0), 0u);
  // One layer and one head: only ZeRO-1 or a smaller batch is left, and ZeRO-1 comes first.
  config.model = shape(1, 1, 64, 16, 200);
  config.train.batch_size = 4;
  Config sharded = config;
  sharded.parallel.zero_stage = 1;
  EXPECT_EQ(advice_between(config, layout_of(1, 1, 4), need(sharded, layout_of(1, 1, 4)), need(config, layout_of(1, 1, 4)))
                .rfind("set zero_stage = 1", 0), 0u);
  Config smaller = config;
  smaller.train.batch_size = 2;
  smaller.train.grad_accum_steps = 2;
  const std::string lower =
      advice_between(config, layout_of(1, 1, 1), need(smaller, layout_of(1, 1, 1)), need(config, layout_of(1, 1, 1)));
  EXPECT_EQ(lower.rfind("lower batch_size to 2 with grad_accum_steps = 2", 0), 0u) << lower;
  // Nothing fits: the shortfall.
  config.parallel.device_memory = 1000;
  const MemoryPlan hopeless = estimate_memory(config, layout_of(1, 1, 1), false);
  EXPECT_EQ(hopeless.advice.rfind("no single change fits on 1 ranks: stage 0 needs", 0), 0u) << hopeless.advice;
}

TEST(Memory, ThirtyBillionOnEightGpusIsReported) {
  const std::string report = dry_run_report(deck("gpt2_30b.in"), 8, true);
  EXPECT_NE(report.find("29.97 B parameters"), std::string::npos) << report;
  EXPECT_NE(report.find("tp_size 4 × pp_stages 2 × dp_size 1 = 8 ranks"), std::string::npos) << report;
  EXPECT_NE(report.find("pp groups: [0,4] [1,5] [2,6] [3,7]"), std::string::npos) << report;
  EXPECT_NE(report.find("stage 1: layers 24-47 (24) + final LayerNorm"), std::string::npos) << report;
  EXPECT_NE(report.find("available  74.51 GiB per rank"), std::string::npos) << report;
  EXPECT_NE(report.find("verdict    "), std::string::npos) << report;
  // With tp 8 the 30 B model fits.
  EXPECT_NE(dry_run_report(deck("gpt2_30b.in", {"tp_size=8", "pp_stages=1"}), 8, true).find("verdict    fits"),
            std::string::npos);
}

// The 40 B deck on 8 × 80 GB, offload and the advisor: tests/train/test_fit_check.cpp.
TEST(Memory, SevenBillionOnEightGpusFitsAsConfigured) {
  EXPECT_NE(dry_run_report(deck("gpt2_7b.in"), 8, true).find("verdict    fits"), std::string::npos);
}

}  // namespace xp::test
