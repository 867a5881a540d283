// adamw_update over several steps against a float64 re-implementation of torch.optim.AdamW.
#include "xp/kernels/adamw.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/reference.hpp"

namespace xp::test {
namespace {

constexpr int64_t n = 50;
constexpr int steps = 5;
// fp32 parameters round at ~1e-7 each step; the ~5e-2 total change keeps that ~1e-5 relative.
constexpr double update_tolerance = 1e-4;

struct AdamState {
  Doubles params, m, v;
};

// torch.optim.AdamW: g = scale·grad; p ← p·(1 - lr·wd); moments; p ← p - lr·m̂ / (√v̂ + eps).
void adamw_reference(AdamState& state, const Floats& grads, const AdamWHyper& hyper) {
  const double lr = hyper.lr, beta1 = hyper.beta1, beta2 = hyper.beta2;
  const double correction1 = 1.0 - std::pow(beta1, double(hyper.step));
  const double correction2 = 1.0 - std::pow(beta2, double(hyper.step));
  for (int64_t i = 0; i < n; ++i) {
    const double g = double(hyper.grad_scale) * grads[i];
    state.params[i] *= 1.0 - lr * double(hyper.weight_decay);
    state.m[i] = beta1 * state.m[i] + (1.0 - beta1) * g;
    state.v[i] = beta2 * state.v[i] + (1.0 - beta2) * g * g;
    const double m_hat = state.m[i] / correction1, v_hat = state.v[i] / correction2;
    state.params[i] -= lr * m_hat / (std::sqrt(v_hat) + double(hyper.eps));
  }
}

// Runs `steps` updates with fresh gradients each step and compares the parameter change and both moments.
void expect_matches_torch(float weight_decay, float grad_scale) {
  const Floats initial = random_floats(n, 61);
  FloatBuffer params = to_device(initial), m = to_device(Floats(n, 0.0f)), v = to_device(Floats(n, 0.0f));
  AdamState expected{widen(initial), Doubles(n, 0.0), Doubles(n, 0.0)};
  AdamWHyper hyper;
  hyper.lr = 1e-2f;
  hyper.eps = 1e-3f;  // large enough that adding it outside the square root (as torch does) is checked
  hyper.weight_decay = weight_decay;
  hyper.grad_scale = grad_scale;
  for (int step = 1; step <= steps; ++step) {
    const Floats grads = random_floats(n, 100 + step);
    FloatBuffer grads_device = to_device(grads);
    hyper.step = step;
    adamw_update(params.data(), m.data(), v.data(), grads_device.data(), n, hyper);
    adamw_reference(expected, grads, hyper);
  }
  // Compare the change, not the parameters: lr-sized updates would hide inside O(1) parameter values.
  Doubles expected_change(n);
  for (int64_t i = 0; i < n; ++i) expected_change[i] = expected.params[i] - initial[i];
  expect_close(added(to_host(params), initial), expected_change, update_tolerance, "params_change");
  expect_close(to_host(m), expected.m, forward_tolerance, "m");
  expect_close(to_host(v), expected.v, forward_tolerance, "v");
}

TEST(AdamW, MatchesTorchWithoutWeightDecay) { expect_matches_torch(0.0f, 1.0f); }

// Decoupled decay shrinks p by lr·wd·p, which is 10% of an update here: far above the tolerance.
TEST(AdamW, MatchesTorchWithDecoupledWeightDecay) { expect_matches_torch(0.1f, 1.0f); }

// The scale nearly cancels in m̂/(√v̂ + eps) but not in the stored moments, which are compared too.
TEST(AdamW, GradScaleMultipliesTheGradientFirst) { expect_matches_torch(0.1f, 0.25f); }

// The multi-tensor update over segments (decayed, not, decayed) equals one update per segment, and the
// compute copy it writes equals the updated weights rounded to Real.
TEST(AdamW, SegmentsMatchOneUpdatePerSegment) {
  const Floats initial = random_floats(n, 71), grads = random_floats(n, 72);
  const int64_t ends[3] = {n / 4, n / 2, n};
  const int8_t decay[3] = {1, 0, 1};
  AdamWHyper hyper;
  hyper.lr = 1e-2f;
  hyper.weight_decay = 0.1f;
  hyper.step = 3;
  FloatBuffer params = to_device(initial), m = to_device(random_floats(n, 73, 0.0, 0.1)),
              v = to_device(random_floats(n, 74, 0.0, 0.1)), grads_device = to_device(grads);
  FloatBuffer params_ref = to_device(initial), m_ref = to_device(random_floats(n, 73, 0.0, 0.1)),
              v_ref = to_device(random_floats(n, 74, 0.0, 0.1));
  Kokkos::View<int64_t*> ends_device("test::ends", 3);
  Kokkos::View<int8_t*> decay_device("test::decay", 3);
  auto ends_host = Kokkos::create_mirror_view(ends_device);
  auto decay_host = Kokkos::create_mirror_view(decay_device);
  for (int s = 0; s < 3; ++s) {
    ends_host(s) = ends[s];
    decay_host(s) = decay[s];
  }
  Kokkos::deep_copy(ends_device, ends_host);
  Kokkos::deep_copy(decay_device, decay_host);
  RealBuffer compute("test::compute", n);
  adamw_update_segments(params.data(), m.data(), v.data(), grads_device.data(), n, ends_device.data(),
                        decay_device.data(), 3, hyper, compute.data());
  int64_t begin = 0;
  for (int s = 0; s < 3; ++s) {
    AdamWHyper segment = hyper;
    segment.weight_decay = decay[s] ? hyper.weight_decay : 0.0f;
    adamw_update(params_ref.data() + begin, m_ref.data() + begin, v_ref.data() + begin, grads_device.data() + begin,
                 ends[s] - begin, segment);
    begin = ends[s];
  }
  const Floats got = to_host(params), want = to_host(params_ref);
  EXPECT_EQ(got, want);
  EXPECT_EQ(to_host(m), to_host(m_ref));
  EXPECT_EQ(to_host(v), to_host(v_ref));
  auto compute_host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), compute);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(to_float(compute_host(i)), to_float(to_real(got[i]))) << i;
}

}  // namespace
}  // namespace xp::test
