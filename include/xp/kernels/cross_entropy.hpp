#pragma once
// Softmax cross-entropy over logits whose vocabulary may be split across tensor-parallel ranks: each
// rank holds columns [vocab_start, vocab_start + Vl) of the padded vocabulary, of which the first
// `valid` are real tokens (padded columns never count). The full loss needs three per-row reductions
// over ranks (max, Σ exp, target logit); with one rank they are the identity.
#include <cstdint>

#include "xp/core/precision.hpp"

namespace xp {

// row_max (N) = max over the valid columns of logits (N,Vl) (-inf-like when none).
void cross_entropy_row_max(float* row_max, const Real* logits, int N, int valid, int Vl);

// sum_exp (N) = Σ over valid columns of exp(logit - row_max).
void cross_entropy_sum_exp(float* sum_exp, const Real* logits, const float* row_max, int N, int valid, int Vl);

// target_logit (N) = logits[n, targets[n] - vocab_start] when this rank holds the target, else 0.
void cross_entropy_target_logit(float* target_logit, const Real* logits, const int32_t* targets, int N, int Vl,
                                int vocab_start);

// losses (N) = row_max + log(sum_exp) - target_logit; lse (N) = row_max + log(sum_exp). Returns Σ losses
// (the host waits for it); with loss_total (one device double) adds Σ losses to it on the device instead, with
// the same bits, and returns 0 without waiting — the trainer reads the step's total once.
double cross_entropy_finish(float* losses, float* lse, const float* row_max, const float* sum_exp,
                            const float* target_logit, int N, double* loss_total = nullptr);

// All of the above on one rank, in one kernel: logits (N,Vp) with the first V columns real.
double cross_entropy_fwd(float* losses, float* lse, const Real* logits, const int32_t* targets, int N, int V,
                         int Vp, double* loss_total = nullptr);

// dlogits (N,Vl) = dloss · (softmax - onehot) on the valid columns, 0 on padding. dlogits may alias
// logits. dloss is ∂L/∂loss_n, the same for every row (e.g. 1 / tokens in the global batch).
void cross_entropy_bwd(Real* dlogits, const Real* logits, const float* lse, const int32_t* targets, float dloss,
                       int N, int valid, int Vl, int vocab_start = 0);

// cross_entropy_fwd and then cross_entropy_bwd(dlogits, logits, lse, targets, dloss, N, V, Vp) in one pass
// over each row (one rank only: with tp > 1 lse needs the all-reduces first), for training, where dloss is
// known before the forward. dlogits may alias logits (then the logits are gone). The same bits as the two
// calls: losses, lse, the returned sum or loss_total, dlogits.
double cross_entropy_fwd_bwd(float* losses, float* lse, Real* dlogits, const Real* logits, const int32_t* targets,
                             float dloss, int N, int V, int Vp, double* loss_total = nullptr);

}  // namespace xp
