// The fused multi-tensor AdamW kernel: a CUDA build's .cpp, compiled through nvcc_wrapper. The device runs
// adamw::update_thread (adamw_math.hpp), the same function the host emulation runs block by block.
#include "kernels/cuda/fused_adamw.hpp"

// Only MPI's C API is used; its deprecated C++ bindings warn under -Wextra when included with -I.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include "xp/core/cuda_check.hpp"

namespace xp::cuda {
namespace {

constexpr int threads_per_block = 512;

template <int width>
__global__ void __launch_bounds__(threads_per_block) adamw_kernel(const adamw::Arguments a) {
  adamw::update_thread<width>(a, blockIdx.x, gridDim.x, threadIdx.x, blockDim.x);
}

// Blocks to fill the device a few times over; more only add tile searches (the grid stride covers the rest).
int max_blocks() {
  static const int blocks = [] {
    int device = 0, sms = 0;
    XP_CUDA_CHECK(cudaGetDevice(&device));
    XP_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    return 4 * sms;
  }();
  return blocks;
}

}  // namespace

void fused_adamw(const adamw::Arguments& a, cudaStream_t stream) {
  if (a.n <= 0) return;
  const bool vector = adamw::vector_aligned(a);
  const int width = vector ? 4 : 1;
  const int grid = adamw::blocks_for(a.n, width, threads_per_block, max_blocks());
  if (vector) adamw_kernel<4><<<grid, threads_per_block, 0, stream>>>(a);
  else adamw_kernel<1><<<grid, threads_per_block, 0, stream>>>(a);
  XP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace xp::cuda
