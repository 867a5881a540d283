#include "xp/kernels/adamw.hpp"

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "xp/core/math.hpp"
#include "xp/core/types.hpp"

namespace xp {
namespace {

// The update of one element; `decay` is the decoupled weight decay of its tensor.
struct AdamWElement {
  float beta1, beta2, eps, lr, grad_scale, m_correction, v_correction;

  explicit AdamWElement(const AdamWHyper& hyper)
      : beta1(hyper.beta1), beta2(hyper.beta2), eps(hyper.eps), lr(hyper.lr), grad_scale(hyper.grad_scale),
        m_correction(static_cast<float>(1.0 / (1.0 - std::pow(double{hyper.beta1}, double(hyper.step))))),
        v_correction(static_cast<float>(1.0 / (1.0 - std::pow(double{hyper.beta2}, double(hyper.step))))) {}

  KOKKOS_INLINE_FUNCTION void operator()(float* params, float* m, float* v, const float* grads, Real* compute,
                                         int64_t i, float decay) const {
    const float g = grads[i] * grad_scale;
    const float m_new = beta1 * m[i] + (1.0f - beta1) * g;
    const float v_new = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = m_new;
    v[i] = v_new;
    const float m_hat = m_new * m_correction, v_hat = v_new * v_correction;
    const float updated = params[i] - lr * (m_hat / (math::sqrt(v_hat) + eps) + decay * params[i]);
    params[i] = updated;
    if (compute) compute[i] = to_real(updated);
  }
};

}  // namespace

void adamw_update(float* params, float* m, float* v, const float* grads, int64_t n, const AdamWHyper& hyper,
                  Real* compute) {
  const AdamWElement update(hyper);
  const float decay = hyper.weight_decay;
  Kokkos::parallel_for("xp::adamw_update", Range(0, n), KOKKOS_LAMBDA(int64_t i) {
    update(params, m, v, grads, compute, i, decay);
  });
}

void adamw_update_segments(float* params, float* m, float* v, const float* grads, int64_t n,
                           const int64_t* segment_ends, const int8_t* decay, int segments, const AdamWHyper& hyper,
                           Real* compute) {
#if defined(KOKKOS_ENABLE_CUDA)
  // One launch for every tensor: each thread finds its segment by binary search.
  const AdamWElement update(hyper);
  const float weight_decay = hyper.weight_decay;
  Kokkos::parallel_for("xp::adamw_update_segments", Range(0, n), KOKKOS_LAMBDA(int64_t i) {
    int lo = 0, hi = segments - 1;  // the first segment whose end lies past i
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (segment_ends[mid] > i) hi = mid;
      else lo = mid + 1;
    }
    update(params, m, v, grads, compute, i, decay[lo] ? weight_decay : 0.0f);
  });
#else
  // On the host a launch costs nothing and a plain loop per segment vectorises: one pass per segment
  // (the arrays are host memory here).
  int64_t begin = 0;
  for (int s = 0; s < segments; ++s) {
    AdamWHyper segment = hyper;
    segment.weight_decay = decay[s] ? hyper.weight_decay : 0.0f;
    adamw_update(params + begin, m + begin, v + begin, grads + begin, segment_ends[s] - begin, segment,
                 compute ? compute + begin : nullptr);
    begin = segment_ends[s];
  }
  (void)n;
#endif
}

void adamw_update_segments_host(float* params, float* m, float* v, const float* grads, int64_t first, int64_t last,
                                const int64_t* segment_ends, const int8_t* decay, int segments,
                                const AdamWHyper& hyper, int threads) {
  const AdamWElement update(hyper);
  const float weight_decay = hyper.weight_decay;
  auto part = [&](int64_t lo, int64_t hi) {
    int s = static_cast<int>(std::upper_bound(segment_ends, segment_ends + segments, lo) - segment_ends);
    for (int64_t begin = lo; begin < hi && s < segments; ++s) {
      const int64_t end = std::min(hi, segment_ends[s]), size = end - begin;
      const float d = decay[s] ? weight_decay : 0.0f;
      float *p = params + begin, *pm = m + begin, *pv = v + begin;
      const float* g = grads + (begin - first);
      for (int64_t i = 0; i < size; ++i) update(p, pm, pv, g, nullptr, i, d);
      begin = end;
    }
  };
  // Parts of at least 64 Ki elements: a thread's start costs more than a smaller part's update.
  const int64_t n = last - first;
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(threads, n / 65536 + 1));
  const int64_t chunk = (n + workers - 1) / workers;
  std::vector<std::thread> pool;
  for (int64_t w = 1; w < workers; ++w)
    pool.emplace_back(part, first + w * chunk, first + std::min(n, (w + 1) * chunk));
  part(first, first + std::min(n, chunk));
  for (std::thread& thread : pool) thread.join();
}

}  // namespace xp
