// The fit check with optimizer offload and the advisor that uses it: host memory per rank and per node
// is the offloaded state (12 B per parameter of the rank's range and one gradient chunk, or with dp = 1 and
// offload_overlap a host copy of the gradients: 4 B more), the device
// keeps no AdamW state, CPU builds count both in one RAM, and when a stage does not fit the advice is
// the cheapest option that fits — checked against the estimate itself, not against copied GiB values.
#include "xp/train/fit_check.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "support.hpp"
#include "xp/config/deck.hpp"

namespace xp::test {
namespace {

Config deck(const char* name, std::vector<std::string> overrides = {}) {
  overrides.push_back("device_memory=80GB");
  return load_config(std::string(XP_SOURCE_DIR "/inputs/") + name, overrides);
}

Layout layout_of(int tp, int pp, int dp) { return Layout{dp, tp, pp}; }

std::string gib(double bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", bytes / (1024.0 * 1024.0 * 1024.0));
  return text;
}

double largest_total(const MemoryPlan& plan) {
  double worst = 0;
  for (const StageMemory& s : plan.stages) worst = std::max(worst, s.total);
  return worst;
}
double host_of_world(const MemoryPlan& plan, const Layout& layout) {
  double bytes = 0;
  for (const StageMemory& s : plan.stages) bytes += s.host * layout.tp * layout.dp;
  return bytes;
}

Config tiny() {
  Config config = tiny_config("/tmp/xp_fit_check_unused");
  config.model = {"custom", 2, 2, 8, 4, 100};
  config.train.batch_size = 2;
  return config;
}

}  // namespace

TEST(FitCheck, OffloadMovesTheOptimizerStateToTheHost) {
  Config config = tiny();
  const StageMemory on_device = estimate_memory(config, layout_of(1, 1, 2), true).stages.at(0);
  config.parallel.optimizer_offload = true;
  config.parallel.zero_stage = 1;
  const StageMemory offloaded = estimate_memory(config, layout_of(1, 1, 2), true).stages.at(0);
  const double P = on_device.parameters, slice = std::ceil(P / 2);
  EXPECT_EQ(on_device.host, 0);
  EXPECT_EQ(offloaded.optimizer, 0);
  // Master weights, m and v of the ZeRO-1 slice, the gradient chunk (the whole slice: it is small) and
  // the bf16 chunk the weights go back as (the whole slice too).
  EXPECT_EQ(offloaded.host, 4.0 * (3 * slice + slice) + 2.0 * slice);
  // The device keeps the bf16 compute copy of the weights, no fp32 params; the compute copy is ZeRO-padded
  // to 2 · slice, as the optimizer all-gathers it in dp equal slices.
  EXPECT_EQ(offloaded.weights, 2.0 * (2 * slice));
  EXPECT_EQ(offloaded.weights, on_device.weights - 4.0 * (2 * slice) + 2.0 * (2 * slice - P));
  // + the slice's grads, - the fp32 params, + the compute copy's padding
  EXPECT_EQ(offloaded.total,
            on_device.total - on_device.optimizer + 4.0 * slice - 4.0 * (2 * slice) + 2.0 * (2 * slice - P));
}

TEST(FitCheck, CpuBuildsCountHostAndDeviceInOneRam) {
  Config config = tiny();
  config.parallel.optimizer_offload = true;
  const StageMemory s = estimate_memory(config, layout_of(1, 1, 1), false).stages.at(0);
  ASSERT_GT(s.host, 0);
  config.parallel.device_memory = s.total + s.host / 2;  // the device columns fit, not with the host's
  EXPECT_FALSE(estimate_memory(config, layout_of(1, 1, 1), false).fits);
  config.parallel.device_memory = s.total + s.host;
  EXPECT_TRUE(estimate_memory(config, layout_of(1, 1, 1), false).fits);
}

TEST(FitCheck, FortyBillionFitsEightGpusWithOffload) {
  const Layout layout = layout_of(4, 2, 1);
  const Config config = deck("gpt2_40b.in");
  ASSERT_TRUE(config.parallel.optimizer_offload) << "the 40 B deck sets what it needs";
  const MemoryPlan plan = estimate_memory(config, layout, true);
  EXPECT_TRUE(plan.fits);
  EXPECT_LE(largest_total(plan), 80e9);
  for (const StageMemory& s : plan.stages) {
    EXPECT_EQ(s.optimizer, 0);
    EXPECT_EQ(s.weights, 2.0 * s.parameters);  // the bf16 compute copy only: the fp32 master is on the host
    // master, m, v, (dp = 1: overlapped copies) the gradients, and the 32 MiB bf16 chunk of weights going back
    EXPECT_EQ(s.host, 4.0 * 4 * s.parameters + 2.0 * (16 << 20));
  }
  // Without the overlap: one 64 MiB gradient chunk instead of the host copy.
  for (const StageMemory& s : estimate_memory(deck("gpt2_40b.in", {"offload_overlap=false"}), layout, true).stages)
    EXPECT_EQ(s.host, 4.0 * (3 * s.parameters + (16 << 20)) + 2.0 * (16 << 20));
  EXPECT_NE(dry_run_report(config, 8, true).find("GPU: bf16 weights (fp32 master in host memory)"), std::string::npos);
  const double per_node = host_of_world(plan, layout);  // 8 ranks: one node
  EXPECT_EQ(plan.host_per_node, per_node);
  const std::string report = dry_run_report(config, 8, true);
  EXPECT_NE(report.find("verdict    fits: largest stage " + gib(largest_total(plan))), std::string::npos) << report;
  EXPECT_NE(report.find(gib(per_node) + " GiB per node (8 ranks)"), std::string::npos) << report;
  EXPECT_NE(report.find("optimizer_offload true"), std::string::npos) << report;

  // A node with too little host memory for it: the check says so.
  const MemoryPlan small_host = estimate_memory(deck("gpt2_40b.in", {"host_memory=256GB"}), layout, true);
  EXPECT_FALSE(small_host.fits);
  EXPECT_TRUE(small_host.device_fits);
  EXPECT_FALSE(small_host.host_fits);
  EXPECT_TRUE(estimate_memory(deck("gpt2_40b.in", {"host_memory=1TB"}), layout, true).fits);
}

TEST(FitCheck, AdvisorOffloadsBeforeAdvisingMoreRanks) {
  const Layout layout = layout_of(4, 2, 1);
  const Config config = deck("gpt2_40b.in", {"optimizer_offload=false"});
  const MemoryPlan plan = estimate_memory(config, layout, true);
  ASSERT_FALSE(plan.fits);
  // What the advice would set, planned: it must fit, and the advice must quote it.
  Config advised = config;
  advised.parallel.optimizer_offload = true;
  Config selective = config;
  selective.parallel.recompute = Recompute::Selective;
  const bool selective_fits = estimate_memory(selective, layout, true).fits;
  if (selective_fits) {  // cheaper than offload: once the estimate counts recomputation it may suffice
    EXPECT_EQ(plan.advice.rfind("set recompute = \"selective\"", 0), 0u) << plan.advice;
    return;
  }
  const MemoryPlan offloaded = estimate_memory(advised, layout, true);
  ASSERT_TRUE(offloaded.fits);
  EXPECT_EQ(plan.advice.rfind("set optimizer_offload = true", 0), 0u) << plan.advice;
  double host = 0;
  for (const StageMemory& s : offloaded.stages) host = std::max(host, s.host);
  EXPECT_NE(plan.advice.find("host memory " + gib(host) + " GiB per rank, " + gib(offloaded.host_per_node) +
                             " GiB per node"),
            std::string::npos)
      << plan.advice;
  EXPECT_NE(plan.advice.find("largest stage " + gib(largest_total(offloaded)) + " of 74.51 GiB"), std::string::npos)
      << plan.advice;
  EXPECT_EQ(plan.advice.find("16 ranks"), std::string::npos) << plan.advice;
}

double need_with(Config config, Recompute recompute, bool offload) {
  config.parallel.recompute = recompute;
  config.parallel.optimizer_offload = offload;
  return largest_total(estimate_memory(config, layout_of(1, 1, 1), true));
}

TEST(FitCheck, AdvisorSaysWhatOffloadCosts) {
  // Weights dominate (width 64, 4 tokens): offload saves the most. One sequence per micro-batch (no
  // smaller batch to advise) on one rank (no other layout).
  Config config = tiny();
  config.model = {"custom", 2, 2, 64, 4, 100};
  config.train.batch_size = 1;
  const double none = need_with(config, Recompute::None, false), offload = need_with(config, Recompute::None, true);
  const double selective = need_with(config, Recompute::Selective, false);
  ASSERT_LT(offload, std::min(none, selective));
  config.parallel.device_memory = (offload + std::min(none, selective)) / 2;
  const MemoryPlan plan = estimate_memory(config, layout_of(1, 1, 1), true);
  ASSERT_FALSE(plan.fits);
  EXPECT_EQ(plan.advice.rfind("set optimizer_offload = true [cost: host memory", 0), 0u) << plan.advice;
  // 6 B per parameter cross PCIe each step: the fp32 gradients down, the updated weights up as bf16.
  Config offloaded = config;
  offloaded.parallel.optimizer_offload = true;
  const StageMemory s = estimate_memory(offloaded, layout_of(1, 1, 1), true).stages.at(0);
  EXPECT_EQ(s.offload_traffic, 6.0 * s.parameters);
  EXPECT_EQ(estimate_memory(offloaded, layout_of(1, 1, 1), false).stages.at(0).offload_traffic, 8.0 * s.parameters);
  char traffic[64];
  std::snprintf(traffic, sizeof traffic, "~%.1f GB per step per rank over PCIe", 6.0 * plan.stages[0].parameters / 1e9);
  EXPECT_NE(plan.advice.find(traffic), std::string::npos) << plan.advice;
}

TEST(FitCheck, AdvisorSaysWhatRecomputationCosts) {
  // Activations dominate (width 16, long sequences, more layers): the first shape where only full
  // recomputation (or something dearer) fits is advised it, with its compute cost (one more forward of
  // the blocks). Where the estimate did not count recomputation, none would be found and recomputing
  // must never be advised.
  Config config = tiny();
  config.train.batch_size = 1;
  bool isolated = false;
  for (const ModelConfig& model : {ModelConfig{"custom", 8, 2, 16, 512, 100}, ModelConfig{"custom", 12, 2, 16, 1024, 100}}) {
    config.model = model;
    const double full = need_with(config, Recompute::Full, false);
    const double cheaper = std::min({need_with(config, Recompute::None, false), need_with(config, Recompute::None, true),
                                     need_with(config, Recompute::Selective, false),
                                     need_with(config, Recompute::Selective, true)});
    config.parallel.device_memory = (full + cheaper) / 2;
    const MemoryPlan plan = estimate_memory(config, layout_of(1, 1, 1), true);
    ASSERT_FALSE(plan.fits);
    if (full >= cheaper) {
      if (full == need_with(config, Recompute::None, false))
        EXPECT_EQ(plan.advice.find("recompute"), std::string::npos) << plan.advice;
      continue;
    }
    isolated = true;
    EXPECT_EQ(plan.advice.rfind("set recompute = \"full\" [cost: ~+", 0), 0u) << plan.advice;
    EXPECT_NE(plan.advice.find("% compute (each block's forward again in backward)"), std::string::npos) << plan.advice;
    break;
  }
  const bool counted = need_with(config, Recompute::Full, false) < need_with(config, Recompute::None, false);
  EXPECT_EQ(isolated, counted) << "the estimate counts full recomputation, but no shape here isolates it";
}

}  // namespace xp::test
