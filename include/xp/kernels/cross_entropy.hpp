#pragma once
#include <cstdint>

namespace xp {

// Per-row softmax cross-entropy over the first V of Vp logits (padded columns never count).
// logits (N,Vp), targets (N) → losses (N), lse (N) = log Σ exp(logits[:V]) kept for backward.
// Returns Σ losses (double), the sum over this micro-batch.
double cross_entropy_fwd(float* losses, float* lse, const float* logits, const int32_t* targets, int N, int V,
                         int Vp);

// dlogits (N,Vp) = dloss · (softmax - onehot) on the first V columns, 0 on padding. dlogits may alias
// logits. dloss is ∂L/∂loss_n, the same for every row (e.g. 1 / tokens in the global batch).
void cross_entropy_bwd(float* dlogits, const float* logits, const float* lse, const int32_t* targets,
                       float dloss, int N, int V, int Vp);

}  // namespace xp
