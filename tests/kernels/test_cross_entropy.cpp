// cross_entropy_fwd / cross_entropy_bwd against float64 softmax cross-entropy and its finite differences;
// cross_entropy_fwd_bwd against the two.
#include "xp/kernels/cross_entropy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/reference.hpp"

namespace xp::test {
namespace {

constexpr int N = 10, V = 10, Vp = 16;  // N = B·T rows with B=2, T=5; vocabulary padded from V to Vp
constexpr float huge_padding = 1e4f;    // exp() of it overflows, so any padded column counted shows up
constexpr float dloss = 0.3f;
const Tokens targets = {0, 9, 3, 3, 7, 1, 9, 5, 0, 3};  // both ends of the vocabulary, repeats
// Losses and lse are fp32 from Real logits that the reference sees exactly: the fp32 tolerance in every
// build. dlogits are Real, rounded once from fp32.
constexpr double dlogits_tolerance = real_tolerance(backward_tolerance, bf16_rounded_once_tolerance);

struct Losses {
  Doubles losses, lse;
};

// loss_n = log Σ_{v<V} exp(logit_v) - logit_target, over the first V columns only.
Losses cross_entropy_reference(const Doubles& logits) {
  Losses result{Doubles(N), Doubles(N)};
  for (int n = 0; n < N; ++n) {
    const double* row = &logits[n * Vp];
    const double max_logit = *std::max_element(row, row + V);
    double total = 0.0;
    for (int v = 0; v < V; ++v) total += std::exp(row[v] - max_logit);
    result.lse[n] = max_logit + std::log(total);
    result.losses[n] = result.lse[n] - row[targets[n]];
  }
  return result;
}

Floats logits_with_padding(float padding) {
  Floats logits = random_reals(N * Vp, 41, -3.0, 3.0);
  for (int n = 0; n < N; ++n) std::fill(&logits[n * Vp + V], &logits[n * Vp + Vp], padding);
  return logits;
}

struct CrossEntropyInputs {
  explicit CrossEntropyInputs(float padding = huge_padding) : logits(logits_with_padding(padding)) {}
  Floats logits;
  RealBuffer logits_device = to_device_real(logits);
  TokenBuffer targets_device = to_device(targets);
  FloatBuffer losses = to_device(Floats(N, garbage)), lse = to_device(Floats(N, garbage));

  double forward() {
    return cross_entropy_fwd(losses.data(), lse.data(), logits_device.data(), targets_device.data(), N, V, Vp);
  }
};

TEST(CrossEntropy, ForwardMatchesReferenceAndReturnsTheSum) {
  CrossEntropyInputs x;
  const double returned = x.forward();
  const Losses expected = cross_entropy_reference(widen(x.logits));
  const Floats losses = to_host(x.losses);
  expect_close(losses, expected.losses, forward_tolerance, "losses");
  expect_close(to_host(x.lse), expected.lse, forward_tolerance, "lse");
  double kernel_sum = 0.0, reference_sum = 0.0;
  for (int n = 0; n < N; ++n) kernel_sum += losses[n], reference_sum += expected.losses[n];
  EXPECT_NEAR(returned, kernel_sum, 1e-12 * std::abs(kernel_sum));
  expect_close(Doubles{returned}, Doubles{reference_sum}, forward_tolerance, "sum");
}

// Huge or zero padding must give bit-identical losses, and the padding's gradient is exactly 0.
TEST(CrossEntropy, PaddedColumnsNeitherCountNorGetGradient) {
  CrossEntropyInputs huge(huge_padding), zero(0.0f);
  EXPECT_EQ(huge.forward(), zero.forward());
  EXPECT_EQ(to_host(huge.losses), to_host(zero.losses));
  RealBuffer dlogits = to_device_real(Floats(N * Vp, garbage));
  cross_entropy_bwd(dlogits.data(), huge.logits_device.data(), huge.lse.data(), huge.targets_device.data(), dloss, N, V,
                    Vp);
  const Floats gradient = to_host(dlogits);
  for (int n = 0; n < N; ++n)
    for (int v = V; v < Vp; ++v) EXPECT_EQ(gradient[n * Vp + v], 0.0f) << "row " << n << " column " << v;
}

// ∂(Σ_n dloss · loss_n)/∂logits, perturbing every column, padding included (whose derivative is 0).
Doubles cross_entropy_gradient(const Floats& logits) {
  Doubles x = widen(logits);
  const auto forward = [&] { return cross_entropy_reference(x).losses; };
  return finite_difference(forward, x, Doubles(N, double(dloss)));
}

// dlogits is overwritten, so it starts as NaN.
TEST(CrossEntropy, BackwardMatchesFiniteDifferences) {
  CrossEntropyInputs x;
  x.forward();
  RealBuffer dlogits = to_device_real(Floats(N * Vp, garbage));
  cross_entropy_bwd(dlogits.data(), x.logits_device.data(), x.lse.data(), x.targets_device.data(), dloss, N, V, Vp);
  expect_close(to_host(dlogits), cross_entropy_gradient(x.logits), dlogits_tolerance, "dlogits");
}

// The trainer writes the gradient over the logits it came from.
TEST(CrossEntropy, BackwardInPlaceMatchesFiniteDifferences) {
  CrossEntropyInputs x;
  x.forward();
  cross_entropy_bwd(x.logits_device.data(), x.logits_device.data(), x.lse.data(), x.targets_device.data(), dloss, N, V,
                    Vp);
  expect_close(to_host(x.logits_device), cross_entropy_gradient(x.logits), dlogits_tolerance,
               "dlogits_in_place");
}

// Training's fused pass (cross_entropy_fwd_bwd) gives the bits of the forward then the backward: losses, lse,
// the returned sum, the sum added to a device total, and dlogits, in place or into another buffer. In the CUDA
// build through the default (fused) path; the device's bits are tested in test_fused_classifier_fwd_bwd.cpp.
TEST(CrossEntropy, FusedForwardBackwardHasTheBitsOfForwardThenBackward) {
  CrossEntropyInputs separate, fused;
  const double sum = separate.forward();
  RealBuffer dlogits = to_device_real(Floats(N * Vp, garbage));
  cross_entropy_bwd(dlogits.data(), separate.logits_device.data(), separate.lse.data(),
                    separate.targets_device.data(), dloss, N, V, Vp);
  const Floats expected = to_host(dlogits);

  RealBuffer other = to_device_real(Floats(N * Vp, garbage));
  const double other_sum = cross_entropy_fwd_bwd(fused.losses.data(), fused.lse.data(), other.data(),
                                                 fused.logits_device.data(), fused.targets_device.data(), dloss, N, V,
                                                 Vp);
  EXPECT_EQ(std::memcmp(&sum, &other_sum, sizeof sum), 0) << sum << " vs " << other_sum;
  EXPECT_EQ(to_host(fused.losses), to_host(separate.losses));
  EXPECT_EQ(to_host(fused.lse), to_host(separate.lse));
  EXPECT_EQ(to_host(other), expected);

  Kokkos::View<double*> total("test::loss_total", 1);
  Kokkos::deep_copy(total, 0.25);  // added to, as the model's step total
  FloatBuffer losses = to_device(Floats(N, garbage)), lse = to_device(Floats(N, garbage));
  const double returned = cross_entropy_fwd_bwd(losses.data(), lse.data(), fused.logits_device.data(),
                                                fused.logits_device.data(), fused.targets_device.data(), dloss, N, V,
                                                Vp, total.data());
  EXPECT_EQ(returned, 0.0);
  const auto host_total = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace{}, total);
  const double expected_total = 0.25 + sum;
  EXPECT_EQ(std::memcmp(&host_total(0), &expected_total, sizeof sum), 0) << host_total(0) << " vs " << expected_total;
  EXPECT_EQ(to_host(losses), to_host(separate.losses));
  EXPECT_EQ(to_host(fused.logits_device), expected) << "in place";
}

}  // namespace
}  // namespace xp::test
