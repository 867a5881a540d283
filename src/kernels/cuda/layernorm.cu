// Fused LayerNorm kernels (layernorm.hpp: interface and memory floors; layernorm_math.hpp: the scheme and
// the arithmetic, shared with the host emulation that tests/kernels/test_fused_layernorm.cpp checks).
#include "layernorm.hpp"

#define OMPI_SKIP_MPICXX 1  // the C API is enough; the C++ bindings do not compile warning-free
#include "xp/core/cuda_check.hpp"

#include "layernorm_math.hpp"

namespace xp::cuda {
namespace {

namespace ln = fused_layernorm;
using ln::LanePartials;
using ln::LaneRow;
using simt::bf16;

static_assert(fused_layernorm_max_channels == ln::max_slots * simt::warp_size * ln::width<bf16>,
              "the public limit is the registers' capacity");

// grid ceil(N / 8), block 8 warps, one row per warp. x == nullptr: plain LayerNorm of inp; otherwise of
// residual_out = inp + (x + xbias), which the kernel also writes.
template <int S>
__global__ void __launch_bounds__(ln::threads_per_block)
    layernorm_fwd_kernel(bf16* residual_out, bf16* __restrict__ out, float* __restrict__ mean,
                         float* __restrict__ rstd, const bf16* inp, const bf16* __restrict__ x,
                         const bf16* __restrict__ xbias, const bf16* __restrict__ weight,
                         const bf16* __restrict__ bias, int N, int C, float eps, bool packed) {
  const int lane = threadIdx.x % simt::warp_size;
  const int row = blockIdx.x * ln::warps_per_block + threadIdx.x / simt::warp_size;
  if (row >= N) return;  // the whole warp: the butterflies below see all 32 lanes
  const size_t offset = size_t(row) * C;
  LaneRow<bf16, S> r;
  const float sum = ln::fwd_load(r, x ? residual_out + offset : nullptr, inp + offset, x ? x + offset : nullptr,
                                 xbias, packed, lane, C);
  const float m = ln::row_mean(simt::warp_allreduce(sum, ln::ExactSum{}), C);
  const float squares = simt::warp_allreduce(ln::fwd_centred_squares(r, m, packed, lane, C), ln::ExactSum{});
  const float s = ln::row_rstd(squares, C, eps);
  ln::fwd_store(out + offset, r, m, s, weight, bias, packed, lane, C);
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

// grid ln::bwd_blocks(N), block 8 warps; warp g of the grid takes rows g, g + 8·grid, ...; dynamic shared
// memory 2C floats (the block's dweight and dbias), written to partials[blockIdx.x] (2C floats).
template <int S>
__global__ void __launch_bounds__(ln::threads_per_block)
    layernorm_bwd_kernel(bf16* __restrict__ dinp, float* __restrict__ partials, const bf16* __restrict__ dout,
                         const bf16* __restrict__ inp, const bf16* __restrict__ weight,
                         const float* __restrict__ mean, const float* __restrict__ rstd, int N, int C, bool packed) {
  extern __shared__ float block_sums[];
  const int lane = threadIdx.x % simt::warp_size, warp = threadIdx.x / simt::warp_size;
  LanePartials<bf16, S> acc;
  ln::zero(acc);
  for (int row = blockIdx.x * ln::warps_per_block + warp; row < N; row += gridDim.x * ln::warps_per_block) {
    const size_t offset = size_t(row) * C;
    const float m = mean[row], s = rstd[row];
    LaneRow<bf16, S> dy, x;
    simt::Floats<2> sums = ln::bwd_load(dy, x, acc, dout + offset, inp + offset, weight, m, s, packed, lane, C);
    sums = simt::warp_allreduce(sums, ln::ExactSum{});
    ln::bwd_store(dinp + offset, dy, x, weight, m, s, sums, packed, lane, C);
  }
  // The warps' partials in warp order: a barrier between warps instead of shared-memory atomics.
  for (int w = 0; w < ln::warps_per_block; ++w) {
    if (warp == w) ln::bwd_add_partials(block_sums, acc, w == 0, packed, lane, C);
    __syncthreads();
  }
  for (int j = threadIdx.x; j < 2 * C; j += blockDim.x) partials[size_t(blockIdx.x) * 2 * C + j] = block_sums[j];
}

// One thread per output j of the 2C: dweight then dbias += the blocks' partials in block order.
__global__ void layernorm_bwd_params_kernel(float* __restrict__ dweight, float* __restrict__ dbias,
                                            const float* __restrict__ partials, int blocks, int C) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= 2 * C) return;
  float* param = j < C ? dweight + j : dbias + (j - C);
  *param = ln::exact::add(*param, ln::partial_total(partials, blocks, C, j));
}

// The backward's partials: grown stream-ordered (no host synchronisation after the first, largest call),
// kept for the process (at most 512 · 2 · 2048 floats, 8 MiB).
float* bwd_partials(long long floats, cudaStream_t stream) {
  static float* buffer = nullptr;
  static long long capacity = 0;
  if (floats > capacity) {
    if (buffer) XP_CUDA_CHECK(cudaFreeAsync(buffer, stream));
    XP_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&buffer), size_t(floats) * sizeof(float), stream));
    capacity = floats;
  }
  return buffer;
}

void launch_fwd(bf16* residual_out, bf16* out, float* mean, float* rstd, const bf16* inp, const bf16* x,
                const bf16* xbias, const bf16* weight, const bf16* bias, int N, int C, float eps,
                cudaStream_t stream) {
  if (N == 0) return;
  XP_REQUIRE(ln::fits<bf16>(C), "fused LayerNorm: C = " + std::to_string(C) + " is outside [1, 2048]");
  const bool packed = ln::packable<bf16>(C, residual_out, out, inp, x, xbias, weight, bias);
  const int blocks = (N + ln::warps_per_block - 1) / ln::warps_per_block;
  ln::with_slots(ln::slots_for<bf16>(C), [&](auto slots) {
    layernorm_fwd_kernel<decltype(slots)::value><<<blocks, ln::threads_per_block, 0, stream>>>(
        residual_out, out, mean, rstd, inp, x, xbias, weight, bias, N, C, eps, packed);
  });
  XP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void residual_layernorm_fwd(bf16* residual_out, bf16* out, float* mean, float* rstd, const bf16* residual,
                            const bf16* x, const bf16* bias, const bf16* weight, const bf16* ln_bias, int N, int C,
                            float eps, cudaStream_t stream) {
  launch_fwd(residual_out, out, mean, rstd, residual, x, bias, weight, ln_bias, N, C, eps, stream);
}

void layernorm_fwd(bf16* out, float* mean, float* rstd, const bf16* inp, const bf16* weight, const bf16* bias, int N,
                   int C, float eps, cudaStream_t stream) {
  launch_fwd(nullptr, out, mean, rstd, inp, nullptr, nullptr, weight, bias, N, C, eps, stream);
}

void layernorm_bwd(bf16* dinp, float* dweight, float* dbias, const bf16* dout, const bf16* inp, const bf16* weight,
                   const float* mean, const float* rstd, int N, int C, cudaStream_t stream) {
  if (N == 0) return;
  XP_REQUIRE(ln::fits<bf16>(C), "fused LayerNorm: C = " + std::to_string(C) + " is outside [1, 2048]");
  const bool packed = ln::packable<bf16>(C, dinp, dout, inp, weight);
  const int blocks = ln::bwd_blocks(N);
  float* partials = bwd_partials(ln::bwd_partials_floats(N, C), stream);
  ln::with_slots(ln::slots_for<bf16>(C), [&](auto slots) {
    layernorm_bwd_kernel<decltype(slots)::value><<<blocks, ln::threads_per_block, 2 * C * sizeof(float), stream>>>(
        dinp, partials, dout, inp, weight, mean, rstd, N, C, packed);
  });
  XP_CUDA_CHECK(cudaGetLastError());
  constexpr int params_threads = 256;
  layernorm_bwd_params_kernel<<<(2 * C + params_threads - 1) / params_threads, params_threads, 0, stream>>>(
      dweight, dbias, partials, blocks, C);
  XP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace xp::cuda
