#include "xp/kernels/elementwise.hpp"

#include "xp/core/types.hpp"
#include "kernels/fixed_order_sum.hpp"

#if defined(XP_ENABLE_CUDA)
#include "kernels/cuda/elementwise.hpp"
#include "kernels/cuda/elementwise_math.hpp"
#include "xp/core/device.hpp"
#include "xp/kernels/kernel_path.hpp"
#endif

namespace xp {

#if defined(XP_ENABLE_CUDA)
namespace {
cudaStream_t stream() { return static_cast<cudaStream_t>(device_stream()); }
}  // namespace
// The fused column sum adds in fixed_order_column_sums' order only with the same chunk.
static_assert(simt::column_chunk == column_sum_chunk, "fused and Kokkos column sums chunk rows alike");
#endif

void bias_residual_fwd(Real* out, const Real* residual, const Real* x, const Real* bias, int N, int C) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {
    cuda::fused_bias_residual_fwd(out, residual, x, bias, N, C, stream());
    return;
  }
#endif
  Kokkos::parallel_for("xp::bias_residual_fwd", Range(0, int64_t{N} * C), KOKKOS_LAMBDA(int64_t i) {
    out[i] = to_real(to_float(residual[i]) + (to_float(x[i]) + to_float(bias[i % C])));
  });
}

void bias_add(Real* out, const Real* bias, int N, int C) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {
    cuda::fused_bias_add(out, bias, N, C, stream());
    return;
  }
#endif
  Kokkos::parallel_for("xp::bias_add", Range(0, int64_t{N} * C), KOKKOS_LAMBDA(int64_t i) {
    out[i] = to_real(to_float(out[i]) + to_float(bias[i % C]));
  });
}

void column_sums_add(float* sums, const Real* x, int N, int C) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {
    if (N <= 0 || C <= 0) return;
    float* partial = static_cast<float*>(reduction_scratch(sizeof(float) * cuda::fused_column_sums_scratch(N, C)));
    cuda::fused_column_sums_add(sums, x, N, C, partial, stream());
    return;
  }
#endif
  // Chunks of rows in parallel (a GPU needs more threads than columns), their sums added in chunk order.
  fixed_order_column_sums<1>("xp::column_sums_chunks", "xp::column_sums_finish", {{sums}}, N, C,
                             KOKKOS_LAMBDA(int64_t n, int64_t c, float* acc) { acc[0] += to_float(x[n * C + c]); });
}

double sum_squares(const float* x, int64_t n) {
  double total = 0.0;
#if defined(KOKKOS_ENABLE_CUDA)
  // One element per thread: coalesced loads; Kokkos sums the double partials in a tree of a fixed shape
  // for a given GPU and n (no atomics), so the sum repeats bitwise from run to run.
  Kokkos::parallel_reduce("xp::sum_squares", Range(0, n), KOKKOS_LAMBDA(int64_t i, double& sum) {
    sum += double(x[i]) * double(x[i]);
  }, total);
#else
  // Blocks of 256 summed in 16 independent float lanes (which vectorise without reassociating), block
  // sums added in double in fixed groups of 1024 blocks: the same sum at any thread count.
  constexpr int64_t block = 256, lanes = 16, group = 1024;
  total = fixed_order_sum("xp::sum_squares", (n + block - 1) / block, group, KOKKOS_LAMBDA(int64_t b) {
    const int64_t first = b * block, last = first + block < n ? first + block : n;
    float lane[lanes] = {};
    int64_t i = first;
    for (; i + lanes <= last; i += lanes)
      for (int j = 0; j < lanes; ++j) lane[j] += x[i + j] * x[i + j];
    float block_sum = 0.0f;
    for (; i < last; ++i) block_sum += x[i] * x[i];
    for (int j = 0; j < lanes; ++j) block_sum += lane[j];
    return double(block_sum);
  });
#endif
  return total;
}

void convert_to_real(Real* out, const float* x, int64_t n) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {
    cuda::fused_convert_to_bf16(out, x, n, stream());
    return;
  }
#endif
  Kokkos::parallel_for("xp::convert_to_real", Range(0, n), KOKKOS_LAMBDA(int64_t i) { out[i] = to_real(x[i]); });
}

}  // namespace xp
