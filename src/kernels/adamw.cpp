#include "xp/kernels/adamw.hpp"

#include <cmath>

#include "xp/core/math.hpp"
#include "xp/core/types.hpp"

namespace xp {

void adamw_update(float* params, float* m, float* v, const float* grads, int64_t n, const AdamWHyper& hyper) {
  const float beta1 = hyper.beta1, beta2 = hyper.beta2, eps = hyper.eps, lr = hyper.lr;
  const float decay = hyper.weight_decay, grad_scale = hyper.grad_scale;
  const float m_correction = static_cast<float>(1.0 / (1.0 - std::pow(double{beta1}, double(hyper.step))));
  const float v_correction = static_cast<float>(1.0 / (1.0 - std::pow(double{beta2}, double(hyper.step))));
  Kokkos::parallel_for("xp::adamw_update", Range(0, n), KOKKOS_LAMBDA(int64_t i) {
    const float g = grads[i] * grad_scale;
    const float m_new = beta1 * m[i] + (1.0f - beta1) * g;
    const float v_new = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = m_new;
    v[i] = v_new;
    const float m_hat = m_new * m_correction, v_hat = v_new * v_correction;
    params[i] -= lr * (m_hat / (math::sqrt(v_hat) + eps) + decay * params[i]);
  });
}

}  // namespace xp
