#include "xp/kernels/adamw.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cuda/adamw_math.hpp"
#include "xp/core/types.hpp"
#include "xp/kernels/kernel_path.hpp"

#if defined(XP_ENABLE_CUDA)
#include "kernels/cuda/fused_adamw.hpp"
#include "xp/core/device.hpp"
#endif

namespace xp {
namespace {

// The update of element i: the arithmetic of kernels/cuda/adamw_math.hpp, which the fused CUDA kernel
// runs too, so every path gives the same bits.
struct AdamWElement {
  adamw::Constants constants;

  explicit AdamWElement(const AdamWHyper& hyper)
      : constants{hyper.beta1,
                  hyper.beta2,
                  hyper.eps,
                  hyper.lr,
                  hyper.grad_scale,
                  static_cast<float>(1.0 / (1.0 - std::pow(double{hyper.beta1}, double(hyper.step)))),
                  static_cast<float>(1.0 / (1.0 - std::pow(double{hyper.beta2}, double(hyper.step))))} {}

  KOKKOS_INLINE_FUNCTION void operator()(float* params, float* m, float* v, const float* grads, Real* compute,
                                         int64_t i, float decay) const {
    float m_i = m[i], v_i = v[i];
    const float updated = adamw::element(constants, params[i], m_i, v_i, grads[i], decay);
    m[i] = m_i;
    v[i] = v_i;
    params[i] = updated;
    if (compute) compute[i] = to_real(updated);
  }
};

#if defined(XP_ENABLE_CUDA)
// The fused kernel's launch description (device arrays). Real is __nv_bfloat16 in this build, which
// simt::bf16 is too.
adamw::Arguments fused_arguments(float* params, float* m, float* v, const float* grads, int64_t n,
                                 const int64_t* segment_ends, const int8_t* decay, int segments,
                                 const AdamWHyper& hyper, Real* compute) {
  static_assert(sizeof(Real) == sizeof(simt::bf16), "the compute copy is bf16");
  return adamw::Arguments{params, m, v, grads, reinterpret_cast<simt::bf16*>(compute), n, segment_ends, decay,
                          segments, hyper.weight_decay, AdamWElement(hyper).constants};
}
#endif

}  // namespace

void adamw_update(float* params, float* m, float* v, const float* grads, int64_t n, const AdamWHyper& hyper,
                  Real* compute) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {  // no segment table: one segment, decayed
    cuda::fused_adamw(fused_arguments(params, m, v, grads, n, nullptr, nullptr, 1, hyper, compute),
                      static_cast<cudaStream_t>(device_stream()));
    return;
  }
#endif
  const AdamWElement update(hyper);
  const float decay = hyper.weight_decay;
  Kokkos::parallel_for("xp::adamw_update", Range(0, n), KOKKOS_LAMBDA(int64_t i) {
    update(params, m, v, grads, compute, i, decay);
  });
}

void adamw_update_segments(float* params, float* m, float* v, const float* grads, int64_t n,
                           const int64_t* segment_ends, const int8_t* decay, int segments, const AdamWHyper& hyper,
                           Real* compute) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {
    cuda::fused_adamw(fused_arguments(params, m, v, grads, n, segment_ends, decay, segments, hyper, compute),
                      static_cast<cudaStream_t>(device_stream()));
    return;
  }
#endif
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
                                const AdamWHyper& hyper, ThreadPool& threads) {
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
  // Parts of at least 64 Ki elements: waking a thread costs more than a smaller part's update.
  threads.run_ranges(last - first, 65536, [&](int64_t lo, int64_t hi) { part(first + lo, first + hi); });
}

}  // namespace xp
