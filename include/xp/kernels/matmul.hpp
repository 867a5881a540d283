#pragma once
// Linear layer on top of gemm: out = inp · weightᵀ + bias. Real inputs and outputs, fp32 accumulation,
// fp32 weight and bias gradients. GPU builds fuse the bias and the GELU into cuBLASLt epilogues.
#include <cstdint>

#include "xp/core/precision.hpp"

namespace xp {

// out (N,OC) = inp (N,C) · weight (OC,C)ᵀ + bias (OC); bias may be null.
void matmul_fwd(Real* out, const Real* inp, const Real* weight, const Real* bias, int N, int C, int OC);

// out (N,OC) = GELU(pre), pre (N,OC) = inp · weightᵀ + bias, kept for backward (the MLP up-projection).
void matmul_gelu_fwd(Real* out, Real* pre, const Real* inp, const Real* weight, const Real* bias, int N, int C,
                     int OC);

// dinp (N,C) = dout (N,OC) · weight (OC,C)       (overwritten), times GELU'(gelu_pre) (N,C) elementwise
//              when gelu_pre is given (the layer's input was GELU(gelu_pre));
// dweight (OC,C) += doutᵀ · inp,  dbias (OC) += Σ_rows dout   (fp32, accumulated; dbias may be null)
void matmul_bwd(Real* dinp, float* dweight, float* dbias, const Real* dout, const Real* inp, const Real* weight,
                int N, int C, int OC, const Real* gelu_pre = nullptr);

}  // namespace xp
