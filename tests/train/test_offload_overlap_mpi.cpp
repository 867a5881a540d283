// Optimizer offload's overlapped gradient copies (offload_overlap; train/grad_copy.hpp): with dp = 1 each
// range of the flat gradient buffer goes to the host copy as soon as the stage's last backward has written
// it (the tied wte after its all-reduce over pp), and the host AdamW updates from that copy. The run is
// the same run as with the copies after the backward, bit for bit — losses, master weights, both moments —
// at one rank, tp 2 and pp 2 with several micro-batches (where copying a block during an earlier
// micro-batch would take a partial sum); with dp > 1 the overlap is off. The step's copies are disjoint
// and cover the rank's range exactly once, in the backward's order, and on the fp32 CPU build (whose
// gradient buffer still holds the step's gradients afterwards) the host copy is the device's gradients.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "support.hpp"
#include "xp/core/device.hpp"
#include "xp/train/trainer.hpp"

namespace {

using xp::test::world_size;

struct Case {
  const char* name;
  int dp, tp, pp, grad_accum;
};

// The layouts this world size tests.
std::vector<Case> cases() {
  switch (world_size()) {
    case 1: return {{"one rank", 1, 1, 1, 1}, {"one rank, 3 micro-batches", 1, 1, 1, 3}};
    case 2: return {{"tp 2", 1, 2, 1, 2}, {"pp 2, 3 micro-batches", 1, 1, 2, 3}, {"dp 2", 2, 1, 1, 2}};
    case 4: return {{"tp 2 x pp 2, 3 micro-batches", 1, 2, 2, 3}};
    default: return {};
  }
}

xp::Config overlap_config(const Case& c, bool overlap, const std::string& tag) {
  xp::Config config = xp::test::tiny_config(xp::test::temp_path("xp_offload_overlap_np" +
                                                                std::to_string(world_size()) + "_" + tag));
  config.train.steps = 6;
  config.train.weight_decay = 0.1;
  xp::test::set_layout(config, {c.dp, c.tp, c.pp, 0});
  config.train.grad_accum_steps = c.grad_accum;
  config.parallel.optimizer_offload = true;
  config.parallel.offload_overlap = overlap;
  config.run.keep_last = 0;
  config.run.final_checkpoint = false;
  return config;
}

std::string tag_of(const Case& c) {
  std::string tag = c.name;
  for (char& ch : tag)
    if (ch == ' ' || ch == ',') ch = '_';
  return tag;
}

// Bit-for-bit equality of two float vectors (NaNs included), with the first difference named.
void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      ADD_FAILURE() << what << " differ first at " << i << ": " << got[i] << " vs " << want[i];
      return;
    }
}

}  // namespace

TEST(OffloadOverlap, SameRunAsCopyingAfterTheBackward) {
  if (cases().empty()) GTEST_SKIP() << "no layout for " << world_size() << " ranks";
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    xp::Trainer after(overlap_config(c, false, tag_of(c) + "_after"), MPI_COMM_WORLD);
    xp::Trainer during(overlap_config(c, true, tag_of(c) + "_during"), MPI_COMM_WORLD);
    EXPECT_FALSE(after.optimizer().overlaps_grad_copies());
    EXPECT_EQ(during.optimizer().overlaps_grad_copies(), c.dp == 1);
    const std::vector<double> want = after.run(), got = during.run();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "step " << i + 1;
    EXPECT_LT(want.back(), want.front());  // the run learns: equal losses say something
    for (const auto& [moment, what] : {std::pair{xp::AdamMoment::Master, "master weights"},
                                       std::pair{xp::AdamMoment::ExpAvg, "AdamW m"},
                                       std::pair{xp::AdamMoment::ExpAvgSq, "AdamW v"}})
      expect_same_bits(during.optimizer().moment_copy(moment), after.optimizer().moment_copy(moment), what);
  }
}

TEST(OffloadOverlap, CopiesCoverTheGradientsOncePerStepInBackwardOrder) {
  if (cases().empty()) GTEST_SKIP() << "no layout for " << world_size() << " ranks";
  for (const Case& c : cases()) {
    if (c.dp != 1) continue;
    SCOPED_TRACE(c.name);
    xp::Trainer trainer(overlap_config(c, true, tag_of(c) + "_ledger"), MPI_COMM_WORLD);
    const xp::ParameterLayout& layout = trainer.model().layout();
    const xp::Placement& place = layout.placement();
    const xp::ZeroShard& shard = trainer.plan().shard;
    ASSERT_EQ(shard.begin, 0);
    ASSERT_EQ(shard.end, layout.total());
    // Copies: the head's tensors, each block, wte (after its tie over pp on a later stage), wpe.
    const size_t expected = size_t(place.last_layer - place.first_layer) + (place.has_head ? 1 : 0) +
                            (layout.wte() >= 0 ? 1 : 0) + (place.has_embedding ? 1 : 0);
    for (int step = 1; step <= 3; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      const xp::StepResult result = trainer.step();
      ASSERT_TRUE(result.reason.empty()) << result.reason;
      const std::vector<std::pair<int64_t, int64_t>> ledger = trainer.optimizer().grad_copy_ledger();
      EXPECT_EQ(xp::ledger_problem(ledger, shard.begin, shard.end), "");
      EXPECT_EQ(ledger.size(), expected);
      // Blocks from the last to the first: each started as its backward ended, before the next.
      std::vector<int64_t> blocks;
      for (const auto& range : ledger)
        for (int l = place.first_layer; l < place.last_layer; ++l)
          if (range.first == layout.block(l).ln1_w) blocks.push_back(l);
      ASSERT_EQ(blocks.size(), size_t(place.last_layer - place.first_layer));
      for (size_t i = 0; i < blocks.size(); ++i) EXPECT_EQ(blocks[i], place.last_layer - 1 - int(i));
      // The fp32 CPU build keeps the step's gradients in the gradient buffer (its fp32 weights are
      // params): the host copy must be them — the sum over every micro-batch, wte tied.
      if (xp::device_build || xp::build_precision.compute_copy()) continue;
      const float* host = trainer.optimizer().host_grads();
      ASSERT_NE(host, nullptr);
      const std::vector<float> copied(host, host + shard.size());
      const std::vector<float> device(trainer.model().grads.data(), trainer.model().grads.data() + shard.size());
      expect_same_bits(copied, device, "host gradient copy and device gradients");
    }
  }
}
