#pragma once
// One query row of causal attention's softmax, shared by the training kernel (kernels/attention.cpp) and
// the generator's KV-cached attention (model/generator.cpp): both round a row's scores, its max and its
// sum in the same order.
#include <cstdint>

#include "xp/core/math.hpp"
#include "xp/core/types.hpp"

namespace xp {

// q (hs) of the query at position t; key t2 (hs) at keys + t2 * key_stride, t2 in [0, t].
// row[0..t] = exp(scale · q·k_t2 − max over t2 of it), the unnormalised probabilities; returns 1 / their sum.
KOKKOS_INLINE_FUNCTION float causal_softmax_row(float* row, const Real* q, const Real* keys, int64_t key_stride,
                                                int64_t t, int hs, float scale) {
  float max_score = -3.0e38f;
  for (int64_t t2 = 0; t2 <= t; ++t2) {
    const Real* k = keys + t2 * key_stride;
    float score = 0.0f;
    for (int i = 0; i < hs; ++i) score += to_float(q[i]) * to_float(k[i]);
    score *= scale;
    row[t2] = score;
    if (score > max_score) max_score = score;
  }
  float sum = 0.0f;
  for (int64_t t2 = 0; t2 <= t; ++t2) {
    row[t2] = math::exp(row[t2] - max_score);
    sum += row[t2];
  }
  return 1.0f / sum;
}

}  // namespace xp
