// gelu_fwd / gelu_bwd against a float64 tanh-approximation GELU and its finite differences.
#include "xp/kernels/gelu.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/reference.hpp"

namespace xp::test {
namespace {

constexpr int64_t n = 40;
// out and dinp are Real, each computed in fp32 from Real inputs and rounded once.
constexpr double out_tolerance = real_tolerance(forward_tolerance, bf16_rounded_once_tolerance);
constexpr double dinp_tolerance = real_tolerance(backward_tolerance, bf16_rounded_once_tolerance);

// GPT-2's GELU: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
Doubles gelu_reference(const Doubles& inp) {
  const double scale = std::sqrt(2.0 / M_PI);
  Doubles out(inp.size());
  for (size_t i = 0; i < inp.size(); ++i) {
    const double x = inp[i];
    out[i] = 0.5 * x * (1.0 + std::tanh(scale * (x + 0.044715 * x * x * x)));
  }
  return out;
}

// Covers both tails and the curved middle, where the cubic term matters.
const Floats gelu_input = random_reals(n, 21, -4.0, 4.0);

TEST(Gelu, ForwardMatchesReference) {
  RealBuffer inp = to_device_real(gelu_input), out = to_device_real(Floats(n, garbage));
  gelu_fwd(out.data(), inp.data(), n);
  expect_close(to_host(out), gelu_reference(widen(gelu_input)), out_tolerance, "out");
}

// dinp is overwritten, so it starts as NaN.
TEST(Gelu, BackwardMatchesFiniteDifferences) {
  const Floats dout = random_reals(n, 22);
  RealBuffer inp = to_device_real(gelu_input), dout_device = to_device_real(dout),
             dinp = to_device_real(Floats(n, garbage));
  gelu_bwd(dinp.data(), inp.data(), dout_device.data(), n);

  Doubles x = widen(gelu_input);
  const auto forward = [&] { return gelu_reference(x); };
  expect_close(to_host(dinp), finite_difference(forward, x, widen(dout)), dinp_tolerance, "dinp");
}

}  // namespace
}  // namespace xp::test
