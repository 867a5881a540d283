#include "xp/model/gpt2.hpp"

#include <algorithm>

#include "xp/core/allocation.hpp"
#include "xp/core/error.hpp"
#include "xp/kernels/attention.hpp"
#include "xp/kernels/cross_entropy.hpp"
#include "xp/kernels/elementwise.hpp"
#include "xp/kernels/embedding.hpp"
#include "xp/kernels/gelu.hpp"
#include "xp/kernels/layernorm.hpp"
#include "xp/model/init_weights.hpp"
#include "xp/model/tensor_parallel.hpp"

namespace xp {

GPT2::GPT2(const ModelConfig& model, const Placement& placement, Communicator& tp, int max_batch, int slots,
           int64_t buffer_size)
    : model_(model), layout_(model, placement), tp_(tp), max_batch_(max_batch), slots_(slots), batch_(slots, 0) {
  const Placement& place = layout_.placement();
  XP_REQUIRE(place.tp_size == tp.size(), "placement tp_size does not match the tensor-parallel group");
  C_local_ = model.n_embd / place.tp_size;
  heads_local_ = model.n_head / place.tp_size;
  vocab_local_ = model.padded_vocab() / place.tp_size;
  vocab_start_ = place.tp_rank * vocab_local_;
  vocab_valid_ = std::clamp(model.vocab_size - vocab_start_, 0, vocab_local_);

  const ModelBuffers sizes = model_buffers(model, layout_, max_batch, slots, buffer_size, build_precision);
  a_ = sizes.acts;
  s_ = sizes.stats;
  g_ = sizes.grad_acts;
  params = allocate<FloatBuffer>("xp::params", sizes.params, MemoryKind::Weights);
  grads = allocate<FloatBuffer>("xp::grads", sizes.params, MemoryKind::Grads);
#if defined(XP_ENABLE_CUDA) || defined(XP_EMULATE_BF16)
  compute_ = allocate<RealBuffer>("xp::compute_weights", sizes.compute_weights, MemoryKind::Weights);
#else
  compute_ = params;  // fp32 builds compute with the master weights themselves
#endif
  acts_ = allocate<RealBuffer>("xp::activations", slots * a_.total, MemoryKind::Activations);
  stats_ = allocate<FloatBuffer>("xp::activation_stats", slots * s_.total, MemoryKind::Activations);
  grad_acts_ = allocate<RealBuffer>("xp::activation_grads", g_.total, MemoryKind::Activations);
  attention_scratch_ = allocate<FloatBuffer>("xp::attention_scratch", sizes.attention_scratch, MemoryKind::Activations);
  inputs_ = allocate<TokenBuffer>("xp::inputs", sizes.tokens, MemoryKind::Activations);
  targets_ = allocate<TokenBuffer>("xp::targets", sizes.tokens, MemoryKind::Activations);
  host_inputs_ = Kokkos::create_mirror_view(inputs_);
  host_targets_ = Kokkos::create_mirror_view(targets_);
}

void GPT2::refresh_compute_weights() {
#if defined(XP_ENABLE_CUDA) || defined(XP_EMULATE_BF16)
  convert_to_real(compute_.data(), params.data(), layout_.total());
#endif
}

Real* GPT2::compute_weights_copy() {
#if defined(XP_ENABLE_CUDA) || defined(XP_EMULATE_BF16)
  return compute_.data();
#else
  return nullptr;
#endif
}

void GPT2::init_weights(uint64_t seed, double std, int threads) {
  xp::init_weights(params.data(), layout_, model_.n_layer, seed, std, threads);
  refresh_compute_weights();
}

void GPT2::zero_grads() { Kokkos::deep_copy(grads, 0.0f); }

Real* GPT2::block_input(int slot, int layer) {
  const int64_t N = int64_t{max_batch_} * model_.seq_len, C = model_.n_embd;
  const int local = layer - layout_.placement().first_layer;
  return local == 0 ? act(slot, a_.encoded) : act(slot, a_.residual3 + (local - 1) * N * C);
}

double GPT2::forward(int slot, const int32_t* sequences, int B) {
  XP_REQUIRE(slot >= 0 && slot < slots_ && B <= max_batch_, "micro-batch does not fit the model's buffers");
  const Placement& place = layout_.placement();
  const int T = model_.seq_len, C = model_.n_embd, CL = C_local_, NH = heads_local_;
  const int N = B * T;
  const int64_t maxN = int64_t{max_batch_} * T;
  batch_[slot] = B;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      host_inputs_(slot * maxN + b * T + t) = sequences[int64_t{b} * (T + 1) + t];
      host_targets_(slot * maxN + b * T + t) = sequences[int64_t{b} * (T + 1) + t + 1];
    }
  Kokkos::deep_copy(inputs_, host_inputs_);
  Kokkos::deep_copy(targets_, host_targets_);

  if (place.has_embedding) {
    vocab_parallel_embedding_fwd(input(slot), inputs_.data() + slot * maxN, weight(layout_.wte()),
                                 weight(layout_.wpe()), B, T, C, vocab_start_, vocab_local_, tp_);
  }
  const int64_t att_size = attention_stats_size(max_batch_, T, CL, NH);
  Real* scratch = grad_act(g_.scratch);
  for (int l = place.first_layer; l < place.last_layer; ++l) {
    const BlockOffsets& w = layout_.block(l);
    const int64_t i = l - place.first_layer;
    const Real* residual = block_input(slot, l);
    Real* ln1 = act(slot, a_.ln1 + i * maxN * C);
    Real* qkv = act(slot, a_.qkv + i * maxN * 3 * CL);
    Real* atty = act(slot, a_.atty + i * maxN * CL);
    Real* residual2 = act(slot, a_.residual2 + i * maxN * C);
    Real* ln2 = act(slot, a_.ln2 + i * maxN * C);
    Real* fch = act(slot, a_.fch + i * maxN * 4 * CL);
    Real* fch_gelu = grad_act(g_.gelu);  // recomputed in backward rather than kept
    Real* residual3 = act(slot, a_.residual3 + i * maxN * C);

    layernorm_fwd(ln1, stat(slot, s_.ln1_mean + i * maxN), stat(slot, s_.ln1_rstd + i * maxN), residual,
                  weight(w.ln1_w), weight(w.ln1_b), N, C);
    column_parallel_fwd(qkv, ln1, weight(w.qkv_w), weight(w.qkv_b), N, C, 3 * CL);  // this rank's heads
    attention_fwd(atty, stat(slot, s_.att + i * att_size), qkv, B, T, CL, NH);
    row_parallel_fwd(scratch, atty, weight(w.proj_w), N, CL, C, tp_);
    bias_residual_fwd(residual2, residual, scratch, weight(w.proj_b), N, C);
    layernorm_fwd(ln2, stat(slot, s_.ln2_mean + i * maxN), stat(slot, s_.ln2_rstd + i * maxN), residual2,
                  weight(w.ln2_w), weight(w.ln2_b), N, C);
    column_parallel_gelu_fwd(fch_gelu, fch, ln2, weight(w.fc_w), weight(w.fc_b), N, C, 4 * CL);
    row_parallel_fwd(scratch, fch_gelu, weight(w.fcproj_w), N, 4 * CL, C, tp_);
    bias_residual_fwd(residual3, residual2, scratch, weight(w.fcproj_b), N, C);
  }
  return place.has_head ? loss_fwd(slot, N) : 0.0;
}

double GPT2::loss_fwd(int slot, int N) {
  const int C = model_.n_embd, VL = vocab_local_;
  const int64_t maxN = int64_t{max_batch_} * model_.seq_len;
  Real* lnf = act(slot, a_.lnf);
  Real* logits = act(slot, a_.logits);
  layernorm_fwd(lnf, stat(slot, s_.lnf_mean), stat(slot, s_.lnf_rstd), output(slot), weight(layout_.lnf_w()),
                weight(layout_.lnf_b()), N, C);
  column_parallel_fwd(logits, lnf, weight(layout_.wte()), nullptr, N, C, VL);  // this rank's vocabulary
  return vocab_parallel_cross_entropy_fwd(stat(slot, s_.losses), stat(slot, s_.lse), stat(slot, s_.row_stats), logits,
                                          targets_.data() + slot * maxN, N, vocab_valid_, VL, vocab_start_, tp_);
}

void GPT2::backward(int slot, float dloss) {
  const Placement& place = layout_.placement();
  const int B = batch_[slot], T = model_.seq_len, C = model_.n_embd, CL = C_local_, NH = heads_local_;
  const int N = B * T;
  const int64_t maxN = int64_t{max_batch_} * T, NC = int64_t{N} * C;
  const int64_t att_size = attention_stats_size(max_batch_, T, CL, NH);
  Real* dresidual = grad_act(g_.dresidual);
  Real* dC = grad_act(g_.dC);
  Real* d3C = grad_act(g_.d3C);
  Real* d4C = grad_act(g_.d4C);
  auto dresidual_view = Kokkos::subview(grad_acts_, std::make_pair(g_.dresidual, g_.dresidual + NC));

  if (place.has_head) {
    // Loss and LM head: dlogits overwrite the logits; the head's input gradient is summed over tp.
    Real* logits = act(slot, a_.logits);
    cross_entropy_bwd(logits, logits, stat(slot, s_.lse), targets_.data() + slot * maxN, dloss, N, vocab_valid_,
                      vocab_local_, vocab_start_);
    column_parallel_bwd(dC, grad(layout_.wte()), nullptr, logits, act(slot, a_.lnf), weight(layout_.wte()), N, C,
                        vocab_local_, tp_);
    Kokkos::deep_copy(dresidual_view, Real(0.0f));
    layernorm_bwd(dresidual, grad(layout_.lnf_w()), grad(layout_.lnf_b()), dC, output(slot),
                  weight(layout_.lnf_w()), stat(slot, s_.lnf_mean), stat(slot, s_.lnf_rstd), N, C);
  } else {
    Kokkos::deep_copy(dresidual_view, Kokkos::subview(grad_acts_, std::make_pair(g_.doutput, g_.doutput + NC)));
  }
  // dresidual now holds the gradient of this stage's output.
  for (int l = place.last_layer - 1; l >= place.first_layer; --l) {
    const BlockOffsets& w = layout_.block(l);
    const int64_t i = l - place.first_layer;
    // residual3 = residual2 + mlp(ln2(residual2)). The GELU's output is recomputed from its input (one
    // elementwise pass instead of keeping 4C per token and layer); its derivative is folded into the
    // projection's input gradient.
    const Real* fch = act(slot, a_.fch + i * maxN * 4 * CL);
    gelu_fwd(grad_act(g_.gelu), fch, 4 * int64_t{N} * CL);
    row_parallel_bwd(d4C, grad(w.fcproj_w), grad(w.fcproj_b), dresidual, grad_act(g_.gelu), weight(w.fcproj_w), N,
                     4 * CL, C, fch);
    column_parallel_bwd(dC, grad(w.fc_w), grad(w.fc_b), d4C, act(slot, a_.ln2 + i * maxN * C), weight(w.fc_w), N, C,
                        4 * CL, tp_);
    layernorm_bwd(dresidual, grad(w.ln2_w), grad(w.ln2_b), dC, act(slot, a_.residual2 + i * maxN * C),
                  weight(w.ln2_w), stat(slot, s_.ln2_mean + i * maxN), stat(slot, s_.ln2_rstd + i * maxN), N, C);
    // residual2 = residual + proj(attention(ln1(residual))).
    row_parallel_bwd(dC, grad(w.proj_w), grad(w.proj_b), dresidual, act(slot, a_.atty + i * maxN * CL),
                     weight(w.proj_w), N, CL, C);
    attention_bwd(d3C, attention_scratch_.data(), dC, act(slot, a_.atty + i * maxN * CL),
                  act(slot, a_.qkv + i * maxN * 3 * CL), stat(slot, s_.att + i * att_size), B, T, CL, NH);
    column_parallel_bwd(dC, grad(w.qkv_w), grad(w.qkv_b), d3C, act(slot, a_.ln1 + i * maxN * C), weight(w.qkv_w), N,
                        C, 3 * CL, tp_);
    layernorm_bwd(dresidual, grad(w.ln1_w), grad(w.ln1_b), dC, block_input(slot, l), weight(w.ln1_w),
                  stat(slot, s_.ln1_mean + i * maxN), stat(slot, s_.ln1_rstd + i * maxN), N, C);
  }
  if (place.has_embedding)
    embedding_bwd(grad(layout_.wte()), grad(layout_.wpe()), dresidual, inputs_.data() + slot * maxN, B, T, C,
                  vocab_start_, vocab_local_);
}

}  // namespace xp
