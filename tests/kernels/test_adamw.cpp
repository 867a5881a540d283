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

}  // namespace
}  // namespace xp::test
