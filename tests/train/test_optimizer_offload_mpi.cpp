// Optimizer offload: with the fp32 master weights and both AdamW moments in host memory and the update
// on the host threads (chunked gradient copies, any thread count), a run's losses are the losses of the
// same run with the optimizer on the device, bit for bit — at every layout of the world (dp, tp × pp,
// ZeRO-1) and across a checkpoint: saved with offload and resumed without, or the other way round. On GPU
// builds the device optimizer is nvcc's kernel, which may fuse multiply-adds the host compiler keeps
// apart; a few fp32 roundings, through the bf16 compute copy, stay within a bf16 run's noise there.
// Builds with a compute copy (emulated bf16, GPU) keep no fp32 params on the device under offload: the
// master lives in host memory only, and the losses stay the device optimizer's — also across a rollback
// by the step guard, to its in-memory copy and to the checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "support.hpp"
#include "xp/core/allocation.hpp"
#include "xp/core/device.hpp"
#include "xp/train/trainer.hpp"

namespace {

using xp::test::world_size;

void expect_same_loss(double got, double want, size_t step) {
  if (xp::device_build) EXPECT_NEAR(got, want, 2e-3 * std::abs(want)) << "step " << step;
  else EXPECT_EQ(got, want) << "step " << step;
}

struct Layout4 {
  int dp, tp, pp, zero;
};

// The layouts this world size tests.
std::vector<Layout4> layouts() {
  switch (world_size()) {
    case 1: return {{1, 1, 1, 0}};
    case 2: return {{2, 1, 1, 0}, {2, 1, 1, 1}, {1, 2, 1, 0}};
    case 4: return {{1, 2, 2, 0}, {2, 1, 2, 1}, {4, 1, 1, 1}};
    case 8: return {{2, 2, 2, 1}};
    default: return {};
  }
}

xp::Config offload_config(const Layout4& layout, bool offload, const std::string& name) {
  xp::Config config = xp::test::tiny_config(xp::test::temp_path("xp_offload_np" + std::to_string(world_size()) +
                                                                "_" + name));
  config.train.steps = 12;
  config.train.weight_decay = 0.1;  // decayed and undecayed segments both take part
  xp::test::set_layout(config, {layout.dp, layout.tp, layout.pp, layout.zero});
  config.parallel.optimizer_offload = offload;
  config.parallel.threads = offload ? 2 : 1;  // the host update's thread split must not matter
  config.run.keep_last = 0;
  return config;
}

std::string describe(const Layout4& l) {
  return "dp" + std::to_string(l.dp) + "_tp" + std::to_string(l.tp) + "_pp" + std::to_string(l.pp) + "_zero" +
         std::to_string(l.zero);
}

}  // namespace

TEST(OptimizerOffload, LossesAreIdenticalToTheDeviceOptimizer) {
  if (layouts().empty()) GTEST_SKIP() << "no layout for " << world_size() << " ranks";
  for (const Layout4& layout : layouts()) {
    SCOPED_TRACE(describe(layout));
    xp::Trainer device(offload_config(layout, false, describe(layout) + "_device"), MPI_COMM_WORLD);
    const std::vector<double> want = device.run();

    xp::memory_ledger().reset();
    xp::Trainer host(offload_config(layout, true, describe(layout) + "_host"), MPI_COMM_WORLD);
    // Offloaded: no AdamW state on the device; master weights, both moments and a chunk on the host.
    EXPECT_EQ(xp::memory_ledger().optimizer, 0.0);
    EXPECT_EQ(xp::memory_ledger().host, host.plan().rank_memory().host);
    EXPECT_GE(xp::memory_ledger().host, 3 * 4.0 * host.plan().shard.size());
    // The device's weights: the compute copy alone where there is one; fp32 params only where they are it.
    const std::vector<std::string>& labels = xp::memory_ledger().labels;
    const bool device_params = std::find(labels.begin(), labels.end(), std::string("xp::params")) != labels.end();
    EXPECT_EQ(device_params, !xp::build_precision.compute_copy());
    EXPECT_EQ(xp::memory_ledger().weights, double(sizeof(xp::Real)) * host.model().layout().total());
    const std::vector<double> got = host.run();

    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) expect_same_loss(got[i], want[i], i + 1);
    EXPECT_LT(want.back(), want.front() - 0.2);  // the runs learn: equal losses say something
  }
}

TEST(OptimizerOffload, CheckpointsDoNotCareWhereTheStateLived) {
  if (layouts().empty()) GTEST_SKIP() << "no layout for " << world_size() << " ranks";
  const Layout4 layout = layouts().back();
  constexpr int saved_at = 6;
  xp::Trainer straight(offload_config(layout, false, "ckpt_straight"), MPI_COMM_WORLD);
  const std::vector<double> want = straight.run();
  for (const bool save_offloaded : {true, false}) {
    SCOPED_TRACE(save_offloaded ? "saved offloaded, resumed on the device" : "saved on the device, resumed offloaded");
    const std::string tag = save_offloaded ? "host_to_device" : "device_to_host";
    std::string saved;
    {
      xp::Trainer first(offload_config(layout, save_offloaded, "ckpt_first_" + tag), MPI_COMM_WORLD);
      for (int step = 0; step < saved_at; ++step) first.step();
      saved = first.save();
    }
    for (const bool resume_offloaded : {!save_offloaded, save_offloaded}) {
      xp::Config config = offload_config(layout, resume_offloaded, "ckpt_second_" + tag + (resume_offloaded ? "_host" : "_device"));
      config.run.resume = saved;
      xp::Trainer second(config, MPI_COMM_WORLD);
      const std::vector<double> resumed = second.run();
      ASSERT_EQ(resumed.size(), want.size() - saved_at);
      SCOPED_TRACE(resume_offloaded ? "resumed offloaded" : "resumed on the device");
      for (size_t i = 0; i < resumed.size(); ++i) expect_same_loss(resumed[i], want[saved_at + i], saved_at + i + 1);
    }
  }
}

TEST(OptimizerOffload, RollbackRestoresTheHostState) {
  if (layouts().empty()) GTEST_SKIP() << "no layout for " << world_size() << " ranks";
  const Layout4 layout = layouts().back();
  constexpr int bad = 5;
  for (const bool in_memory : {true, false}) {
    SCOPED_TRACE(in_memory ? "rolled back to the host copy" : "rolled back to the checkpoint");
    // A NaN in step 5's gradients on the last rank: both runs go back to step 3 and redo steps 4 and 5
    // with the data moved past them.
    auto rolled = [&](bool offload) {
      xp::Config config = offload_config(layout, offload, std::string("rollback_") + (in_memory ? "mem_" : "disk_") +
                                                              (offload ? "host" : "device"));
      config.run.checkpoint_every = 3;
      config.guard.on_bad_step = xp::OnBadStep::Rollback;
      config.guard.rollback_keep_in_memory = in_memory;
      xp::Trainer trainer(config, MPI_COMM_WORLD);
      trainer.set_faults({{xp::FaultKind::NanGrad, bad, world_size() - 1}});
      return trainer.run();
    };
    const std::vector<double> want = rolled(false), got = rolled(true);
    ASSERT_EQ(want.size(), size_t(12 + bad - 3));  // steps 4 and 5 ran twice
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) expect_same_loss(got[i], want[i], i + 1);
    EXPECT_NE(want[bad], want[3]);  // step 4 redone on other batches: the rollback moved the data
  }
}

TEST(OptimizerOffload, InitFromLoadsTheMasterWeights) {
  if (layouts().empty()) GTEST_SKIP() << "no layout for " << world_size() << " ranks";
  const Layout4 layout = layouts().back();
  std::string saved;
  {
    xp::Trainer first(offload_config(layout, false, "init_from_first"), MPI_COMM_WORLD);
    for (int step = 0; step < 4; ++step) first.step();
    saved = first.save();
  }
  // Fine-tuning from those weights: a fresh optimizer, the same losses wherever its state lives.
  auto fine_tuned = [&](bool offload) {
    xp::Config config = offload_config(layout, offload, std::string("init_from_") + (offload ? "host" : "device"));
    config.train.steps = 4;
    config.run.init_from = saved;
    xp::Trainer trainer(config, MPI_COMM_WORLD);
    return trainer.run();
  };
  const std::vector<double> want = fine_tuned(false), got = fine_tuned(true);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) expect_same_loss(got[i], want[i], i + 1);
  xp::Trainer fresh(offload_config(layout, true, "init_from_fresh"), MPI_COMM_WORLD);
  EXPECT_NE(fresh.step().loss, want.front());  // the loaded weights are not the initial ones
}
