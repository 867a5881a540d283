#pragma once
#include "xp/core/precision.hpp"

namespace xp {

constexpr float layernorm_eps = 1e-5f;

// out (N,C) = (inp - mean) * rstd * weight (C) + bias (C); saves mean (N), rstd (N) for backward.
void layernorm_fwd(Real* out, float* mean, float* rstd, const Real* inp, const Real* weight, const Real* bias, int N,
                   int C);

// residual_out (N,C) = residual (N,C) + x (N,C) + bias (C), then out (N,C), mean (N), rstd (N) =
// layernorm_fwd(residual_out, weight (C), ln_bias (C)): a row-parallel layer's output joins the residual
// stream and is normalised in one pass. The same bits as bias_residual_fwd followed by layernorm_fwd, in
// every build and on either GPU kernel path. residual_out may alias residual.
void residual_layernorm_fwd(Real* residual_out, Real* out, float* mean, float* rstd, const Real* residual,
                            const Real* x, const Real* bias, const Real* weight, const Real* ln_bias, int N, int C);

// dinp (N,C) += ∂/∂inp; dweight (C), dbias (C) += their gradients (fp32). dout (N,C).
void layernorm_bwd(Real* dinp, float* dweight, float* dbias, const Real* dout, const Real* inp, const Real* weight,
                   const float* mean, const float* rstd, int N, int C);

}  // namespace xp
