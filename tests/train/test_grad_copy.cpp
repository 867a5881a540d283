// The ledger of offload's overlapped gradient copies (train/grad_copy.hpp): copies must be disjoint and
// cover the optimizer's range exactly once, in any order; and on this build a copy is the values of its
// range, to their place in the host copy (offset by the range's begin).
#include <gtest/gtest.h>

#include <vector>

#include "xp/core/device.hpp"
#include "xp/train/grad_copy.hpp"

TEST(GradientCopyLedger, NamesOverlapsGapsAndShortCover) {
  EXPECT_EQ(xp::ledger_problem({{40, 100}, {10, 40}}, 10, 100), "");
  EXPECT_EQ(xp::ledger_problem({{10, 100}}, 10, 100), "");
  EXPECT_EQ(xp::ledger_problem({{10, 50}, {40, 100}}, 10, 100), "copies overlap at flat offset 40");
  EXPECT_EQ(xp::ledger_problem({{10, 40}, {10, 40}, {40, 100}}, 10, 100), "copies overlap at flat offset 10");
  EXPECT_EQ(xp::ledger_problem({{10, 30}, {40, 100}}, 10, 100), "a gap between copies at flat offset 30");
  EXPECT_EQ(xp::ledger_problem({{12, 100}}, 10, 100), "a gap between copies at flat offset 10");
  EXPECT_EQ(xp::ledger_problem({{10, 90}}, 10, 100), "the copies end at flat offset 90, not 100");
  EXPECT_EQ(xp::ledger_problem({{10, 100}, {50, 50}}, 10, 100), "an empty copy at flat offset 50");
  EXPECT_EQ(xp::ledger_problem({}, 0, 5), "the copies end at flat offset 0, not 5");
}

TEST(GradientCopies, CopyClipsToTheRangeAndFinishChecksTheCover) {
  if (xp::device_build) GTEST_SKIP() << "host vectors stand for the device gradients on CPU builds only";
  std::vector<float> grads(20), host(12, -1.0f);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = 0.5f * float(i);
  xp::GradientCopies copies(host.data(), 4, 16);
  copies.reset_step();
  EXPECT_FALSE(copies.finish());  // nothing copied: the optimizer copies itself
  copies.copy(grads.data(), 10, 20);  // clipped to [10, 16)
  copies.copy(grads.data(), 0, 2);    // outside the range: nothing
  copies.copy(grads.data(), 0, 10);   // clipped to [4, 10)
  ASSERT_EQ(copies.ledger().size(), 2u);
  EXPECT_EQ(copies.ledger()[0], (std::pair<int64_t, int64_t>{10, 16}));
  EXPECT_EQ(copies.ledger()[1], (std::pair<int64_t, int64_t>{4, 10}));
  EXPECT_TRUE(copies.finish());
  for (int i = 0; i < 12; ++i) EXPECT_EQ(host[i], grads[i + 4]) << i;
  copies.reset_step();
  EXPECT_TRUE(copies.ledger().empty());
}
