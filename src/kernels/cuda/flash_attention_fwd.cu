// Fused causal attention, forward (see flash_attention_common.cuh for the scheme and layouts).
#include "flash_attention_common.cuh"

namespace xp::cuda {
namespace {

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
  load_kv_tile_async<HS, kFwdThreads>(sK, sV, k_ptr, v_ptr, stride, T, 0, tid);

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
    if (j + 1 < n_tiles) load_kv_tile_async<HS, kFwdThreads>(sK, sV, k_ptr, v_ptr, stride, T, j + 1, tid);
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
    mma_acc_times_smem<kKeyTile / 16, HS, LD>(o, s, sVj, bk_off);
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

template <int HS>
void launch_fwd(bf16* out, float* lse, const bf16* qkv, int B, int T, int NH, cudaStream_t stream) {
  const float scale_log2 = kLog2e / std::sqrt(static_cast<float>(HS));
  constexpr int kWarps = kFwdWarps<HS>;
  allow_smem(attention_fwd_kernel<HS>, fwd_smem_bytes<HS>());
  const dim3 grid(B * NH, (T + 16 * kWarps - 1) / (16 * kWarps));
  attention_fwd_kernel<HS><<<grid, 32 * kWarps, fwd_smem_bytes<HS>(), stream>>>(out, lse, qkv, T, NH, scale_log2);
  XP_CUDA_CHECK(cudaGetLastError());
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

}  // namespace xp::cuda
