// Fused causal attention, backward (see flash_attention_common.cuh for the scheme and layouts): the
// preprocess (D, and the zeroed fp32 dq of atomic_dq), the dK/dV kernel, and flash_attention_bwd, which
// runs either path (AttentionBwdPath, flash_attention_workspace.hpp). The deterministic path's dQ pass
// is flash_attention_bwd_dq.cu.
//
// Floor of the dK/dV kernel alone, GPT-2 124M layer (B 32, T 1024, C 768, NH 12, hs 64): q, k, v, dout
// read, dk, dv written (6·2·B·T·C) + lse, D (8·B·NH·T) = 305 MB → 71 µs at 4.3 TB/s; tensor work 4 GEMMs
// (S, dP, dV, dK) over the causal half = 103 GFLOP → 104 µs at 989 TFLOP/s: compute-bound. atomic_dq adds
// the 5th GEMM (dQ) and T/64 fp32 atomic adds per dq element (B·T·C·T/64 = 400 M, 1.6 GB of atomics).
#include "flash_attention_common.cuh"

namespace xp::cuda {
namespace {

// ---- backward ----------------------------------------------------------------------------------

// acc (16 × COLS, mma fragments) = A · Bᵀ over HS: A is this warp's 16 rows in shared memory (`a`, already
// offset by the lane's ldmatrix A position), B is COLS rows of HS in shared memory (`b`, offset by the
// lane's B position), both with row stride ld. Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ of the backward.
template <int HS, int COLS>
__device__ __forceinline__ void warp_rows_times_cols_t(float (&acc)[COLS / 8][4], const bf16* a, const bf16* b,
                                                       int ld) {
#pragma unroll
  for (int n = 0; n < COLS / 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < HS / 16; ++kk) {
    uint32_t fa[4];
    ldsm_x4(fa, smem_addr(a + kk * 16));
#pragma unroll
    for (int np = 0; np < COLS / 16; ++np) {
      uint32_t fb[4];
      ldsm_x4(fb, smem_addr(b + np * 16 * ld + kk * 16));
      mma_bf16(acc[2 * np], fa, fb[0], fb[1]);
      mma_bf16(acc[2 * np + 1], fa, fb[2], fb[3]);
    }
  }
}

// One group of HS/8 threads per (b,t,h): D[b,h,t] = Σ dout·out, and zero dq_acc (B,T,C) for the row
// unless dq_acc is null (the deterministic path has none).
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
    if (dq_acc != nullptr) {
      const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
      reinterpret_cast<float4*>(dq_acc + off)[0] = zero;
      reinterpret_cast<float4*>(dq_acc + off)[1] = zero;
    }
  }
#pragma unroll
  for (int w = kGroup / 2; w > 0; w /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, w);
  if (row < rows && idx % kGroup == 0) {
    const size_t bt = row / NH, h = row % NH, b = bt / T, t = bt % T;
    D[(b * NH + h) * T + t] = sum;
  }
}

// Query blocks in shared memory: atomic_dq overlaps the next block's loads with its dQ step; without
// dQ there is nothing to overlap them with, so the block after next is loaded into a second buffer.
template <bool kAtomicDq>
constexpr int kQueryBuffers = kAtomicDq ? 1 : 2;

template <int HS, bool kAtomicDq>
constexpr size_t bwd_smem_bytes() {
  return size_t(2 * kKeyTile + 2 * kQueryBuffers<kAtomicDq> * kBwdRows) * (HS + 8) * sizeof(bf16) +
         (kAtomicDq ? size_t(kKeyTile) * kLdS * sizeof(bf16) : 0) +
         2 * kQueryBuffers<kAtomicDq> * kBwdRows * sizeof(float);
}

// grid (B·NH, ceil(T/64)), block 128. Smem: K, V [64][HS+8]; Q, dO [buffers][64][HS+8] (query block);
// atomic_dq: dSᵀ [64 keys][64+8]; lse·log2e and D [buffers][64] (query block). Computes dK and dV; with
// kAtomicDq also adds dQ into dq_acc.
template <int HS, bool kAtomicDq>
__global__ void __launch_bounds__(kBwdThreads, HS == 64 ? 3 : 2)
    attention_bwd_kernel(bf16* __restrict__ dqkv, float* __restrict__ dq_acc, const float* __restrict__ D,
                         const bf16* __restrict__ dout, const bf16* __restrict__ qkv, const float* __restrict__ lse,
                         int T, int NH, float scale, float scale_log2) {
  constexpr int LD = HS + 8, kBuffers = kQueryBuffers<kAtomicDq>;
  static_assert(kBwdThreads == 2 * kBwdRows, "lse and D are loaded one value per thread");
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);
  bf16* sV = sK + kKeyTile * LD;
  bf16* sQ0 = sV + kKeyTile * LD;               // [buffers][64][LD]
  bf16* sdO0 = sQ0 + kBuffers * kBwdRows * LD;  // [buffers][64][LD]
  bf16* sdS = sdO0 + kBuffers * kBwdRows * LD;  // dSᵀ [key][query], atomic_dq only
  float* sLse0 = reinterpret_cast<float*>(sdS + (kAtomicDq ? kKeyTile * kLdS : 0));
  float* sD0 = sLse0 + kBuffers * kBwdRows;

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

  auto load_query_block = [&](int q0, int buf) {
    load_tile_async<kBwdRows, HS, kBwdThreads>(sQ0 + buf * kBwdRows * LD, q_ptr + q0 * stride, stride, T - q0, tid);
    load_tile_async<kBwdRows, HS, kBwdThreads>(sdO0 + buf * kBwdRows * LD, do_ptr + size_t(q0) * C, C, T - q0, tid);
    if (tid < kBwdRows) {
      const int q = q0 + tid;  // rows past T get P = exp2(-inf) = 0
      sLse0[buf * kBwdRows + tid] = q < T ? lse_bh[q] * kLog2e : INFINITY;
    } else {
      const int q = q0 + tid - kBwdRows;
      sD0[buf * kBwdRows + tid - kBwdRows] = q < T ? D_bh[q] : 0.f;
    }
  };
  load_tile_async<kKeyTile, HS, kBwdThreads>(sK, k_ptr + k0 * stride, stride, T - k0, tid);
  load_tile_async<kKeyTile, HS, kBwdThreads>(sV, v_ptr + k0 * stride, stride, T - k0, tid);
  load_query_block(k0, 0);
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
    __syncthreads();  // Q, dO, lse, D of this block visible; without dQ, everyone is done with the other buffer
    if (!kAtomicDq && qb + 1 < n_qb) {
      load_query_block(q0 + kBwdRows, (qb - kb + 1) % kBuffers);
      cp_async_commit();
    }
    const int buf = (qb - kb) % kBuffers;
    const bf16* sQ = sQ0 + buf * kBwdRows * LD;
    const bf16* sdO = sdO0 + buf * kBwdRows * LD;
    const float* sLse = sLse0 + buf * kBwdRows;
    const float* sD = sD0 + buf * kBwdRows;

    // The 64 queries go in chunks so that Pᵀ and dPᵀ (fp32) stay small next to dK and dV.
    const bool diagonal = qb == kb;  // q0 == k0: mask key > query
#pragma unroll(HS == 64 && kAtomicDq ? 2 : 1)
    for (int qc = 0; qc < kBwdRows; qc += kQueryChunk<HS>) {
      // Sᵀ = K·Qᵀ (16 keys × one chunk of queries per warp), then Pᵀ = exp2(Sᵀ·scale·log2e − lse·log2e).
      float pt[kQueryChunk<HS> / 8][4];
      warp_rows_times_cols_t<HS, kQueryChunk<HS>>(pt, sKw + a_off, sQ + qc * LD + bn_off, LD);
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
      mma_acc_times_smem<kQueryChunk<HS> / 16, HS, LD>(dv, pt, sdO + qc * LD, bk_off);

      // dPᵀ = V·dOᵀ, then dSᵀ = Pᵀ∘(dPᵀ − D) (gradient of the scaled score).
      float dst[kQueryChunk<HS> / 8][4];
      warp_rows_times_cols_t<HS, kQueryChunk<HS>>(dst, sVw + a_off, sdO + qc * LD + bn_off, LD);
#pragma unroll
      for (int n = 0; n < kQueryChunk<HS> / 8; ++n) {
        const float2 d2 = *reinterpret_cast<const float2*>(sD + qc + n * 8 + 2 * t4);
#pragma unroll
        for (int e = 0; e < 4; ++e) dst[n][e] = pt[n][e] * (dst[n][e] - ((e & 1) ? d2.y : d2.x));
      }

      // dK += dSᵀ·Q (scale applied at the end); atomic_dq: dSᵀ to shared memory for dQ.
      mma_acc_times_smem<kQueryChunk<HS> / 16, HS, LD>(dk, dst, sQ + qc * LD, bk_off);
      if (kAtomicDq) {
#pragma unroll
        for (int n = 0; n < kQueryChunk<HS> / 8; ++n) {
          bf16* ds = sdS + (key_w + g) * kLdS + qc + n * 8 + 2 * t4;
          *reinterpret_cast<uint32_t*>(ds) = pack_bf16(dst[n][0], dst[n][1]);
          *reinterpret_cast<uint32_t*>(ds + 8 * kLdS) = pack_bf16(dst[n][2], dst[n][3]);
        }
      }
    }
    if (!kAtomicDq) continue;
    __syncthreads();  // dSᵀ complete; Q, dO, lse, D of this block no longer read

    if (qb + 1 < n_qb) {  // overlap the next block's loads with dQ
      load_query_block(q0 + kBwdRows, 0);
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
  bf16* sdKw = sQ0 + warp * 16 * LD;
  bf16* sdVw = sdO0 + warp * 16 * LD;
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

// dq_acc null: the deterministic path (dK/dV kernel without dQ; dQ by flash_attention_bwd_dq).
template <int HS>
void launch_bwd(bf16* dqkv, float* dq_acc, float* D, const bf16* dout, const bf16* out, const bf16* qkv,
                const float* lse, int B, int T, int NH, cudaStream_t stream) {
  const int C = NH * HS;
  const size_t rows = size_t(B) * T * NH, threads = 256;
  const size_t pre_blocks = (rows * (HS / 8) + threads - 1) / threads;
  FA_REQUIRE(pre_blocks <= 0x7fffffffu, "B·T·C too large");
  attention_bwd_preprocess<HS><<<static_cast<unsigned>(pre_blocks), threads, 0, stream>>>(D, dq_acc, dout, out, B,
                                                                                           T, NH);
  XP_CUDA_CHECK(cudaGetLastError());

  const float scale = 1.f / std::sqrt(static_cast<float>(HS));
  const dim3 grid(B * NH, (T + kKeyTile - 1) / kKeyTile);
  if (dq_acc == nullptr) {
    allow_smem(attention_bwd_kernel<HS, false>, bwd_smem_bytes<HS, false>());
    attention_bwd_kernel<HS, false><<<grid, kBwdThreads, bwd_smem_bytes<HS, false>(), stream>>>(
        dqkv, nullptr, D, dout, qkv, lse, T, NH, scale, scale * kLog2e);
    XP_CUDA_CHECK(cudaGetLastError());
    flash_attention_bwd_dq(dqkv, dout, qkv, lse, D, B, T, C, NH, stream);
    return;
  }
  allow_smem(attention_bwd_kernel<HS, true>, bwd_smem_bytes<HS, true>());
  attention_bwd_kernel<HS, true><<<grid, kBwdThreads, bwd_smem_bytes<HS, true>(), stream>>>(
      dqkv, dq_acc, D, dout, qkv, lse, T, NH, scale, scale * kLog2e);
  XP_CUDA_CHECK(cudaGetLastError());

  const size_t n8 = size_t(B) * T * C / 8;
  const unsigned blocks = static_cast<unsigned>(std::min<size_t>((n8 + threads - 1) / threads, 65536));
  attention_dq_to_bf16<<<blocks, threads, 0, stream>>>(dqkv, dq_acc, n8, C);
  XP_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void flash_attention_bwd(bf16* dqkv, float* workspace, const bf16* dout, const bf16* out, const bf16* qkv,
                         const float* lse, int B, int T, int C, int NH, cudaStream_t stream, AttentionBwdPath path) {
  const int hs = head_size(B, T, C, NH);
  require_aligned(dqkv, "dqkv must be 16-byte aligned");
  require_aligned(dout, "dout must be 16-byte aligned");
  require_aligned(out, "out must be 16-byte aligned");
  require_aligned(qkv, "qkv must be 16-byte aligned");
  FA_REQUIRE(reinterpret_cast<uintptr_t>(workspace) % sizeof(float) == 0, "workspace must be float-aligned");
  // The layout flash_attention_bwd_workspace sizes: [dq_acc (B,T,C), atomic_dq only] D (B,NH,T).
  float* base = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(workspace) + 15) & ~uintptr_t{15});
  float* dq_acc = path == AttentionBwdPath::atomic_dq ? base : nullptr;
  float* D = path == AttentionBwdPath::atomic_dq ? base + size_t(B) * T * C : base;
  if (hs == 64)
    launch_bwd<64>(dqkv, dq_acc, D, dout, out, qkv, lse, B, T, NH, stream);
  else
    launch_bwd<128>(dqkv, dq_acc, D, dout, out, qkv, lse, B, T, NH, stream);
}

}  // namespace xp::cuda
