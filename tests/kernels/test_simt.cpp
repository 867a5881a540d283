// The host emulation of the fused kernels' warp and block reductions (src/kernels/cuda/simt.hpp): every
// lane ends with the same value, the value is the reduction of all inputs, and the order is the
// butterfly's (checked on values where float addition is not associative).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cuda/simt.hpp"

namespace xp::simt {
namespace {

TEST(Simt, WarpButterflyLeavesEveryLaneTheSameSum) {
  float lanes[warp_size];
  double exact = 0.0;
  for (int i = 0; i < warp_size; ++i) {
    lanes[i] = std::ldexp(1.0f + i, -(i % 7));
    exact += lanes[i];
  }
  warp_allreduce_emulated(lanes, Sum{});
  for (int i = 0; i < warp_size; ++i) EXPECT_EQ(lanes[i], lanes[0]);
  EXPECT_NEAR(lanes[0], exact, 1e-5 * exact);
}

TEST(Simt, WarpButterflyAddsPairsAtDistanceSixteenFirst) {
  // 1e8 + 1 + ... : a left-to-right sum loses the ones, the butterfly first pairs lane i with i^16.
  float lanes[warp_size] = {};
  lanes[0] = 1e8f;
  lanes[16] = -1e8f;
  for (int i = 1; i < 16; ++i) lanes[i] = 1.0f;
  warp_allreduce_emulated(lanes, Sum{});
  EXPECT_EQ(lanes[0], 15.0f);
}

TEST(Simt, BlockReductionOfMaxAndSumOverSeveralWarps) {
  for (int threads : {32, 64, 256, 1024}) {
    std::vector<float> values(threads);
    double exact = 0.0;
    float largest = -1e30f;
    for (int i = 0; i < threads; ++i) {
      values[i] = std::sin(0.37f * i) * 3.0f;
      exact += values[i];
      largest = std::fmax(largest, values[i]);
    }
    EXPECT_EQ(block_allreduce_emulated(values.data(), threads, Max{}, -3.0e38f), largest) << threads;
    EXPECT_NEAR(block_allreduce_emulated(values.data(), threads, Sum{}, 0.0f), exact, 1e-4) << threads;
  }
}

TEST(Simt, Bf16StoreRoundsToNearestEven) {
  EXPECT_EQ(load(store_bf16(1.0f + 1.0f / 256)), 1.0f);                 // a tie: down to the even 1.0
  EXPECT_EQ(load(store_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);    // a tie: up to the even neighbour
  Pack<bf16> pack;
  EXPECT_EQ(Pack<bf16>::size, 8);
  EXPECT_EQ(Pack<float>::size, 4);
  EXPECT_EQ(sizeof pack, 16u);
}

}  // namespace
}  // namespace xp::simt
