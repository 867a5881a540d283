// Fused causal attention, backward: the deterministic dQ pass (see flash_attention_common.cuh for the
// scheme and fragment layouts). flash_attention_bwd runs it after the preprocess (D) and beside the
// dK/dV kernel; together they replace the fp32 dq atomics of the atomic_dq path.
//
// One CTA per (batch·head, block of queries), one warp per 16 query rows with its Q and dO fragments in
// registers, walking the 64-key K/V tiles at and below the diagonal (double-buffered with cp.async, as
// the forward does). Per 32-key chunk of a tile a warp recomputes, in registers:
//   S  = Q·Kᵀ                     (16 × 32, fp32)
//   P  = exp2(S·scale·log2e − lse·log2e), 0 where key > query
//   dP = dO·Vᵀ                    (16 × 32, fp32)
//   dS = P∘(dP − D)               (the gradient of the scaled score; D = rowsum(dout∘out) per row)
//   dQ += dS·K                    (dS rounded to bf16 as an A operand, fp32 accumulators)
// and writes scale·dQ once as bf16. Every dq element is summed by one thread in a fixed order: two runs
// give bit-identical dq. lse and D are per query row, so each thread keeps its two rows' values in registers.
//
// Floor, GPT-2 124M layer (B 32, T 1024, C 768, NH 12, hs 64): bytes it must move = q, k, v, dout read
// (4·2·B·T·C) + dq written (2·B·T·C) + lse, D (8·B·NH·T) = 255 MB → 59 µs at 4.3 TB/s. Tensor work =
// 3 GEMMs over the causal half, 3·2·B·NH·T²/2·hs = 77 GFLOP → 78 µs at the H200's 989 dense bf16
// TFLOP/s (≈ 150 µs at the ~500 TFLOP/s mma.sync reaches): compute-bound, like the rest of attention.
#include "flash_attention_common.cuh"
#include "flash_attention_bwd_math.hpp"

namespace xp::cuda {
namespace {

// Query rows per CTA: 16 per warp. hs 64: 8 warps, ≤ 128 registers, 2 CTAs/SM (72 KB smem each);
// hs 128: 4 warps, ≤ 255 registers (Q, dO and a 16×128 fp32 dQ tile per warp), 2 CTAs/SM (102 KB each).
template <int HS>
constexpr int kDqWarps = attention_dq::warps_per_cta(HS);
static_assert(attention_dq::key_tile == kKeyTile, "the host emulation walks the kernel's key tiles");
// Keys per S/dP register tile (2 × 8 fp32 registers per thread), the loop over the 4 chunks of a tile
// kept rolled, and dO fragments kept in registers for hs 128 only: with these ptxas fits hs 64 in 128
// registers and hs 128 in 246 without spilling (hs 64 with dO in registers spills at 128; so does any
// unrolled chunk loop). hs 64 reloads its dO fragments from shared memory once per chunk.
template <int HS>
constexpr int kDqKeyChunk = attention_dq::key_chunk;
template <int HS>
constexpr bool kDqKeepDo = HS == 128;

template <int HS>
constexpr size_t dq_smem_bytes() { return size_t(2 * 16 * kDqWarps<HS> + 4 * kKeyTile) * (HS + 8) * sizeof(bf16); }

// grid (B·NH, ceil(T/rows)), block 32·warps, rows = 16·warps. Smem: Q, dO [rows][HS+8], K and V [2][64][HS+8].
template <int HS>
__global__ void __launch_bounds__(32 * kDqWarps<HS>, 2)
    attention_bwd_dq_kernel(bf16* __restrict__ dqkv, const bf16* __restrict__ dout, const bf16* __restrict__ qkv,
                            const float* __restrict__ lse, const float* __restrict__ D, int T, int NH, float scale,
                            float scale_log2) {
  constexpr int LD = HS + 8, kRows = 16 * kDqWarps<HS>, kThreads = 32 * kDqWarps<HS>;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);
  bf16* sdO = sQ + kRows * LD;
  bf16* sK = sdO + kRows * LD;
  bf16* sV = sK + 2 * kKeyTile * LD;

  const int C = NH * HS, b = blockIdx.x / NH, h = blockIdx.x % NH;
  const int q0 = (gridDim.y - 1 - blockIdx.y) * kRows;  // the longest rows start first
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, t4 = lane % 4;
  const size_t stride = 3 * size_t(C);
  const bf16* q_ptr = qkv + size_t(b) * T * stride + h * HS;
  const bf16* k_ptr = q_ptr + C;
  const bf16* v_ptr = q_ptr + 2 * C;
  const bf16* do_ptr = dout + size_t(b) * T * C + h * HS;
  const int n_tiles = attention_dq::key_tiles(T, q0, kRows);

  load_tile_async<kRows, HS, kThreads>(sQ, q_ptr + q0 * stride, stride, T - q0, tid);
  load_tile_async<kRows, HS, kThreads>(sdO, do_ptr + size_t(q0) * C, C, T - q0, tid);
  load_kv_tile_async<HS, kThreads>(sK, sV, k_ptr, v_ptr, stride, T, 0, tid);

  const int row0 = q0 + warp * 16;  // this warp's first query row
  bf16* sQw = sQ + warp * 16 * LD;
  const bf16* sdOw = sdO + warp * 16 * LD;
  const int a_off = a_offset(lane, LD), bn_off = bn_offset(lane, LD), bk_off = bk_offset(lane, LD);

  // lse·log2e and D of this thread's rows g and g+8; rows past T get P = exp2(−inf) = 0 (and dS = 0).
  float lse2[2], d_row[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int row = row0 + g + 8 * i;
    const size_t at = (size_t(b) * NH + h) * T + row;
    lse2[i] = row < T ? lse[at] * kLog2e : INFINITY;
    d_row[i] = row < T ? D[at] : 0.f;
  }

  uint32_t qf[HS / 16][4];                    // this warp's Q rows as A fragments, loaded once
  uint32_t dof[kDqKeepDo<HS> ? HS / 16 : 1][4];  // and its dO rows, where they fit
  float dq[HS / 8][4];
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;

  for (int j = 0; j < n_tiles; ++j) {
    cp_async_wait_all();
    __syncthreads();  // tile j visible; everyone is done with the buffer tile j+1 goes to
    if (j + 1 < n_tiles) load_kv_tile_async<HS, kThreads>(sK, sV, k_ptr, v_ptr, stride, T, j + 1, tid);
    if (j == 0) {
#pragma unroll
      for (int kk = 0; kk < HS / 16; ++kk) {
        ldsm_x4(qf[kk], smem_addr(sQw + a_off + kk * 16));
        if (kDqKeepDo<HS>) ldsm_x4(dof[kDqKeepDo<HS> ? kk : 0], smem_addr(sdOw + a_off + kk * 16));
      }
    }
    const int k0 = j * kKeyTile;
    if (row0 >= T || !attention_dq::warp_sees(row0, k0)) continue;  // warp-uniform: no row sees this tile
    const bf16* sKj = sK + (j % 2) * kKeyTile * LD;
    const bf16* sVj = sV + (j % 2) * kKeyTile * LD;
    // The causal mask, on tiles that reach past the warp's first row, also hides keys ≥ T (zero rows).
    const bool mask = attention_dq::tile_needs_mask(row0, k0);

#pragma unroll 1
    for (int kc = 0; kc < kKeyTile; kc += kDqKeyChunk<HS>) {
      if (!attention_dq::warp_sees(row0, k0 + kc)) break;  // warp-uniform: the rest is past the diagonal
      // S = Q·Kᵀ and dP = dO·Vᵀ (16 rows × 16 keys per warp); K and V are [key][feature] = B stored [n][k].
      float s[kDqKeyChunk<HS> / 8][4], dp[kDqKeyChunk<HS> / 8][4];
#pragma unroll
      for (int n = 0; n < kDqKeyChunk<HS> / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
      for (int kk = 0; kk < HS / 16; ++kk) {
        const int dk = kDqKeepDo<HS> ? kk : 0;
        if (!kDqKeepDo<HS>) ldsm_x4(dof[0], smem_addr(sdOw + a_off + kk * 16));
#pragma unroll
        for (int np = 0; np < kDqKeyChunk<HS> / 16; ++np) {
          uint32_t bb[4];
          ldsm_x4(bb, smem_addr(sKj + (kc + np * 16) * LD + bn_off + kk * 16));
          mma_bf16(s[2 * np], qf[kk], bb[0], bb[1]);
          mma_bf16(s[2 * np + 1], qf[kk], bb[2], bb[3]);
          ldsm_x4(bb, smem_addr(sVj + (kc + np * 16) * LD + bn_off + kk * 16));
          mma_bf16(dp[2 * np], dof[dk], bb[0], bb[1]);
          mma_bf16(dp[2 * np + 1], dof[dk], bb[2], bb[3]);
        }
      }

      // dS = P∘(dP − D), written over S; element e of n-tile n is (row g + 8·(e/2), key 8n + 2t + e%2).
#pragma unroll
      for (int n = 0; n < kDqKeyChunk<HS> / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = k0 + kc + n * 8 + 2 * t4 + (e & 1), row = row0 + g + 8 * (e >> 1);
          s[n][e] = attention_dq::masked(mask, key, row)
                        ? 0.f
                        : attention_dq::dscore(exp2_approx(attention_dq::p_exponent(s[n][e], scale_log2, lse2[e >> 1])),
                                               dp[n][e], d_row[e >> 1]);
        }

      // dQ += dS·K (scale applied at the end); K is [key][feature] = B stored [k][n] (.trans).
      mma_acc_times_smem<kDqKeyChunk<HS> / 16, HS, LD>(dq, s, sKj + kc * LD, bk_off);
    }
  }

  if (row0 >= T) return;
  // Stage scale·dQ through the warp's own Q rows (only this warp ever reads them) for 16-byte stores.
  stage_acc16<HS>(sQw, dq, scale, scale, lane);
  __syncwarp();
  store_rows16<HS>(dqkv + (size_t(b) * T + row0) * stride + h * HS, stride, sQw, T - row0, lane);
}

template <int HS>
void launch_dq(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* D, int B, int T, int NH,
               cudaStream_t stream) {
  const float scale = 1.f / std::sqrt(static_cast<float>(HS));
  constexpr int kWarps = kDqWarps<HS>;
  allow_smem(attention_bwd_dq_kernel<HS>, dq_smem_bytes<HS>());
  const dim3 grid(B * NH, (T + 16 * kWarps - 1) / (16 * kWarps));
  attention_bwd_dq_kernel<HS><<<grid, 32 * kWarps, dq_smem_bytes<HS>(), stream>>>(dqkv, dout, qkv, lse, D, T, NH,
                                                                                   scale, scale * kLog2e);
  XP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void flash_attention_bwd_dq(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* D, int B,
                            int T, int C, int NH, cudaStream_t stream) {
  const int hs = head_size(B, T, C, NH);
  require_aligned(dqkv, "dqkv must be 16-byte aligned");
  require_aligned(dout, "dout must be 16-byte aligned");
  require_aligned(qkv, "qkv must be 16-byte aligned");
  if (hs == 64)
    launch_dq<64>(dqkv, dout, qkv, lse, D, B, T, NH, stream);
  else
    launch_dq<128>(dqkv, dout, qkv, lse, D, B, T, NH, stream);
}

}  // namespace xp::cuda
