#pragma once
// Megatron-style tensor-parallel layers over the tp group. Each is named for the dimension it splits;
// the communication sits where a region is entered or left: a column-parallel layer takes the
// replicated input as is (its backward sums the input gradient over tp), a row-parallel layer sums its
// partial outputs over tp (its backward needs no communication). With one rank they are plain layers.
// Activations are Real (bf16 on GPU builds); weight gradients fp32.
#include <cstdint>

#include "xp/core/precision.hpp"
#include "xp/parallel/comm.hpp"

namespace xp {

// Column-parallel linear, output features split: out (N,OCl) = inp (N,C) · weight (OCl,C)ᵀ + bias (OCl).
void column_parallel_fwd(Real* out, const Real* inp, const Real* weight, const Real* bias, int N, int C, int OCl);
// The same followed by GELU: out = GELU(pre), pre (N,OCl) kept for backward (MLP up-projection).
void column_parallel_gelu_fwd(Real* out, Real* pre, const Real* inp, const Real* weight, const Real* bias, int N,
                              int C, int OCl);
// dinp (N,C) = Σ over tp of dout (N,OCl) · weight (overwritten); dweight, dbias (may be null) accumulate.
void column_parallel_bwd(Real* dinp, float* dweight, float* dbias, const Real* dout, const Real* inp,
                         const Real* weight, int N, int C, int OCl, Communicator& tp);

// Row-parallel linear, input features split: out (N,OC) = Σ over tp of inp (N,Cl) · weight (OC,Cl)ᵀ.
// The bias is replicated; the caller adds it after the sum (bias_residual_fwd).
void row_parallel_fwd(Real* out, const Real* inp, const Real* weight, int N, int Cl, int OC, Communicator& tp);
// dinp (N,Cl) = dout (N,OC) · weight (overwritten), times GELU'(gelu_pre) when the input was
// GELU(gelu_pre); dweight accumulates; dbias (OC) += Σ rows dout.
void row_parallel_bwd(Real* dinp, float* dweight, float* dbias, const Real* dout, const Real* inp, const Real* weight,
                      int N, int Cl, int OC, const Real* gelu_pre = nullptr);

// Vocab-parallel token embedding: this rank holds wte rows [vocab_start, vocab_start + Vl); out (B,T,C)
// = Σ over tp of the rows of local tokens, plus wpe (T,C) added by tp rank 0 only.
void vocab_parallel_embedding_fwd(Real* out, const int32_t* tokens, const Real* wte, const Real* wpe, int B, int T,
                                  int C, int vocab_start, int Vl, Communicator& tp);

// Vocab-parallel cross-entropy from this rank's logits (N,Vl), columns [vocab_start, vocab_start + Vl)
// of which the first `valid` are real tokens: losses (N), lse (N); stats is 3N floats of scratch.
// Three per-row reductions over tp (max, Σ exp, target logit); no rank holds all logits. Returns Σ losses,
// or with loss_total adds it to that device double without waiting (cross_entropy_finish).
double vocab_parallel_cross_entropy_fwd(float* losses, float* lse, float* stats, const Real* logits,
                                        const int32_t* targets, int N, int valid, int Vl, int vocab_start,
                                        Communicator& tp, double* loss_total = nullptr);

}  // namespace xp
