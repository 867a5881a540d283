// layernorm_fwd / layernorm_bwd against a float64 LayerNorm and its finite differences.
#include "xp/kernels/layernorm.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/reference.hpp"

namespace xp::test {
namespace {

constexpr int N = 10, C = 8;  // N = B·T rows with B=2, T=5
// out is Real, rounded once from fp32. dinp is Real and accumulates: before + delta is rounded, an error
// of up to 2^-8 of |before + delta|, measured against the largest delta: 1e-2 allows |before| ~ |delta|.
// mean, rstd, dweight and dbias are fp32 from Real inputs that the reference sees exactly: the fp32
// tolerance in every build.
constexpr double out_tolerance = real_tolerance(forward_tolerance, bf16_rounded_once_tolerance);
constexpr double dinp_tolerance = real_tolerance(backward_tolerance, 1e-2);

struct Normalized {
  Doubles out, mean, rstd;
};

// Per row: biased variance, rstd = 1/sqrt(var + eps), out = (x - mean)·rstd·weight + bias.
Normalized layernorm_reference(const Doubles& inp, const Doubles& weight, const Doubles& bias) {
  Normalized result{Doubles(N * C), Doubles(N), Doubles(N)};
  for (int n = 0; n < N; ++n) {
    const double* x = &inp[n * C];
    double mean = 0.0, variance = 0.0;
    for (int c = 0; c < C; ++c) mean += x[c] / C;
    for (int c = 0; c < C; ++c) variance += (x[c] - mean) * (x[c] - mean) / C;
    const double rstd = 1.0 / std::sqrt(variance + double(layernorm_eps));
    for (int c = 0; c < C; ++c) result.out[n * C + c] = (x[c] - mean) * rstd * weight[c] + bias[c];
    result.mean[n] = mean;
    result.rstd[n] = rstd;
  }
  return result;
}

// Rows with different offsets and spreads, so mean and rstd both matter.
Floats layernorm_input() {
  Floats inp = random_floats(N * C, 11);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) inp[n * C + c] = inp[n * C + c] * (0.5f + 0.3f * n) + 0.2f * (n - 4);
  return rounded_to_real(inp);
}

struct LayernormInputs {
  Floats inp = layernorm_input();
  Floats weight = random_reals(C, 12, 0.5, 1.5);
  Floats bias = random_reals(C, 13);
  Floats dout = random_reals(N * C, 14);
  RealBuffer inp_device = to_device_real(inp), weight_device = to_device_real(weight),
             bias_device = to_device_real(bias);
  RealBuffer dout_device = to_device_real(dout);
  RealBuffer out = to_device_real(Floats(N * C, garbage));
  FloatBuffer mean = to_device(Floats(N, garbage)), rstd = to_device(Floats(N, garbage));

  void forward() {
    layernorm_fwd(out.data(), mean.data(), rstd.data(), inp_device.data(), weight_device.data(), bias_device.data(), N,
                  C);
  }
};

TEST(LayerNorm, ForwardMatchesReference) {
  LayernormInputs x;
  x.forward();
  const Normalized expected = layernorm_reference(widen(x.inp), widen(x.weight), widen(x.bias));
  expect_close(to_host(x.out), expected.out, out_tolerance, "out");
  expect_close(to_host(x.mean), expected.mean, forward_tolerance, "mean");
  expect_close(to_host(x.rstd), expected.rstd, forward_tolerance, "rstd");
}

// All three gradients accumulate, so each starts from non-zero values.
TEST(LayerNorm, BackwardAccumulatesFiniteDifferenceGradients) {
  LayernormInputs x;
  x.forward();
  const Floats dinp_before = random_reals(N * C, 15), dweight_before = random_floats(C, 16),
               dbias_before = random_floats(C, 17);
  RealBuffer dinp = to_device_real(dinp_before);
  FloatBuffer dweight = to_device(dweight_before), dbias = to_device(dbias_before);
  layernorm_bwd(dinp.data(), dweight.data(), dbias.data(), x.dout_device.data(), x.inp_device.data(),
                x.weight_device.data(), x.mean.data(), x.rstd.data(), N, C);

  Doubles inp = widen(x.inp), weight = widen(x.weight), bias = widen(x.bias);
  const auto forward = [&] { return layernorm_reference(inp, weight, bias).out; };
  const Doubles weights = widen(x.dout);
  expect_close(added(to_host(dinp), dinp_before), finite_difference(forward, inp, weights), dinp_tolerance, "dinp");
  expect_close(added(to_host(dweight), dweight_before), finite_difference(forward, weight, weights), backward_tolerance,
               "dweight");
  expect_close(added(to_host(dbias), dbias_before), finite_difference(forward, bias, weights), backward_tolerance,
               "dbias");
}

}  // namespace
}  // namespace xp::test
