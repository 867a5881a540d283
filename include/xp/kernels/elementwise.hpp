#pragma once
#include <cstdint>

#include "xp/core/precision.hpp"

namespace xp {

// out (N,C) = residual (N,C) + x (N,C) + bias (C): a row-parallel layer's output joins the residual
// stream after the tensor-parallel sum. out may alias residual.
void bias_residual_fwd(Real* out, const Real* residual, const Real* x, const Real* bias, int N, int C);

// out (N,C) += bias (C): a GEMM's bias where no epilogue adds it (the same arithmetic as matmul.cpp's add_bias).
void bias_add(Real* out, const Real* bias, int N, int C);

// sums (C) += Σ over the N rows of x (N,C), in fp32 (bias gradients).
void column_sums_add(float* sums, const Real* x, int N, int C);

// Σ x²: blocks summed in float, block sums in double (gradient norms of billions of values).
double sum_squares(const float* x, int64_t n);

// out (n) = x (n) rounded to Real (the compute copy of fp32 master weights; a copy on the CPU path).
void convert_to_real(Real* out, const float* x, int64_t n);

}  // namespace xp
