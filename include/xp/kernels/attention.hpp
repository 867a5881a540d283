#pragma once
// Causal multi-head self-attention. GPU builds with head size 64 or 128: a fused flash-style CUDA kernel
// (src/kernels/cuda/flash_attention_{fwd,bwd}.cu) that keeps only the log-sum-exp of each query row (B,NH,T) and
// recomputes the rest in backward. Otherwise (every CPU build; other head sizes on GPU): a Kokkos
// kernel that keeps the softmax probabilities (B,NH,T,T).
#include <cstdint>

#include "xp/core/precision.hpp"

namespace xp {

// Whether a build of `precision` runs the fused kernel for C/NH (the rule attention_fwd/bwd follow).
bool attention_fused(int C, int NH, const Precision& precision);
// Floats of `stats` that attention_fwd keeps per micro-batch for backward, in a build of `precision`
// (this build's by default; the run plan asks for other builds' too).
int64_t attention_stats_size(int B, int T, int C, int NH, const Precision& precision = build_precision);
// Floats of scratch attention_bwd needs, in a build of `precision`.
int64_t attention_scratch_size(int B, int T, int C, int NH, const Precision& precision = build_precision);

// qkv (B,T,3C): q, k, v each (B,T,C) side by side, head h at features h*hs..(h+1)*hs.
// out (B,T,C) heads concatenated; stats (attention_stats_size) kept for backward.
void attention_fwd(Real* out, float* stats, const Real* qkv, int B, int T, int C, int NH);

// dqkv (B,T,3C) overwritten from dout (B,T,C), the forward's out, qkv and stats.
void attention_bwd(Real* dqkv, float* scratch, const Real* dout, const Real* out, const Real* qkv,
                   const float* stats, int B, int T, int C, int NH);

}  // namespace xp
