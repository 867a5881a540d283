#pragma once
#include <cstdint>

namespace xp {

// out (n) = GELU(inp) with GPT-2's tanh approximation.
void gelu_fwd(float* out, const float* inp, int64_t n);

// dinp (n) = GELU'(inp) * dout   (overwritten)
void gelu_bwd(float* dinp, const float* inp, const float* dout, int64_t n);

}  // namespace xp
