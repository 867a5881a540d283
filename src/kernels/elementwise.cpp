#include "xp/kernels/elementwise.hpp"

#include "xp/core/types.hpp"

namespace xp {

void bias_residual_fwd(Real* out, const Real* residual, const Real* x, const Real* bias, int N, int C) {
  Kokkos::parallel_for("xp::bias_residual_fwd", Range(0, int64_t{N} * C), KOKKOS_LAMBDA(int64_t i) {
    out[i] = to_real(to_float(residual[i]) + (to_float(x[i]) + to_float(bias[i % C])));
  });
}

void column_sums_add(float* sums, const Real* x, int N, int C) {
  // Chunks of rows in parallel (a GPU needs more threads than columns); on the host the chunks are
  // added in order, so the result is deterministic there.
  const int64_t chunks = (N + column_sum_chunk - 1) / column_sum_chunk;
  Kokkos::parallel_for("xp::column_sums_add", Range(0, chunks * C), KOKKOS_LAMBDA(int64_t i) {
    const int64_t c = i % C, first = (i / C) * column_sum_chunk;
    const int64_t last = first + column_sum_chunk < N ? first + column_sum_chunk : N;
    float sum = 0.0f;
    for (int64_t n = first; n < last; ++n) sum += to_float(x[n * C + c]);
    Kokkos::atomic_add(&sums[c], sum);
  });
}

double sum_squares(const float* x, int64_t n) {
  double total = 0.0;
#if defined(KOKKOS_ENABLE_CUDA)
  // One element per thread: coalesced loads; Kokkos sums the double partials in a tree.
  Kokkos::parallel_reduce("xp::sum_squares", Range(0, n), KOKKOS_LAMBDA(int64_t i, double& sum) {
    sum += double(x[i]) * double(x[i]);
  }, total);
#else
  // Blocks of 256 summed in 16 independent float lanes (which vectorise without reassociating),
  // blocks summed in double: accurate for billions of elements and fast on one core.
  constexpr int64_t block = 256, lanes = 16;
  Kokkos::parallel_reduce("xp::sum_squares", Range(0, (n + block - 1) / block),
                          KOKKOS_LAMBDA(int64_t b, double& sum) {
    const int64_t first = b * block, last = first + block < n ? first + block : n;
    float lane[lanes] = {};
    int64_t i = first;
    for (; i + lanes <= last; i += lanes)
      for (int j = 0; j < lanes; ++j) lane[j] += x[i + j] * x[i + j];
    float block_sum = 0.0f;
    for (; i < last; ++i) block_sum += x[i] * x[i];
    for (int j = 0; j < lanes; ++j) block_sum += lane[j];
    sum += block_sum;
  }, total);
#endif
  return total;
}

void convert_to_real(Real* out, const float* x, int64_t n) {
  Kokkos::parallel_for("xp::convert_to_real", Range(0, n), KOKKOS_LAMBDA(int64_t i) { out[i] = to_real(x[i]); });
}

}  // namespace xp
