#include "xp/train/sampler.hpp"

#include <cstdio>
#include <string>

#include "xp/core/error.hpp"
#include "xp/core/runtime.hpp"

namespace xp {

const Real* compute_weights(GPT2& model) {
  if (Real* copy = model.compute_weights_copy()) return copy;
  // Only fp32 builds have no copy, and there Real is float.
  return reinterpret_cast<const Real*>(model.params.data());
}

TrainingSampler::TrainingSampler(const Config& config, const ParallelGrid& grid, GPT2& model)
    : settings_(config.sample), seed_(config.train.seed), grid_(grid) {
  agree_on_setup(grid.world(), [&] {
    codec_ = make_run_text_codec(config);  // the data's tokenizer (xp_train resolved it at start-up)
    prompt_ = codec_->encode(settings_.sample_prompt);
    if (prompt_.empty()) throw InputError("sample_prompt is empty: a sample needs at least one prompt token");
    const int64_t total = int64_t(prompt_.size()) + settings_.sample_tokens;
    if (total > config.model.seq_len)
      throw InputError("sample_prompt (" + std::to_string(prompt_.size()) + " tokens) + sample_tokens (" +
                       std::to_string(settings_.sample_tokens) + ") exceed seq_len " +
                       std::to_string(config.model.seq_len) + ", the longest context the model has");
  });
  if (grid.dp_rank() == 0) {
    // Every stage of replica 0 runs its own layers; the last stage's tokens reach them all (rank 0 too).
    const GenerationPipeline pipeline{&grid.pp(), grid.pp_comm(), grid.pp_rank(), grid.layout().pp};
    generator_ = std::make_unique<Generator>(config.model, model.layout(), compute_weights(model), grid.tp(),
                                             static_cast<int>(prompt_.size()) + settings_.sample_tokens, pipeline);
  }
}

void TrainingSampler::after_step(int64_t step) {
  if (!generator_ || settings_.sample_every <= 0 || step % settings_.sample_every != 0) return;
  exec_space().fence();  // the optimizer's last writes to the weights
  const SamplingSettings sampling{settings_.temperature, settings_.top_k, seed_ + static_cast<uint64_t>(step)};
  const std::vector<int32_t> tokens = generator_->generate(prompt_, settings_.sample_tokens, sampling);
  if (grid_.world_rank() != 0) return;
  std::printf("xp_train: sample after step %lld (temperature %g, top_k %d, seed %llu):\n%s%s\n---\n",
              static_cast<long long>(step), settings_.temperature, settings_.top_k,
              static_cast<unsigned long long>(sampling.seed), settings_.sample_prompt.c_str(),
              codec_->decode(tokens).c_str());
  std::fflush(stdout);
}

}  // namespace xp
