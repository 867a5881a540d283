// xp_kernel_bench classifier: the fused cross-entropy kernels (src/kernels/cuda/classifier.cu) beside the
// Kokkos ones (xp/kernels/cross_entropy.hpp on the Kokkos path) at GPT-2 124M's head, B·T = 32768 rows of
// Vp = 50304 bf16 logits (50257 real), on one rank and as one of two tp ranks (25152 columns each).
// Bytes are what the kernel must move: the valid logits read, dlogits written over whole rows, and the
// per-row fp32 statistics and int32 targets. The fused fwd_bwd and the separate fwd + bwd are reported with
// the bytes of the fused pass (its floor), so their GB/s compare as speed.
#include <cuda_bf16.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernel_bench.hpp"
#include "kernels/cuda/classifier.hpp"
#include "xp/kernels/cross_entropy.hpp"
#include "xp/kernels/kernel_path.hpp"

namespace xp::bench {
namespace {

constexpr int rows = 32 * 1024, vocab = 50257, padded_vocab = 50304;

struct Buffers {
  Buffers(int N, int Vl)
      : logits(static_cast<__nv_bfloat16*>(device_random(2, size_t(N) * Vl, true, 4.0f, 11))),
        dlogits(static_cast<__nv_bfloat16*>(device_random(2, size_t(N) * Vl, true, 1.0f, 12))),
        stats(static_cast<float*>(device_random(4, 4 * size_t(N), false, 1.0f, 13))),
        targets(static_cast<int32_t*>(device_random(4, N, false, 0.0f, 14))) {
    // Targets spread over the vocabulary (the random fill makes floats; these are indices).
    std::vector<int32_t> host(N);
    for (int n = 0; n < N; ++n) host[n] = static_cast<int32_t>((int64_t{n} * 7919) % Vl);
    cudaMemcpy(targets, host.data(), sizeof(int32_t) * N, cudaMemcpyHostToDevice);
  }
  ~Buffers() {
    device_free(logits);
    device_free(dlogits);
    device_free(stats);
    device_free(targets);
  }
  __nv_bfloat16 *logits, *dlogits;
  float* stats;  // losses, lse, row_max, sum_exp: N each
  int32_t* targets;
};

// One shape, both implementations: the fused kernels called directly on `stream`, the Kokkos ones through
// the kernel functions with the Kokkos path selected (Kokkos' instance runs on the same stream).
void run_one_rank(cudaStream_t stream) {
  const int N = rows, V = vocab, Vp = padded_vocab;
  Buffers b(N, Vp);
  float *losses = b.stats, *lse = b.stats + N;
  const std::string shape = "N " + std::to_string(N) + " V " + std::to_string(V) + "/" + std::to_string(Vp);
  const double fwd_bytes = 2.0 * N * V + 12.0 * N;
  const double bwd_bytes = 2.0 * N * V + 2.0 * N * Vp + 8.0 * N;

  report("classifier_fwd", shape, "fused", fwd_bytes,
         median_us([&] { cuda::classifier_fwd(losses, lse, b.logits, b.targets, N, V, Vp, stream); }, stream));
  set_kernel_path(KernelPath::Kokkos);
  report("classifier_fwd", shape, "kokkos", fwd_bytes,
         median_us([&] { cross_entropy_fwd(losses, lse, b.logits, b.targets, N, V, Vp); }, stream));
  set_kernel_path(KernelPath::Fused);
  // Through the kernel function: the fused kernel plus the fixed-order Σ losses and the host's wait for it.
  report("classifier_fwd+sum", shape, "fused", fwd_bytes,
         median_us([&] { cross_entropy_fwd(losses, lse, b.logits, b.targets, N, V, Vp); }, stream));

  cuda::classifier_fwd(losses, lse, b.logits, b.targets, N, V, Vp, stream);  // a real lse for the backward
  report("classifier_bwd", shape, "fused", bwd_bytes, median_us([&] {
           cuda::classifier_bwd(b.dlogits, b.logits, lse, b.targets, 1.0f / N, N, V, Vp, 0, stream);
         }, stream));
  set_kernel_path(KernelPath::Kokkos);
  report("classifier_bwd", shape, "kokkos", bwd_bytes,
         median_us([&] { cross_entropy_bwd(b.dlogits, b.logits, lse, b.targets, 1.0f / N, N, V, Vp, 0); }, stream));
  set_kernel_path(KernelPath::Fused);

  // Training's one pass (tp = 1): the forward's read and the backward's write, the row read again from L2.
  // Into b.dlogits (training writes over the logits; out of place the logits stay the same for every repeat,
  // and the bytes moved are the same). Against it: the separate forward then backward, 9.9 GB.
  const double fwd_bwd_bytes = 2.0 * N * V + 2.0 * N * Vp + 12.0 * N;
  report("classifier_fwd_bwd", shape, "fused", fwd_bwd_bytes, median_us([&] {
           cuda::classifier_fwd_bwd(losses, lse, b.dlogits, b.logits, b.targets, 1.0f / N, N, V, Vp, stream);
         }, stream));
  report("classifier_fwd+bwd (separate)", shape, "fused", fwd_bwd_bytes, median_us([&] {
           cuda::classifier_fwd(losses, lse, b.logits, b.targets, N, V, Vp, stream);
           cuda::classifier_bwd(b.dlogits, b.logits, lse, b.targets, 1.0f / N, N, V, Vp, 0, stream);
         }, stream));
  set_kernel_path(KernelPath::Kokkos);
  report("classifier_fwd_bwd", shape, "kokkos", fwd_bwd_bytes, median_us([&] {
           cross_entropy_fwd_bwd(losses, lse, b.dlogits, b.logits, b.targets, 1.0f / N, N, V, Vp);
         }, stream));
  set_kernel_path(KernelPath::Fused);
}

// tp = 2, rank 0's half: the vocab-parallel forward's two passes (the all-reduces between them are not timed).
void run_tp_half(cudaStream_t stream) {
  const int N = rows, Vl = padded_vocab / 2, valid = Vl;
  Buffers b(N, Vl);
  float *row_max = b.stats + 2 * N, *sum_exp = b.stats + 3 * N;
  const std::string shape = "tp 2: N " + std::to_string(N) + " Vl " + std::to_string(Vl);
  const double max_bytes = 2.0 * N * valid + 4.0 * N, sum_bytes = 2.0 * N * valid + 8.0 * N;

  report("classifier_row_max", shape, "fused", max_bytes,
         median_us([&] { cuda::classifier_row_max(row_max, b.logits, N, valid, Vl, stream); }, stream));
  report("classifier_sum_exp", shape, "fused", sum_bytes,
         median_us([&] { cuda::classifier_sum_exp(sum_exp, b.logits, row_max, N, valid, Vl, stream); }, stream));
  set_kernel_path(KernelPath::Kokkos);
  report("classifier_row_max", shape, "kokkos", max_bytes,
         median_us([&] { cross_entropy_row_max(row_max, b.logits, N, valid, Vl); }, stream));
  report("classifier_sum_exp", shape, "kokkos", sum_bytes,
         median_us([&] { cross_entropy_sum_exp(sum_exp, b.logits, row_max, N, valid, Vl); }, stream));
  set_kernel_path(KernelPath::Fused);
}

void run(cudaStream_t stream) {
  run_one_rank(stream);
  run_tp_half(stream);
}

static Registration registration("classifier", run);

}  // namespace
}  // namespace xp::bench
