#pragma once
#include <cstdint>

namespace xp {

// out (B,T,C) = wte[tokens[b,t]] (Vp,C) + wpe[t] (T,C)
void embedding_fwd(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T, int C);

// dwte (Vp,C) += scatter of dout by token; dwpe (T,C) += Σ_b dout. dout (B,T,C).
void embedding_bwd(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T, int C);

}  // namespace xp
