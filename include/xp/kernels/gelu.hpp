#pragma once
#include <cstdint>

#include "xp/core/precision.hpp"

namespace xp {

// out (n) = GELU(inp) with GPT-2's tanh approximation.
void gelu_fwd(Real* out, const Real* inp, int64_t n);

// dinp (n) = GELU'(inp) * dout   (overwritten; dinp may alias dout)
void gelu_bwd(Real* dinp, const Real* inp, const Real* dout, int64_t n);

}  // namespace xp
