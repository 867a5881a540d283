#pragma once
#include <cstdint>

namespace xp {

// out (n) = a (n) + b (n); out may alias a.
void residual_fwd(float* out, const float* a, const float* b, int64_t n);

// Σ x², accumulated in double (the gradient norm of large models).
double sum_squares(const float* x, int64_t n);

}  // namespace xp
