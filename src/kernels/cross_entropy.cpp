#include "xp/kernels/cross_entropy.hpp"

#include "xp/core/math.hpp"
#include "xp/core/types.hpp"

namespace xp {

double cross_entropy_fwd(float* losses, float* lse, const float* logits, const int32_t* targets, int N, int V,
                         int Vp) {
  double total = 0.0;
  Kokkos::parallel_reduce("xp::cross_entropy_fwd", Range(0, N), KOKKOS_LAMBDA(int64_t n, double& sum) {
    const float* row = logits + n * Vp;
    float max_logit = row[0];
    for (int v = 1; v < V; ++v) max_logit = row[v] > max_logit ? row[v] : max_logit;
    float exp_sum = 0.0f;
    for (int v = 0; v < V; ++v) exp_sum += math::exp(row[v] - max_logit);
    const float log_sum = max_logit + math::log(exp_sum);
    lse[n] = log_sum;
    losses[n] = log_sum - row[targets[n]];
    sum += losses[n];
  }, total);
  return total;
}

void cross_entropy_bwd(float* dlogits, const float* logits, const float* lse, const int32_t* targets,
                       float dloss, int N, int V, int Vp) {
  Kokkos::parallel_for("xp::cross_entropy_bwd", Range(0, N), KOKKOS_LAMBDA(int64_t n) {
    const float* row = logits + n * Vp;
    float* drow = dlogits + n * Vp;
    const float log_sum = lse[n];
    for (int v = 0; v < V; ++v) drow[v] = dloss * math::exp(row[v] - log_sum);
    for (int v = V; v < Vp; ++v) drow[v] = 0.0f;
    drow[targets[n]] -= dloss;
  });
}

}  // namespace xp
