#pragma once
#include <cstdint>

namespace xp {

// out (n) = a (n) + b (n); out may alias a.
void residual_fwd(float* out, const float* a, const float* b, int64_t n);

// Σ x²: blocks of 256 summed in float, block sums in double (gradient norms of billions of values).
double sum_squares(const float* x, int64_t n);

}  // namespace xp
