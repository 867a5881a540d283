#pragma once
// What the fused CUDA kernels (src/kernels/cuda/*.cu) share with their host emulation: one source for
// their arithmetic, compiled by nvcc for the GPU and by g++ for the tests (tests/kernels/test_fused_*).
//
// A fused kernel is written as phases: per-thread work (XP_HD functions of the thread's index) separated
// by block-wide reductions whose order of operations is fixed by (warp, lane). The device runs the
// reductions with warp shuffles and shared memory; the host emulation (block_allreduce_emulated) runs the
// same butterfly in the same order, so the emulated kernel gives the device's bits, up to the device's
// fast-math intrinsics (expf, rsqrtf), and a float64 reference can check its arithmetic without a GPU.
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_bf16.h>  // not precision.hpp: .cu files are compiled by nvcc directly, without Kokkos
#define XP_HD __host__ __device__ __forceinline__
#else
#include "xp/core/precision.hpp"  // bf16_bits / bf16_value, the host's rounding rule
#define XP_HD inline
#endif

namespace xp::simt {

constexpr int warp_size = 32;

// bf16 storage: __nv_bfloat16 in device code, its 16 bits in the host emulation; both round to nearest even.
#if defined(__CUDACC__)
using bf16 = __nv_bfloat16;
XP_HD float load(bf16 x) { return __bfloat162float(x); }
XP_HD bf16 store_bf16(float x) { return __float2bfloat16_rn(x); }
#else
struct bf16 {
  std::uint16_t bits;
};
inline float load(bf16 x) { return bf16_value(x.bits); }
inline bf16 store_bf16(float x) { return bf16{bf16_bits(x)}; }
#endif
XP_HD float load(float x) { return x; }
template <class T>
XP_HD T store(float x);
template <>
XP_HD float store<float>(float x) { return x; }
template <>
XP_HD bf16 store<bf16>(float x) { return store_bf16(x); }

// 16 bytes of T: one 128-bit load or store (8 bf16 or 4 floats). The pointer must be 16-byte aligned.
template <class T>
struct alignas(16) Pack {
  static constexpr int size = 16 / static_cast<int>(sizeof(T));
  T v[size];
};
template <class T>
XP_HD Pack<T> load_pack(const T* p) { return *reinterpret_cast<const Pack<T>*>(p); }
template <class T>
XP_HD void store_pack(T* p, const Pack<T>& pack) { *reinterpret_cast<Pack<T>*>(p) = pack; }

// A few floats reduced together (e.g. an online softmax's running max and sum).
template <int N>
struct Floats {
  float v[N];
};

struct Sum {
  XP_HD float operator()(float a, float b) const { return a + b; }
};
struct Max {
  XP_HD float operator()(float a, float b) const { return a > b ? a : b; }
};

#if defined(__CUDACC__)
__device__ __forceinline__ float shfl_xor(float v, int offset) { return __shfl_xor_sync(0xffffffffu, v, offset); }
template <int N>
__device__ __forceinline__ Floats<N> shfl_xor(const Floats<N>& x, int offset) {
  Floats<N> y;
  for (int i = 0; i < N; ++i) y.v[i] = __shfl_xor_sync(0xffffffffu, x.v[i], offset);
  return y;
}

// Every lane ends with op over the warp's 32 values: lane i combines op(own, lane i^offset's) for offsets
// 16, 8, 4, 2, 1. With a commutative op every lane holds the same bits.
template <class T, class Op>
__device__ __forceinline__ T warp_allreduce(T v, Op op) {
  for (int offset = warp_size / 2; offset > 0; offset /= 2) v = op(v, shfl_xor(v, offset));
  return v;
}

// Every thread of the block (blockDim.x a multiple of 32, at most 1024) ends with op over the block's
// values: each warp reduces its own, warp results go through `shared` (≥ 32 T), and every warp reduces
// those (lanes past the last warp contribute `identity`). Ends with a barrier, so `shared` may be reused.
template <class T, class Op>
__device__ __forceinline__ T block_allreduce(T v, Op op, T identity, T* shared) {
  const int lane = threadIdx.x % warp_size, warp = threadIdx.x / warp_size, warps = blockDim.x / warp_size;
  v = warp_allreduce(v, op);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = warp_allreduce(lane < warps ? shared[lane] : identity, op);
  __syncthreads();
  return v;
}
#endif

// The host's twin of warp_allreduce: lanes[32] all end with the device's result, in its order.
template <class T, class Op>
void warp_allreduce_emulated(T* lanes, Op op) {
  T next[warp_size];
  for (int offset = warp_size / 2; offset > 0; offset /= 2) {
    for (int lane = 0; lane < warp_size; ++lane) next[lane] = op(lanes[lane], lanes[lane ^ offset]);
    for (int lane = 0; lane < warp_size; ++lane) lanes[lane] = next[lane];
  }
}

// The host's twin of block_allreduce over one value per thread of a block of `threads` (a multiple of 32,
// at most 1024) threads: the result every device thread gets.
template <class T, class Op>
T block_allreduce_emulated(const T* values, int threads, Op op, T identity) {
  const int warps = threads / warp_size;
  T per_warp[warp_size];
  for (int warp = 0; warp < warps; ++warp) {
    T lanes[warp_size];
    for (int lane = 0; lane < warp_size; ++lane) lanes[lane] = values[warp * warp_size + lane];
    warp_allreduce_emulated(lanes, op);
    per_warp[warp] = lanes[0];
  }
  T lanes[warp_size];
  for (int lane = 0; lane < warp_size; ++lane) lanes[lane] = lane < warps ? per_warp[lane] : identity;
  warp_allreduce_emulated(lanes, op);
  return lanes[0];
}

}  // namespace xp::simt
