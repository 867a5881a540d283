#pragma once
// Samples during training (deck keys sample_every, sample_tokens, sample_prompt, temperature, top_k):
// every sample_every steps the ranks of data-parallel replica 0 (its tp groups, and with pp > 1 every
// pipeline stage, each on its own layers) generate from the current weights with a KV cache
// (model/generator.hpp); the last stage samples, every stage receives the tokens, and world rank 0
// (stage 0) prints the decoded text. Other replicas skip it (theirs are the same weights).
#include <cstdint>
#include <memory>
#include <vector>

#include "xp/config/config.hpp"
#include "xp/io/text_codec.hpp"
#include "xp/model/generator.hpp"
#include "xp/model/gpt2.hpp"
#include "xp/parallel/grid.hpp"

namespace xp {

class TrainingSampler {
 public:
  // Collective over the grid: an unusable setting (a prompt too long for seq_len or empty, a
  // byte the vocabulary lacks) throws InputError on every rank.
  TrainingSampler(const Config& config, const ParallelGrid& grid, GPT2& model);

  // After optimizer step `step` (steps done): samples when it is a multiple of sample_every.
  void after_step(int64_t step);

 private:
  SampleConfig settings_;
  uint64_t seed_;
  const ParallelGrid& grid_;
  std::unique_ptr<TextCodec> codec_;
  std::vector<int32_t> prompt_;
  std::unique_ptr<Generator> generator_;  // on the ranks that take part
};

// The compute weights of `model` as Real: the bf16 copy where there is one, else the fp32 params.
const Real* compute_weights(GPT2& model);

}  // namespace xp
