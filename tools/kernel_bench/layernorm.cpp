// xp_kernel_bench layernorm: the fused LayerNorm kernels (src/kernels/cuda/layernorm.cu) beside the
// Kokkos path they replace, at GPT-2 124M (C 768) and 1.5B (C 1600) shapes, N = B·T = 32·1024 rows:
//   residual_layernorm_fwd   fused | Kokkos (bias_residual_fwd + layernorm_fwd)
//   layernorm_fwd            fused | Kokkos
//   layernorm_bwd            fused (with its parameter pass) | Kokkos (input kernel + column sums)
// Bytes are what the fused kernel must move (layernorm.hpp's floors); both paths are measured against
// them. Each shape also prints the largest fused-vs-Kokkos difference, relative to the largest value.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kernel_bench.hpp"
#include "xp/kernels/kernel_path.hpp"
#include "xp/kernels/layernorm.hpp"

namespace xp::bench {
namespace {

using bf16 = __nv_bfloat16;

float widen(bf16 x) { return __bfloat162float(x); }
float widen(float x) { return x; }

template <class T>
std::vector<float> host_floats(const T* device, size_t n) {
  std::vector<T> host(n);
  cudaMemcpy(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = widen(host[i]);
  return out;
}

double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

void run_shape(const char* model, int N, int C, cudaStream_t stream) {
  const size_t NC = size_t(N) * C;
  auto reals = [](size_t n, float scale, unsigned seed) {
    return static_cast<bf16*>(device_random(sizeof(bf16), n, true, scale, seed));
  };
  auto floats = [](size_t n, unsigned seed) { return static_cast<float*>(device_random(sizeof(float), n, false, 1.0f, seed)); };
  bf16 *residual = reals(NC, 1.0f, 1), *x = reals(NC, 0.5f, 2), *bias = reals(C, 0.2f, 3), *weight = reals(C, 1.0f, 4),
       *ln_bias = reals(C, 0.2f, 5), *dout = reals(NC, 1.0f, 6);
  bf16 *residual_out = reals(NC, 0.0f, 7), *out = reals(NC, 0.0f, 8), *dinp = reals(NC, 0.1f, 9);
  float *mean = floats(N, 10), *rstd = floats(N, 11), *dweight = floats(C, 12), *dbias = floats(C, 13);
  const std::string shape = std::string(model) + " N=" + std::to_string(N) + " C=" + std::to_string(C);
  const double rows_bytes = 2.0 * NC, stats_bytes = 8.0 * N;
  const double partial_bytes = 2.0 * std::min((N + 7) / 8, 512) * 2.0 * C * 4;  // written and read (layernorm_math.hpp)

  std::vector<float> fused_out, fused_dinp, fused_dweight;
  for (KernelPath path : {KernelPath::Fused, KernelPath::Kokkos}) {
    set_kernel_path(path);
    const char* impl = path == KernelPath::Fused ? "fused" : "kokkos";
    report("residual_layernorm_fwd", shape, impl, 4 * rows_bytes + stats_bytes, median_us([&] {
             residual_layernorm_fwd(residual_out, out, mean, rstd, residual, x, bias, weight, ln_bias, N, C);
           }, stream));
    report("layernorm_fwd", shape, impl, 2 * rows_bytes + stats_bytes,
           median_us([&] { layernorm_fwd(out, mean, rstd, residual_out, weight, ln_bias, N, C); }, stream));
    report("layernorm_bwd", shape, impl, 4 * rows_bytes + stats_bytes + partial_bytes, median_us([&] {
             layernorm_bwd(dinp, dweight, dbias, dout, residual_out, weight, mean, rstd, N, C);
           }, stream));
    // One clean pass each for the comparison: dinp and dweight accumulate, so start them at zero.
    cudaMemsetAsync(dinp, 0, NC * sizeof(bf16), stream);
    cudaMemsetAsync(dweight, 0, C * sizeof(float), stream);
    residual_layernorm_fwd(residual_out, out, mean, rstd, residual, x, bias, weight, ln_bias, N, C);
    layernorm_bwd(dinp, dweight, dbias, dout, residual_out, weight, mean, rstd, N, C);
    cudaStreamSynchronize(stream);
    if (path == KernelPath::Fused) {
      fused_out = host_floats(out, NC);
      fused_dinp = host_floats(dinp, NC);
      fused_dweight = host_floats(dweight, C);
    } else {
      std::printf("layernorm %s: fused vs kokkos max relative difference: out %.2e, dinp %.2e, dweight %.2e\n",
                  shape.c_str(), relative_difference(fused_out, host_floats(out, NC)),
                  relative_difference(fused_dinp, host_floats(dinp, NC)),
                  relative_difference(fused_dweight, host_floats(dweight, C)));
    }
  }
  set_kernel_path(KernelPath::Fused);
  for (void* p : {(void*)residual, (void*)x, (void*)bias, (void*)weight, (void*)ln_bias, (void*)dout,
                  (void*)residual_out, (void*)out, (void*)dinp, (void*)mean, (void*)rstd, (void*)dweight, (void*)dbias})
    device_free(p);
}

void run(cudaStream_t stream) {
  run_shape("124M", 32 * 1024, 768, stream);
  run_shape("1.5B", 32 * 1024, 1600, stream);
}

static Registration registration("layernorm", run);

}  // namespace
}  // namespace xp::bench
