// The fused classifier kernels (classifier.hpp): each kernel is one block per row running the per-thread
// work of classifier_math.hpp, then one block reduction.
#include "classifier.hpp"

#define OMPI_SKIP_MPICXX 1  // the C API is enough; the C++ bindings do not compile warning-free
#include "xp/core/cuda_check.hpp"

#include "classifier_math.hpp"

namespace xp::cuda {
namespace {

using classifier::block_threads;
using simt::bf16;

static_assert(sizeof(bf16) == sizeof(__nv_bfloat16), "simt::bf16 is the device's bf16");

__global__ void __launch_bounds__(block_threads)
    classifier_fwd_kernel(float* losses, float* lse, const bf16* logits, const int32_t* targets, int V, int Vp) {
  __shared__ classifier::Online shared[simt::warp_size];
  const int64_t n = blockIdx.x;
  const bf16* row = logits + n * Vp;
  const classifier::Online state = classifier::thread_online(row, V, threadIdx.x, blockDim.x);
  const classifier::Online total =
      simt::block_allreduce(state, classifier::OnlineCombine{}, classifier::online_identity(), shared);
  if (threadIdx.x == 0) {
    const classifier::RowLoss out = classifier::row_loss(total, simt::load(row[targets[n]]));
    lse[n] = out.lse;
    losses[n] = out.loss;
  }
}

__global__ void __launch_bounds__(block_threads)
    classifier_row_max_kernel(float* row_max, const bf16* logits, int valid, int Vl) {
  __shared__ float shared[simt::warp_size];
  const int64_t n = blockIdx.x;
  const float m = classifier::thread_max(logits + n * Vl, valid, threadIdx.x, blockDim.x);
  const float total = simt::block_allreduce(m, simt::Max{}, classifier::lowest, shared);
  if (threadIdx.x == 0) row_max[n] = total;
}

__global__ void __launch_bounds__(block_threads)
    classifier_sum_exp_kernel(float* sum_exp, const bf16* logits, const float* row_max, int valid, int Vl) {
  __shared__ float shared[simt::warp_size];
  const int64_t n = blockIdx.x;
  const float s = classifier::thread_sum_exp(logits + n * Vl, valid, row_max[n], threadIdx.x, blockDim.x);
  const float total = simt::block_allreduce(s, simt::Sum{}, 0.0f, shared);
  if (threadIdx.x == 0) sum_exp[n] = total;
}

__global__ void __launch_bounds__(block_threads)
    classifier_bwd_kernel(bf16* dlogits, const bf16* logits, const float* lse, const int32_t* targets, float dloss,
                          int valid, int Vl, int vocab_start) {
  const int64_t n = blockIdx.x;
  classifier::thread_bwd(dlogits + n * Vl, logits + n * Vl, valid, Vl, targets[n] - vocab_start, lse[n], dloss,
                         threadIdx.x, blockDim.x);
}

// classifier_fwd_kernel's pass, then classifier_bwd_kernel's over the same row (now mostly in L2), with the
// lse every thread holds after the block reduction. Thread 0 reads the target logit before that reduction,
// whose barriers order every read of the forward pass before any store of dlogits (which may alias logits).
__global__ void __launch_bounds__(block_threads)
    classifier_fwd_bwd_kernel(float* losses, float* lse, bf16* dlogits, const bf16* logits, const int32_t* targets,
                              float dloss, int V, int Vp) {
  __shared__ classifier::Online shared[simt::warp_size];
  const int64_t n = blockIdx.x;
  const bf16* row = logits + n * Vp;
  const int target = targets[n];
  const float target_logit = threadIdx.x == 0 ? simt::load(row[target]) : 0.0f;
  const classifier::Online state = classifier::thread_online(row, V, threadIdx.x, blockDim.x);
  const classifier::Online total =
      simt::block_allreduce(state, classifier::OnlineCombine{}, classifier::online_identity(), shared);
  const classifier::RowLoss out = classifier::row_loss(total, target_logit);  // out.lse: the same in every thread
  if (threadIdx.x == 0) {
    lse[n] = out.lse;
    losses[n] = out.loss;
  }
  classifier::thread_bwd(dlogits + n * Vp, row, V, Vp, target, out.lse, dloss, threadIdx.x, blockDim.x);
}

const bf16* as_simt(const __nv_bfloat16* p) { return reinterpret_cast<const bf16*>(p); }

}  // namespace

void classifier_fwd(float* losses, float* lse, const __nv_bfloat16* logits, const int32_t* targets, int N, int V,
                    int Vp, cudaStream_t stream) {
  if (N == 0) return;
  classifier_fwd_kernel<<<N, block_threads, 0, stream>>>(losses, lse, as_simt(logits), targets, V, Vp);
  XP_CUDA_CHECK(cudaGetLastError());
}

void classifier_row_max(float* row_max, const __nv_bfloat16* logits, int N, int valid, int Vl, cudaStream_t stream) {
  if (N == 0) return;
  classifier_row_max_kernel<<<N, block_threads, 0, stream>>>(row_max, as_simt(logits), valid, Vl);
  XP_CUDA_CHECK(cudaGetLastError());
}

void classifier_sum_exp(float* sum_exp, const __nv_bfloat16* logits, const float* row_max, int N, int valid, int Vl,
                        cudaStream_t stream) {
  if (N == 0) return;
  classifier_sum_exp_kernel<<<N, block_threads, 0, stream>>>(sum_exp, as_simt(logits), row_max, valid, Vl);
  XP_CUDA_CHECK(cudaGetLastError());
}

void classifier_bwd(__nv_bfloat16* dlogits, const __nv_bfloat16* logits, const float* lse, const int32_t* targets,
                    float dloss, int N, int valid, int Vl, int vocab_start, cudaStream_t stream) {
  if (N == 0) return;
  // The packs are found from the logits' address; the stores go to the same offsets in dlogits.
  if (((reinterpret_cast<std::uintptr_t>(dlogits) ^ reinterpret_cast<std::uintptr_t>(logits)) & 15u) != 0)
    ::xp::fatal(__FILE__, __LINE__, "classifier_bwd: dlogits and logits differ in their address modulo 16 bytes");
  classifier_bwd_kernel<<<N, block_threads, 0, stream>>>(reinterpret_cast<bf16*>(dlogits), as_simt(logits), lse,
                                                         targets, dloss, valid, Vl, vocab_start);
  XP_CUDA_CHECK(cudaGetLastError());
}

void classifier_fwd_bwd(float* losses, float* lse, __nv_bfloat16* dlogits, const __nv_bfloat16* logits,
                        const int32_t* targets, float dloss, int N, int V, int Vp, cudaStream_t stream) {
  if (N == 0) return;
  if (((reinterpret_cast<std::uintptr_t>(dlogits) ^ reinterpret_cast<std::uintptr_t>(logits)) & 15u) != 0)
    ::xp::fatal(__FILE__, __LINE__, "classifier_fwd_bwd: dlogits and logits differ in their address modulo 16 bytes");
  classifier_fwd_bwd_kernel<<<N, block_threads, 0, stream>>>(losses, lse, reinterpret_cast<bf16*>(dlogits),
                                                             as_simt(logits), targets, dloss, V, Vp);
  XP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace xp::cuda
