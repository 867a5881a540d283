// matmul_fwd / matmul_bwd against a float64 linear layer and its finite differences.
#include "xp/kernels/matmul.hpp"

#include <gtest/gtest.h>

#include "kernels/reference.hpp"

namespace xp::test {
namespace {

constexpr int N = 10, C = 8, OC = 12;  // N = B·T rows with B=2, T=5
// out and dinp are Real, rounded once from the fp32 accumulator; dweight and dbias accumulate in fp32
// from Real inputs that the reference sees exactly, so they keep the fp32 tolerance in every build.
constexpr double out_tolerance = real_tolerance(forward_tolerance, bf16_rounded_once_tolerance);
constexpr double dinp_tolerance = real_tolerance(backward_tolerance, bf16_rounded_once_tolerance);

// out (N,OC) = inp (N,C) · weight (OC,C)ᵀ + bias (OC); an empty bias means none.
Doubles linear_reference(const Doubles& inp, const Doubles& weight, const Doubles& bias) {
  Doubles out(N * OC);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      double sum = bias.empty() ? 0.0 : bias[o];
      for (int c = 0; c < C; ++c) sum += inp[n * C + c] * weight[o * C + c];
      out[n * OC + o] = sum;
    }
  return out;
}

// Host values and their device copies; the buffers outlive every (possibly asynchronous) kernel call.
struct LinearInputs {
  Floats inp = random_reals(N * C, 1);
  Floats weight = random_reals(OC * C, 2);
  Floats bias = random_reals(OC, 3);
  Floats dout = random_reals(N * OC, 4);
  RealBuffer inp_device = to_device_real(inp), weight_device = to_device_real(weight),
             bias_device = to_device_real(bias);
  RealBuffer dout_device = to_device_real(dout);
};

TEST(Matmul, ForwardMatchesReference) {
  LinearInputs x;
  RealBuffer out = to_device_real(Floats(N * OC, garbage));
  matmul_fwd(out.data(), x.inp_device.data(), x.weight_device.data(), x.bias_device.data(), N, C, OC);
  expect_close(to_host(out), linear_reference(widen(x.inp), widen(x.weight), widen(x.bias)), out_tolerance, "out");
}

TEST(Matmul, ForwardWithoutBiasMatchesReference) {
  LinearInputs x;
  RealBuffer out = to_device_real(Floats(N * OC, garbage));
  matmul_fwd(out.data(), x.inp_device.data(), x.weight_device.data(), nullptr, N, C, OC);
  expect_close(to_host(out), linear_reference(widen(x.inp), widen(x.weight), {}), out_tolerance, "out");
}

// dinp is overwritten (pre-filled with NaN); dweight and dbias accumulate onto non-zero values.
TEST(Matmul, BackwardMatchesFiniteDifferences) {
  LinearInputs x;
  const Floats dweight_before = random_floats(OC * C, 5), dbias_before = random_floats(OC, 6);
  RealBuffer dinp = to_device_real(Floats(N * C, garbage));
  FloatBuffer dweight = to_device(dweight_before), dbias = to_device(dbias_before);
  matmul_bwd(dinp.data(), dweight.data(), dbias.data(), x.dout_device.data(), x.inp_device.data(),
             x.weight_device.data(), N, C, OC);

  Doubles inp = widen(x.inp), weight = widen(x.weight), bias = widen(x.bias);
  const auto forward = [&] { return linear_reference(inp, weight, bias); };
  const Doubles weights = widen(x.dout);
  expect_close(to_host(dinp), finite_difference(forward, inp, weights), dinp_tolerance, "dinp");
  expect_close(added(to_host(dweight), dweight_before), finite_difference(forward, weight, weights), backward_tolerance,
               "dweight");
  expect_close(added(to_host(dbias), dbias_before), finite_difference(forward, bias, weights), backward_tolerance,
               "dbias");
}

TEST(Matmul, BackwardWithoutBiasStillAccumulatesWeight) {
  LinearInputs x;
  const Floats dweight_before = random_floats(OC * C, 5);
  RealBuffer dinp = to_device_real(Floats(N * C, garbage));
  FloatBuffer dweight = to_device(dweight_before);
  matmul_bwd(dinp.data(), dweight.data(), nullptr, x.dout_device.data(), x.inp_device.data(), x.weight_device.data(), N,
             C, OC);

  Doubles inp = widen(x.inp), weight = widen(x.weight);
  const auto forward = [&] { return linear_reference(inp, weight, {}); };
  expect_close(to_host(dinp), finite_difference(forward, inp, widen(x.dout)), dinp_tolerance, "dinp");
  expect_close(added(to_host(dweight), dweight_before), finite_difference(forward, weight, widen(x.dout)),
               backward_tolerance, "dweight");
}

}  // namespace
}  // namespace xp::test
