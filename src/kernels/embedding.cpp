#include "xp/kernels/embedding.hpp"

#include "xp/core/types.hpp"

namespace xp {

void embedding_fwd(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T, int C,
                   int vocab_start, int vocab_count) {
  Kokkos::parallel_for("xp::embedding_fwd", Range(0, int64_t{B} * T), KOKKOS_LAMBDA(int64_t bt) {
    const int local = tokens[bt] - vocab_start;
    const bool owned = local >= 0 && (vocab_count < 0 || local < vocab_count);
    const float* token_row = wte + int64_t{owned ? local : 0} * C;
    const float* position_row = wpe ? wpe + (bt % T) * C : nullptr;
    float* out_row = out + bt * C;
    for (int c = 0; c < C; ++c)
      out_row[c] = (owned ? token_row[c] : 0.0f) + (position_row ? position_row[c] : 0.0f);
  });
}

void embedding_bwd(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T, int C,
                   int vocab_start, int vocab_count) {
  // Parallel over channels, sequential over positions: repeated tokens never race and the sum order
  // is fixed, so the result is deterministic on every backend.
  Kokkos::parallel_for("xp::embedding_bwd_wte", Range(0, C), KOKKOS_LAMBDA(int64_t c) {
    for (int64_t bt = 0; bt < int64_t{B} * T; ++bt) {
      const int local = tokens[bt] - vocab_start;
      if (local >= 0 && (vocab_count < 0 || local < vocab_count)) dwte[int64_t{local} * C + c] += dout[bt * C + c];
    }
  });
  if (!dwpe) return;
  Kokkos::parallel_for("xp::embedding_bwd_wpe", Range(0, int64_t{T} * C), KOKKOS_LAMBDA(int64_t tc) {
    float sum = 0.0f;
    for (int b = 0; b < B; ++b) sum += dout[int64_t{b} * T * C + tc];
    dwpe[tc] += sum;
  });
}

}  // namespace xp
