#pragma once
// Inference with a KV cache: GPT-2's forward for new tokens only, attending to the keys and values of
// every earlier position kept per layer. Uses the training kernels (layernorm, the tensor-parallel
// linear layers, GELU, the vocab-parallel embedding) on this rank's tensor-parallel shard of the
// weights, laid out by ParameterLayout; only attention over the cache is its own kernel.
//
// Tensor parallel: each rank runs its heads and MLP columns, the row-parallel layers sum over tp as in
// training, and the LM head's vocabulary slices are all-gathered so every rank holds the same full
// logits and samples the same token (sampling.hpp).
//
// Pipeline parallel: each stage runs its own layers with its own KV cache. Stage s receives the hidden
// states of the new positions (the prompt's rows, then one row per token) from stage s-1 and sends its
// output to stage s+1; the last stage computes the final LayerNorm and the head and samples, and the
// token is broadcast to every stage of the pipeline (stage 0 embeds it next), so every rank ends with
// the same text.
#include <cstdint>
#include <vector>

#include <mpi.h>

#include "xp/config/config.hpp"
#include "xp/core/types.hpp"
#include "xp/model/layout.hpp"
#include "xp/model/sampling.hpp"
#include "xp/parallel/comm.hpp"

namespace xp {

// The pipeline a generator's stage sits in; the default is one stage (pp = 1).
struct GenerationPipeline {
  Communicator* activations = nullptr;  // the pp group (grid.pp()): hidden states between neighbours
  MPI_Comm tokens = MPI_COMM_NULL;      // the same group over MPI (grid.pp_comm()): host token broadcast
  int stage = 0, stages = 1;            // ranks in both groups are stage numbers
};

class Generator {
 public:
  // `weights`: this rank's compute weights (Real) laid out by `layout`, which holds the layers of
  // `pipeline`'s stage (with one stage: the whole model) for its tp rank; they, `tp` and the pipeline's
  // communicators must outlive the generator. The cache holds `max_tokens` positions (at most the
  // model's seq_len, the rows of its position embedding).
  Generator(const ModelConfig& model, const ParameterLayout& layout, const Real* weights, Communicator& tp,
            int max_tokens, GenerationPipeline pipeline = {});

  int position() const { return position_; }  // tokens in the cache
  int capacity() const { return max_tokens_; }
  void reset() { position_ = 0; }

  // Runs `tokens` at positions position() onwards (a prompt at once, or one new token) and returns the
  // next-token logits after the last of them: vocab_size floats, the same on every tp rank. Collective
  // over the pipeline: every stage calls it with the same tokens; only the last stage gets logits,
  // the others an empty vector.
  const std::vector<float>& feed(const std::vector<int32_t>& tokens);

  // From an empty cache: the prompt, then `count` tokens, each chosen by sample_token(..., draw i) on
  // the last stage and fed back. Returns the `count` new tokens (the same on every tp rank and stage).
  std::vector<int32_t> generate(const std::vector<int32_t>& prompt, int count, const SamplingSettings& settings);

 private:
  const Real* weight(int64_t offset) const { return weights_ + offset; }

  ModelConfig model_;
  const ParameterLayout& layout_;
  const Real* weights_;
  Communicator& tp_;
  GenerationPipeline pipeline_;
  int max_tokens_, position_ = 0;
  int C_local_, heads_local_, vocab_local_, vocab_start_;
  TokenBuffer tokens_;
  HostTokenBuffer host_tokens_;
  RealBuffer x_, ln_, qkv_, atty_, fch_, fch_gelu_, scratch_, k_cache_, v_cache_, logits_;
  FloatBuffer mean_, rstd_, scores_, local_logits_, all_logits_;
  HostFloatBuffer host_logits_;
  std::vector<float> logits_out_;
};

// out (n,C) for the queries of qkv (n,3C) at positions pos..pos+n-1: causal softmax attention over the
// cached keys and values k, v (pos+n, C) of one layer (NH heads of C/NH). scores: n·NH·max_tokens floats.
void cached_attention_fwd(Real* out, float* scores, const Real* qkv, const Real* k, const Real* v, int n, int pos,
                          int C, int NH, int max_tokens);

}  // namespace xp
