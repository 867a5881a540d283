#pragma once
// Shared by the fused attention kernels (flash_attention_fwd.cu, flash_attention_bwd.cu,
// flash_attention_bwd_dq.cu): error checks,
// tile constants, PTX wrappers (cp.async, ldmatrix, mma.sync) and fragment helpers.
//
// Flash-style causal attention (FlashAttention-2 scheme) with bf16 mma.sync tensor-core tiles.
//
// Forward: one CTA per (batch·head, block of queries), one warp per 16 query rows (8 warps for hs 64,
// 4 for hs 128) with its Q fragments in registers; 64-key K/V tiles are double-buffered in shared
// memory with cp.async; key tiles past the diagonal are skipped per warp; online softmax in fp32
// (log2 domain). Saves lse = ln Σ exp(scale·q·k) per row.
// Backward: preprocess D = rowsum(dout∘out); then one CTA per (batch·head, 64 keys), 4 warps of 16
// keys each, walking the 64-query blocks on and below the diagonal: P and dS are recomputed transposed
// (keys × queries) so that they feed dV += Pᵀ·dO and dK += dSᵀ·Q straight from registers. dQ, two ways
// (AttentionBwdPath): deterministic_dq (default) runs a separate dQ pass shaped like the forward (one
// CTA per block of queries, one warp per 16 rows, recomputing S, P, dP and dS per key tile and keeping
// dQ in registers; written once as bf16, no atomics); atomic_dq puts dS through shared memory for
// dQ += dS·K inside the dK/dV kernel, added to a zeroed fp32 accumulator with atomics (varying order),
// and a last pass converts dq to bf16.
//
// Fragment layouts (PTX ISA, mma.m16n8k16, g = lane/4, t = lane%4): A regs {(g,2t) (g+8,2t) (g,2t+8)
// (g+8,2t+8)}, B regs {(k=2t, n=g) (k=2t+8, n=g)}, C {(g,2t) (g,2t+1) (g+8,2t) (g+8,2t+1)}; each
// pair of bf16 in a register holds the lower column in the lower half.
#include "flash_attention.hpp"

#define OMPI_SKIP_MPICXX 1  // the C API is enough; the C++ bindings do not compile warning-free
#include "xp/core/cuda_check.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace xp::cuda {
namespace {

#define FA_REQUIRE(cond, why)                                                                  \
  do {                                                                                         \
    if (!(cond)) ::xp::fatal(__FILE__, __LINE__, std::string("flash attention: ") + #cond + ": " + (why)); \
  } while (0)

using bf16 = __nv_bfloat16;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kKeyTile = 64;     // keys per K/V tile (forward) and per CTA (backward)
// Forward CTA: warps × 16 query rows. hs 64: 8 warps, ≤ 128 registers, 2 CTAs/SM; hs 128: 4 warps,
// ≤ 255 registers (Q and a 16×128 fp32 output tile per warp), 2 CTAs/SM.
template <int HS>
constexpr int kFwdWarps = HS == 64 ? 8 : 4;
constexpr int kBwdRows = 64;     // queries per backward step
constexpr int kBwdThreads = 128; // 4 warps × 16 keys
constexpr int kLdS = kBwdRows + 8;  // padded row of the dSᵀ tile
// Queries per Pᵀ/dSᵀ register tile in backward; with these (and the loop over chunks rolled up for
// hs 128, and for hs 64 without dQ) ptxas fits the dK/dV kernel in 168 (hs 64, 3 CTAs/SM) or 255
// (hs 128) registers without spilling.
template <int HS>
constexpr int kQueryChunk = HS == 64 ? 32 : 16;

// ---- PTX wrappers ------------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global → shared; zero-fills the destination when !valid (src is then not read).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

// d (16×8 fp32) += a (16×16 bf16, row) · b (16×8 bf16, col).
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (lo) in the lower half
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ float exp2_approx(float x) {  // ex2(-inf) = 0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// A operand (16×16 of C-fragments n-tiles 2kk, 2kk+1) from fp32 accumulators, rounded to bf16.
__device__ __forceinline__ void frag_a_from_acc(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = pack_bf16(lo[0], lo[1]);
  a[1] = pack_bf16(lo[2], lo[3]);
  a[2] = pack_bf16(hi[0], hi[1]);
  a[3] = pack_bf16(hi[2], hi[3]);
}

// acc (16 rows × HS: n-tiles 2np, 2np+1) += A·B over 16·K_STEPS of k: A from fp32 accumulator fragments
// (n-tiles 2kk, 2kk+1 of a_src, rounded to bf16), B stored [k][n] in shared memory from sB (row stride LD,
// columns from b_off), loaded transposed. O += P·V, dV += Pᵀ·dO, dK += dSᵀ·Q and dQ += dS·K are all this.
template <int K_STEPS, int HS, int LD>
__device__ __forceinline__ void mma_acc_times_smem(float (*acc)[4], const float (*a_src)[4], const bf16* sB,
                                                   int b_off) {
#pragma unroll
  for (int kk = 0; kk < K_STEPS; ++kk) {
    uint32_t a[4];
    frag_a_from_acc(a, a_src[2 * kk], a_src[2 * kk + 1]);
#pragma unroll
    for (int np = 0; np < HS / 16; ++np) {
      uint32_t bb[4];
      ldsm_x4_trans(bb, smem_addr(sB + kk * 16 * LD + b_off + np * 16));
      mma_bf16(acc[2 * np], a, bb[0], bb[1]);
      mma_bf16(acc[2 * np + 1], a, bb[2], bb[3]);
    }
  }
}

__device__ __forceinline__ void atomic_add_pair(float* addr, float x, float y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float2*>(addr), make_float2(x, y));
#else
  atomicAdd(addr, x);
  atomicAdd(addr + 1, y);
#endif
}

// Lane offsets (elements, in a tile of row pitch ld) for ldmatrix.x4 feeding mma_bf16:
// A stored [m][k] (non-transposed) → a[0..3];
__device__ __forceinline__ int a_offset(int lane, int ld) { return (lane % 16) * ld + (lane / 16) * 8; }
// B stored [n][k] (non-transposed) → {b0,b1} of n-tile 0 and {b0,b1} of n-tile 1; also A stored [k][m] (.trans);
__device__ __forceinline__ int bn_offset(int lane, int ld) { return ((lane / 16) * 8 + lane % 8) * ld + ((lane / 8) % 2) * 8; }
// B stored [k][n] (.trans) → {b0,b1} of n-tile 0 and {b0,b1} of n-tile 1.
__device__ __forceinline__ int bk_offset(int lane, int ld) { return (((lane / 8) % 2) * 8 + lane % 8) * ld + (lane / 16) * 8; }

// ROWS×HS bf16 from src (row r at src + r·stride) into dst (row pitch HS+8); rows ≥ rows_valid read as 0.
template <int ROWS, int HS, int THREADS>
__device__ __forceinline__ void load_tile_async(bf16* dst, const bf16* src, size_t stride, int rows_valid, int tid) {
  constexpr int kChunks = HS / 8;
  static_assert((ROWS * kChunks) % THREADS == 0, "tile must split evenly over the threads");
#pragma unroll
  for (int k = 0; k < ROWS * kChunks / THREADS; ++k) {
    const int i = tid + k * THREADS, r = i / kChunks, c = i % kChunks;
    const bool valid = r < rows_valid;
    cp_async_16(smem_addr(dst + r * (HS + 8) + c * 8), valid ? src + r * stride + c * 8 : src, valid);
  }
}

// Key tile `tile` of K and V (kKeyTile keys from tile·kKeyTile; keys ≥ T read as 0) into buffer tile % 2 of
// the double-buffered sK, sV (row pitch HS + 8), closing the cp.async group (with whatever was issued before).
template <int HS, int THREADS>
__device__ __forceinline__ void load_kv_tile_async(bf16* sK, bf16* sV, const bf16* k_ptr, const bf16* v_ptr,
                                                   size_t stride, int T, int tile, int tid) {
  const int k0 = tile * kKeyTile, buf = tile % 2;
  load_tile_async<kKeyTile, HS, THREADS>(sK + buf * kKeyTile * (HS + 8), k_ptr + k0 * stride, stride, T - k0, tid);
  load_tile_async<kKeyTile, HS, THREADS>(sV + buf * kKeyTile * (HS + 8), v_ptr + k0 * stride, stride, T - k0, tid);
  cp_async_commit();
}


// 16 rows × HS bf16 from a warp's staging tile (pitch HS+8) to global rows dst + r·stride, r < rows_valid.
template <int HS>
__device__ __forceinline__ void store_rows16(bf16* dst, size_t stride, const bf16* src, int rows_valid, int lane) {
  constexpr int kChunks = HS / 8;
#pragma unroll
  for (int k = 0; k < 16 * kChunks / 32; ++k) {
    const int i = lane + k * 32, r = i / kChunks, c = i % kChunks;
    if (r < rows_valid)
      *reinterpret_cast<uint4*>(dst + r * stride + c * 8) = *reinterpret_cast<const uint4*>(src + r * (HS + 8) + c * 8);
  }
}

// A warp's 16×HS fp32 accumulators (times mul) as bf16 into its staging tile (pitch HS+8).
template <int HS>
__device__ __forceinline__ void stage_acc16(bf16* tile, const float (&acc)[HS / 8][4], float mul0, float mul1, int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) {
    *reinterpret_cast<uint32_t*>(tile + g * (HS + 8) + n * 8 + 2 * t) = pack_bf16(acc[n][0] * mul0, acc[n][1] * mul0);
    *reinterpret_cast<uint32_t*>(tile + (g + 8) * (HS + 8) + n * 8 + 2 * t) = pack_bf16(acc[n][2] * mul1, acc[n][3] * mul1);
  }
}

int head_size(int B, int T, int C, int NH) {
  FA_REQUIRE(B >= 1 && T >= 1 && NH >= 1 && C >= 1, "B, T, C and NH must be positive");
  FA_REQUIRE(C % NH == 0, "C must be a multiple of NH");
  const int hs = C / NH;
  FA_REQUIRE(hs == 64 || hs == 128, "head size C/NH must be 64 or 128");
  FA_REQUIRE((T + kKeyTile - 1) / kKeyTile <= 65535, "T too large for the grid");
  return hs;
}

void require_aligned(const void* p, const char* what) {
  FA_REQUIRE(reinterpret_cast<uintptr_t>(p) % 16 == 0, what);
}

template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  XP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

}  // namespace
}  // namespace xp::cuda
