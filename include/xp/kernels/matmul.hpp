#pragma once
// Linear layer on top of gemm: out = inp · weightᵀ + bias.
#include <cstdint>

namespace xp {

// out (N,OC) = inp (N,C) · weight (OC,C)ᵀ + bias (OC); bias may be null.
void matmul_fwd(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC);

// dinp (N,C) = dout (N,OC) · weight (OC,C)         (overwritten)
// dweight (OC,C) += dout ᵀ · inp,  dbias (OC) += Σ_rows dout   (accumulated; dbias may be null)
void matmul_bwd(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                const float* weight, int N, int C, int OC);

}  // namespace xp
