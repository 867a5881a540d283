#pragma once
// Helpers shared by the kernel tests: seeded data, host/device copies, float64 finite differences and
// the error measure. Kernels see device buffers of their own element types (Real activations, fp32
// statistics and gradients); references recompute in float64 on the host. Where Real is bf16
// (XP_EMULATE_BF16) inputs are rounded to Real before both see them, so a tolerance measures the kernel,
// not the rounding of its inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "xp/core/types.hpp"

namespace xp::test {

using Floats = std::vector<float>;
using Doubles = std::vector<double>;
using Tokens = std::vector<int32_t>;

// fp32 kernels against float64 references; a real bug (lost factor, sign, wrong index) is O(1).
constexpr double forward_tolerance = 1e-5;
constexpr double backward_tolerance = 1e-4;
constexpr double finite_difference_step = 1e-6;

// bf16 builds: a Real output rounded once from fp32 (8 significant bits, to nearest) is within 2^-8 =
// 3.9e-3 of it relative to itself, so of the largest value; 5e-3 adds fp32 noise. A bug is still O(1).
constexpr double bf16_rounded_once_tolerance = 5e-3;

// `fp32` where Real is float, `bf16` otherwise; each test says why its bf16 value fits.
constexpr double real_tolerance(double fp32, double bf16) { return real_is_float ? fp32 : bf16; }

// Marks outputs the kernel must overwrite: any read of the old value turns the result into NaN.
constexpr float garbage = std::numeric_limits<float>::quiet_NaN();

// Uniform in [lo, hi) from mt19937, whose sequence the standard fixes, so every platform sees the same data.
inline Floats random_floats(size_t n, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 engine(seed);
  Floats values(n);
  for (float& value : values) value = static_cast<float>(lo + (hi - lo) * (engine() / 4294967296.0));
  return values;
}

// `values` as Real holds them: unchanged where Real is float, rounded to bf16 otherwise.
inline Floats rounded_to_real(Floats values) {
  for (float& value : values) value = to_float(to_real(value));
  return values;
}

// random_floats, exactly representable as Real (inputs of kernels that read Real).
inline Floats random_reals(size_t n, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  return rounded_to_real(random_floats(n, seed, lo, hi));
}

inline Doubles widen(const Floats& values) { return Doubles(values.begin(), values.end()); }

// What an accumulating kernel added to a buffer that held `before`.
inline Doubles added(const Floats& after, const Floats& before) {
  Doubles delta(after.size());
  for (size_t i = 0; i < after.size(); ++i) delta[i] = double(after[i]) - double(before[i]);
  return delta;
}

// A device buffer labelled `label` holding a copy of `host`, converted to its element type.
template <typename Buffer, typename Host>
Buffer copy_to_device(const Host& host, const std::string& label) {
  Buffer device(label, host.size());
  auto mirror = Kokkos::create_mirror_view(device);
  for (size_t i = 0; i < host.size(); ++i) mirror(i) = typename Buffer::value_type(host[i]);
  Kokkos::deep_copy(device, mirror);
  return device;
}

inline FloatBuffer to_device(const Floats& host) { return copy_to_device<FloatBuffer>(host, "test::floats"); }
inline TokenBuffer to_device(const Tokens& host) { return copy_to_device<TokenBuffer>(host, "test::tokens"); }
// Activations and weights as kernels read them (rounded to Real where Real is bf16; NaN stays NaN).
inline RealBuffer to_device_real(const Floats& host) { return copy_to_device<RealBuffer>(host, "test::reals"); }

// A device buffer of float or Real, widened to floats.
template <typename T>
Floats to_host(const Kokkos::View<T*>& device) {
  auto mirror = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), device);
  Floats host(mirror.extent(0));
  for (size_t i = 0; i < host.size(); ++i) host[i] = to_float(mirror(i));
  return host;
}

// max |actual - expected| / max |expected|; infinite when sizes differ or anything is not finite.
inline double relative_error(const Doubles& actual, const Doubles& expected) {
  if (actual.size() != expected.size()) return std::numeric_limits<double>::infinity();
  double max_error = 0.0, max_magnitude = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (!std::isfinite(actual[i])) return std::numeric_limits<double>::infinity();
    max_error = std::max(max_error, std::abs(actual[i] - expected[i]));
    max_magnitude = std::max(max_magnitude, std::abs(expected[i]));
  }
  return max_magnitude > 0.0 ? max_error / max_magnitude : max_error;
}

// Fails the test when the error exceeds tolerance; the error is recorded (--gtest_output=xml) either way.
inline void expect_close(const Doubles& actual, const Doubles& expected, double tolerance, const std::string& name) {
  const double error = relative_error(actual, expected);
  std::ostringstream text;
  text << std::scientific << std::setprecision(2) << error;
  ::testing::Test::RecordProperty(name, text.str());
  EXPECT_LE(error, tolerance) << name << ": relative error " << error;
}

inline void expect_close(const Floats& actual, const Doubles& expected, double tolerance, const std::string& name) {
  expect_close(widen(actual), expected, tolerance, name);
}

inline double weighted_sum(const Doubles& weights, const Doubles& out) {
  double sum = 0.0;
  for (size_t i = 0; i < out.size(); ++i) sum += weights[i] * out[i];
  return sum;
}

// ∂L/∂x for L = Σ_i weights_i · forward()_i by central differences; forward reads x, which is
// perturbed in place one element at a time and restored.
inline Doubles finite_difference(const std::function<Doubles()>& forward, Doubles& x, const Doubles& weights,
                                 double h = finite_difference_step) {
  Doubles gradient(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double original = x[i];
    x[i] = original + h;
    const double loss_plus = weighted_sum(weights, forward());
    x[i] = original - h;
    const double loss_minus = weighted_sum(weights, forward());
    x[i] = original;
    gradient[i] = (loss_plus - loss_minus) / (2.0 * h);
  }
  return gradient;
}

}  // namespace xp::test
