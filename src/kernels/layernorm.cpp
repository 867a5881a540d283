#include "xp/kernels/layernorm.hpp"

#include "xp/core/math.hpp"
#include "xp/core/types.hpp"

namespace xp {

void layernorm_fwd(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                   const float* bias, int N, int C) {
  Kokkos::parallel_for("xp::layernorm_fwd", Range(0, N), KOKKOS_LAMBDA(int64_t n) {
    const float* x = inp + n * C;
    float sum = 0.0f;
    for (int c = 0; c < C; ++c) sum += x[c];
    const float m = sum / C;
    float variance = 0.0f;
    for (int c = 0; c < C; ++c) variance += (x[c] - m) * (x[c] - m);
    const float s = 1.0f / math::sqrt(variance / C + layernorm_eps);
    float* y = out + n * C;
    for (int c = 0; c < C; ++c) y[c] = (x[c] - m) * s * weight[c] + bias[c];
    mean[n] = m;
    rstd[n] = s;
  });
}

void layernorm_bwd(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                   const float* weight, const float* mean, const float* rstd, int N, int C) {
  Kokkos::parallel_for("xp::layernorm_bwd_input", Range(0, N), KOKKOS_LAMBDA(int64_t n) {
    const float* dy = dout + n * C;
    const float* x = inp + n * C;
    const float m = mean[n], s = rstd[n];
    // dx = s * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)), dnorm = dy * weight
    float dnorm_mean = 0.0f, dnorm_xhat_mean = 0.0f;
    for (int c = 0; c < C; ++c) {
      const float dnorm = dy[c] * weight[c];
      dnorm_mean += dnorm;
      dnorm_xhat_mean += dnorm * (x[c] - m) * s;
    }
    dnorm_mean /= C;
    dnorm_xhat_mean /= C;
    float* dx = dinp + n * C;
    for (int c = 0; c < C; ++c) {
      const float xhat = (x[c] - m) * s;
      dx[c] += s * (dy[c] * weight[c] - dnorm_mean - xhat * dnorm_xhat_mean);
    }
  });
  // Parameter gradients: one channel per thread, rows in order (deterministic, no atomics).
  Kokkos::parallel_for("xp::layernorm_bwd_params", Range(0, C), KOKKOS_LAMBDA(int64_t c) {
    float dw = 0.0f, db = 0.0f;
    for (int64_t n = 0; n < N; ++n) {
      const float dy = dout[n * C + c];
      dw += dy * (inp[n * C + c] - mean[n]) * rstd[n];
      db += dy;
    }
    dweight[c] += dw;
    dbias[c] += db;
  });
}

}  // namespace xp
