// The learning-rate schedule: linear warmup to lr, then a cosine from lr down to min_lr at the last step.
#include "xp/train/lr.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace xp::test {
namespace {

TrainConfig schedule(int64_t steps, int64_t warmup_steps, double lr, double min_lr) {
  TrainConfig train;
  train.steps = steps;
  train.warmup_steps = warmup_steps;
  train.lr = lr;
  train.min_lr = min_lr;
  return train;
}

// Written independently of src/train/lr.cpp: warmup step s gives lr·(s+1)/W; after it, the fraction f of
// the remaining steps done (0 at the first, 1 at the last) gives min_lr + (lr − min_lr)·cos²(π·f/2).
double expected_lr(const TrainConfig& train, int64_t step) {
  const double pi = std::acos(-1.0);
  if (step < train.warmup_steps) return train.lr * double(step + 1) / double(train.warmup_steps);
  const int64_t last = train.steps - 1;
  if (last <= train.warmup_steps) return train.lr;  // a single step after warmup stays at the peak
  const double fraction = double(step - train.warmup_steps) / double(last - train.warmup_steps);
  const double c = std::cos(0.5 * pi * fraction);
  return train.min_lr + (train.lr - train.min_lr) * c * c;
}

TEST(LearningRate, WarmupIsLinearAndPeaksAtItsEnd) {
  const TrainConfig train = schedule(100, 10, 6e-4, 6e-5);
  EXPECT_DOUBLE_EQ(learning_rate(train, 0), 6e-5);
  for (int64_t step = 1; step < 10; ++step)
    EXPECT_NEAR(learning_rate(train, step) - learning_rate(train, step - 1), 6e-5, 1e-15) << step;
  EXPECT_DOUBLE_EQ(learning_rate(train, 9), 6e-4);
  EXPECT_DOUBLE_EQ(learning_rate(train, 10), 6e-4);
  for (int64_t step = 0; step < train.steps; ++step) EXPECT_LE(learning_rate(train, step), train.lr * (1 + 1e-15));
}

TEST(LearningRate, CosineReachesMinLrAtTheLastStep) {
  for (const TrainConfig& train : {schedule(101, 10, 6e-4, 6e-5), schedule(51, 0, 1e-3, 0.0),
                                   schedule(7, 3, 2e-3, 1e-3)}) {
    EXPECT_NEAR(learning_rate(train, train.steps - 1), train.min_lr, 1e-15) << train.steps;
    // Halfway through the decay the cosine is at the mean of lr and min_lr.
    const int64_t decay = train.steps - train.warmup_steps;
    if ((decay - 1) % 2 == 0)
      EXPECT_NEAR(learning_rate(train, train.warmup_steps + (decay - 1) / 2), 0.5 * (train.lr + train.min_lr), 1e-15);
  }
}

TEST(LearningRate, DecaysMonotonicallyAfterWarmup) {
  const TrainConfig train = schedule(200, 20, 3e-3, 3e-4);
  for (int64_t step = train.warmup_steps + 1; step < train.steps; ++step)
    EXPECT_LT(learning_rate(train, step), learning_rate(train, step - 1)) << step;
  EXPECT_GE(learning_rate(train, train.steps - 1), train.min_lr);
}

TEST(LearningRate, MatchesTheFormula) {
  for (const TrainConfig& train : {schedule(100, 10, 6e-4, 6e-5), schedule(1000, 0, 1e-3, 0.0),
                                   schedule(33, 32, 2e-3, 1e-4), schedule(5, 2, 1.0, 0.5)})
    for (int64_t step = 0; step < train.steps; ++step)
      EXPECT_NEAR(learning_rate(train, step), expected_lr(train, step), 1e-12 * train.lr)
          << "steps " << train.steps << " warmup " << train.warmup_steps << " step " << step;
}

// With as many warmup steps as steps the run ends at the peak, with no decay and nothing undefined.
TEST(LearningRate, WarmupAsLongAsTheRun) {
  const TrainConfig train = schedule(10, 10, 1e-3, 1e-4);
  for (int64_t step = 0; step < train.steps; ++step) {
    EXPECT_TRUE(std::isfinite(learning_rate(train, step))) << step;
    EXPECT_DOUBLE_EQ(learning_rate(train, step), 1e-3 * double(step + 1) / 10.0) << step;
  }
  EXPECT_DOUBLE_EQ(learning_rate(train, 9), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(schedule(1, 0, 1e-3, 0.0), 0), 1e-3);  // a one-step run uses the peak
}

}  // namespace
}  // namespace xp::test
