#include "xp/kernels/attention.hpp"

#include "xp/core/math.hpp"
#include "xp/core/types.hpp"

#include "kernels/attention_row.hpp"
#include "kernels/cuda/flash_attention_workspace.hpp"
#if defined(XP_ENABLE_CUDA)
#include "kernels/cuda/flash_attention.hpp"
#include "xp/core/device.hpp"
#endif

namespace xp {
namespace {

// A value as the fused GPU kernel's tensor cores take it (probabilities, score gradients): rounded to
// bf16 where Real is bf16, so the emulated-bf16 CPU build rounds where the GPU does.
KOKKOS_INLINE_FUNCTION float as_operand(float value) { return real_is_float ? value : to_float(to_real(value)); }

// The Kokkos kernel keeps the softmax probabilities att (B,NH,T,T).
void attention_fwd_kokkos(Real* out, float* att, const Real* qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const float scale = 1.0f / math::sqrt(static_cast<float>(hs));
  const int64_t C3 = 3 * int64_t{C};
  Kokkos::parallel_for("xp::attention_fwd", Range(0, int64_t{B} * NH * T), KOKKOS_LAMBDA(int64_t bht) {
    const int64_t t = bht % T, h = (bht / T) % NH, b = bht / (int64_t{T} * NH);
    const Real* q = qkv + (b * T + t) * C3 + h * hs;
    float* row = att + bht * T;  // (b, h, t, :)
    const float inv_sum = causal_softmax_row(row, q, qkv + b * T * C3 + C + h * hs, C3, t, hs, scale);
    Real* o = out + (b * T + t) * C + h * hs;
    if (!real_is_float) {
      // bf16 outputs, as the fused GPU kernel computes them: P·V from the unnormalised probabilities
      // rounded to bf16 (its tensor-core operand), accumulated in fp32, divided by their unrounded sum
      // once, rounded once. Rows of up to 64 keys are one tile of the kernel: the same arithmetic; longer
      // rows round relative to the row's max where the kernel uses its running max per 64-key tile.
      for (int i = 0; i < hs; ++i) {
        float value = 0.0f;
        for (int64_t t2 = 0; t2 <= t; ++t2)
          value += as_operand(row[t2]) * to_float(qkv[(b * T + t2) * C3 + 2 * C + h * hs + i]);
        o[i] = to_real(value * inv_sum);
      }
    }
    for (int64_t t2 = 0; t2 < T; ++t2) row[t2] = t2 <= t ? row[t2] * inv_sum : 0.0f;
    if (real_is_float) {  // accumulate in place, streaming over v's rows (the fast order on a CPU)
      for (int i = 0; i < hs; ++i) o[i] = to_real(0.0f);
      for (int64_t t2 = 0; t2 <= t; ++t2) {
        const Real* v = qkv + (b * T + t2) * C3 + 2 * C + h * hs;
        for (int i = 0; i < hs; ++i) o[i] = to_real(to_float(o[i]) + row[t2] * to_float(v[i]));
      }
    }
  });
}

// scratch: datt (B·NH·T), then, where Real is not float, an fp32 accumulator for dqkv (B·T·3C).
// bf16 builds round the probabilities for dv and the score gradients for dq and dk to bf16, as the
// fused GPU kernel does; sums stay fp32.
void attention_bwd_kokkos(Real* dqkv, float* scratch, const Real* dout, const Real* qkv, const float* att, int B,
                          int T, int C, int NH) {
  const int hs = C / NH;
  const float scale = 1.0f / math::sqrt(static_cast<float>(hs));
  const int64_t C3 = 3 * int64_t{C};
  float* acc = real_is_float ? reinterpret_cast<float*>(dqkv) : scratch + int64_t{B} * NH * T;
  // One (batch, head) per thread: its dq, dk, dv columns are touched by no other thread.
  Kokkos::parallel_for("xp::attention_bwd", Range(0, int64_t{B} * NH), KOKKOS_LAMBDA(int64_t bh) {
    const int64_t h = bh % NH, b = bh / NH;
    for (int64_t t = 0; t < T; ++t)
      for (int part = 0; part < 3; ++part)
        for (int i = 0; i < hs; ++i) acc[(b * T + t) * C3 + part * C + h * hs + i] = 0.0f;
    float* datt = scratch + bh * T;
    for (int64_t t = 0; t < T; ++t) {
      const float* row = att + (bh * T + t) * T;
      const Real* dy = dout + (b * T + t) * C + h * hs;
      // out = Σ att·v  →  datt = dy·v, dv += att·dy
      float weighted = 0.0f;
      for (int64_t t2 = 0; t2 <= t; ++t2) {
        const Real* v = qkv + (b * T + t2) * C3 + 2 * C + h * hs;
        float* dv = acc + (b * T + t2) * C3 + 2 * C + h * hs;
        const float p = as_operand(row[t2]);
        float dot = 0.0f;
        for (int i = 0; i < hs; ++i) {
          dot += to_float(dy[i]) * to_float(v[i]);
          dv[i] += p * to_float(dy[i]);
        }
        datt[t2] = dot;
        weighted += row[t2] * dot;
      }
      // softmax backward, then scores = scale · q·k
      const Real* q = qkv + (b * T + t) * C3 + h * hs;
      float* dq = acc + (b * T + t) * C3 + h * hs;
      for (int64_t t2 = 0; t2 <= t; ++t2) {
        const float dscore = as_operand(row[t2] * (datt[t2] - weighted)) * scale;
        const Real* k = qkv + (b * T + t2) * C3 + C + h * hs;
        float* dk = acc + (b * T + t2) * C3 + C + h * hs;
        for (int i = 0; i < hs; ++i) {
          dq[i] += dscore * to_float(k[i]);
          dk[i] += dscore * to_float(q[i]);
        }
      }
    }
  });
  if (!real_is_float)
    Kokkos::parallel_for("xp::attention_bwd_round", Range(0, int64_t{B} * T * C3),
                         KOKKOS_LAMBDA(int64_t i) { dqkv[i] = to_real(acc[i]); });
}

}  // namespace

// The fused CUDA kernel takes head sizes 64 and 128 (GPT-2's 64 and larger models' 128); other sizes
// (tiny test models) take the Kokkos kernel on the GPU too.
bool attention_fused(int C, int NH, const Precision& precision) {
  const int hs = C / NH;
  return precision.gpu && (hs == 64 || hs == 128);
}

int64_t attention_stats_size(int B, int T, int C, int NH, const Precision& precision) {
  return attention_fused(C, NH, precision) ? int64_t{B} * NH * T : int64_t{B} * NH * T * T;
}

int64_t attention_scratch_size(int B, int T, int C, int NH, const Precision& precision) {
  if (attention_fused(C, NH, precision)) return static_cast<int64_t>(cuda::flash_attention_bwd_workspace(B, T, C, NH));
  // datt (B,NH,T), then where Real is bf16 an fp32 dqkv accumulator (B,T,3C).
  return int64_t{B} * NH * T + (precision.real_bytes == 4 ? 0 : int64_t{B} * T * 3 * C);
}

void attention_fwd(Real* out, float* stats, const Real* qkv, int B, int T, int C, int NH) {
#if defined(XP_ENABLE_CUDA)
  if (attention_fused(C, NH, build_precision)) {
    cuda::flash_attention_fwd(out, stats, qkv, B, T, C, NH, static_cast<cudaStream_t>(device_stream()));
    return;
  }
#endif
  attention_fwd_kokkos(out, stats, qkv, B, T, C, NH);
}

void attention_bwd(Real* dqkv, float* scratch, const Real* dout, const Real* out, const Real* qkv,
                   const float* stats, int B, int T, int C, int NH) {
#if defined(XP_ENABLE_CUDA)
  if (attention_fused(C, NH, build_precision)) {
    cuda::flash_attention_bwd(dqkv, scratch, dout, out, qkv, stats, B, T, C, NH,
                              static_cast<cudaStream_t>(device_stream()));
    return;
  }
#endif
  (void)out;  // the Kokkos kernel keeps the probabilities instead
  attention_bwd_kokkos(dqkv, scratch, dout, qkv, stats, B, T, C, NH);
}

}  // namespace xp
