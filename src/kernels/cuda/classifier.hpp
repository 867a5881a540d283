#pragma once
// Fused softmax cross-entropy ("classifier") kernels of the GPU build, behind the functions of
// xp/kernels/cross_entropy.hpp (arithmetic: classifier_math.hpp). bf16 logits, fp32 statistics; one
// block of 512 threads per row, 16-byte loads and stores with scalar heads and tails where Vl is not a
// multiple of 8. Launched on `stream`; errors abort the MPI job.
//
// Memory floor at GPT-2 124M, B·T = N = 32768 rows, Vp = 50304 (bf16 logits 3.30 GB), ÷ 4.3 TB/s:
//   forward  (reads the logits once):                          3.30 GB → 0.77 ms
//   backward (reads the logits, writes dlogits in place):       6.59 GB → 1.53 ms
//   tp = 2, per rank: row_max and sum_exp each read half:      1.65 GB → 0.38 ms each
//   fwd_bwd  (training, tp = 1: reads the logits once, writes dlogits): 6.59 GB → 1.53 ms
//            instead of forward + backward's 9.89 GB → 2.30 ms (llm.c's way: the row is read again from L2)
// (+ 0.4 MB of targets and fp32 row statistics). The Kokkos path reads each row twice in the forward and
// loads one bf16 per thread at a time. The tp path's target_logit and finish stay Kokkos: N elements.
// With tp > 1 lse is known only after the all-reduces: there the backward stays a separate pass.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace xp::cuda {

// losses, lse (N) fp32 from logits (N, Vp) bf16 whose first V columns are real: lse = log Σ exp,
// loss = lse - logit[target]. One pass over each row (online max and sum).
void classifier_fwd(float* losses, float* lse, const __nv_bfloat16* logits, const int32_t* targets, int N, int V,
                    int Vp, cudaStream_t stream);

// The vocab-parallel forward's two passes over a rank's logits (N, Vl), first `valid` columns real:
// row_max (N) = max (-3e38 when valid = 0); sum_exp (N) = Σ exp(logit - row_max[n]).
void classifier_row_max(float* row_max, const __nv_bfloat16* logits, int N, int valid, int Vl, cudaStream_t stream);
void classifier_sum_exp(float* sum_exp, const __nv_bfloat16* logits, const float* row_max, int N, int valid, int Vl,
                        cudaStream_t stream);

// dlogits (N, Vl) = dloss·(softmax - onehot(targets - vocab_start)) on the valid columns, 0 on [valid, Vl).
// dlogits may alias logits; otherwise both must have the same address modulo 16 bytes.
void classifier_bwd(__nv_bfloat16* dlogits, const __nv_bfloat16* logits, const float* lse, const int32_t* targets,
                    float dloss, int N, int valid, int Vl, int vocab_start, cudaStream_t stream);

// classifier_fwd and then classifier_bwd(dlogits, logits, lse, targets, dloss, N, V, Vp, 0) in one kernel:
// the online pass over the row, then dlogits from a second read (from L2 where the row stayed). The same
// per-thread arithmetic as the two. dlogits may alias logits; otherwise the same address modulo 16 bytes.
void classifier_fwd_bwd(float* losses, float* lse, __nv_bfloat16* dlogits, const __nv_bfloat16* logits,
                        const int32_t* targets, float dloss, int N, int V, int Vp, cudaStream_t stream);

}  // namespace xp::cuda
