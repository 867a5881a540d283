#include "xp/model/partition.hpp"

#include <algorithm>
#include <string>

#include "xp/core/error.hpp"

namespace xp {

int64_t block_cost(const ModelConfig& model) {
  const int64_t C = model.n_embd, T = model.seq_len;
  return 12 * C * C + 2 * T * C;
}

int64_t embedding_cost(const ModelConfig& model) { return int64_t{model.padded_vocab()} * model.n_embd; }

std::vector<StageRange> partition_layers(const ModelConfig& model, int stages) {
  const int L = model.n_layer;
  if (stages < 1) throw InputError("pp_stages " + std::to_string(stages) + " < 1: a model needs at least one stage");
  if (stages > L)
    throw InputError("pp_stages " + std::to_string(stages) + " > n_layer " + std::to_string(L) +
                     ": every pipeline stage needs at least one layer (use pp_stages ≤ " + std::to_string(L) + ")");
  const int64_t block = block_cost(model), ends = embedding_cost(model);
  // Fixed cost of each stage besides its blocks: the embedding on the first, the head on the last.
  std::vector<int64_t> extra(stages, 0);
  extra.front() += ends;
  extra.back() += ends;

  // Blocks cost the same, so a bound M on the largest stage caps each stage at (M − extra)/block
  // layers; the optimum is the smallest candidate M whose caps (each ≥ 1) add up to n_layer.
  auto caps_for = [&](int64_t bound) {
    std::vector<int64_t> caps(stages);
    for (int s = 0; s < stages; ++s) caps[s] = bound < extra[s] ? 0 : std::min<int64_t>(L, (bound - extra[s]) / block);
    return caps;
  };
  auto feasible = [&](int64_t bound) {
    int64_t total = 0;
    for (int64_t cap : caps_for(bound)) {
      if (cap < 1) return false;
      total += cap;
    }
    return total >= L;
  };
  std::vector<int64_t> candidates;
  for (int n = 1; n <= L; ++n)
    for (int s = 0; s < stages; ++s) candidates.push_back(n * block + extra[s]);
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  const int64_t best = *std::partition_point(candidates.begin(), candidates.end(),
                                             [&](int64_t bound) { return !feasible(bound); });

  // Lexicographically smallest counts under the caps: each stage takes only what later stages cannot.
  const std::vector<int64_t> caps = caps_for(best);
  std::vector<StageRange> ranges(stages);
  int64_t later_capacity = 0;
  for (int64_t cap : caps) later_capacity += cap;
  int first = 0;
  for (int s = 0; s < stages; ++s) {
    later_capacity -= caps[s];
    const int remaining = L - first;
    const int count = static_cast<int>(std::max<int64_t>(1, remaining - later_capacity));
    ranges[s] = {first, first + count, s == 0, s == stages - 1};
    first += count;
  }
  return ranges;
}

Placement placement_of(const StageRange& stage, int tp_size, int tp_rank) {
  Placement placement;
  placement.tp_size = tp_size;
  placement.tp_rank = tp_rank;
  placement.first_layer = stage.first_layer;
  placement.last_layer = stage.last_layer;
  placement.has_embedding = stage.has_embedding;
  placement.has_head = stage.has_head;
  return placement;
}

}  // namespace xp
