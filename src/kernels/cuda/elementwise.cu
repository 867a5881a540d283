// Fused element-wise kernels and the deterministic column sum of the GPU build (elementwise.hpp states
// their memory floors). The arithmetic is elementwise_math.hpp's, shared with the host emulation that
// tests/kernels/test_fused_elementwise.cpp checks against float64.
//
// Compiled without --use_fast_math (CMakeLists.txt): under it nvcc turns GELU's accurate tanhf (≤ 2 ulp)
// into tanh.approx.f32 (relative error ~2^-11), and no macro lets this file notice.
#include "elementwise.hpp"

#include <algorithm>

#define OMPI_SKIP_MPICXX 1  // the C API is enough; the C++ bindings do not compile warning-free
#include "kernels/cuda/elementwise_math.hpp"
#include "xp/core/cuda_check.hpp"

namespace xp::cuda {
namespace {

using bf16 = __nv_bfloat16;
constexpr int threads_per_block = 256;
constexpr int column_block = 64;  // the column sum's passes

// Blocks of `block` threads for `work` items at one item per thread: at most one wave of full occupancy
// (grid-stride beyond).
unsigned grid_for(int64_t work, int block = threads_per_block) {
  static const int threads_per_wave = [] {
    int device = 0, sms = 0, threads_per_sm = 0;
    XP_CUDA_CHECK(cudaGetDevice(&device));
    XP_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    XP_CUDA_CHECK(cudaDeviceGetAttribute(&threads_per_sm, cudaDevAttrMaxThreadsPerMultiProcessor, device));
    return sms * threads_per_sm;
  }();
  const int64_t needed = (work + block - 1) / block;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(needed, threads_per_wave / block)));
}

template <class Op>
__global__ void __launch_bounds__(threads_per_block) elementwise_kernel(Op op, int64_t n, bool vector) {
  simt::elementwise_thread(op, n, vector, int64_t{blockIdx.x} * blockDim.x + threadIdx.x,
                           int64_t{gridDim.x} * blockDim.x);
}

template <class Op>
void launch_elementwise(const Op& op, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vector = op.aligned();
  const int64_t work = vector ? n / simt::pack_width + n % simt::pack_width : n;
  elementwise_kernel<<<grid_for(work), threads_per_block, 0, stream>>>(op, n, vector);
  XP_CUDA_CHECK(cudaGetLastError());
}

template <int W>
__global__ void __launch_bounds__(column_block)
    column_chunks_kernel(float* partial, const bf16* x, int64_t rows, int C, int64_t items) {
  for (int64_t item = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; item < items;
       item += int64_t{gridDim.x} * blockDim.x)
    simt::column_chunk_item<W>(partial, x, rows, C, item);
}

__global__ void __launch_bounds__(column_block)
    column_finish_kernel(float* sums, const float* partial, int64_t chunks, int C) {
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x)
    simt::column_finish(sums, partial, chunks, C, c);
}

// Reinterprets CUDA's bf16 as the shared headers' (the same type in device compilation).
static_assert(sizeof(simt::bf16) == sizeof(bf16), "simt::bf16 is __nv_bfloat16 under nvcc");

}  // namespace

void fused_bias_residual_fwd(bf16* out, const bf16* residual, const bf16* x, const bf16* bias, int N, int C,
                             cudaStream_t stream) {
  launch_elementwise(simt::BiasResidual{out, residual, x, bias, C}, int64_t{N} * C, stream);
}

void fused_bias_add(bf16* out, const bf16* bias, int N, int C, cudaStream_t stream) {
  launch_elementwise(simt::BiasAdd{out, bias, C}, int64_t{N} * C, stream);
}

void fused_gelu_fwd(bf16* out, const bf16* inp, int64_t n, cudaStream_t stream) {
  launch_elementwise(simt::GeluForward{out, inp}, n, stream);
}

void fused_gelu_bwd(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n, cudaStream_t stream) {
  launch_elementwise(simt::GeluBackward{dinp, inp, dout}, n, stream);
}

void fused_convert_to_bf16(bf16* out, const float* x, int64_t n, cudaStream_t stream) {
  launch_elementwise(simt::ConvertToBf16{out, x}, n, stream);
}

int64_t fused_column_sums_scratch(int N, int C) { return simt::column_chunks(N) * C; }

void fused_column_sums_add(float* sums, const bf16* x, int N, int C, float* partial, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  const int64_t chunks = simt::column_chunks(N);
  const int width = simt::column_sums_width(x, N, C);
  const int64_t items = chunks * (C / width);
  // Small blocks, so that few items (C 768: 49152) still reach every SM.
  const unsigned blocks = grid_for(items, column_block);
  if (width == 8) column_chunks_kernel<8><<<blocks, column_block, 0, stream>>>(partial, x, N, C, items);
  else if (width == 2) column_chunks_kernel<2><<<blocks, column_block, 0, stream>>>(partial, x, N, C, items);
  else column_chunks_kernel<1><<<blocks, column_block, 0, stream>>>(partial, x, N, C, items);
  XP_CUDA_CHECK(cudaGetLastError());
  column_finish_kernel<<<grid_for(C, column_block), column_block, 0, stream>>>(sums, partial, chunks, C);
  XP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace xp::cuda
