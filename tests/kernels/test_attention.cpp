// attention_fwd / attention_bwd against float64 causal multi-head attention and its finite differences.
#include "xp/kernels/attention.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/reference.hpp"

namespace xp::test {
namespace {

constexpr int B = 2, T = 5, C = 8, NH = 2, HS = C / NH;
// out and dqkv are Real, rounded once from fp32 accumulators; the probabilities stay fp32 from Real
// inputs that the reference sees exactly, so they keep the fp32 tolerance in every build.
constexpr double out_tolerance = real_tolerance(forward_tolerance, bf16_rounded_once_tolerance);
constexpr double dqkv_tolerance = real_tolerance(backward_tolerance, bf16_rounded_once_tolerance);

struct Attended {
  Doubles out, att;
};

// softmax_{t2 ≤ t}(q_t · k_t2 / √HS) weights v_t2, per batch row and head; future positions weigh 0.
Attended attention_reference(const Doubles& qkv) {
  Attended result{Doubles(B * T * C, 0.0), Doubles(B * NH * T * T, 0.0)};
  const auto at = [&](int b, int t, int part, int h, int i) {
    return qkv[(b * T + t) * 3 * C + part * C + h * HS + i];
  };
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int t = 0; t < T; ++t) {
        double* att = &result.att[((b * NH + h) * T + t) * T];
        double total = 0.0;
        for (int t2 = 0; t2 <= t; ++t2) {
          double score = 0.0;
          for (int i = 0; i < HS; ++i) score += at(b, t, 0, h, i) * at(b, t2, 1, h, i);
          att[t2] = std::exp(score / std::sqrt(double(HS)));
          total += att[t2];
        }
        for (int t2 = 0; t2 <= t; ++t2) att[t2] /= total;
        for (int i = 0; i < HS; ++i)
          for (int t2 = 0; t2 <= t; ++t2) result.out[(b * T + t) * C + h * HS + i] += att[t2] * at(b, t2, 2, h, i);
      }
  return result;
}

struct AttentionInputs {
  Floats qkv = random_reals(B * T * 3 * C, 31, -1.5, 1.5);
  RealBuffer qkv_device = to_device_real(qkv);
  RealBuffer out = to_device_real(Floats(B * T * C, garbage));
  FloatBuffer att = to_device(Floats(attention_stats_size(B, T, C, NH), garbage));  // the probabilities (B,NH,T,T)

  void forward() { attention_fwd(out.data(), att.data(), qkv_device.data(), B, T, C, NH); }
};

TEST(Attention, ForwardMatchesReference) {
  AttentionInputs x;
  x.forward();
  const Attended expected = attention_reference(widen(x.qkv));
  expect_close(to_host(x.out), expected.out, out_tolerance, "out");
  expect_close(to_host(x.att), expected.att, forward_tolerance, "att");
}

// att starts as NaN: every future entry must be written as exactly 0 and every row must sum to 1.
TEST(Attention, ProbabilitiesAreCausalAndNormalized) {
  AttentionInputs x;
  x.forward();
  const Floats att = to_host(x.att);
  for (int row = 0; row < B * NH * T; ++row) {
    const int t = row % T;
    double total = 0.0;
    for (int t2 = 0; t2 < T; ++t2) {
      const float p = att[row * T + t2];
      if (t2 > t) EXPECT_EQ(p, 0.0f) << "row " << row << " attends to future position " << t2;
      total += p;
    }
    EXPECT_NEAR(total, 1.0, 1e-6) << "row " << row;
  }
}

// Changing the last position's q, k and v must leave every earlier output bit-for-bit unchanged.
TEST(Attention, OutputIgnoresFuturePositions) {
  AttentionInputs original, changed;
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < 3 * C; ++j) changed.qkv[((b * T) + T - 1) * 3 * C + j] += 1.0f;
  changed.qkv_device = to_device_real(changed.qkv);
  original.forward();
  changed.forward();
  const Floats before = to_host(original.out), after = to_host(changed.out);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T - 1; ++t)
      for (int c = 0; c < C; ++c) EXPECT_EQ(before[(b * T + t) * C + c], after[(b * T + t) * C + c]);
}

// dqkv is overwritten, so it (and the scratch) start as NaN.
TEST(Attention, BackwardMatchesFiniteDifferences) {
  AttentionInputs x;
  x.forward();
  const Floats dout = random_reals(B * T * C, 32);
  RealBuffer dout_device = to_device_real(dout), dqkv = to_device_real(Floats(B * T * 3 * C, garbage));
  FloatBuffer scratch = to_device(Floats(attention_scratch_size(B, T, C, NH), garbage));  // more where Real is bf16
  attention_bwd(dqkv.data(), scratch.data(), dout_device.data(), x.out.data(), x.qkv_device.data(), x.att.data(), B,
                T, C, NH);

  Doubles qkv = widen(x.qkv);
  const auto forward = [&] { return attention_reference(qkv).out; };
  expect_close(to_host(dqkv), finite_difference(forward, qkv, widen(dout)), dqkv_tolerance, "dqkv");
}

// Where Real is bf16, the probabilities enter P·V (unnormalised) and Pᵀ·dO (normalised) rounded to bf16,
// as the fused GPU kernel's tensor-core operands do; fp32 builds use them as they are. One head of 16
// (the Kokkos kernel in every build), two positions: query 1 sees key 0 at score a/4 and key 1 at 0, so
// its probabilities are 1 and p = exp(-a/4) = 0.9975 before normalising (bf16: 0.99609375) and
// 1/(1+p) = 0.50063 for key 0 after (bf16: 0.5); opposite values make the rounding show.
TEST(Attention, ProbabilitiesEnterTheProductsRoundedAsOnTheGpu) {
  constexpr int T2 = 2, C2 = 16, row = 3 * C2;
  constexpr float a = 0.010009765625f;  // exact in bf16
  Floats qkv(T2 * row, 0.0f);
  qkv[row] = 1.0f;  // q1 = e0
  qkv[C2] = a;      // k0 = a·e0; k1 = 0
  for (int i = 0; i < C2; ++i) qkv[2 * C2 + i] = 1.0f, qkv[row + 2 * C2 + i] = -1.0f;  // v0 = +1, v1 = -1
  RealBuffer qkv_device = to_device_real(qkv), out = to_device_real(Floats(T2 * C2, garbage));
  FloatBuffer att = to_device(Floats(attention_stats_size(1, T2, C2, 1), garbage));
  attention_fwd(out.data(), att.data(), qkv_device.data(), 1, T2, C2, 1);

  const auto operand = [](double x) { return real_is_float ? x : double(to_float(to_real(float(x)))); };
  const double p = std::exp(-double(a) / 4.0);
  const double out1 = (operand(1.0) - operand(p)) / (1.0 + p);  // 0.00196 rounded, 0.00125 not
  const Floats out_host = to_host(out);
  for (int i = 0; i < C2; ++i) EXPECT_NEAR(out_host[C2 + i], out1, 0.01 * out1) << "out of query 1, feature " << i;

  // dv of key 0 = P[0][0]·dy0 + P[1][0]·dy1 with dy0 = +1, dy1 = -2: 0 rounded, -0.00125 not.
  Floats dout(T2 * C2, 1.0f);
  for (int i = 0; i < C2; ++i) dout[C2 + i] = -2.0f;
  RealBuffer dout_device = to_device_real(dout), dqkv = to_device_real(Floats(T2 * row, garbage));
  FloatBuffer scratch = to_device(Floats(attention_scratch_size(1, T2, C2, 1), garbage));
  attention_bwd(dqkv.data(), scratch.data(), dout_device.data(), out.data(), qkv_device.data(), att.data(), 1, T2,
                C2, 1);
  const double dv0 = operand(1.0) * 1.0 + operand(1.0 / (1.0 + p)) * -2.0;
  const Floats dqkv_host = to_host(dqkv);
  for (int i = 0; i < C2; ++i) EXPECT_NEAR(dqkv_host[2 * C2 + i], dv0, 1e-5) << "dv of key 0, feature " << i;
}

}  // namespace
}  // namespace xp::test

namespace xp::test {
namespace {

// Head size 64, the fused kernel's on GPU builds (the Kokkos kernel elsewhere), with T not a multiple of
// any tile: forward and the analytic float64 backward (dv = Pᵀ·dO, dS = P∘(dO·Vᵀ - rowsum), dq = dS·K/√hs,
// dk = dSᵀ·Q/√hs), which the finite-difference tests above vouch for at small sizes.
constexpr int B64 = 2, T64 = 37, NH64 = 2, HS64 = 64, C64 = NH64 * HS64;

struct AttentionGradients {
  Doubles out, dqkv;
};

AttentionGradients attention_head64_reference(const Doubles& qkv, const Doubles& dout) {
  AttentionGradients r{Doubles(B64 * T64 * C64, 0.0), Doubles(B64 * T64 * 3 * C64, 0.0)};
  const double scale = 1.0 / std::sqrt(double(HS64));
  const auto index = [](int b, int t, int part, int h, int i) { return (b * T64 + t) * 3 * C64 + part * C64 + h * HS64 + i; };
  for (int b = 0; b < B64; ++b)
    for (int h = 0; h < NH64; ++h)
      for (int t = 0; t < T64; ++t) {
        Doubles p(t + 1), dp(t + 1);
        double total = 0.0, max_score = -1e300;
        for (int t2 = 0; t2 <= t; ++t2) {
          double score = 0.0;
          for (int i = 0; i < HS64; ++i) score += qkv[index(b, t, 0, h, i)] * qkv[index(b, t2, 1, h, i)];
          p[t2] = score * scale;
          max_score = std::max(max_score, p[t2]);
        }
        for (int t2 = 0; t2 <= t; ++t2) total += (p[t2] = std::exp(p[t2] - max_score));
        double weighted = 0.0;
        for (int t2 = 0; t2 <= t; ++t2) {
          p[t2] /= total;
          dp[t2] = 0.0;
          for (int i = 0; i < HS64; ++i) {
            const double dy = dout[(b * T64 + t) * C64 + h * HS64 + i];
            r.out[(b * T64 + t) * C64 + h * HS64 + i] += p[t2] * qkv[index(b, t2, 2, h, i)];
            r.dqkv[index(b, t2, 2, h, i)] += p[t2] * dy;
            dp[t2] += dy * qkv[index(b, t2, 2, h, i)];
          }
          weighted += p[t2] * dp[t2];
        }
        for (int t2 = 0; t2 <= t; ++t2) {
          const double ds = p[t2] * (dp[t2] - weighted) * scale;
          for (int i = 0; i < HS64; ++i) {
            r.dqkv[index(b, t, 0, h, i)] += ds * qkv[index(b, t2, 1, h, i)];
            r.dqkv[index(b, t2, 1, h, i)] += ds * qkv[index(b, t, 0, h, i)];
          }
        }
      }
  return r;
}

TEST(Attention, HeadSize64MatchesAnalyticReference) {
  const Floats qkv = random_reals(B64 * T64 * 3 * C64, 41, -1.5, 1.5), dout = random_reals(B64 * T64 * C64, 42);
  RealBuffer qkv_device = to_device_real(qkv), dout_device = to_device_real(dout);
  RealBuffer out = to_device_real(Floats(B64 * T64 * C64, garbage));
  RealBuffer dqkv = to_device_real(Floats(B64 * T64 * 3 * C64, garbage));
  FloatBuffer stats = to_device(Floats(attention_stats_size(B64, T64, C64, NH64), garbage));
  FloatBuffer scratch = to_device(Floats(attention_scratch_size(B64, T64, C64, NH64), garbage));
  attention_fwd(out.data(), stats.data(), qkv_device.data(), B64, T64, C64, NH64);
  attention_bwd(dqkv.data(), scratch.data(), dout_device.data(), out.data(), qkv_device.data(), stats.data(), B64,
                T64, C64, NH64);
  const AttentionGradients expected = attention_head64_reference(widen(qkv), widen(dout));
  // bf16 builds: the GPU kernel also rounds the probabilities to bf16 before its tensor-core products,
  // on top of the output's own rounding: 1e-2 (one bf16 rounding is 3.9e-3).
  expect_close(to_host(out), expected.out, real_tolerance(forward_tolerance, 1e-2), "out");
  expect_close(to_host(dqkv), expected.dqkv, real_tolerance(backward_tolerance, 1e-2), "dqkv");
}

}  // namespace
}  // namespace xp::test
