#pragma once
// Choosing the next token from the logits: greedy (temperature 0) or a draw from softmax(logits / T)
// restricted to the top_k largest logits. The draw is counter-based (core/random.hpp): it depends only
// on (seed, draw index) and the logits, so every tensor-parallel rank, given the same gathered logits,
// picks the same token without any communication.
#include <cstdint>
#include <vector>

namespace xp {

struct SamplingSettings {
  double temperature = 1.0;  // 0 = greedy (argmax)
  int top_k = 0;             // 0 = the whole vocabulary
  uint64_t seed = 0;
};

// The probability of each token (logits.size() of them) under `settings`: 1 at the argmax when greedy.
// Ties of logits go to the lower token id (for the argmax and for the top_k cut). Aborts on non-finite logits.
std::vector<double> sampling_probabilities(const std::vector<float>& logits, const SamplingSettings& settings);

// Token `draw` of a generation: greedy, or inverse-CDF sampling of sampling_probabilities with the
// uniform number (settings.seed, draw).
int32_t sample_token(const std::vector<float>& logits, const SamplingSettings& settings, uint64_t draw);

}  // namespace xp
