#include "xp/kernels/layernorm.hpp"

#include "xp/core/math.hpp"
#include "xp/core/types.hpp"

namespace xp {

void layernorm_fwd(Real* out, float* mean, float* rstd, const Real* inp, const Real* weight, const Real* bias, int N,
                   int C) {
  Kokkos::parallel_for("xp::layernorm_fwd", row_policy(N), KOKKOS_LAMBDA(const RowMember& team) {
    const int64_t n = team.league_rank();
    const Real* x = inp + n * C;
    const float m = team_sum(team, C, [&](int c) { return to_float(x[c]); }) / C;
    const float variance = team_sum(team, C, [&](int c) {
      const float centred = to_float(x[c]) - m;
      return centred * centred;
    });
    const float s = 1.0f / math::sqrt(variance / C + layernorm_eps);
    Real* y = out + n * C;
    team_for(team, C, [&](int c) { y[c] = to_real((to_float(x[c]) - m) * s * to_float(weight[c]) + to_float(bias[c])); });
    Kokkos::single(Kokkos::PerTeam(team), [&]() {
      mean[n] = m;
      rstd[n] = s;
    });
  });
}

void layernorm_bwd(Real* dinp, float* dweight, float* dbias, const Real* dout, const Real* inp, const Real* weight,
                   const float* mean, const float* rstd, int N, int C) {
  Kokkos::parallel_for("xp::layernorm_bwd_input", row_policy(N), KOKKOS_LAMBDA(const RowMember& team) {
    const int64_t n = team.league_rank();
    const Real* dy = dout + n * C;
    const Real* x = inp + n * C;
    const float m = mean[n], s = rstd[n];
    // dx = s * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)), dnorm = dy * weight
    const float dnorm_mean = team_sum(team, C, [&](int c) { return to_float(dy[c]) * to_float(weight[c]); }) / C;
    const float dnorm_xhat_mean =
        team_sum(team, C, [&](int c) { return to_float(dy[c]) * to_float(weight[c]) * (to_float(x[c]) - m) * s; }) / C;
    Real* dx = dinp + n * C;
    team_for(team, C, [&](int c) {
      const float xhat = (to_float(x[c]) - m) * s;
      dx[c] = to_real(to_float(dx[c]) +
                      s * (to_float(dy[c]) * to_float(weight[c]) - dnorm_mean - xhat * dnorm_xhat_mean));
    });
  });
  // Parameter gradients: chunks of rows per channel, added in chunk order on the host.
  const int64_t chunks = (N + column_sum_chunk - 1) / column_sum_chunk;
  Kokkos::parallel_for("xp::layernorm_bwd_params", Range(0, chunks * C), KOKKOS_LAMBDA(int64_t i) {
    const int64_t c = i % C, first = (i / C) * column_sum_chunk;
    const int64_t last = first + column_sum_chunk < N ? first + column_sum_chunk : N;
    float dw = 0.0f, db = 0.0f;
    for (int64_t n = first; n < last; ++n) {
      const float dy = to_float(dout[n * C + c]);
      dw += dy * (to_float(inp[n * C + c]) - mean[n]) * rstd[n];
      db += dy;
    }
    Kokkos::atomic_add(&dweight[c], dw);
    Kokkos::atomic_add(&dbias[c], db);
  });
}

}  // namespace xp
