// The bad-step guard at several layouts (dp 2, dp 2 with ZeRO-1, tp 2 × pp 2), with faults injected
// into chosen steps: a skipped step leaves the weights bit-identical to a run that stopped before it; a
// rollback ends bit-identical to a run whose data never held the rolled-back batches (a straight run
// to the checkpoint, resumed with its cursor moved past them); a NaN in one tp rank's shard is caught
// by every rank; stop and too many rollbacks end every rank at the same step with the same message.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "support.hpp"
#include "xp/core/device.hpp"
#include "xp/core/host_copy.hpp"
#include "xp/train/trainer.hpp"

namespace fs = std::filesystem;

namespace {

using xp::test::world_rank;
using xp::test::world_size;

struct GuardLayout {
  int dp, tp, pp, zero;
  std::string name() const {
    return "dp" + std::to_string(dp) + "_tp" + std::to_string(tp) + "_pp" + std::to_string(pp) + "_z" +
           std::to_string(zero);
  }
};

// The layouts of this world size: dp 2 with and without ZeRO-1 at 2 ranks, tp 2 × pp 2 at 4.
std::vector<GuardLayout> layouts() {
  if (world_size() == 2) return {{2, 1, 1, 0}, {2, 1, 1, 1}};
  if (world_size() == 4) return {{1, 2, 2, 0}};
  return {};
}

// An empty directory of the same name on every rank.
std::string fresh_dir(const std::string& name) {
  const std::string dir = xp::test::temp_path("xp_guard_np" + std::to_string(world_size()) + "_" + name);
  if (world_rank() == 0) fs::remove_all(dir);
  MPI_Barrier(MPI_COMM_WORLD);
  return dir;
}

// The shared tiny run at `layout`: global batch 4, two micro-batches per pipeline where pp = 2.
xp::Config config_for(const GuardLayout& layout, int64_t steps, const std::string& run_dir) {
  xp::Config config = xp::test::tiny_config(run_dir);
  config.train.steps = steps;
  config.train.min_lr = 1e-3;  // the last step updates too (a cosine to 0 would end on lr 0)
  config.train.batch_size = 2;
  config.train.grad_accum_steps = 4 / (2 * layout.dp);
  config.parallel.dp_size = layout.dp;
  config.parallel.tp_size = layout.tp;
  config.parallel.pp_stages = layout.pp;
  config.parallel.zero_stage = layout.zero;
  config.run.keep_last = 0;
  return config;
}

// This rank's weights: the fp32 params, or (`compute`, and where offload keeps the fp32 master in host
// memory only: builds with a compute copy) the compute copy, widened (exactly) to floats.
std::vector<float> weights(xp::Trainer& trainer, bool compute = false) {
  const int64_t n = trainer.model().layout().total();
  std::vector<float> host(static_cast<size_t>(n));
  if (!compute && trainer.model().params_on_device()) {
    xp::copy_to_host(trainer.model().params, 0, 0, n, host.data());
    return host;
  }
  std::vector<xp::Real> copy(static_cast<size_t>(n));
  xp::copy_memory(copy.data(), trainer.model().compute_weights_copy(), sizeof(xp::Real) * copy.size());
  for (size_t i = 0; i < copy.size(); ++i) host[i] = xp::to_float(copy[i]);
  return host;
}

// Bitwise: every float of this rank's weights.
void expect_same_weights(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  size_t differ = 0;
  for (size_t i = 0; i < got.size(); ++i) differ += std::memcmp(&got[i], &want[i], sizeof(float)) != 0;
  EXPECT_EQ(differ, 0u) << what << ": " << differ << " of " << got.size() << " weights differ on rank " << world_rank();
}

void expect_same_cursor(const xp::DataCursor& a, const xp::DataCursor& b) {
  EXPECT_EQ(a.shard, b.shard);
  EXPECT_EQ(a.position, b.position);
  EXPECT_EQ(a.epoch, b.epoch);
}

// The lines of <run_dir>/metrics.jsonl (rank 0 writes it; every rank reads it after a barrier).
std::vector<std::string> metrics_lines(const std::string& run_dir) {
  MPI_Barrier(MPI_COMM_WORLD);
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Whether `text` is the same on every rank.
bool same_on_every_rank(const std::string& text) {
  const int length = static_cast<int>(text.size());
  int shortest = 0, longest = 0;
  MPI_Allreduce(&length, &shortest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&length, &longest, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (shortest != longest) return false;
  std::string root = text;
  MPI_Bcast(root.data(), length, MPI_CHAR, 0, MPI_COMM_WORLD);
  int same = root == text, all = 0;
  MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return all == 1;
}

// The world rank with tp rank 1 and dp rank 0 (the last stage): a NaN there sits in a slice no other rank holds.
int tp_rank_one(const xp::Trainer& trainer) {
  const xp::ParallelGrid& grid = trainer.grid();
  int mine = grid.tp_rank() == 1 && grid.dp_rank() == 0 && grid.last_stage() ? world_rank() : world_size();
  int chosen = 0;
  MPI_Allreduce(&mine, &chosen, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return chosen;
}

}  // namespace

TEST(StepGuard, SkipLeavesTheWeightsOfThePreviousStep) {
  if (layouts().empty()) GTEST_SKIP() << "no guard layout has " << world_size() << " ranks";
  for (const GuardLayout& layout : layouts()) {
    // The same 5-step run (its LR schedule spans 5 steps) taken 4 steps, and 5.
    xp::Trainer before(config_for(layout, 5, fresh_dir("skip_before_" + layout.name())), MPI_COMM_WORLD);
    for (int step = 0; step < 4; ++step) before.step();
    xp::Trainer straight(config_for(layout, 5, fresh_dir("skip_straight_" + layout.name())), MPI_COMM_WORLD);
    for (int step = 0; step < 5; ++step) straight.step();

    // A NaN in step 5's gradients on every rank, and (tp layouts) in one tp rank's shard only.
    std::vector<std::vector<xp::Fault>> cases = {{{xp::FaultKind::NanGrad, 5, -1}}};
    if (layout.tp > 1) cases.push_back({{xp::FaultKind::NanGrad, 5, tp_rank_one(before)}});
    for (const std::vector<xp::Fault>& faults : cases) {
      const std::string what =
          layout.name() + " nan_grad@5" + (faults[0].rank >= 0 ? ":" + std::to_string(faults[0].rank) : "");
      const std::string run_dir = fresh_dir("skip_" + layout.name() + std::to_string(faults[0].rank));
      xp::Trainer skipped(config_for(layout, 5, run_dir), MPI_COMM_WORLD);
      skipped.set_faults(faults);
      skipped.run();
      EXPECT_EQ(skipped.steps_done(), 5) << what;  // the step counts...
      expect_same_weights(weights(skipped), weights(before), what);  // ...without an update...
      expect_same_cursor(skipped.data_cursor(), straight.data_cursor());  // ...and the data moved on
      const std::vector<std::string> lines = metrics_lines(run_dir);
      ASSERT_EQ(lines.size(), 5u) << what;
      EXPECT_NE(lines[4].find("\"skipped\": true"), std::string::npos) << lines[4];
      EXPECT_NE(lines[4].find("non-finite gradient"), std::string::npos) << lines[4];
      EXPECT_NE(lines[3].find("\"skipped\": false"), std::string::npos) << lines[3];
    }
    // Without the fault the same step does update: the comparison above can fail.
    const std::vector<float> updated = weights(straight), previous = weights(before);
    EXPECT_NE(std::memcmp(updated.data(), previous.data(), updated.size() * sizeof(float)), 0);
  }
}

TEST(StepGuard, SpikeIsSkippedOnlyOnceTheWindowHasFilled) {
  if (layouts().empty()) GTEST_SKIP() << "no guard layout has " << world_size() << " ranks";
  const GuardLayout layout = layouts().front();
  // `steps` steps of a run whose LR schedule spans `total`.
  auto spiky = [&](int64_t steps, int64_t total, const std::string& run_dir, std::vector<xp::Fault> faults) {
    xp::Config config = config_for(layout, total, run_dir);
    config.guard.spike_window = 4;
    auto trainer = std::make_unique<xp::Trainer>(config, MPI_COMM_WORLD);
    trainer->set_faults(std::move(faults));
    if (steps == total) trainer->run();
    else for (int64_t step = 0; step < steps; ++step) trainer->step();
    return trainer;
  };
  // Step 6: the window holds steps 2-5, and loss and gradients × 1000 lie far above it.
  auto before = spiky(5, 6, fresh_dir("spike_before"), {});
  const std::string run_dir = fresh_dir("spike_skipped");
  auto skipped = spiky(6, 6, run_dir, {{xp::FaultKind::SpikeLoss, 6, -1}});
  expect_same_weights(weights(*skipped), weights(*before), "spike_loss@6");
  const std::vector<std::string> lines = metrics_lines(run_dir);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_NE(lines[5].find("\"skipped\": true"), std::string::npos) << lines[5];
  EXPECT_NE(lines[5].find("spike"), std::string::npos) << lines[5];
  for (int i = 0; i < 5; ++i) EXPECT_NE(lines[i].find("\"skipped\": false"), std::string::npos) << lines[i];

  // Step 3: the window is not full yet, so the same spike is applied (clipped) and the weights move.
  auto early_before = spiky(2, 3, fresh_dir("spike_early_before"), {});
  auto early = spiky(3, 3, fresh_dir("spike_early"), {{xp::FaultKind::SpikeLoss, 3, -1}});
  const std::vector<float> moved = weights(*early), previous = weights(*early_before);
  EXPECT_NE(std::memcmp(moved.data(), previous.data(), moved.size() * sizeof(float)), 0);
}

TEST(StepGuard, RollbackEndsAsARunThatNeverSawTheBadBatches) {
  if (layouts().empty()) GTEST_SKIP() << "no guard layout has " << world_size() << " ranks";
  constexpr int64_t steps = 8, every = 3, bad = 5;
  for (const GuardLayout& layout : layouts()) {
    // The reference: a straight run to the checkpoint at step 3, resumed with the data cursor moved past
    // the batches of steps 4 and 5, on to step 8.
    std::string saved;
    {
      xp::Trainer first(config_for(layout, steps, fresh_dir("rollback_first_" + layout.name())), MPI_COMM_WORLD);
      for (int64_t step = 0; step < every; ++step) first.step();
      saved = first.save();
    }
    xp::Config reference_config = config_for(layout, steps, fresh_dir("rollback_reference_" + layout.name()));
    reference_config.run.resume = saved;
    xp::Trainer reference(reference_config, MPI_COMM_WORLD);
    reference.skip_batches(bad - every);
    reference.run();

    // With optimizer offload too (CPU builds: the same arithmetic there, so the same bits): its host
    // master weights must follow the weights a rollback restores.
    std::vector<std::pair<bool, bool>> variants = {{false, false}, {true, false}};
    if (!xp::device_build) {
      variants.push_back({true, true});
      variants.push_back({false, true});
    }
    for (const auto& [in_memory, offload] : variants) {
      const std::string what = layout.name() + (in_memory ? " in memory" : " from the checkpoint") +
                               (offload ? ", offloaded" : "");
      xp::Config config = config_for(layout, steps, fresh_dir("rollback_" + layout.name() + (in_memory ? "_mem" : "") +
                                                              (offload ? "_offload" : "")));
      config.parallel.optimizer_offload = offload;
      config.run.checkpoint_every = every;
      config.guard.on_bad_step = xp::OnBadStep::Rollback;
      config.guard.rollback_keep_in_memory = in_memory;
      xp::Trainer rolled(config, MPI_COMM_WORLD);
      rolled.set_faults({{xp::FaultKind::NanGrad, bad, world_size() - 1}});
      const std::vector<double> losses = rolled.run();
      EXPECT_EQ(losses.size(), size_t(steps + bad - every)) << what;  // steps 4 and 5 ran twice
      EXPECT_EQ(rolled.steps_done(), steps) << what;
      // Offloaded on a build with a compute copy the device has only that: compare it on both sides.
      const bool compute = offload && !rolled.model().params_on_device();
      expect_same_weights(weights(rolled, compute), weights(reference, compute), what);
      expect_same_cursor(rolled.data_cursor(), reference.data_cursor());
      const std::vector<std::string> lines = metrics_lines(config.run.run_dir);
      ASSERT_EQ(lines.size(), losses.size()) << what;
      EXPECT_EQ(lines[bad - 1].rfind("{\"step\": 5,", 0), 0u) << lines[bad - 1];
      EXPECT_NE(lines[bad - 1].find("\"rolled_back\": true"), std::string::npos) << lines[bad - 1];
      EXPECT_EQ(lines[bad].rfind("{\"step\": 4,", 0), 0u) << lines[bad];  // resumed from step 3
    }
  }
}

TEST(StepGuard, StopEndsEveryRankAtTheSameStep) {
  if (layouts().empty()) GTEST_SKIP() << "no guard layout has " << world_size() << " ranks";
  const GuardLayout layout = layouts().front();
  xp::Config config = config_for(layout, 6, fresh_dir("stop"));
  config.guard.on_bad_step = xp::OnBadStep::Stop;
  xp::Trainer trainer(config, MPI_COMM_WORLD);
  trainer.set_faults({{xp::FaultKind::NanGrad, 3, world_size() - 1}});
  std::string message;
  try {
    trainer.run();
  } catch (const xp::RunStopped& stop) {
    message = stop.what();
  }
  EXPECT_EQ(trainer.steps_done(), 2);
  EXPECT_NE(message.find("step 3: non-finite gradient (first on rank " + std::to_string(world_size() - 1) + ")"),
            std::string::npos) << message;
  EXPECT_TRUE(same_on_every_rank(message)) << message;

  // Rollbacks at steps 5, 6 and 7 (each fault fires once): max_rollbacks = 2 lets two happen, the third stops.
  config = config_for(layout, 9, fresh_dir("max_rollbacks"));
  config.run.checkpoint_every = 4;
  config.guard.on_bad_step = xp::OnBadStep::Rollback;
  config.guard.max_rollbacks = 2;
  xp::Trainer rolling(config, MPI_COMM_WORLD);
  rolling.set_faults(
      {{xp::FaultKind::NanGrad, 5, -1}, {xp::FaultKind::NanGrad, 6, -1}, {xp::FaultKind::NanGrad, 7, -1}});
  message.clear();
  try {
    rolling.run();
  } catch (const xp::RunStopped& stop) {
    message = stop.what();
  }
  EXPECT_NE(message.find("step 7: non-finite gradient"), std::string::npos) << message;
  EXPECT_NE(message.find("max_rollbacks = 2"), std::string::npos) << message;
  EXPECT_EQ(rolling.steps_done(), 6);
  EXPECT_TRUE(same_on_every_rank(message)) << message;
}
