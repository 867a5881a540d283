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
           Recompute recompute, int64_t buffer_size, bool master_on_host)
    : model_(model),
      layout_(model, placement),
      tp_(tp),
      max_batch_(max_batch),
      slots_(slots),
      recompute_(recompute),
      batch_(slots, 0),
      dlogits_ready_(slots, 0),
      dlogits_dloss_(slots, 0.0f) {
  const Placement& place = layout_.placement();
  XP_REQUIRE(place.tp_size == tp.size(), "placement tp_size does not match the tensor-parallel group");
  C_local_ = model.n_embd / place.tp_size;
  heads_local_ = model.n_head / place.tp_size;
  vocab_local_ = model.padded_vocab() / place.tp_size;
  vocab_start_ = place.tp_rank * vocab_local_;
  vocab_valid_ = std::clamp(model.vocab_size - vocab_start_, 0, vocab_local_);

  const ModelBuffers sizes =
      model_buffers(model, layout_, max_batch, slots, recompute, buffer_size, build_precision, master_on_host);
  a_ = sizes.acts;
  s_ = sizes.stats;
  g_ = sizes.grad_acts;
  if (sizes.params > 0) params = allocate<FloatBuffer>("xp::params", sizes.params, MemoryKind::Weights);
  grads = allocate<FloatBuffer>("xp::grads", sizes.grads, MemoryKind::Grads);
#if defined(XP_ENABLE_CUDA) || defined(XP_EMULATE_BF16)
  compute_ = allocate<RealBuffer>("xp::compute_weights", sizes.compute_weights, MemoryKind::Weights);
#else
  compute_ = params;  // fp32 builds compute with the master weights themselves
#endif
  acts_ = allocate<RealBuffer>("xp::activations", slots * a_.total, MemoryKind::Activations);
  stats_ = allocate<FloatBuffer>("xp::activation_stats", slots * s_.total, MemoryKind::Activations);
  recompute_acts_ = allocate<RealBuffer>("xp::recompute_activations", sizes.recompute_acts, MemoryKind::Activations);
  recompute_stats_ = allocate<FloatBuffer>("xp::recompute_stats", sizes.recompute_stats, MemoryKind::Activations);
  grad_acts_ = allocate<RealBuffer>("xp::activation_grads", g_.total, MemoryKind::Activations);
  attention_scratch_ = allocate<FloatBuffer>("xp::attention_scratch", sizes.attention_scratch, MemoryKind::Activations);
  inputs_ = allocate<TokenBuffer>("xp::inputs", sizes.tokens, MemoryKind::Activations);
  targets_ = allocate<TokenBuffer>("xp::targets", sizes.tokens, MemoryKind::Activations);
  host_inputs_ = Kokkos::create_mirror_view(inputs_);
  host_targets_ = Kokkos::create_mirror_view(targets_);
  loss_total_ = Kokkos::View<double*>("xp::loss_total", 1);
}

void GPT2::refresh_compute_weights() {
#if defined(XP_ENABLE_CUDA) || defined(XP_EMULATE_BF16)
  convert_to_real(compute_.data(), fp32_weights().data(), layout_.total());
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
  xp::init_weights(fp32_weights().data(), layout_, model_.n_layer, seed, std, threads);
  refresh_compute_weights();
}

void GPT2::zero_grads() { Kokkos::deep_copy(exec_space(), grads, 0.0f); }

Real* GPT2::block_input(int slot, int layer) {
  const int64_t N = int64_t{max_batch_} * model_.seq_len, C = model_.n_embd;
  const int local = layer - layout_.placement().first_layer;
  return local == 0 ? act(slot, a_.encoded) : act(slot, a_.residual3 + (local - 1) * N * C);
}

GPT2::BlockActivations GPT2::block_acts(int slot, int layer) {
  const int64_t i = layer - layout_.placement().first_layer;
  auto real = [&](const BlockTensor& t) {
    return t.kept ? act(slot, t.offset + i * t.stride) : recompute_acts_.data() + t.offset;
  };
  auto stats = [&](const BlockTensor& t) {
    return t.kept ? stat(slot, t.offset + i * t.stride) : recompute_stats_.data() + t.offset;
  };
  BlockActivations x;
  x.residual = block_input(slot, layer);
  x.ln1 = real(a_.ln1);
  x.qkv = real(a_.qkv);
  x.atty = real(a_.atty);
  x.residual2 = real(a_.residual2);
  x.ln2 = real(a_.ln2);
  x.fch = real(a_.fch);
  x.residual3 = act(slot, a_.residual3 + i * int64_t{max_batch_} * model_.seq_len * model_.n_embd);
  x.ln1_mean = stats(s_.ln1_mean);
  x.ln1_rstd = stats(s_.ln1_rstd);
  x.att = stats(s_.att);
  x.ln2_mean = stats(s_.ln2_mean);
  x.ln2_rstd = stats(s_.ln2_rstd);
  return x;
}

void GPT2::block_fwd(const BlockActivations& x, const BlockOffsets& w, int B, bool recompute, bool ln1_ready) {
  const int T = model_.seq_len, C = model_.n_embd, CL = C_local_, NH = heads_local_;
  const int N = B * T;
  Real* scratch = grad_act(g_.scratch);
  Real* fch_gelu = grad_act(g_.gelu);  // recomputed in backward rather than kept
  // In recompute, a step runs only where its output is not kept (kept tensors are never rewritten): the
  // same kernels on the same inputs give the forward's bits again, statistics included. qkv holds this
  // rank's heads.
  auto run = [recompute](const BlockTensor& out) { return !recompute || !out.kept; };
  // ln1 here gives the bits of the previous block's fused output step (residual_layernorm_fwd's contract),
  // so recomputing it in backward needs no knowledge of where the forward ran it.
  if (run(a_.ln1) && !ln1_ready)
    layernorm_fwd(x.ln1, x.ln1_mean, x.ln1_rstd, x.residual, weight(w.ln1_w), weight(w.ln1_b), N, C);
  if (run(a_.qkv)) column_parallel_fwd(x.qkv, x.ln1, weight(w.qkv_w), weight(w.qkv_b), N, C, 3 * CL);
  if (run(a_.atty)) attention_fwd(x.atty, x.att, x.qkv, B, T, CL, NH);
  // residual2 = residual + proj + bias, normalised in the same pass where both are (re)computed; either
  // alone gives the same bits (residual_layernorm_fwd's contract).
  if (run(a_.residual2)) row_parallel_fwd(scratch, x.atty, weight(w.proj_w), N, CL, C, tp_);
  if (run(a_.residual2) && run(a_.ln2)) {
    residual_layernorm_fwd(x.residual2, x.ln2, x.ln2_mean, x.ln2_rstd, x.residual, scratch, weight(w.proj_b),
                           weight(w.ln2_w), weight(w.ln2_b), N, C);
  } else if (run(a_.residual2)) {
    bias_residual_fwd(x.residual2, x.residual, scratch, weight(w.proj_b), N, C);
  } else if (run(a_.ln2)) {
    layernorm_fwd(x.ln2, x.ln2_mean, x.ln2_rstd, x.residual2, weight(w.ln2_w), weight(w.ln2_b), N, C);
  }
  if (run(a_.fch)) column_parallel_gelu_fwd(fch_gelu, x.fch, x.ln2, weight(w.fc_w), weight(w.fc_b), N, C, 4 * CL);
}

GPT2::Norm GPT2::next_norm(int slot, int layer) {
  const Placement& place = layout_.placement();
  if (layer + 1 < place.last_layer) {
    const BlockActivations next = block_acts(slot, layer + 1);
    const BlockOffsets& w = layout_.block(layer + 1);
    return {next.ln1, next.ln1_mean, next.ln1_rstd, weight(w.ln1_w), weight(w.ln1_b)};
  }
  if (place.has_head)
    return {act(slot, a_.lnf), stat(slot, s_.lnf_mean), stat(slot, s_.lnf_rstd), weight(layout_.lnf_w()),
            weight(layout_.lnf_b())};
  return {};  // the next stage's first block normalises it on its rank
}

void GPT2::block_output_fwd(const BlockActivations& x, const BlockOffsets& w, int B, const Norm& next) {
  const int N = B * model_.seq_len, C = model_.n_embd, CL = C_local_;
  Real* scratch = grad_act(g_.scratch);
  row_parallel_fwd(scratch, grad_act(g_.gelu), weight(w.fcproj_w), N, 4 * CL, C, tp_);
  if (next.out != nullptr) {
    residual_layernorm_fwd(x.residual3, next.out, next.mean, next.rstd, x.residual2, scratch, weight(w.fcproj_b),
                           next.weight, next.bias, N, C);
  } else {
    bias_residual_fwd(x.residual3, x.residual2, scratch, weight(w.fcproj_b), N, C);
  }
}

double GPT2::forward(int slot, const int32_t* sequences, int B) { return run_forward(slot, sequences, B, nullptr); }

void GPT2::forward_accumulate(int slot, const int32_t* sequences, int B) {
  run_forward(slot, sequences, B, loss_total_.data());
}

void GPT2::forward_train(int slot, const int32_t* sequences, int B, float dloss) {
  run_forward(slot, sequences, B, loss_total_.data(), &dloss);
}

double GPT2::take_loss_total() {
  if (!layout_.placement().has_head) return 0.0;
  Kokkos::View<double, Kokkos::HostSpace> total("xp::loss_total_host");
  Kokkos::deep_copy(exec_space(), total, Kokkos::subview(loss_total_, 0));
  exec_space().fence();
  Kokkos::deep_copy(exec_space(), loss_total_, 0.0);
  return total();
}

double GPT2::run_forward(int slot, const int32_t* sequences, int B, double* loss_total, const float* dloss) {
  XP_REQUIRE(slot >= 0 && slot < slots_ && B <= max_batch_, "micro-batch does not fit the model's buffers");
  dlogits_ready_[slot] = 0;  // this forward writes new logits
  const Placement& place = layout_.placement();
  const int T = model_.seq_len, C = model_.n_embd;
  const int N = B * T;
  const int64_t maxN = int64_t{max_batch_} * T;
  batch_[slot] = B;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      host_inputs_(slot * maxN + b * T + t) = sequences[int64_t{b} * (T + 1) + t];
      host_targets_(slot * maxN + b * T + t) = sequences[int64_t{b} * (T + 1) + t + 1];
    }
  // This slot's tokens, in stream order (no host wait). The mirrors are pageable host memory, which CUDA
  // copies out before cudaMemcpyAsync returns, so the next micro-batch may refill them at once.
  const auto slot_range = std::make_pair(slot * maxN, slot * maxN + N);
  Kokkos::deep_copy(exec_space(), Kokkos::subview(inputs_, slot_range), Kokkos::subview(host_inputs_, slot_range));
  Kokkos::deep_copy(exec_space(), Kokkos::subview(targets_, slot_range), Kokkos::subview(host_targets_, slot_range));

  if (place.has_embedding) {
    vocab_parallel_embedding_fwd(input(slot), inputs_.data() + slot * maxN, weight(layout_.wte()),
                                 weight(layout_.wpe()), B, T, C, vocab_start_, vocab_local_, tp_);
  }
  // Each block's output step also normalises it for its reader (next_norm): a stage's first block runs its
  // own ln1 (on the embedding, or on what the previous stage sent); the others' ln1 and lnf are done.
  for (int l = place.first_layer; l < place.last_layer; ++l) {
    const BlockActivations x = block_acts(slot, l);
    block_fwd(x, layout_.block(l), B, false, l > place.first_layer);
    block_output_fwd(x, layout_.block(l), B, next_norm(slot, l));
  }
  if (place.has_head && place.first_layer == place.last_layer)  // a stage of no blocks: lnf on its input
    layernorm_fwd(act(slot, a_.lnf), stat(slot, s_.lnf_mean), stat(slot, s_.lnf_rstd), output(slot),
                  weight(layout_.lnf_w()), weight(layout_.lnf_b()), N, C);
  return place.has_head ? loss_fwd(slot, N, loss_total, dloss) : 0.0;
}

double GPT2::loss_fwd(int slot, int N, double* loss_total, const float* dloss) {
  const int C = model_.n_embd, VL = vocab_local_;
  const int64_t maxN = int64_t{max_batch_} * model_.seq_len;
  Real* lnf = act(slot, a_.lnf);
  Real* logits = act(slot, a_.logits);
  // lnf = layernorm(output(slot)) came with the last block's output (block_output_fwd).
  column_parallel_fwd(logits, lnf, weight(layout_.wte()), nullptr, N, C, VL);  // this rank's vocabulary
  if (dloss && tp_.size() == 1) {  // training on one rank: dlogits over the logits in the same pass
    dlogits_ready_[slot] = 1;
    dlogits_dloss_[slot] = *dloss;
    return cross_entropy_fwd_bwd(stat(slot, s_.losses), stat(slot, s_.lse), logits, logits,
                                 targets_.data() + slot * maxN, *dloss, N, vocab_valid_, VL, loss_total);
  }
  return vocab_parallel_cross_entropy_fwd(stat(slot, s_.losses), stat(slot, s_.lse), stat(slot, s_.row_stats), logits,
                                          targets_.data() + slot * maxN, N, vocab_valid_, VL, vocab_start_, tp_,
                                          loss_total);
}

void GPT2::backward(int slot, float dloss, const GradsWritten& written) {
  const Placement& place = layout_.placement();
  const int B = batch_[slot], T = model_.seq_len, C = model_.n_embd, CL = C_local_, NH = heads_local_;
  const int N = B * T;
  const int64_t maxN = int64_t{max_batch_} * T, NC = int64_t{N} * C;
  auto report = [&](int64_t first, int64_t last) {
    if (written) written(first, last);
  };
  Real* dresidual = grad_act(g_.dresidual);
  Real* dC = grad_act(g_.dC);
  Real* d3C = grad_act(g_.d3C);
  Real* d4C = grad_act(g_.d4C);
  auto dresidual_view = Kokkos::subview(grad_acts_, std::make_pair(g_.dresidual, g_.dresidual + NC));

  if (place.has_head) {
    // Loss and LM head: dlogits overwrite the logits (already, after forward_train); the head's input gradient
    // is summed over tp.
    Real* logits = act(slot, a_.logits);
    if (dlogits_ready_[slot]) {
      XP_REQUIRE(dlogits_dloss_[slot] == dloss, "backward: dloss differs from the one forward_train used");
    } else {
      cross_entropy_bwd(logits, logits, stat(slot, s_.lse), targets_.data() + slot * maxN, dloss, N, vocab_valid_,
                        vocab_local_, vocab_start_);
    }
    dlogits_ready_[slot] = 0;  // the logits buffer holds dlogits either way
    column_parallel_bwd(dC, grad(layout_.wte()), nullptr, logits, act(slot, a_.lnf), weight(layout_.wte()), N, C,
                        vocab_local_, tp_);
    Kokkos::deep_copy(exec_space(), dresidual_view, Real(0.0f));
    layernorm_bwd(dresidual, grad(layout_.lnf_w()), grad(layout_.lnf_b()), dC, output(slot),
                  weight(layout_.lnf_w()), stat(slot, s_.lnf_mean), stat(slot, s_.lnf_rstd), N, C);
    report(layout_.lnf_w(), layout_.lnf_b() + C);
    if (!place.has_embedding) report(layout_.wte(), layout_.wte() + int64_t{vocab_local_} * C);  // a later stage's
  } else {
    Kokkos::deep_copy(exec_space(), dresidual_view,
                      Kokkos::subview(grad_acts_, std::make_pair(g_.doutput, g_.doutput + NC)));
  }
  // dresidual now holds the gradient of this stage's output.
  for (int l = place.last_layer - 1; l >= place.first_layer; --l) {
    const BlockOffsets& w = layout_.block(l);
    const BlockActivations x = block_acts(slot, l);
    if (recompute_ != Recompute::None) block_fwd(x, w, B, true);  // what the mode did not keep
    // residual3 = residual2 + mlp(ln2(residual2)). The GELU's output is recomputed from its input (one
    // elementwise pass instead of keeping 4C per token and layer); its derivative is folded into the
    // projection's input gradient.
    gelu_fwd(grad_act(g_.gelu), x.fch, 4 * int64_t{N} * CL);
    row_parallel_bwd(d4C, grad(w.fcproj_w), grad(w.fcproj_b), dresidual, grad_act(g_.gelu), weight(w.fcproj_w), N,
                     4 * CL, C, x.fch);
    column_parallel_bwd(dC, grad(w.fc_w), grad(w.fc_b), d4C, x.ln2, weight(w.fc_w), N, C, 4 * CL, tp_);
    layernorm_bwd(dresidual, grad(w.ln2_w), grad(w.ln2_b), dC, x.residual2, weight(w.ln2_w), x.ln2_mean, x.ln2_rstd,
                  N, C);
    // residual2 = residual + proj(attention(ln1(residual))).
    row_parallel_bwd(dC, grad(w.proj_w), grad(w.proj_b), dresidual, x.atty, weight(w.proj_w), N, CL, C);
    attention_bwd(d3C, attention_scratch_.data(), dC, x.atty, x.qkv, x.att, B, T, CL, NH);
    column_parallel_bwd(dC, grad(w.qkv_w), grad(w.qkv_b), d3C, x.ln1, weight(w.qkv_w), N, C, 3 * CL, tp_);
    layernorm_bwd(dresidual, grad(w.ln1_w), grad(w.ln1_b), dC, x.residual, weight(w.ln1_w), x.ln1_mean, x.ln1_rstd,
                  N, C);
    report(w.ln1_w, w.fcproj_b + C);  // the block's tensors, ln_1.weight to mlp.proj.bias
  }
  if (place.has_embedding) {
    embedding_bwd(grad(layout_.wte()), grad(layout_.wpe()), dresidual, inputs_.data() + slot * maxN, B, T, C,
                  vocab_start_, vocab_local_);
    report(layout_.wte(), layout_.wpe());
    report(layout_.wpe(), layout_.wpe() + int64_t{model_.seq_len} * C);
  }
}

}  // namespace xp
