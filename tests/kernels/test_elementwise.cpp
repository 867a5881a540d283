// bias_residual_fwd and sum_squares against float64 sums.
#include "xp/kernels/elementwise.hpp"

#include <gtest/gtest.h>

#include "kernels/reference.hpp"

namespace xp::test {
namespace {

constexpr int N = 5, C = 8;
// out is Real, the fp32 sum of Real inputs rounded once.
constexpr double out_tolerance = real_tolerance(forward_tolerance, bf16_rounded_once_tolerance);

// out = residual + x + bias (broadcast over rows), in float64.
Doubles bias_residual_reference(const Floats& residual, const Floats& x, const Floats& bias) {
  Doubles out(residual.size());
  for (size_t i = 0; i < residual.size(); ++i) out[i] = double(residual[i]) + double(x[i]) + double(bias[i % C]);
  return out;
}

TEST(Elementwise, BiasResidualForwardMatchesReference) {
  const Floats residual = random_reals(N * C, 71), x = random_reals(N * C, 72), bias = random_reals(C, 74);
  RealBuffer residual_device = to_device_real(residual), x_device = to_device_real(x),
             bias_device = to_device_real(bias);
  RealBuffer out = to_device_real(Floats(N * C, garbage));
  bias_residual_fwd(out.data(), residual_device.data(), x_device.data(), bias_device.data(), N, C);
  expect_close(to_host(out), bias_residual_reference(residual, x, bias), out_tolerance, "out");
}

// The trainer writes a row-parallel layer's output into the residual stream's next buffer; in place
// (out aliasing residual) must work too.
TEST(Elementwise, BiasResidualForwardInPlaceMatchesReference) {
  const Floats residual = random_reals(N * C, 71), x = random_reals(N * C, 72), bias = random_reals(C, 74);
  RealBuffer residual_device = to_device_real(residual), x_device = to_device_real(x),
             bias_device = to_device_real(bias);
  bias_residual_fwd(residual_device.data(), residual_device.data(), x_device.data(), bias_device.data(), N, C);
  expect_close(to_host(residual_device), bias_residual_reference(residual, x, bias), out_tolerance,
               "in_place");
}

// 2^18 + 3 terms: one float running sum is ~4e-5 off; float blocks of 256 totalled in double, ~2e-9.
TEST(Elementwise, SumSquaresMatchesDoubleSum) {
  const int64_t count = (int64_t(1) << 18) + 3;
  const Floats x = random_floats(count, 73);
  FloatBuffer x_device = to_device(x);
  long double expected = 0.0L;
  for (float value : x) expected += (long double)value * value;
  expect_close(Doubles{sum_squares(x_device.data(), count)}, Doubles{double(expected)}, 1e-7, "sum_squares");
}

}  // namespace
}  // namespace xp::test
