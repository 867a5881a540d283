// Every parallel layout (dp × tp × pp, with and without ZeRO-1) trains the same model on the same
// global batch: its loss sequence must match one process running the whole model (within 1e-5; within
// bf16_layout_tolerance where Real is bf16).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "support.hpp"
#include "xp/train/trainer.hpp"

namespace {

struct Case {
  int dp, tp, pp;
};

// The layouts of the parallelism issue; each runs where the world size equals dp·tp·pp.
const std::vector<Case> layouts = {{1, 1, 1}, {2, 1, 1}, {1, 2, 1}, {1, 1, 2}, {2, 2, 1}, {2, 1, 2},
                                   {1, 2, 2}, {2, 2, 2}, {1, 4, 2}, {1, 2, 4}, {4, 1, 2}};
constexpr int global_batch = 8, micro_batch = 2;
constexpr double tolerance = xp::real_is_float ? 1e-5 : xp::test::bf16_layout_tolerance;

using xp::test::world_rank;
using xp::test::world_size;

std::vector<double> run_layout(const Case& layout, int zero_stage, MPI_Comm comm, const std::string& name) {
  xp::Config config = xp::test::tiny_config(xp::test::temp_path("xp_layouts_" + name));
  config.train.batch_size = micro_batch;
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
      run_layout({1, 1, 1}, 0, MPI_COMM_SELF, "reference_rank" + std::to_string(world_rank()));
  return losses;
}

void expect_matches_reference(const Case& layout, int zero_stage) {
  const std::string name = "dp" + std::to_string(layout.dp) + "_tp" + std::to_string(layout.tp) + "_pp" +
                           std::to_string(layout.pp) + "_zero" + std::to_string(zero_stage);
  const std::vector<double> losses = run_layout(layout, zero_stage, MPI_COMM_WORLD, name);
  const std::vector<double>& reference = reference_losses();
  ASSERT_EQ(losses.size(), reference.size());
  for (size_t i = 0; i < losses.size(); ++i)
    EXPECT_NEAR(losses[i], reference[i], tolerance * std::abs(reference[i])) << name << " step " << i + 1;
  EXPECT_LT(reference.back(), reference.front() - 0.2);  // training moved, so agreement means something
}

}  // namespace

TEST(Layouts, EveryLayoutMatchesOneProcess) {
  const int ranks = world_size();
  if (ranks == 1) GTEST_SKIP() << "with one rank the layout is the reference itself";
  int tested = 0;
  for (const Case& layout : layouts) {
    if (layout.dp * layout.tp * layout.pp != ranks) continue;
    expect_matches_reference(layout, 0);
    ++tested;
  }
  if (tested == 0) GTEST_SKIP() << "no layout of the list has " << ranks << " ranks";
}

TEST(Layouts, ZeroStageOneMatchesOneProcess) {
  const int ranks = world_size();
  int tested = 0;
  for (const Case& layout : layouts) {
    if (layout.dp * layout.tp * layout.pp != ranks || layout.dp == 1) continue;
    expect_matches_reference(layout, 1);
    ++tested;
  }
  if (tested == 0) GTEST_SKIP() << "no data-parallel layout of the list has " << ranks << " ranks";
}
