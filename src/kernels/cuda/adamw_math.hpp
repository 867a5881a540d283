#pragma once
// AdamW's arithmetic, shared by every path that updates weights: the Kokkos kernels and the host optimizer
// (src/kernels/adamw.cpp, optimizer offload) and the fused multi-tensor CUDA kernel (fused_adamw.cpp), whose
// block/segment decomposition is also here so that the host emulation (tests/kernels/test_fused_adamw.cpp)
// runs the device's own code.
//
// Same bits on every path: each operation is rounded once, in the order written. Device code says so with
// the _rn intrinsics (nvcc would otherwise contract a·b + c into an fma, and --use_fast_math would make the
// division and the square root approximate); host code is compiled with -ffp-contract=off (CMakeLists.txt),
// and std::sqrt and / are IEEE's.
//
// The fused kernel (memory floor): it reads params, m, v, grads (4 × 4 bytes) and writes params, m, v
// (3 × 4 bytes) and the bf16 compute copy (2 bytes): 30 bytes per parameter. GPT-2 124M (124,475,904
// parameters, vocabulary padded to 50304): 3.73 GB ÷ 4.3 TB/s = 0.87 ms per step (26 µs per 1M parameters).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/cuda/simt.hpp"

namespace xp::adamw {

// Per-step constants; the bias corrections are computed once on the host (in double, then rounded).
struct Constants {
  float beta1, beta2, eps, lr, grad_scale, m_correction, v_correction;
};

#if defined(__CUDA_ARCH__)
__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ float div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ float sqrt(float a) { return __fsqrt_rn(a); }
#else
inline float mul(float a, float b) { return a * b; }
inline float add(float a, float b) { return a + b; }
inline float sub(float a, float b) { return a - b; }
inline float div(float a, float b) { return a / b; }
inline float sqrt(float a) { return std::sqrt(a); }
#endif

// One element: m and v are updated in place, the updated weight is returned. `decay` is the decoupled weight
// decay of the element's tensor (0 for the undecayed ones).
XP_HD float element(const Constants& c, float param, float& m, float& v, float grad, float decay) {
  const float g = mul(grad, c.grad_scale);
  m = add(mul(c.beta1, m), mul(sub(1.0f, c.beta1), g));
  v = add(mul(c.beta2, v), mul(mul(sub(1.0f, c.beta2), g), g));
  const float m_hat = mul(m, c.m_correction), v_hat = mul(v, c.v_correction);
  return sub(param, mul(c.lr, add(div(m_hat, add(sqrt(v_hat), c.eps)), mul(decay, param))));
}

// ---- The fused kernel's decomposition ----
//
// The n values are cut into `width`-element chunks (width 4 when every array allows 16-byte loads, else 1)
// and the chunks into tiles of one chunk per thread of a block. Block b takes tiles b, b + grid, ... (grid
// stride). For each tile the block finds, once, the segment holding the tile's first element (a binary
// search on the same addresses by every thread: uniform loads); each thread then walks forward from there
// for its own elements (segments may end anywhere, even inside a chunk, so each element checks). The last
// n % width values (the scalar tail) are taken by block 0's first threads.

// Everything a launch needs. compute (bf16, may be null) is the compute copy of the weights.
struct Arguments {
  float* params;
  float* m;
  float* v;
  const float* grads;
  simt::bf16* compute;
  int64_t n;
  const int64_t* segment_ends;  // segment s covers [segment_ends[s-1], segment_ends[s]); the last is n.
                                // Null: one segment, decayed (adamw_update)
  const int8_t* decay;          // nonzero: segment s is decayed by weight_decay
  int segments;
  float weight_decay;
  Constants constants;
};

// Whether the 16-byte path applies: params, m, v, grads 16-byte aligned, compute 8-byte aligned (4 bf16).
inline bool vector_aligned(const Arguments& a) {
  auto aligned = [](const void* p, std::uintptr_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; };
  return aligned(a.params, 16) && aligned(a.m, 16) && aligned(a.v, 16) && aligned(a.grads, 16) &&
         (a.compute == nullptr || aligned(a.compute, 8));
}

// Where a thread is in the segment table: the segment holding its current element, that segment's end and
// decay, kept in registers so that each element costs one comparison.
struct Cursor {
  int segment;
  int64_t end;
  float decay;
};

XP_HD Cursor cursor_for(const Arguments& a, int segment) {
  return {segment, a.segment_ends[segment], a.decay[segment] ? a.weight_decay : 0.0f};
}

// The cursor at element i (i < n): a binary search for the first segment whose end lies past i.
XP_HD Cursor find_segment(const Arguments& a, int64_t i) {
  if (!a.segment_ends) return {0, a.n, a.weight_decay};
  int lo = 0, hi = a.segments - 1;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (a.segment_ends[mid] > i) hi = mid;
    else lo = mid + 1;
  }
  return cursor_for(a, lo);
}

// Moves the cursor forward to element i (at or past its segment's start): the decay of i's tensor.
XP_HD float decay_at(const Arguments& a, Cursor& cursor, int64_t i) {
  while (cursor.end <= i) cursor = cursor_for(a, cursor.segment + 1);
  return cursor.decay;
}

XP_HD std::uint16_t bits_of(simt::bf16 x) {
#if defined(__CUDACC__)
  return __bfloat16_as_ushort(x);
#else
  return x.bits;
#endif
}

// One thread's chunk of `width` elements starting at `first`, at or after the cursor's segment.
template <int width>
XP_HD void update_chunk(const Arguments& a, int64_t first, Cursor cursor) {
  if constexpr (width == 4) {
    simt::Pack<float> p = simt::load_pack(a.params + first), m = simt::load_pack(a.m + first),
                      v = simt::load_pack(a.v + first);
    const simt::Pack<float> g = simt::load_pack(a.grads + first);
    std::uint64_t compute = 0;  // 4 bf16: one 8-byte store
    for (int j = 0; j < 4; ++j) {
      const float decay = decay_at(a, cursor, first + j);
      p.v[j] = element(a.constants, p.v[j], m.v[j], v.v[j], g.v[j], decay);
      compute |= std::uint64_t{bits_of(simt::store_bf16(p.v[j]))} << (16 * j);  // little-endian order
    }
    simt::store_pack(a.params + first, p);
    simt::store_pack(a.m + first, m);
    simt::store_pack(a.v + first, v);
#if defined(__CUDA_ARCH__)
    if (a.compute) *reinterpret_cast<std::uint64_t*>(a.compute + first) = compute;
#else
    if (a.compute) std::memcpy(static_cast<void*>(a.compute + first), &compute, sizeof compute);  // no type punning on the host
#endif
  } else {
    float m = a.m[first], v = a.v[first];
    const float p = element(a.constants, a.params[first], m, v, a.grads[first], decay_at(a, cursor, first));
    a.params[first] = p;
    a.m[first] = m;
    a.v[first] = v;
    if (a.compute) a.compute[first] = simt::store_bf16(p);
  }
}

// Thread `thread` of block `block` (of `grid` blocks of `threads` threads): its chunks, then its tail element.
template <int width>
XP_HD void update_thread(const Arguments& a, int block, int grid, int thread, int threads) {
  const int64_t chunked = a.n / width * width, tile = int64_t{threads} * width;
  for (int64_t start = int64_t{block} * tile; start < chunked; start += int64_t{grid} * tile) {
    const Cursor cursor = find_segment(a, start);  // the same for every thread of the block
    const int64_t first = start + int64_t{thread} * width;
    if (first < chunked) update_chunk<width>(a, first, cursor);
  }
  if (block == 0 && thread < a.n - chunked)
    update_chunk<1>(a, chunked + thread, find_segment(a, chunked + thread));
}

// Blocks worth launching: enough for every tile, at most `max_blocks` (the grid stride covers the rest).
inline int blocks_for(int64_t n, int width, int threads, int max_blocks) {
  const int64_t tiles = (n / width + threads - 1) / threads;
  return static_cast<int>(tiles < 1 ? 1 : (tiles < max_blocks ? tiles : max_blocks));
}

// The host's run of the kernel's decomposition, block by block and thread by thread (host arrays).
inline void update_emulated(const Arguments& a, int grid, int threads) {
  const bool vector = vector_aligned(a);
  for (int block = 0; block < grid; ++block)
    for (int thread = 0; thread < threads; ++thread) {
      if (vector) update_thread<4>(a, block, grid, thread, threads);
      else update_thread<1>(a, block, grid, thread, threads);
    }
}

}  // namespace xp::adamw
