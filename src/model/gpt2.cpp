#include "xp/model/gpt2.hpp"

#include <cmath>

#include "xp/core/random.hpp"
#include "xp/kernels/attention.hpp"
#include "xp/kernels/cross_entropy.hpp"
#include "xp/kernels/elementwise.hpp"
#include "xp/kernels/embedding.hpp"
#include "xp/kernels/gelu.hpp"
#include "xp/kernels/layernorm.hpp"
#include "xp/kernels/matmul.hpp"

namespace xp {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

GPT2::GPT2(const ModelConfig& model, int max_batch) : model_(model), layout_(model), max_batch_(max_batch) {
  const int64_t L = model.n_layer, C = model.n_embd, NH = model.n_head, T = model.seq_len;
  const int64_t N = int64_t{max_batch} * T, Vp = model.padded_vocab();
  int64_t total = 0;
  auto take = [&total](int64_t size) {
    const int64_t offset = total;
    total += size;
    return offset;
  };
  a_.encoded = take(N * C);
  a_.ln1 = take(L * N * C);
  a_.ln1_mean = take(L * N);
  a_.ln1_rstd = take(L * N);
  a_.qkv = take(L * N * 3 * C);
  a_.atty = take(L * N * C);
  a_.att = take(L * max_batch * NH * T * T);
  a_.residual2 = take(L * N * C);
  a_.ln2 = take(L * N * C);
  a_.ln2_mean = take(L * N);
  a_.ln2_rstd = take(L * N);
  a_.fch = take(L * N * 4 * C);
  a_.fch_gelu = take(L * N * 4 * C);
  a_.residual3 = take(L * N * C);
  a_.lnf = take(N * C);
  a_.lnf_mean = take(N);
  a_.lnf_rstd = take(N);
  a_.logits = take(N * Vp);
  a_.lse = take(N);
  a_.losses = take(N);
  a_.scratch = take(N * C);
  a_.total = total;

  total = 0;
  g_.dresidual = take(N * C);
  g_.dC = take(N * C);
  g_.d3C = take(N * 3 * C);
  g_.d4C = take(N * 4 * C);
  g_.attention_scratch = take(int64_t{max_batch} * NH * T);
  g_.total = total;

  params = FloatBuffer("xp::params", layout_.total());
  grads = FloatBuffer("xp::grads", layout_.total());
  acts_ = FloatBuffer("xp::activations", a_.total);
  grad_acts_ = FloatBuffer("xp::activation_grads", g_.total);
  inputs_ = TokenBuffer("xp::inputs", N);
  targets_ = TokenBuffer("xp::targets", N);
  host_inputs_ = Kokkos::create_mirror_view(inputs_);
  host_targets_ = Kokkos::create_mirror_view(targets_);
}

void GPT2::init_weights(uint64_t seed, double std) {
  HostFloatBuffer host = Kokkos::create_mirror_view(params);
  const double projection_std = std / std::sqrt(2.0 * model_.n_layer);
  for (const TensorInfo& tensor : layout_.tensors()) {
    float* data = host.data() + tensor.offset;
    if (ends_with(tensor.name, ".bias") || tensor.shape.size() == 1) {
      const float value = ends_with(tensor.name, ".weight") ? 1.0f : 0.0f;  // LayerNorm gain or a bias
      for (int64_t i = 0; i < tensor.size; ++i) data[i] = value;
      continue;
    }
    const bool projection = ends_with(tensor.name, "attn.proj.weight") || ends_with(tensor.name, "mlp.proj.weight");
    const double scale = projection ? projection_std : std;
    const uint64_t stream = stream_id(tensor.name);
    for (int64_t i = 0; i < tensor.size; ++i) data[i] = static_cast<float>(scale * random_normal(seed, stream, i));
  }
  Kokkos::deep_copy(params, host);
}

void GPT2::zero_grads() { Kokkos::deep_copy(grads, 0.0f); }

double GPT2::forward(const int32_t* sequences, int B) {
  const int T = model_.seq_len, C = model_.n_embd, NH = model_.n_head;
  const int V = model_.vocab_size, Vp = model_.padded_vocab();
  const int N = B * T;
  const int64_t NC = int64_t{N} * C, stride_C = int64_t{max_batch_} * T * C;
  const int64_t stride_N = int64_t{max_batch_} * T, stride_att = int64_t{max_batch_} * NH * T * T;
  batch_ = B;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      host_inputs_(b * T + t) = sequences[int64_t{b} * (T + 1) + t];
      host_targets_(b * T + t) = sequences[int64_t{b} * (T + 1) + t + 1];
    }
  Kokkos::deep_copy(inputs_, host_inputs_);
  Kokkos::deep_copy(targets_, host_targets_);

  embedding_fwd(act(a_.encoded), inputs_.data(), param(layout_.wte()), param(layout_.wpe()), B, T, C);
  const float* residual = act(a_.encoded);
  for (int l = 0; l < model_.n_layer; ++l) {
    const BlockOffsets& w = layout_.block(l);
    float* ln1 = act(a_.ln1 + l * stride_C);
    float* qkv = act(a_.qkv + 3 * l * stride_C);
    float* atty = act(a_.atty + l * stride_C);
    float* residual2 = act(a_.residual2 + l * stride_C);
    float* ln2 = act(a_.ln2 + l * stride_C);
    float* fch = act(a_.fch + 4 * l * stride_C);
    float* fch_gelu = act(a_.fch_gelu + 4 * l * stride_C);
    float* residual3 = act(a_.residual3 + l * stride_C);
    float* scratch = act(a_.scratch);

    layernorm_fwd(ln1, act(a_.ln1_mean + l * stride_N), act(a_.ln1_rstd + l * stride_N), residual,
                  param(w.ln1_w), param(w.ln1_b), N, C);
    matmul_fwd(qkv, ln1, param(w.qkv_w), param(w.qkv_b), N, C, 3 * C);
    attention_fwd(atty, act(a_.att + l * stride_att), qkv, B, T, C, NH);
    matmul_fwd(scratch, atty, param(w.proj_w), param(w.proj_b), N, C, C);
    residual_fwd(residual2, residual, scratch, NC);
    layernorm_fwd(ln2, act(a_.ln2_mean + l * stride_N), act(a_.ln2_rstd + l * stride_N), residual2,
                  param(w.ln2_w), param(w.ln2_b), N, C);
    matmul_fwd(fch, ln2, param(w.fc_w), param(w.fc_b), N, C, 4 * C);
    gelu_fwd(fch_gelu, fch, 4 * NC);
    matmul_fwd(scratch, fch_gelu, param(w.fcproj_w), param(w.fcproj_b), N, 4 * C, C);
    residual_fwd(residual3, residual2, scratch, NC);
    residual = residual3;
  }
  layernorm_fwd(act(a_.lnf), act(a_.lnf_mean), act(a_.lnf_rstd), residual, param(layout_.lnf_w()),
                param(layout_.lnf_b()), N, C);
  matmul_fwd(act(a_.logits), act(a_.lnf), param(layout_.wte()), nullptr, N, C, Vp);
  return cross_entropy_fwd(act(a_.losses), act(a_.lse), act(a_.logits), targets_.data(), N, V, Vp);
}

void GPT2::backward(float dloss) {
  const int B = batch_, T = model_.seq_len, C = model_.n_embd, NH = model_.n_head;
  const int V = model_.vocab_size, Vp = model_.padded_vocab(), L = model_.n_layer;
  const int N = B * T;
  const int64_t stride_C = int64_t{max_batch_} * T * C, stride_N = int64_t{max_batch_} * T;
  const int64_t stride_att = int64_t{max_batch_} * NH * T * T;
  float* dresidual = grad_act(g_.dresidual);
  float* dC = grad_act(g_.dC);
  float* d3C = grad_act(g_.d3C);
  float* d4C = grad_act(g_.d4C);

  // Loss and LM head: dlogits overwrite the logits.
  float* logits = act(a_.logits);
  cross_entropy_bwd(logits, logits, act(a_.lse), targets_.data(), dloss, N, V, Vp);
  matmul_bwd(dC, grad(layout_.wte()), nullptr, logits, act(a_.lnf), param(layout_.wte()), N, C, Vp);
  Kokkos::deep_copy(Kokkos::subview(grad_acts_, std::make_pair(g_.dresidual, g_.dresidual + int64_t{N} * C)), 0.0f);
  const float* last_residual = L > 0 ? act(a_.residual3 + (L - 1) * stride_C) : act(a_.encoded);
  layernorm_bwd(dresidual, grad(layout_.lnf_w()), grad(layout_.lnf_b()), dC, last_residual,
                param(layout_.lnf_w()), act(a_.lnf_mean), act(a_.lnf_rstd), N, C);

  for (int l = L - 1; l >= 0; --l) {
    const BlockOffsets& w = layout_.block(l);
    const float* residual = l > 0 ? act(a_.residual3 + (l - 1) * stride_C) : act(a_.encoded);
    // dresidual holds ∂/∂residual3; residual3 = residual2 + mlp(ln2(residual2)).
    matmul_bwd(d4C, grad(w.fcproj_w), grad(w.fcproj_b), dresidual, act(a_.fch_gelu + 4 * l * stride_C),
               param(w.fcproj_w), N, 4 * C, C);
    gelu_bwd(d4C, act(a_.fch + 4 * l * stride_C), d4C, 4 * int64_t{N} * C);
    matmul_bwd(dC, grad(w.fc_w), grad(w.fc_b), d4C, act(a_.ln2 + l * stride_C), param(w.fc_w), N, C, 4 * C);
    layernorm_bwd(dresidual, grad(w.ln2_w), grad(w.ln2_b), dC, act(a_.residual2 + l * stride_C), param(w.ln2_w),
                  act(a_.ln2_mean + l * stride_N), act(a_.ln2_rstd + l * stride_N), N, C);
    // dresidual now holds ∂/∂residual2; residual2 = residual + proj(attention(ln1(residual))).
    matmul_bwd(dC, grad(w.proj_w), grad(w.proj_b), dresidual, act(a_.atty + l * stride_C), param(w.proj_w), N,
               C, C);
    attention_bwd(d3C, grad_act(g_.attention_scratch), dC, act(a_.qkv + 3 * l * stride_C),
                  act(a_.att + l * stride_att), B, T, C, NH);
    matmul_bwd(dC, grad(w.qkv_w), grad(w.qkv_b), d3C, act(a_.ln1 + l * stride_C), param(w.qkv_w), N, C, 3 * C);
    layernorm_bwd(dresidual, grad(w.ln1_w), grad(w.ln1_b), dC, residual, param(w.ln1_w),
                  act(a_.ln1_mean + l * stride_N), act(a_.ln1_rstd + l * stride_N), N, C);
  }
  embedding_bwd(grad(layout_.wte()), grad(layout_.wpe()), dresidual, inputs_.data(), B, T, C);
}

}  // namespace xp
