// bias_residual_fwd and sum_squares against float64 sums.
#include "xp/kernels/elementwise.hpp"

#include <gtest/gtest.h>

#include "kernels/reference.hpp"

namespace xp::test {
namespace {

constexpr int N = 5, C = 8;

// out = residual + x + bias (broadcast over rows), in float64.
Doubles bias_residual_reference(const Floats& residual, const Floats& x, const Floats& bias) {
  Doubles out(residual.size());
  for (size_t i = 0; i < residual.size(); ++i) out[i] = double(residual[i]) + double(x[i]) + double(bias[i % C]);
  return out;
}

TEST(Elementwise, BiasResidualForwardMatchesReference) {
  const Floats residual = random_floats(N * C, 71), x = random_floats(N * C, 72), bias = random_floats(C, 74);
  FloatBuffer residual_device = to_device(residual), x_device = to_device(x), bias_device = to_device(bias);
  FloatBuffer out = to_device(Floats(N * C, garbage));
  bias_residual_fwd(out.data(), residual_device.data(), x_device.data(), bias_device.data(), N, C);
  expect_close(to_host(out), bias_residual_reference(residual, x, bias), forward_tolerance, "out");
}

// The trainer writes a row-parallel layer's output into the residual stream's next buffer; in place
// (out aliasing residual) must work too.
TEST(Elementwise, BiasResidualForwardInPlaceMatchesReference) {
  const Floats residual = random_floats(N * C, 71), x = random_floats(N * C, 72), bias = random_floats(C, 74);
  FloatBuffer residual_device = to_device(residual), x_device = to_device(x), bias_device = to_device(bias);
  bias_residual_fwd(residual_device.data(), residual_device.data(), x_device.data(), bias_device.data(), N, C);
  expect_close(to_host(residual_device), bias_residual_reference(residual, x, bias), forward_tolerance, "in_place");
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
