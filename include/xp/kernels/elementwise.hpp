#pragma once
#include <cstdint>

namespace xp {

// out (N,C) = residual (N,C) + x (N,C) + bias (C): a row-parallel layer's output joins the residual
// stream after the tensor-parallel sum. out may alias residual.
void bias_residual_fwd(float* out, const float* residual, const float* x, const float* bias, int N, int C);

// Σ x²: blocks of 256 summed in float, block sums in double (gradient norms of billions of values).
double sum_squares(const float* x, int64_t n);

}  // namespace xp
