#pragma once
// A tiny GPT-2 for the generation tests (test_generator.cpp, test_generator_mpi.cpp): 2 layers, 4 heads,
// width 32, context 24, vocabulary 100 padded to 128 (padding logits must never be sampled). Weights of
// std 0.2 make the next-token distribution peaked enough that greedy choices are not near-ties.
#include <cstdint>
#include <vector>

#include "xp/config/config.hpp"
#include "xp/core/precision.hpp"
#include "xp/model/gpt2.hpp"
#include "xp/train/sampler.hpp"

namespace xp::test {

inline ModelConfig generator_model() { return {"custom", 2, 4, 32, 24, 100}; }
constexpr uint64_t generator_weight_seed = 2024;
constexpr double generator_init_std = 0.2;
// Logits of O(1) from the same weights through differently blocked fp32 matmuls differ by ~1e-6; where
// Real is bf16 each activation carries a relative rounding of 2^-8.
constexpr double generator_logit_tolerance = real_is_float ? 1e-4 : 6e-2;

inline Placement generator_placement(int tp_rank, int tp_size) {
  Placement placement;
  placement.tp_rank = tp_rank;
  placement.tp_size = tp_size;
  return placement;
}

inline std::vector<int32_t> generator_prompt() { return {17, 3, 42}; }

}  // namespace xp::test
