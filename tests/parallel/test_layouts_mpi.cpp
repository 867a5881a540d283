// Every parallel layout (dp × tp × pp, with and without ZeRO-1) trains the same model on the same
// global batch: its loss sequence must match one process running the whole model (within 1e-5).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "xp/train/trainer.hpp"

namespace {

struct Case {
  int dp, tp, pp;
};

// The layouts of the parallelism issue; each runs where the world size equals dp·tp·pp.
const std::vector<Case> layouts = {{1, 1, 1}, {2, 1, 1}, {1, 2, 1}, {1, 1, 2}, {2, 2, 1}, {2, 1, 2},
                                   {1, 2, 2}, {2, 2, 2}, {1, 4, 2}, {1, 2, 4}, {4, 1, 2}};
constexpr int global_batch = 8, micro_batch = 2;

xp::Config tiny_config(const std::string& run_name) {
  xp::Config config;
  config.model = {"custom", 4, 4, 32, 16, 100};  // vocab 100 pads to 128: padding split across tp too
  config.train.steps = 20;
  config.train.lr = 1e-2;
  config.train.warmup_steps = 2;
  config.train.grad_clip_norm = 0.5;  // small enough to clip: the global norm must be right
  config.train.batch_size = micro_batch;
  config.parallel.threads = 1;
  config.run.run_dir = std::string(::testing::TempDir()) + "/xp_layouts_" + run_name;
  config.run.log_every = 1000;
  return config;
}

int world(MPI_Comm comm, bool want_rank) {
  int value = 0;
  if (want_rank) MPI_Comm_rank(comm, &value);
  else MPI_Comm_size(comm, &value);
  return value;
}

std::vector<double> run_layout(const Case& layout, int zero_stage, MPI_Comm comm, const std::string& name) {
  xp::Config config = tiny_config(name);
  config.parallel.dp_size = layout.dp;
  config.parallel.tp_size = layout.tp;
  config.parallel.pp_stages = layout.pp;
  config.parallel.zero_stage = zero_stage;
  config.train.grad_accum_steps = global_batch / (micro_batch * layout.dp);
  xp::Trainer trainer(config, comm);
  return trainer.run();
}

const std::vector<double>& reference_losses() {
  static const std::vector<double> losses =
      run_layout({1, 1, 1}, 0, MPI_COMM_SELF, "reference_rank" + std::to_string(world(MPI_COMM_WORLD, true)));
  return losses;
}

void expect_matches_reference(const Case& layout, int zero_stage) {
  const std::string name = "dp" + std::to_string(layout.dp) + "_tp" + std::to_string(layout.tp) + "_pp" +
                           std::to_string(layout.pp) + "_zero" + std::to_string(zero_stage);
  const std::vector<double> losses = run_layout(layout, zero_stage, MPI_COMM_WORLD, name);
  const std::vector<double>& reference = reference_losses();
  ASSERT_EQ(losses.size(), reference.size());
  for (size_t i = 0; i < losses.size(); ++i)
    EXPECT_NEAR(losses[i], reference[i], 1e-5 * std::abs(reference[i])) << name << " step " << i + 1;
  EXPECT_LT(reference.back(), reference.front() - 0.2);  // training moved, so agreement means something
}

}  // namespace

TEST(Layouts, EveryLayoutMatchesOneProcess) {
  const int ranks = world(MPI_COMM_WORLD, false);
  int tested = 0;
  for (const Case& layout : layouts) {
    if (layout.dp * layout.tp * layout.pp != ranks) continue;
    expect_matches_reference(layout, 0);
    ++tested;
  }
  if (tested == 0) GTEST_SKIP() << "no layout of the list has " << ranks << " ranks";
}

TEST(Layouts, ZeroStageOneMatchesOneProcess) {
  const int ranks = world(MPI_COMM_WORLD, false);
  int tested = 0;
  for (const Case& layout : layouts) {
    if (layout.dp * layout.tp * layout.pp != ranks || layout.dp == 1) continue;
    expect_matches_reference(layout, 1);
    ++tested;
  }
  if (tested == 0) GTEST_SKIP() << "no data-parallel layout of the list has " << ranks << " ranks";
}
