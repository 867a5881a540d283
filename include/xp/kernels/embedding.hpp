#pragma once
#include <cstdint>

#include "xp/core/precision.hpp"

namespace xp {

// out (B,T,C) = wte[tokens[b,t] - vocab_start] (Vl,C) + wpe[t] (T,C). With the vocabulary split over
// tensor-parallel ranks this rank holds rows [vocab_start, vocab_start + vocab_count): other tokens
// give zero rows (the ranks' outputs are then summed). wpe may be null (added by one rank only).
// vocab_count < 0: every token is local.
void embedding_fwd(Real* out, const int32_t* tokens, const Real* wte, const Real* wpe, int B, int T, int C,
                   int vocab_start = 0, int vocab_count = -1);

// dwte (Vl,C) += scatter of dout by local token; dwpe (T,C) += Σ_b dout (dwpe may be null). dout (B,T,C).
void embedding_bwd(float* dwte, float* dwpe, const Real* dout, const int32_t* tokens, int B, int T, int C,
                   int vocab_start = 0, int vocab_count = -1);

}  // namespace xp
