// residual_fwd and sum_squares against float64 sums.
#include "xp/kernels/elementwise.hpp"

#include <gtest/gtest.h>

#include "kernels/reference.hpp"

namespace xp::test {
namespace {

constexpr int64_t n = 40;

Doubles residual_reference(const Floats& a, const Floats& b) {
  Doubles out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = double(a[i]) + double(b[i]);
  return out;
}

TEST(Elementwise, ResidualForwardMatchesReference) {
  const Floats a = random_floats(n, 71), b = random_floats(n, 72);
  FloatBuffer a_device = to_device(a), b_device = to_device(b), out = to_device(Floats(n, garbage));
  residual_fwd(out.data(), a_device.data(), b_device.data(), n);
  expect_close(to_host(out), residual_reference(a, b), forward_tolerance, "out");
}

// The trainer adds a block's output onto the residual stream in place.
TEST(Elementwise, ResidualForwardInPlaceMatchesReference) {
  const Floats a = random_floats(n, 71), b = random_floats(n, 72);
  FloatBuffer a_device = to_device(a), b_device = to_device(b);
  residual_fwd(a_device.data(), a_device.data(), b_device.data(), n);
  expect_close(to_host(a_device), residual_reference(a, b), forward_tolerance, "out_in_place");
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
