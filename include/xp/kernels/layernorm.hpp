#pragma once
#include "xp/core/precision.hpp"

namespace xp {

constexpr float layernorm_eps = 1e-5f;

// out (N,C) = (inp - mean) * rstd * weight (C) + bias (C); saves mean (N), rstd (N) for backward.
void layernorm_fwd(Real* out, float* mean, float* rstd, const Real* inp, const Real* weight, const Real* bias, int N,
                   int C);

// dinp (N,C) += ∂/∂inp; dweight (C), dbias (C) += their gradients (fp32). dout (N,C).
void layernorm_bwd(Real* dinp, float* dweight, float* dbias, const Real* dout, const Real* inp, const Real* weight,
                   const float* mean, const float* rstd, int N, int C);

}  // namespace xp
