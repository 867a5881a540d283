#include "xp/model/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "xp/core/error.hpp"
#include "xp/core/random.hpp"

namespace xp {
namespace {

// Token ids by logit, largest first, ties by lower id; only the first `keep` are ordered.
std::vector<int32_t> ranked(const std::vector<float>& logits, int keep) {
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + keep, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  ids.resize(keep);
  return ids;
}

int kept_tokens(const std::vector<float>& logits, const SamplingSettings& settings) {
  XP_REQUIRE(!logits.empty(), "sampling from an empty vocabulary");
  for (const float logit : logits) XP_REQUIRE(std::isfinite(logit), "sampling: the logits are not finite");
  if (settings.temperature <= 0.0) return 1;
  const int size = static_cast<int>(logits.size());
  return settings.top_k > 0 ? std::min(settings.top_k, size) : size;
}

// The kept tokens in rank order and their probabilities.
void distribution(const std::vector<float>& logits, const SamplingSettings& settings, std::vector<int32_t>& ids,
                  std::vector<double>& probabilities) {
  ids = ranked(logits, kept_tokens(logits, settings));
  probabilities.assign(ids.size(), 1.0);
  if (settings.temperature <= 0.0) return;
  const double top = logits[ids[0]];
  double sum = 0.0;
  for (size_t i = 0; i < ids.size(); ++i) sum += probabilities[i] = std::exp((logits[ids[i]] - top) / settings.temperature);
  for (double& p : probabilities) p /= sum;
}

}  // namespace

std::vector<double> sampling_probabilities(const std::vector<float>& logits, const SamplingSettings& settings) {
  std::vector<int32_t> ids;
  std::vector<double> kept;
  distribution(logits, settings, ids, kept);
  std::vector<double> probabilities(logits.size(), 0.0);
  for (size_t i = 0; i < ids.size(); ++i) probabilities[ids[i]] = kept[i];
  return probabilities;
}

int32_t sample_token(const std::vector<float>& logits, const SamplingSettings& settings, uint64_t draw) {
  std::vector<int32_t> ids;
  std::vector<double> probabilities;
  distribution(logits, settings, ids, probabilities);
  if (ids.size() == 1) return ids[0];
  const double u = random_uniform(settings.seed, stream_id("xp::sample"), draw);
  double cumulative = 0.0;
  for (size_t i = 0; i < ids.size(); ++i) {
    cumulative += probabilities[i];
    if (u < cumulative) return ids[i];
  }
  return ids.back();  // u beyond a sum that rounded below 1
}

}  // namespace xp
