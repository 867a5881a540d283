// xp_kernel_bench elementwise: the fused element-wise kernels and the fixed-order column sum
// (src/kernels/cuda/elementwise.hpp states their floors) beside the Kokkos kernels, through the same kernel
// functions with the path switched, at GPT-2 124M shapes (N = 32·1024 rows, C 768) and 1.5B's C 1600.
#include "kernel_bench.hpp"

#include <cuda_bf16.h>

#include <cstdint>
#include <string>
#include <utility>

#include "xp/kernels/elementwise.hpp"
#include "xp/kernels/gelu.hpp"
#include "xp/kernels/kernel_path.hpp"

namespace xp::bench {
namespace {

using bf16 = __nv_bfloat16;

std::string shape(int64_t rows, int64_t columns) { return std::to_string(rows) + "x" + std::to_string(columns); }

// `call` timed on the fused path and on the Kokkos path; `bytes` is what the kernel must move.
template <class Call>
void both_paths(const char* kernel, const std::string& shape, double bytes, cudaStream_t stream, const Call& call) {
  for (const auto& [path, name] : {std::pair{KernelPath::Fused, "fused"}, std::pair{KernelPath::Kokkos, "kokkos"}}) {
    set_kernel_path(path);
    report(kernel, shape, name, bytes, median_us(call, stream));
  }
  set_kernel_path(KernelPath::Fused);
}

bf16* random_bf16(int64_t n, unsigned seed) { return static_cast<bf16*>(device_random(2, n, true, 1.0f, seed)); }

void run(cudaStream_t stream) {
  const int N = 32 * 1024;
  for (const int C : {768, 1600}) {
    const int64_t nc = int64_t{N} * C, n4 = 4 * nc;
    bf16 *residual = random_bf16(nc, 1), *x = random_bf16(nc, 2), *out = random_bf16(nc, 3);
    bf16 *bias = random_bf16(4 * C, 4), *inp4 = random_bf16(n4, 5), *dout4 = random_bf16(n4, 6);
    bf16* out4 = random_bf16(n4, 7);
    auto* sums = static_cast<float*>(device_random(4, 4 * C, false, 1.0f, 8));

    both_paths("bias_residual_fwd", shape(N, C), 4.0 * 2 * nc, stream,
               [&] { bias_residual_fwd(out, residual, x, bias, N, C); });
    both_paths("bias_add", shape(N, 3 * C), 2.0 * 2 * 3 * nc, stream, [&] { bias_add(out4, bias, N, 3 * C); });
    both_paths("gelu_fwd", shape(N, 4 * C), 2.0 * 2 * n4, stream, [&] { gelu_fwd(out4, inp4, n4); });
    both_paths("gelu_bwd", shape(N, 4 * C), 3.0 * 2 * n4, stream, [&] { gelu_bwd(out4, inp4, dout4, n4); });
    for (const int OC : {C, 3 * C, 4 * C}) {
      const double partials = 2.0 * 4 * ((N + 255) / 256) * OC;  // written once, read once
      both_paths("column_sums_add", shape(N, OC), 2.0 * N * OC + partials + 2.0 * 4 * OC, stream,
                 [&] { column_sums_add(sums, inp4, N, OC); });
    }
    for (void* p : {static_cast<void*>(residual), static_cast<void*>(x), static_cast<void*>(out),
                    static_cast<void*>(bias), static_cast<void*>(inp4), static_cast<void*>(dout4),
                    static_cast<void*>(out4), static_cast<void*>(sums)})
      device_free(p);
  }
  // The compute copy of the fp32 master weights, once a step: 124M and 1.5B parameters.
  for (const int64_t params : {int64_t{124475904}, int64_t{1557686400}}) {
    auto* master = static_cast<float*>(device_random(4, params, false, 1.0f, 9));
    bf16* copy = random_bf16(params, 10);
    both_paths("convert_to_real", std::to_string(params), 6.0 * params, stream,
               [&] { convert_to_real(copy, master, params); });
    device_free(master);
    device_free(copy);
  }
}

const Registration registration("elementwise", run);

}  // namespace
}  // namespace xp::bench
