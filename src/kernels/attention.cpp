#include "xp/kernels/attention.hpp"

#include "xp/core/math.hpp"
#include "xp/core/types.hpp"

#if defined(XP_ENABLE_CUDA)
#include "kernels/cuda/flash_attention.hpp"
#include "xp/core/device.hpp"
#else
#include <type_traits>

#include "xp/kernels/elementwise.hpp"
#endif

namespace xp {

#if defined(XP_ENABLE_CUDA)

int64_t attention_stats_size(int B, int T, int NH) { return int64_t{B} * NH * T; }

int64_t attention_scratch_size(int B, int T, int C, int NH) {
  return static_cast<int64_t>(cuda::flash_attention_bwd_workspace(B, T, C, NH));
}

void attention_fwd(Real* out, float* stats, const Real* qkv, int B, int T, int C, int NH) {
  cuda::flash_attention_fwd(out, stats, qkv, B, T, C, NH, static_cast<cudaStream_t>(device_stream()));
}

void attention_bwd(Real* dqkv, float* scratch, const Real* dout, const Real* out, const Real* qkv,
                   const float* stats, int B, int T, int C, int NH) {
  cuda::flash_attention_bwd(dqkv, scratch, dout, out, qkv, stats, B, T, C, NH,
                            static_cast<cudaStream_t>(device_stream()));
}

#else

namespace {

// The kernels accumulate in fp32. Where Real is float they write the Real output in place (no copy);
// with emulated bf16 they write fp32 scratch that store_output rounds into the output once.
template <class T>
float* fp32_output(T* out, int64_t n, FloatBuffer& scratch) {
  if constexpr (std::is_same_v<T, float>) {
    return out;
  } else {
    scratch = FloatBuffer(Kokkos::view_alloc(Kokkos::WithoutInitializing, "xp::attention_fp32_output"), n);
    return scratch.data();
  }
}

template <class T>
void store_output(T* out, const float* result, int64_t n) {
  if constexpr (!std::is_same_v<T, float>) convert_to_real(out, result, n);
}

}  // namespace

int64_t attention_stats_size(int B, int T, int NH) { return int64_t{B} * NH * T * T; }

int64_t attention_scratch_size(int B, int T, int, int NH) { return int64_t{B} * NH * T; }

// att (B,NH,T,T) holds the softmax probabilities.
void attention_fwd(Real* out, float* att, const Real* qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const float scale = 1.0f / math::sqrt(static_cast<float>(hs));
  const int64_t C3 = 3 * int64_t{C};
  FloatBuffer out_fp32;
  float* result = fp32_output(out, int64_t{B} * T * C, out_fp32);
  Kokkos::parallel_for("xp::attention_fwd", Range(0, int64_t{B} * NH * T), KOKKOS_LAMBDA(int64_t bht) {
    const int64_t t = bht % T, h = (bht / T) % NH, b = bht / (int64_t{T} * NH);
    const Real* q = qkv + (b * T + t) * C3 + h * hs;
    float* row = att + bht * T;  // (b, h, t, :)
    float max_score = -3.0e38f;
    for (int64_t t2 = 0; t2 <= t; ++t2) {
      const Real* k = qkv + (b * T + t2) * C3 + C + h * hs;
      float score = 0.0f;
      for (int i = 0; i < hs; ++i) score += to_float(q[i]) * to_float(k[i]);
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
    float* o = result + (b * T + t) * C + h * hs;
    for (int i = 0; i < hs; ++i) o[i] = 0.0f;
    for (int64_t t2 = 0; t2 <= t; ++t2) {
      const Real* v = qkv + (b * T + t2) * C3 + 2 * C + h * hs;
      for (int i = 0; i < hs; ++i) o[i] += row[t2] * to_float(v[i]);
    }
  });
  store_output(out, result, int64_t{B} * T * C);
}

void attention_bwd(Real* dqkv, float* scratch, const Real* dout, const Real*, const Real* qkv, const float* att,
                   int B, int T, int C, int NH) {
  const int hs = C / NH;
  const float scale = 1.0f / math::sqrt(static_cast<float>(hs));
  const int64_t C3 = 3 * int64_t{C};
  FloatBuffer dqkv_fp32;
  float* grad = fp32_output(dqkv, int64_t{B} * T * C3, dqkv_fp32);  // dq, dk, dv sum over many rows
  // One (batch, head) per thread: its dq, dk, dv columns are touched by no other thread.
  Kokkos::parallel_for("xp::attention_bwd", Range(0, int64_t{B} * NH), KOKKOS_LAMBDA(int64_t bh) {
    const int64_t h = bh % NH, b = bh / NH;
    for (int64_t t = 0; t < T; ++t)
      for (int part = 0; part < 3; ++part)
        for (int i = 0; i < hs; ++i) grad[(b * T + t) * C3 + part * C + h * hs + i] = 0.0f;
    float* datt = scratch + bh * T;
    for (int64_t t = 0; t < T; ++t) {
      const float* row = att + (bh * T + t) * T;
      const Real* dy = dout + (b * T + t) * C + h * hs;
      // out = Σ att·v  →  datt = dy·v, dv += att·dy
      float weighted = 0.0f;
      for (int64_t t2 = 0; t2 <= t; ++t2) {
        const Real* v = qkv + (b * T + t2) * C3 + 2 * C + h * hs;
        float* dv = grad + (b * T + t2) * C3 + 2 * C + h * hs;
        float dot = 0.0f;
        for (int i = 0; i < hs; ++i) {
          dot += to_float(dy[i]) * to_float(v[i]);
          dv[i] += row[t2] * to_float(dy[i]);
        }
        datt[t2] = dot;
        weighted += row[t2] * dot;
      }
      // softmax backward, then scores = scale · q·k
      const Real* q = qkv + (b * T + t) * C3 + h * hs;
      float* dq = grad + (b * T + t) * C3 + h * hs;
      for (int64_t t2 = 0; t2 <= t; ++t2) {
        const float dscore = row[t2] * (datt[t2] - weighted) * scale;
        const Real* k = qkv + (b * T + t2) * C3 + C + h * hs;
        float* dk = grad + (b * T + t2) * C3 + C + h * hs;
        for (int i = 0; i < hs; ++i) {
          dq[i] += dscore * to_float(k[i]);
          dk[i] += dscore * to_float(q[i]);
        }
      }
    }
  });
  store_output(dqkv, grad, int64_t{B} * T * C3);
}

#endif

}  // namespace xp
