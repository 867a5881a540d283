#include "xp/kernels/embedding.hpp"

#include <Kokkos_Sort.hpp>

#include "xp/core/types.hpp"
#include "kernels/fixed_order_sum.hpp"

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
  // Scatter by token without atomics: the positions are sorted by (local token, position) — unique
  // keys, so every sort gives the same order — and each token's positions are then added to its row in
  // position order, one team per token (the order the Serial backend always had). Cost: B·T 8-byte keys
  // of scratch and one sort of them.
  const int64_t positions = int64_t{B} * T;
  constexpr int64_t not_local = INT64_MAX;
  int64_t* key_data = static_cast<int64_t*>(reduction_scratch(sizeof(int64_t) * positions));
  Kokkos::View<int64_t*, Kokkos::MemoryTraits<Kokkos::Unmanaged>> keys(key_data, positions);
  Kokkos::parallel_for("xp::embedding_bwd_keys", Range(0, positions), KOKKOS_LAMBDA(int64_t bt) {
    const int local = tokens[bt] - vocab_start;
    const bool owned = local >= 0 && (vocab_count < 0 || local < vocab_count);
    key_data[bt] = owned ? int64_t{local} * positions + bt : not_local;
  });
  Kokkos::sort(keys);
  Kokkos::parallel_for("xp::embedding_bwd_wte", row_policy(positions), KOKKOS_LAMBDA(const RowMember& team) {
    const int64_t i = team.league_rank(), key = key_data[i];
    if (key == not_local) return;
    // This token's keys are [first_key, first_key + positions); the team at its first position does its row.
    const int64_t local = key / positions, first_key = local * positions;
    if (i > 0 && key_data[i - 1] >= first_key) return;
    int64_t end = i + 1;
    while (end < positions && key_data[end] < first_key + positions) ++end;
    float* row = dwte + local * C;
    for (int64_t j = i; j < end; ++j) {  // each thread keeps its channels: every value is added in position order
      const Real* d = dout + (key_data[j] - first_key) * C;
      team_for(team, C, [&](int c) { row[c] += to_float(d[c]); });
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
