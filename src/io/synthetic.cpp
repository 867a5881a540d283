#include "xp/io/synthetic.hpp"

#include <algorithm>
#include <cmath>

#include "xp/core/random.hpp"

namespace xp {
namespace {
const uint64_t chain_stream = stream_id("synthetic.successors");
}

SyntheticSource::SyntheticSource(uint64_t seed, uint64_t stream, int vocab_size, int branching, int seq_len)
    : seed_(seed), stream_(stream), vocab_size_(vocab_size), branching_(branching), seq_len_(seq_len),
      successors_(int64_t{vocab_size} * branching) {
  uint64_t draw = 0;
  for (int token = 0; token < vocab_size; ++token) {
    int32_t* next = successors_.data() + int64_t{token} * branching;
    for (int j = 0; j < branching;) {
      const auto candidate = static_cast<int32_t>(random_bits(seed, chain_stream, draw++) % vocab_size);
      if (std::find(next, next + j, candidate) == next + j) next[j++] = candidate;  // distinct successors
    }
  }
}

void SyntheticSource::read(int64_t first, int count, int32_t* tokens) {
  for (int row = 0; row < count; ++row) {
    // Sequences are numbered from the start of the stream, so any rank can make any one of them.
    const uint64_t sequence = static_cast<uint64_t>(cursor.position + first + row);
    const uint64_t base = sequence * static_cast<uint64_t>(seq_len_ + 1);
    int32_t* out = tokens + int64_t{row} * (seq_len_ + 1);
    out[0] = static_cast<int32_t>(random_bits(seed_, stream_, base) % vocab_size_);
    for (int t = 1; t <= seq_len_; ++t) {
      const auto choice = random_bits(seed_, stream_, base + t) % branching_;
      out[t] = successors_[int64_t{out[t - 1]} * branching_ + choice];
    }
  }
}

double SyntheticSource::entropy() const { return std::log(static_cast<double>(branching_)); }

std::string SyntheticSource::describe() const {
  return "synthetic Markov chain, " + std::to_string(branching_) + " successors per token, entropy " +
         std::to_string(entropy()) + " nats/token";
}

}  // namespace xp
