#include "xp/kernels/embedding.hpp"

#include "xp/core/types.hpp"

namespace xp {

void embedding_fwd(Real* out, const int32_t* tokens, const Real* wte, const Real* wpe, int B, int T, int C,
                   int vocab_start, int vocab_count) {
  Kokkos::parallel_for("xp::embedding_fwd", Range(0, int64_t{B} * T * C), KOKKOS_LAMBDA(int64_t i) {
    const int64_t bt = i / C, c = i % C;
    const int local = tokens[bt] - vocab_start;
    const bool owned = local >= 0 && (vocab_count < 0 || local < vocab_count);
    const float token = owned ? to_float(wte[int64_t{local} * C + c]) : 0.0f;
    const float position = wpe ? to_float(wpe[(bt % T) * C + c]) : 0.0f;
    out[i] = to_real(token + position);
  });
}

void embedding_bwd(float* dwte, float* dwpe, const Real* dout, const int32_t* tokens, int B, int T, int C,
                   int vocab_start, int vocab_count) {
  // Chunks of positions per channel, each summed in order and added atomically (repeated tokens meet
  // in the atomics); on the host chunks run in order, so the sum order is fixed there.
  const int64_t positions = int64_t{B} * T, chunks = (positions + column_sum_chunk - 1) / column_sum_chunk;
  Kokkos::parallel_for("xp::embedding_bwd_wte", Range(0, chunks * C), KOKKOS_LAMBDA(int64_t i) {
    const int64_t c = i % C, first = (i / C) * column_sum_chunk;
    const int64_t last = first + column_sum_chunk < positions ? first + column_sum_chunk : positions;
    for (int64_t bt = first; bt < last; ++bt) {
      const int local = tokens[bt] - vocab_start;
      if (local >= 0 && (vocab_count < 0 || local < vocab_count))
        Kokkos::atomic_add(&dwte[int64_t{local} * C + c], to_float(dout[bt * C + c]));
    }
  });
  if (!dwpe) return;
  Kokkos::parallel_for("xp::embedding_bwd_wpe", Range(0, int64_t{T} * C), KOKKOS_LAMBDA(int64_t tc) {
    float sum = 0.0f;
    for (int b = 0; b < B; ++b) sum += to_float(dout[int64_t{b} * T * C + tc]);
    dwpe[tc] += sum;
  });
}

}  // namespace xp
