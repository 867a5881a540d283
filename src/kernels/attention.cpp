#include "xp/kernels/attention.hpp"

#include "xp/core/math.hpp"
#include "xp/core/types.hpp"

namespace xp {

void attention_fwd(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const float scale = 1.0f / math::sqrt(static_cast<float>(hs));
  const int64_t C3 = 3 * int64_t{C};
  Kokkos::parallel_for("xp::attention_fwd", Range(0, int64_t{B} * NH * T), KOKKOS_LAMBDA(int64_t bht) {
    const int64_t t = bht % T, h = (bht / T) % NH, b = bht / (int64_t{T} * NH);
    const float* q = qkv + (b * T + t) * C3 + h * hs;
    float* row = att + bht * T;  // (b, h, t, :)
    float max_score = -3.0e38f;
    for (int64_t t2 = 0; t2 <= t; ++t2) {
      const float* k = qkv + (b * T + t2) * C3 + C + h * hs;
      float score = 0.0f;
      for (int i = 0; i < hs; ++i) score += q[i] * k[i];
      score *= scale;
      row[t2] = score;
      if (score > max_score) max_score = score;
    }
    float sum = 0.0f;
    for (int64_t t2 = 0; t2 <= t; ++t2) {
      row[t2] = math::exp(row[t2] - max_score);
      sum += row[t2];
    }
    const float inv_sum = 1.0f / sum;
    for (int64_t t2 = 0; t2 < T; ++t2) row[t2] = t2 <= t ? row[t2] * inv_sum : 0.0f;
    float* o = out + (b * T + t) * C + h * hs;
    for (int i = 0; i < hs; ++i) o[i] = 0.0f;
    for (int64_t t2 = 0; t2 <= t; ++t2) {
      const float* v = qkv + (b * T + t2) * C3 + 2 * C + h * hs;
      for (int i = 0; i < hs; ++i) o[i] += row[t2] * v[i];
    }
  });
}

void attention_bwd(float* dqkv, float* scratch, const float* dout, const float* qkv, const float* att, int B,
                   int T, int C, int NH) {
  const int hs = C / NH;
  const float scale = 1.0f / math::sqrt(static_cast<float>(hs));
  const int64_t C3 = 3 * int64_t{C};
  // One (batch, head) per thread: its dq, dk, dv columns are touched by no other thread.
  Kokkos::parallel_for("xp::attention_bwd", Range(0, int64_t{B} * NH), KOKKOS_LAMBDA(int64_t bh) {
    const int64_t h = bh % NH, b = bh / NH;
    for (int64_t t = 0; t < T; ++t)
      for (int part = 0; part < 3; ++part)
        for (int i = 0; i < hs; ++i) dqkv[(b * T + t) * C3 + part * C + h * hs + i] = 0.0f;
    float* datt = scratch + bh * T;
    for (int64_t t = 0; t < T; ++t) {
      const float* row = att + (bh * T + t) * T;
      const float* dy = dout + (b * T + t) * C + h * hs;
      // out = Σ att·v  →  datt = dy·v, dv += att·dy
      float weighted = 0.0f;
      for (int64_t t2 = 0; t2 <= t; ++t2) {
        const float* v = qkv + (b * T + t2) * C3 + 2 * C + h * hs;
        float* dv = dqkv + (b * T + t2) * C3 + 2 * C + h * hs;
        float dot = 0.0f;
        for (int i = 0; i < hs; ++i) {
          dot += dy[i] * v[i];
          dv[i] += row[t2] * dy[i];
        }
        datt[t2] = dot;
        weighted += row[t2] * dot;
      }
      // softmax backward, then scores = scale · q·k
      const float* q = qkv + (b * T + t) * C3 + h * hs;
      float* dq = dqkv + (b * T + t) * C3 + h * hs;
      for (int64_t t2 = 0; t2 <= t; ++t2) {
        const float dscore = row[t2] * (datt[t2] - weighted) * scale;
        const float* k = qkv + (b * T + t2) * C3 + C + h * hs;
        float* dk = dqkv + (b * T + t2) * C3 + C + h * hs;
        for (int i = 0; i < hs; ++i) {
          dq[i] += dscore * k[i];
          dk[i] += dscore * q[i];
        }
      }
    }
  });
}

}  // namespace xp
