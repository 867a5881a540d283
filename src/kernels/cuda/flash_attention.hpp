#pragma once
// Fused flash-style causal attention for the GPU build (bf16 in/out, fp32 accumulation, mma.sync
// tensor cores). qkv, out, dout and dqkv must be 16-byte aligned; errors abort the MPI job.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "flash_attention_workspace.hpp"

namespace xp::cuda {

// Causal multi-head self-attention, GPT-2 layout. qkv (B,T,3C) row-major: q, k, v each (B,T,C) side by side
// (q at columns [0,C), k at [C,2C), v at [2C,3C)), head h at features h*hs..(h+1)*hs, hs = C/NH ∈ {64, 128}.
// out (B,T,C) heads concatenated; lse (B,NH,T) fp32 = log Σ_j exp(scale·q·k_j) over j ≤ t (scale = 1/sqrt(hs)),
// kept for backward. No T×T matrix in memory. Any T ≥ 1 (masking at tile edges).
void flash_attention_fwd(__nv_bfloat16* out, float* lse, const __nv_bfloat16* qkv, int B, int T, int C, int NH,
                         cudaStream_t stream);
// flash_attention_bwd's workspace: flash_attention_bwd_workspace(B, T, C, NH, path) floats
// (flash_attention_workspace.hpp). dqkv (B,T,3C) bf16 overwritten (dq, dk, dv in the qkv layout) from
// dout (B,T,C), the forward's out and lse. `path` chooses how dq is reduced (deterministic by default).
void flash_attention_bwd(__nv_bfloat16* dqkv, float* workspace, const __nv_bfloat16* dout,
                         const __nv_bfloat16* out, const __nv_bfloat16* qkv, const float* lse, int B, int T, int C,
                         int NH, cudaStream_t stream, AttentionBwdPath path = AttentionBwdPath::deterministic_dq);
// The dQ pass of the deterministic path (flash_attention_bwd_dq.cu): dq (first C columns of dqkv) from
// q, k, v, dout, lse and D (B,NH,T) = rowsum(dout∘out). Called by flash_attention_bwd.
void flash_attention_bwd_dq(__nv_bfloat16* dqkv, const __nv_bfloat16* dout, const __nv_bfloat16* qkv,
                            const float* lse, const float* D, int B, int T, int C, int NH, cudaStream_t stream);

}  // namespace xp::cuda
