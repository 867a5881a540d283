// Data parallelism: any number of replicas sharing a global batch gives the loss sequence of one
// process that sees the whole batch (and of one process accumulating micro-batches).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "support.hpp"
#include "xp/train/trainer.hpp"

namespace {

constexpr int global_batch = 8;
// Replicas compute the same activations; only fp32 gradient sums and the BLAS blocking of a smaller
// batch differ. Where Real is bf16 that flips a few roundings, which 20 steps grow to ~2e-4 of the loss
// (measured at 2-8 ranks).
constexpr double tolerance = xp::real_is_float ? 1e-6 : 2e-3;

using xp::test::world_rank;
using xp::test::world_size;

// The shared tiny run with 2 layers, vocabulary 96 and clipping at 1.0.
xp::Config dp_config(const std::string& run_name) {
  xp::Config config = xp::test::tiny_config(xp::test::temp_path("xp_dp_" + run_name));
  config.model = {"custom", 2, 4, 32, 16, 96};
  config.train.grad_clip_norm = 1.0;
  return config;
}

// Losses of a run on this rank alone (MPI_COMM_SELF).
std::vector<double> single_process_losses(int batch_size, int accum, const std::string& name) {
  xp::Config config = dp_config(name + "_rank" + std::to_string(world_rank()));
  config.train.batch_size = batch_size;
  config.train.grad_accum_steps = accum;
  xp::Trainer trainer(config, MPI_COMM_SELF);
  return trainer.run();
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_LE(std::abs(got[i] - want[i]), tolerance * std::abs(want[i])) << "step " << i + 1;
}

}  // namespace

TEST(DataParallel, ReplicasMatchOneProcessWithTheWholeBatch) {
  const int ranks = world_size();
  if (global_batch % ranks != 0) GTEST_SKIP() << "global batch " << global_batch << " not divisible by " << ranks;
  xp::Config config = dp_config("world" + std::to_string(ranks));
  config.train.batch_size = global_batch / ranks;
  xp::Trainer trainer(config, MPI_COMM_WORLD);
  ASSERT_EQ(trainer.grid().layout().dp, ranks);
  const std::vector<double> distributed = trainer.run();

  const std::vector<double> whole_batch = single_process_losses(global_batch, 1, "whole");
  expect_close(distributed, whole_batch);
  // The loss must actually move, or equality would prove nothing.
  EXPECT_LT(distributed.back(), distributed.front() - 0.2);
}

TEST(DataParallel, ReplicasMatchGradientAccumulation) {
  const int ranks = world_size();
  if (ranks == 1) GTEST_SKIP() << "with one rank both sides are the same run";
  if (global_batch % ranks != 0) GTEST_SKIP() << "global batch " << global_batch << " not divisible by " << ranks;
  xp::Config config = dp_config("accum_world" + std::to_string(ranks));
  config.train.batch_size = global_batch / ranks;
  xp::Trainer trainer(config, MPI_COMM_WORLD);
  const std::vector<double> distributed = trainer.run();
  const std::vector<double> accumulated = single_process_losses(global_batch / ranks, ranks, "accum");
  expect_close(distributed, accumulated);
}

TEST(DataParallel, SameSeedGivesBitIdenticalLosses) {
  xp::Config config = dp_config("repeat" + std::to_string(world_size()));
  config.train.batch_size = 2;
  const std::vector<double> first = xp::Trainer(config, MPI_COMM_WORLD).run();
  const std::vector<double> second = xp::Trainer(config, MPI_COMM_WORLD).run();
  ASSERT_EQ(first.size(), second.size());
  for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(first[i], second[i]) << "step " << i + 1;
  config.train.seed += 1;
  const std::vector<double> other_seed = xp::Trainer(config, MPI_COMM_WORLD).run();
  EXPECT_NE(first.front(), other_seed.front());
}
