// Flash-style causal attention (FlashAttention-2 scheme) with bf16 mma.sync tensor-core tiles.
//
// Forward: one CTA per (batch·head, block of queries), one warp per 16 query rows (8 warps for hs 64,
// 4 for hs 128) with its Q fragments in registers; 64-key K/V tiles are double-buffered in shared
// memory with cp.async; key tiles past the diagonal are skipped per warp; online softmax in fp32
// (log2 domain). Saves lse = ln Σ exp(scale·q·k) per row.
// Backward: preprocess D = rowsum(dout∘out) and zero an fp32 dq accumulator; then one CTA per
// (batch·head, 64 keys), 4 warps of 16 keys each, walking the 64-query blocks on and below the
// diagonal: P and dS are recomputed transposed (keys × queries) so that they feed dV += Pᵀ·dO and
// dK += dSᵀ·Q straight from registers; dS goes through shared memory for dQ += dS·K, which is added
// to the fp32 accumulator with atomics; a last pass converts dq to bf16.
//
// Fragment layouts (PTX ISA, mma.m16n8k16, g = lane/4, t = lane%4): A regs {(g,2t) (g+8,2t) (g,2t+8)
// (g+8,2t+8)}, B regs {(k=2t, n=g) (k=2t+8, n=g)}, C {(g,2t) (g,2t+1) (g+8,2t) (g+8,2t+1)}; each
// pair of bf16 in a register holds the lower column in the lower half.
#include "flash_attention.hpp"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace xp::cuda {
namespace {

[[noreturn]] void fail(const char* file, int line, const char* what, const char* why) {
  int initialized = 0, finalized = 0, rank = -1;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  const bool mpi_up = initialized && !finalized;
  if (mpi_up) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::fprintf(stderr, "flash_attention: rank %d: %s:%d: %s: %s\n", rank, file, line, what, why);
  std::fflush(stderr);
  if (mpi_up) MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // without MPI (standalone tools) there is no job to take down
}

#define FA_CUDA_CHECK(call)                                                                 \
  do {                                                                                      \
    const cudaError_t fa_rc_ = (call);                                                      \
    if (fa_rc_ != cudaSuccess) fail(__FILE__, __LINE__, #call, cudaGetErrorString(fa_rc_)); \
  } while (0)
#define FA_REQUIRE(cond, why)                           \
  do {                                                  \
    if (!(cond)) fail(__FILE__, __LINE__, #cond, why);  \
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
// hs 128) ptxas fits the kernel in 168 (hs 64, 3 CTAs/SM) or 255 (hs 128) registers without spilling.
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

// ---- forward -----------------------------------------------------------------------------------

template <int HS>
constexpr size_t fwd_smem_bytes() { return size_t(16 * kFwdWarps<HS> + 4 * kKeyTile) * (HS + 8) * sizeof(bf16); }

// grid (B·NH, ceil(T/rows)), block 32·warps, rows = 16·warps. Smem: Q [rows][HS+8], K and V [2][64][HS+8].
template <int HS>
__global__ void __launch_bounds__(32 * kFwdWarps<HS>, 2)
    attention_fwd_kernel(bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ qkv, int T, int NH,
                         float scale_log2) {
  constexpr int LD = HS + 8, kFwdRows = 16 * kFwdWarps<HS>, kFwdThreads = 32 * kFwdWarps<HS>;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);
  bf16* sK = sQ + kFwdRows * LD;
  bf16* sV = sK + 2 * kKeyTile * LD;

  const int C = NH * HS, b = blockIdx.x / NH, h = blockIdx.x % NH;
  const int q0 = (gridDim.y - 1 - blockIdx.y) * kFwdRows;  // the longest rows start first
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const size_t stride = 3 * size_t(C);
  const bf16* q_ptr = qkv + size_t(b) * T * stride + h * HS;
  const bf16* k_ptr = q_ptr + C;
  const bf16* v_ptr = q_ptr + 2 * C;
  const int n_tiles = min((T + kKeyTile - 1) / kKeyTile, (q0 + kFwdRows - 1) / kKeyTile + 1);

  load_tile_async<kFwdRows, HS, kFwdThreads>(sQ, q_ptr + q0 * stride, stride, T - q0, tid);
  load_tile_async<kKeyTile, HS, kFwdThreads>(sK, k_ptr, stride, T, tid);
  load_tile_async<kKeyTile, HS, kFwdThreads>(sV, v_ptr, stride, T, tid);
  cp_async_commit();

  const int row0 = q0 + warp * 16;  // this warp's first query row
  bf16* sQw = sQ + warp * 16 * LD;
  const int a_off = a_offset(lane, LD), bn_off = bn_offset(lane, LD), bk_off = bk_offset(lane, LD);

  uint32_t qf[HS / 16][4];  // this warp's Q rows as A fragments, loaded once
  float o[HS / 8][4];
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m_run[2] = {-INFINITY, -INFINITY};  // running row max of scale·log2e·s (rows g, g+8)
  float l_run[2] = {0.f, 0.f};              // this thread's part of the running row sum

  for (int j = 0; j < n_tiles; ++j) {
    cp_async_wait_all();
    __syncthreads();  // tile j visible; everyone is done with the buffer tile j+1 goes to
    if (j + 1 < n_tiles) {
      const int kn = (j + 1) * kKeyTile, buf = (j + 1) % 2;
      load_tile_async<kKeyTile, HS, kFwdThreads>(sK + buf * kKeyTile * LD, k_ptr + kn * stride, stride, T - kn, tid);
      load_tile_async<kKeyTile, HS, kFwdThreads>(sV + buf * kKeyTile * LD, v_ptr + kn * stride, stride, T - kn, tid);
      cp_async_commit();
    }
    if (j == 0) {
#pragma unroll
      for (int kk = 0; kk < HS / 16; ++kk) ldsm_x4(qf[kk], smem_addr(sQw + a_off + kk * 16));
    }
    const int k0 = j * kKeyTile;
    if (row0 >= T || k0 > row0 + 15) continue;  // warp-uniform: no row of this warp sees this tile
    const bf16* sKj = sK + (j % 2) * kKeyTile * LD;
    const bf16* sVj = sV + (j % 2) * kKeyTile * LD;

    // S = Q·Kᵀ (16 rows × 64 keys per warp)
    float s[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HS / 16; ++kk) {
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t bb[4];
        ldsm_x4(bb, smem_addr(sKj + np * 16 * LD + bn_off + kk * 16));
        mma_bf16(s[2 * np], qf[kk], bb[0], bb[1]);
        mma_bf16(s[2 * np + 1], qf[kk], bb[2], bb[3]);
      }
    }

    // Causal mask on tiles that reach past the warp's first row (this also hides keys ≥ T).
    if (k0 + kKeyTile - 1 > row0) {
#pragma unroll
      for (int n = 0; n < 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (k0 + n * 8 + 2 * t4 + (e & 1) > row0 + g + 8 * (e >> 1)) s[n][e] = -INFINITY;
    }

    // Online softmax. Every row of an active warp has an unmasked key in this tile (k0 ≤ row0).
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      mx[0] = fmaxf(mx[0], fmaxf(s[n][0], s[n][1]));
      mx[1] = fmaxf(mx[1], fmaxf(s[n][2], s[n][3]));
    }
    float m_use[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      const float m_new = fmaxf(m_run[i], mx[i] * scale_log2);
      m_use[i] = m_new == -INFINITY ? 0.f : m_new;
      const float alpha = exp2_approx(m_run[i] - m_use[i]);
      m_run[i] = m_new;
      l_run[i] *= alpha;
#pragma unroll
      for (int n = 0; n < HS / 8; ++n) o[n][2 * i] *= alpha, o[n][2 * i + 1] *= alpha;
    }
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = exp2_approx(fmaf(s[n][e], scale_log2, -m_use[e >> 1]));
        l_run[e >> 1] += s[n][e];
      }

    // O += P·V
#pragma unroll
    for (int kk = 0; kk < kKeyTile / 16; ++kk) {
      uint32_t a[4];
      frag_a_from_acc(a, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int np = 0; np < HS / 16; ++np) {
        uint32_t bb[4];
        ldsm_x4_trans(bb, smem_addr(sVj + kk * 16 * LD + bk_off + np * 16));
        mma_bf16(o[2 * np], a, bb[0], bb[1]);
        mma_bf16(o[2 * np + 1], a, bb[2], bb[3]);
      }
    }
  }

  if (row0 >= T) return;
  float inv[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l_run[i] += __shfl_xor_sync(0xffffffffu, l_run[i], 1);
    l_run[i] += __shfl_xor_sync(0xffffffffu, l_run[i], 2);
    inv[i] = 1.f / l_run[i];
  }
  // Stage O through the warp's own Q rows (only this warp ever reads them) for 16-byte stores.
  stage_acc16<HS>(sQw, o, inv[0], inv[1], lane);
  __syncwarp();
  store_rows16<HS>(out + (size_t(b) * T + row0) * C + h * HS, C, sQw, T - row0, lane);
  if (t4 == 0) {
    float* lse_bh = lse + (size_t(b) * NH + h) * T;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int row = row0 + g + 8 * i;
      if (row < T) lse_bh[row] = (m_run[i] + log2f(l_run[i])) * kLn2;
    }
  }
}

// ---- backward ----------------------------------------------------------------------------------

// One group of HS/8 threads per (b,t,h): D[b,h,t] = Σ dout·out, and zero dq_acc (B,T,C) for the row.
template <int HS>
__global__ void attention_bwd_preprocess(float* __restrict__ D, float* __restrict__ dq_acc,
                                         const bf16* __restrict__ dout, const bf16* __restrict__ out, int B, int T,
                                         int NH) {
  constexpr int kGroup = HS / 8;
  const size_t idx = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t row = idx / kGroup, rows = size_t(B) * T * NH;  // row = (b·T + t)·NH + h
  const size_t off = row * HS + (idx % kGroup) * 8;
  float sum = 0.f;
  if (row < rows) {
    const uint4 dv = *reinterpret_cast<const uint4*>(dout + off);
    const uint4 ov = *reinterpret_cast<const uint4*>(out + off);
    const __nv_bfloat162* d2 = reinterpret_cast<const __nv_bfloat162*>(&dv);
    const __nv_bfloat162* o2 = reinterpret_cast<const __nv_bfloat162*>(&ov);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 df = __bfloat1622float2(d2[i]), of = __bfloat1622float2(o2[i]);
      sum = fmaf(df.x, of.x, fmaf(df.y, of.y, sum));
    }
    const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
    reinterpret_cast<float4*>(dq_acc + off)[0] = zero;
    reinterpret_cast<float4*>(dq_acc + off)[1] = zero;
  }
#pragma unroll
  for (int w = kGroup / 2; w > 0; w /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, w);
  if (row < rows && idx % kGroup == 0) {
    const size_t bt = row / NH, h = row % NH, b = bt / T, t = bt % T;
    D[(b * NH + h) * T + t] = sum;
  }
}

template <int HS>
constexpr size_t bwd_smem_bytes() {
  return size_t(2 * kKeyTile + 2 * kBwdRows) * (HS + 8) * sizeof(bf16) + size_t(kKeyTile) * kLdS * sizeof(bf16) +
         2 * kBwdRows * sizeof(float);
}

// grid (B·NH, ceil(T/64)), block 128. Smem: K, V [64][HS+8]; Q, dO [64][HS+8] (query block);
// dSᵀ [64 keys][64+8]; lse·log2e and D [64] (query block).
template <int HS>
__global__ void __launch_bounds__(kBwdThreads, HS == 64 ? 3 : 2)
    attention_bwd_kernel(bf16* __restrict__ dqkv, float* __restrict__ dq_acc, const float* __restrict__ D,
                         const bf16* __restrict__ dout, const bf16* __restrict__ qkv, const float* __restrict__ lse,
                         int T, int NH, float scale, float scale_log2) {
  constexpr int LD = HS + 8;
  static_assert(kBwdThreads == 2 * kBwdRows, "lse and D are loaded one value per thread");
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);
  bf16* sV = sK + kKeyTile * LD;
  bf16* sQ = sV + kKeyTile * LD;
  bf16* sdO = sQ + kBwdRows * LD;
  bf16* sdS = sdO + kBwdRows * LD;  // dSᵀ [key][query]
  float* sLse = reinterpret_cast<float*>(sdS + kKeyTile * kLdS);
  float* sD = sLse + kBwdRows;

  const int C = NH * HS, b = blockIdx.x / NH, h = blockIdx.x % NH;
  const int kb = blockIdx.y, k0 = kb * kKeyTile;  // block 0 (the most query blocks) starts first
  const int n_qb = (T + kBwdRows - 1) / kBwdRows;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const size_t stride = 3 * size_t(C);
  const bf16* q_ptr = qkv + size_t(b) * T * stride + h * HS;
  const bf16* k_ptr = q_ptr + C;
  const bf16* v_ptr = q_ptr + 2 * C;
  const bf16* do_ptr = dout + size_t(b) * T * C + h * HS;
  const float* lse_bh = lse + (size_t(b) * NH + h) * T;
  const float* D_bh = D + (size_t(b) * NH + h) * T;

  auto load_query_block = [&](int q0) {
    load_tile_async<kBwdRows, HS, kBwdThreads>(sQ, q_ptr + q0 * stride, stride, T - q0, tid);
    load_tile_async<kBwdRows, HS, kBwdThreads>(sdO, do_ptr + size_t(q0) * C, C, T - q0, tid);
    if (tid < kBwdRows) {
      const int q = q0 + tid;  // rows past T get P = exp2(-inf) = 0
      sLse[tid] = q < T ? lse_bh[q] * kLog2e : INFINITY;
    } else {
      const int q = q0 + tid - kBwdRows;
      sD[tid - kBwdRows] = q < T ? D_bh[q] : 0.f;
    }
  };
  load_tile_async<kKeyTile, HS, kBwdThreads>(sK, k_ptr + k0 * stride, stride, T - k0, tid);
  load_tile_async<kKeyTile, HS, kBwdThreads>(sV, v_ptr + k0 * stride, stride, T - k0, tid);
  load_query_block(k0);
  cp_async_commit();

  const int a_off = a_offset(lane, LD), bn_off = bn_offset(lane, LD), bk_off = bk_offset(lane, LD);
  const int ds_off = bn_offset(lane, kLdS);  // dS as an A operand read from dSᵀ with .trans
  const bf16* sKw = sK + warp * 16 * LD;
  const bf16* sVw = sV + warp * 16 * LD;
  const int key_w = warp * 16;  // this warp's first key within the block

  float dk[HS / 8][4], dv[HS / 8][4];
#pragma unroll
  for (int n = 0; n < HS / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.f;

  for (int qb = kb; qb < n_qb; ++qb) {
    const int q0 = qb * kBwdRows;
    cp_async_wait_all();
    __syncthreads();  // Q, dO, lse, D of this block visible

    // The 64 queries go in chunks so that Pᵀ and dPᵀ (fp32) stay small next to dK and dV.
    const bool diagonal = qb == kb;  // q0 == k0: mask key > query
#pragma unroll(HS == 64 ? 2 : 1)
    for (int qc = 0; qc < kBwdRows; qc += kQueryChunk<HS>) {
      // Sᵀ = K·Qᵀ (16 keys × one chunk of queries per warp), then Pᵀ = exp2(Sᵀ·scale·log2e − lse·log2e).
      float pt[kQueryChunk<HS> / 8][4];
#pragma unroll
      for (int n = 0; n < kQueryChunk<HS> / 8; ++n) pt[n][0] = pt[n][1] = pt[n][2] = pt[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < HS / 16; ++kk) {
        uint32_t a[4];
        ldsm_x4(a, smem_addr(sKw + a_off + kk * 16));
#pragma unroll
        for (int np = 0; np < kQueryChunk<HS> / 16; ++np) {
          uint32_t bb[4];
          ldsm_x4(bb, smem_addr(sQ + (qc + np * 16) * LD + bn_off + kk * 16));
          mma_bf16(pt[2 * np], a, bb[0], bb[1]);
          mma_bf16(pt[2 * np + 1], a, bb[2], bb[3]);
        }
      }
#pragma unroll
      for (int n = 0; n < kQueryChunk<HS> / 8; ++n) {
        const int q = qc + n * 8 + 2 * t4;  // query of element e = 0 within the block
        const float2 l2 = *reinterpret_cast<const float2*>(sLse + q);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float p = exp2_approx(fmaf(pt[n][e], scale_log2, -((e & 1) ? l2.y : l2.x)));
          const bool masked = diagonal && key_w + g + 8 * (e >> 1) > q + (e & 1);
          pt[n][e] = masked ? 0.f : p;
        }
      }

      // dV += Pᵀ·dO
#pragma unroll
      for (int kk = 0; kk < kQueryChunk<HS> / 16; ++kk) {
        uint32_t a[4];
        frag_a_from_acc(a, pt[2 * kk], pt[2 * kk + 1]);
#pragma unroll
        for (int np = 0; np < HS / 16; ++np) {
          uint32_t bb[4];
          ldsm_x4_trans(bb, smem_addr(sdO + (qc + kk * 16) * LD + bk_off + np * 16));
          mma_bf16(dv[2 * np], a, bb[0], bb[1]);
          mma_bf16(dv[2 * np + 1], a, bb[2], bb[3]);
        }
      }

      // dPᵀ = V·dOᵀ, then dSᵀ = Pᵀ∘(dPᵀ − D) (gradient of the scaled score).
      float dst[kQueryChunk<HS> / 8][4];
#pragma unroll
      for (int n = 0; n < kQueryChunk<HS> / 8; ++n) dst[n][0] = dst[n][1] = dst[n][2] = dst[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < HS / 16; ++kk) {
        uint32_t a[4];
        ldsm_x4(a, smem_addr(sVw + a_off + kk * 16));
#pragma unroll
        for (int np = 0; np < kQueryChunk<HS> / 16; ++np) {
          uint32_t bb[4];
          ldsm_x4(bb, smem_addr(sdO + (qc + np * 16) * LD + bn_off + kk * 16));
          mma_bf16(dst[2 * np], a, bb[0], bb[1]);
          mma_bf16(dst[2 * np + 1], a, bb[2], bb[3]);
        }
      }
#pragma unroll
      for (int n = 0; n < kQueryChunk<HS> / 8; ++n) {
        const float2 d2 = *reinterpret_cast<const float2*>(sD + qc + n * 8 + 2 * t4);
#pragma unroll
        for (int e = 0; e < 4; ++e) dst[n][e] = pt[n][e] * (dst[n][e] - ((e & 1) ? d2.y : d2.x));
      }

      // dK += dSᵀ·Q (scale applied at the end); dSᵀ to shared memory for dQ.
#pragma unroll
      for (int kk = 0; kk < kQueryChunk<HS> / 16; ++kk) {
        uint32_t a[4];
        frag_a_from_acc(a, dst[2 * kk], dst[2 * kk + 1]);
#pragma unroll
        for (int np = 0; np < HS / 16; ++np) {
          uint32_t bb[4];
          ldsm_x4_trans(bb, smem_addr(sQ + (qc + kk * 16) * LD + bk_off + np * 16));
          mma_bf16(dk[2 * np], a, bb[0], bb[1]);
          mma_bf16(dk[2 * np + 1], a, bb[2], bb[3]);
        }
      }
#pragma unroll
      for (int n = 0; n < kQueryChunk<HS> / 8; ++n) {
        bf16* ds = sdS + (key_w + g) * kLdS + qc + n * 8 + 2 * t4;
        *reinterpret_cast<uint32_t*>(ds) = pack_bf16(dst[n][0], dst[n][1]);
        *reinterpret_cast<uint32_t*>(ds + 8 * kLdS) = pack_bf16(dst[n][2], dst[n][3]);
      }
    }
    __syncthreads();  // dSᵀ complete; Q, dO, lse, D of this block no longer read

    if (qb + 1 < n_qb) {  // overlap the next block's loads with dQ
      load_query_block(q0 + kBwdRows);
      cp_async_commit();
    }

    // dQ[q0 + 16·warp .. +16] += scale · dS·K, 64 features at a time.
#pragma unroll
    for (int nc = 0; nc < HS / 64; ++nc) {
      float acc[8][4];
#pragma unroll
      for (int n = 0; n < 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kKeyTile / 16; ++kk) {
        uint32_t a[4];
        ldsm_x4_trans(a, smem_addr(sdS + kk * 16 * kLdS + ds_off + warp * 16));
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t bb[4];
          ldsm_x4_trans(bb, smem_addr(sK + kk * 16 * LD + bk_off + nc * 64 + np * 16));
          mma_bf16(acc[2 * np], a, bb[0], bb[1]);
          mma_bf16(acc[2 * np + 1], a, bb[2], bb[3]);
        }
      }
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int q = q0 + warp * 16 + g + 8 * i;
        if (q < T) {
          float* row = dq_acc + (size_t(b) * T + q) * C + h * HS + nc * 64 + 2 * t4;
#pragma unroll
          for (int n = 0; n < 8; ++n) atomic_add_pair(row + n * 8, acc[n][2 * i] * scale, acc[n][2 * i + 1] * scale);
        }
      }
    }
  }

  // dK, dV of this warp's 16 keys, staged through its own rows of the (now idle) Q and dO tiles.
  __syncthreads();
  bf16* sdKw = sQ + warp * 16 * LD;
  bf16* sdVw = sdO + warp * 16 * LD;
  stage_acc16<HS>(sdKw, dk, scale, scale, lane);
  stage_acc16<HS>(sdVw, dv, 1.f, 1.f, lane);
  __syncwarp();
  const int key0 = k0 + key_w;
  bf16* dk_ptr = dqkv + (size_t(b) * T + key0) * stride + C + h * HS;
  store_rows16<HS>(dk_ptr, stride, sdKw, T - key0, lane);
  store_rows16<HS>(dk_ptr + C, stride, sdVw, T - key0, lane);
}

// dq (B,T,C) fp32 → the first C columns of dqkv (B,T,3C), 8 values per thread.
__global__ void attention_dq_to_bf16(bf16* __restrict__ dqkv, const float* __restrict__ dq_acc, size_t n8, int C) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n8; i += size_t(gridDim.x) * blockDim.x) {
    const size_t e = i * 8, row = e / C, col = e % C;
    const float4 x = reinterpret_cast<const float4*>(dq_acc + e)[0];
    const float4 y = reinterpret_cast<const float4*>(dq_acc + e)[1];
    uint4 v;
    v.x = pack_bf16(x.x, x.y);
    v.y = pack_bf16(x.z, x.w);
    v.z = pack_bf16(y.x, y.y);
    v.w = pack_bf16(y.z, y.w);
    *reinterpret_cast<uint4*>(dqkv + row * 3 * C + col) = v;
  }
}

// ---- host side ---------------------------------------------------------------------------------

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
  FA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

template <int HS>
void launch_fwd(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, cudaStream_t stream) {
  const float scale_log2 = kLog2e / std::sqrt(static_cast<float>(HS));
  constexpr int kWarps = kFwdWarps<HS>;
  allow_smem(attention_fwd_kernel<HS>, fwd_smem_bytes<HS>());
  const dim3 grid(B * NH, (T + 16 * kWarps - 1) / (16 * kWarps));
  attention_fwd_kernel<HS><<<grid, 32 * kWarps, fwd_smem_bytes<HS>(), stream>>>(out, lse, qkv, T, NH, scale_log2);
  FA_CUDA_CHECK(cudaGetLastError());
}

template <int HS>
void launch_bwd(bf16* dqkv, float* dq_acc, float* D, const bf16* dout, const bf16* out, const bf16* qkv,
                const float* lse, int B, int T, int NH, cudaStream_t stream) {
  const int C = NH * HS;
  const size_t rows = size_t(B) * T * NH, threads = 256;
  const size_t pre_blocks = (rows * (HS / 8) + threads - 1) / threads;
  FA_REQUIRE(pre_blocks <= 0x7fffffffu, "B·T·C too large");
  attention_bwd_preprocess<HS><<<static_cast<unsigned>(pre_blocks), threads, 0, stream>>>(D, dq_acc, dout, out, B,
                                                                                           T, NH);
  FA_CUDA_CHECK(cudaGetLastError());

  const float scale = 1.f / std::sqrt(static_cast<float>(HS));
  allow_smem(attention_bwd_kernel<HS>, bwd_smem_bytes<HS>());
  const dim3 grid(B * NH, (T + kKeyTile - 1) / kKeyTile);
  attention_bwd_kernel<HS><<<grid, kBwdThreads, bwd_smem_bytes<HS>(), stream>>>(dqkv, dq_acc, D, dout, qkv, lse, T,
                                                                                 NH, scale, scale * kLog2e);
  FA_CUDA_CHECK(cudaGetLastError());

  const size_t n8 = size_t(B) * T * C / 8;
  const unsigned blocks = static_cast<unsigned>(std::min<size_t>((n8 + threads - 1) / threads, 65536));
  attention_dq_to_bf16<<<blocks, threads, 0, stream>>>(dqkv, dq_acc, n8, C);
  FA_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void flash_attention_fwd(bf16* out, float* lse, const bf16* qkv, int B, int T, int C, int NH, cudaStream_t stream) {
  const int hs = head_size(B, T, C, NH);
  require_aligned(out, "out must be 16-byte aligned");
  require_aligned(qkv, "qkv must be 16-byte aligned");
  if (hs == 64)
    launch_fwd<64>(out, lse, qkv, B, T, NH, stream);
  else
    launch_fwd<128>(out, lse, qkv, B, T, NH, stream);
}

// dq accumulator (B,T,C) first, then D (B,NH,T); 4 spare floats let a 4-byte-aligned workspace be
// rounded up to 16 bytes.
size_t flash_attention_bwd_workspace(int B, int T, int C, int NH) {
  return size_t(B) * T * C + size_t(B) * NH * T + 4;
}

void flash_attention_bwd(bf16* dqkv, float* workspace, const bf16* dout, const bf16* out, const bf16* qkv,
                         const float* lse, int B, int T, int C, int NH, cudaStream_t stream) {
  const int hs = head_size(B, T, C, NH);
  require_aligned(dqkv, "dqkv must be 16-byte aligned");
  require_aligned(dout, "dout must be 16-byte aligned");
  require_aligned(out, "out must be 16-byte aligned");
  require_aligned(qkv, "qkv must be 16-byte aligned");
  FA_REQUIRE(reinterpret_cast<uintptr_t>(workspace) % sizeof(float) == 0, "workspace must be float-aligned");
  float* dq_acc = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(workspace) + 15) & ~uintptr_t{15});
  float* D = dq_acc + size_t(B) * T * C;
  if (hs == 64)
    launch_bwd<64>(dqkv, dq_acc, D, dout, out, qkv, lse, B, T, NH, stream);
  else
    launch_bwd<128>(dqkv, dq_acc, D, dout, out, qkv, lse, B, T, NH, stream);
}

}  // namespace xp::cuda
