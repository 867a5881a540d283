#pragma once
// GPT-2 as published: learned position embeddings, pre-LayerNorm blocks, causal multi-head attention,
// tanh-GELU MLP of width 4C, final LayerNorm, LM head tied to the token embedding, vocabulary padded
// to Vp with padded logits excluded from the loss. Forward is one loop over blocks; backward is the
// same steps in reverse.
#include <cstdint>

#include "xp/config/config.hpp"
#include "xp/core/types.hpp"
#include "xp/model/layout.hpp"

namespace xp {

class GPT2 {
 public:
  // Activations are sized for micro-batches of up to `max_batch` sequences of model.seq_len tokens.
  GPT2(const ModelConfig& model, int max_batch);

  const ModelConfig& config() const { return model_; }
  const ParameterLayout& layout() const { return layout_; }
  int max_batch() const { return max_batch_; }

  // Normal(0, std) weights (residual projections scaled by 1/sqrt(2·n_layer)), zero biases, unit
  // LayerNorm gains. Each element depends only on (seed, tensor name, index), not on the layout.
  void init_weights(uint64_t seed, double std);

  // sequences: host array (B, T+1) of token ids; inputs are columns 0..T-1, targets 1..T.
  // Returns the sum of the B·T token losses.
  double forward(const int32_t* sequences, int B);

  // Adds to grads the gradient of dloss · Σ losses of the last forward.
  void backward(float dloss);

  void zero_grads();

  FloatBuffer params;  // flat fp32 weights, laid out by layout()
  FloatBuffer grads;   // same layout

 private:
  // Offsets into acts_: per-block tensors are [n_layer][max_batch·T·width].
  struct ActivationOffsets {
    int64_t encoded, ln1, ln1_mean, ln1_rstd, qkv, atty, att, residual2, ln2, ln2_mean, ln2_rstd, fch,
        fch_gelu, residual3, lnf, lnf_mean, lnf_rstd, logits, lse, losses, scratch, total;
  };
  // Offsets into grad_acts_ (reused by every block during backward).
  struct GradOffsets {
    int64_t dresidual, dC, d3C, d4C, attention_scratch, total;
  };
  float* act(int64_t offset) { return acts_.data() + offset; }
  float* grad_act(int64_t offset) { return grad_acts_.data() + offset; }
  float* param(int64_t offset) { return params.data() + offset; }
  float* grad(int64_t offset) { return grads.data() + offset; }

  ModelConfig model_;
  ParameterLayout layout_;
  int max_batch_;
  int batch_ = 0;  // B of the last forward
  ActivationOffsets a_;
  GradOffsets g_;
  FloatBuffer acts_;
  FloatBuffer grad_acts_;
  TokenBuffer inputs_, targets_;
  HostTokenBuffer host_inputs_, host_targets_;
};

}  // namespace xp
