#include "xp/kernels/elementwise.hpp"

#include "xp/core/types.hpp"

namespace xp {

void bias_residual_fwd(float* out, const float* residual, const float* x, const float* bias, int N, int C) {
  Kokkos::parallel_for("xp::bias_residual_fwd", Range(0, int64_t{N} * C),
                       KOKKOS_LAMBDA(int64_t i) { out[i] = residual[i] + (x[i] + bias[i % C]); });
}

double sum_squares(const float* x, int64_t n) {
  // Blocks of 256 summed in 16 independent float lanes (which vectorise without reassociating),
  // blocks summed in double: accurate for billions of elements and fast on one core.
  constexpr int64_t block = 256, lanes = 16;
  double total = 0.0;
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
  return total;
}

}  // namespace xp
