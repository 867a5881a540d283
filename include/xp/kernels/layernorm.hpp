#pragma once
namespace xp {

constexpr float layernorm_eps = 1e-5f;

// out (N,C) = (inp - mean) * rstd * weight (C) + bias (C); saves mean (N), rstd (N) for backward.
void layernorm_fwd(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                   const float* bias, int N, int C);

// dinp (N,C) += ∂/∂inp; dweight (C), dbias (C) += their gradients. dout (N,C).
void layernorm_bwd(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                   const float* weight, const float* mean, const float* rstd, int N, int C);

}  // namespace xp
