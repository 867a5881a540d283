#include "xp/kernels/gelu.hpp"

#include "xp/core/math.hpp"
#include "xp/core/types.hpp"
#include "kernels/cuda/elementwise_math.hpp"

#if defined(XP_ENABLE_CUDA)
#include "kernels/cuda/elementwise.hpp"
#include "xp/core/device.hpp"
#include "xp/kernels/kernel_path.hpp"
#endif

namespace xp {
namespace {
// The fused kernels' constants (one place for the formula).
constexpr float gelu_scale = simt::gelu_scale;
constexpr float gelu_cube = simt::gelu_cube;
}  // namespace

void gelu_fwd(Real* out, const Real* inp, int64_t n) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {
    cuda::fused_gelu_fwd(out, inp, n, static_cast<cudaStream_t>(device_stream()));
    return;
  }
#endif
  Kokkos::parallel_for("xp::gelu_fwd", Range(0, n), KOKKOS_LAMBDA(int64_t i) {
    const float x = to_float(inp[i]);
    out[i] = to_real(0.5f * x * (1.0f + math::tanh(gelu_scale * (x + gelu_cube * x * x * x))));
  });
}

void gelu_bwd(Real* dinp, const Real* inp, const Real* dout, int64_t n) {
#if defined(XP_ENABLE_CUDA)
  if (use_fused_kernels()) {
    cuda::fused_gelu_bwd(dinp, inp, dout, n, static_cast<cudaStream_t>(device_stream()));
    return;
  }
#endif
  Kokkos::parallel_for("xp::gelu_bwd", Range(0, n), KOKKOS_LAMBDA(int64_t i) {
    const float x = to_float(inp[i]);
    const float u = gelu_scale * (x + gelu_cube * x * x * x);
    const float t = math::tanh(u);
    const float sech2 = 1.0f - t * t;
    const float du_dx = gelu_scale * (1.0f + 3.0f * gelu_cube * x * x);
    dinp[i] = to_real((0.5f * (1.0f + t) + 0.5f * x * sech2 * du_dx) * to_float(dout[i]));
  });
}

}  // namespace xp
