#pragma once
// Fused element-wise CUDA kernels of the GPU build (elementwise.cu; arithmetic in elementwise_math.hpp),
// called by the kernel functions in include/xp/kernels/{elementwise,gelu}.hpp on the fused path. bf16
// tensors, fp32 arithmetic; 16-byte loads and stores where every pointer is 16-byte aligned (and, with a
// bias, C % 8 == 0), checked at run time, else one value per thread. All launch on `stream`, no host sync.
//
// Memory floors at GPT-2 124M shapes (N = B·T = 32768 rows, C = 768, 4C = 3072; bytes ÷ 4.3 TB/s):
//   bias_residual_fwd (N,C)      3 reads + 1 write of N·C bf16 = 201 MB  → 46.8 µs
//   bias_add          (N,3C)     1 read + 1 write of N·3C bf16 = 302 MB  → 70.2 µs   (qkv, no epilogue)
//   gelu_fwd          (N·4C)     1 read + 1 write of bf16     = 403 MB  → 93.6 µs
//   gelu_bwd          (N·4C)     2 reads + 1 write of bf16    = 604 MB  → 140.5 µs
//   convert_to_real   (124.5 M)  fp32 read + bf16 write       = 747 MB  → 173.7 µs   (once a step)
//   column_sums_add   (N,C)      N·C bf16 read (+ 2·128·C fp32 partials) = 51.1 MB → 11.9 µs
//                     (N,4C)     = 204.5 MB → 47.6 µs;   (N,3C) = 153.4 MB → 35.7 µs
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace xp::cuda {

// out (N,C) = residual + (x + bias (C)); out may alias residual.
void fused_bias_residual_fwd(__nv_bfloat16* out, const __nv_bfloat16* residual, const __nv_bfloat16* x,
                             const __nv_bfloat16* bias, int N, int C, cudaStream_t stream);

// out (N,C) += bias (C).
void fused_bias_add(__nv_bfloat16* out, const __nv_bfloat16* bias, int N, int C, cudaStream_t stream);

// out (n) = GELU(inp), GPT-2's tanh approximation with the accurate tanhf.
void fused_gelu_fwd(__nv_bfloat16* out, const __nv_bfloat16* inp, int64_t n, cudaStream_t stream);

// dinp (n) = GELU'(inp)·dout; dinp may alias dout.
void fused_gelu_bwd(__nv_bfloat16* dinp, const __nv_bfloat16* inp, const __nv_bfloat16* dout, int64_t n,
                    cudaStream_t stream);

// out (n) = x rounded to bf16 (round to nearest even).
void fused_convert_to_bf16(__nv_bfloat16* out, const float* x, int64_t n, cudaStream_t stream);

// Floats of scratch fused_column_sums_add needs for N rows of C columns: ⌈N/256⌉·C (393 KB at N 32768, C 768).
int64_t fused_column_sums_scratch(int N, int C);

// sums (C) += Σ over the N rows of x (N,C), fp32, in fixed_order_column_sums' order (bit-identical to the
// Kokkos kernel and from run to run): a chunk pass (a thread per 256 rows × 8 columns in 16-byte loads, or
// × 2 columns where 8 leave too few threads, as at C 768) writes ⌈N/256⌉ partial rows to `partial`, a
// second pass adds them per column in chunk order. No atomics.
void fused_column_sums_add(float* sums, const __nv_bfloat16* x, int N, int C, float* partial, cudaStream_t stream);

}  // namespace xp::cuda
