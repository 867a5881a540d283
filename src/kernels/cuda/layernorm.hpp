#pragma once
// Fused LayerNorm kernels for the GPU build (bf16 in/out, fp32 statistics and parameter gradients), behind
// xp::layernorm_fwd / layernorm_bwd / residual_layernorm_fwd (include/xp/kernels/layernorm.hpp). One warp
// per row with the row in registers, for C ≤ fused_layernorm_max_channels; scheme in layernorm_math.hpp.
//
// Memory floors (bytes that must move ÷ 4.3 TB/s), N = B·T = 32768 rows, bf16:
//   residual_layernorm_fwd  4·N·C·2 B (read residual, x; write residual_out, out):
//                           124M C=768  201 MB → 46.8 µs;  1.5B C=1600  419 MB → 97.5 µs
//                           (bias_residual_fwd + layernorm_fwd move 5·N·C·2 B: 58.5 µs / 122 µs)
//   layernorm_fwd           2·N·C·2 B: 101 MB → 23.4 µs;  210 MB → 48.8 µs
//   layernorm_bwd           4·N·C·2 B (read dout, inp, dinp; write dinp) + the fp32 block partials
//                           (512 blocks · 2C floats written and read, 6.3 MB / 13 MB):
//                           207 MB → 48.3 µs;  432 MB → 100.6 µs
// mean, rstd (8·N B) and the parameters add < 0.3 MB. Errors abort the MPI job.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace xp::cuda {

constexpr int fused_layernorm_max_channels = 2048;  // 32 lanes · 8 packs · 8 bf16 in registers

// residual_out (N,C) = residual (N,C) + x (N,C) + bias (C), rounded to bf16 as bias_residual_fwd rounds it;
// out (N,C) = layernorm(residual_out) · weight (C) + ln_bias (C); mean, rstd (N). residual_out may alias
// residual. The LayerNorm is layernorm_fwd's arithmetic: the same bits as layernorm_fwd(residual_out).
void residual_layernorm_fwd(__nv_bfloat16* residual_out, __nv_bfloat16* out, float* mean, float* rstd,
                            const __nv_bfloat16* residual, const __nv_bfloat16* x, const __nv_bfloat16* bias,
                            const __nv_bfloat16* weight, const __nv_bfloat16* ln_bias, int N, int C, float eps,
                            cudaStream_t stream);

// out (N,C) = (inp - mean)·rstd·weight (C) + bias (C); mean, rstd (N) saved for backward.
void layernorm_fwd(__nv_bfloat16* out, float* mean, float* rstd, const __nv_bfloat16* inp,
                   const __nv_bfloat16* weight, const __nv_bfloat16* bias, int N, int C, float eps,
                   cudaStream_t stream);

// dinp (N,C) += ∂/∂inp; dweight (C), dbias (C) += their gradients, summed in a fixed order (block partials
// in a stream-ordered scratch buffer this file owns, then one pass in block order): the same bits in
// every run and on every GPU for given (N, C).
void layernorm_bwd(__nv_bfloat16* dinp, float* dweight, float* dbias, const __nv_bfloat16* dout,
                   const __nv_bfloat16* inp, const __nv_bfloat16* weight, const float* mean, const float* rstd, int N,
                   int C, cudaStream_t stream);

}  // namespace xp::cuda
