#include "xp/model/generator.hpp"

#include <algorithm>

#include "kernels/attention_row.hpp"
#include "xp/core/error.hpp"
#include "xp/core/math.hpp"
#include "xp/kernels/elementwise.hpp"
#include "xp/kernels/layernorm.hpp"
#include "xp/model/tensor_parallel.hpp"

namespace xp {

void cached_attention_fwd(Real* out, float* scores, const Real* qkv, const Real* k, const Real* v, int n, int pos,
                          int C, int NH, int max_tokens) {
  const int hs = C / NH;
  const float scale = 1.0f / math::sqrt(static_cast<float>(hs));
  const int64_t C3 = 3 * int64_t{C};
  // The arithmetic of the training kernel's fp32 path (attention.cpp), one query row per thread.
  Kokkos::parallel_for("xp::cached_attention_fwd", Range(0, int64_t{n} * NH), KOKKOS_LAMBDA(int64_t ih) {
    const int64_t i = ih / NH, h = ih % NH, t = pos + i;
    const Real* q = qkv + i * C3 + h * hs;
    float* row = scores + ih * max_tokens;
    const float inv_sum = causal_softmax_row(row, q, k + h * hs, C, t, hs, scale);
    Real* o = out + i * C + h * hs;
    for (int j = 0; j < hs; ++j) {
      float value = 0.0f;
      for (int64_t t2 = 0; t2 <= t; ++t2) value += row[t2] * inv_sum * to_float(v[t2 * C + h * hs + j]);
      o[j] = to_real(value);
    }
  });
}

Generator::Generator(const ModelConfig& model, const ParameterLayout& layout, const Real* weights, Communicator& tp,
                     int max_tokens, GenerationPipeline pipeline)
    : model_(model), layout_(layout), weights_(weights), tp_(tp), pipeline_(pipeline), max_tokens_(max_tokens) {
  const Placement& place = layout.placement();
  const bool first = pipeline.stage == 0, last = pipeline.stage == pipeline.stages - 1;
  XP_REQUIRE(pipeline.stages >= 1 && pipeline.stage >= 0 && pipeline.stage < pipeline.stages,
             "generator: stage " + std::to_string(pipeline.stage) + " of " + std::to_string(pipeline.stages));
  XP_REQUIRE(pipeline.stages == 1 || (pipeline.activations && pipeline.tokens != MPI_COMM_NULL &&
                                      pipeline.activations->size() == pipeline.stages),
             "generator: a pipeline of " + std::to_string(pipeline.stages) + " stages needs its pp communicators");
  XP_REQUIRE(place.has_embedding == first && place.has_head == last && (!first || place.first_layer == 0) &&
                 (!last || place.last_layer == model.n_layer) && place.first_layer < place.last_layer,
             "generator: the layout of stage " + std::to_string(pipeline.stage) + " of " +
                 std::to_string(pipeline.stages) + " must hold its layers, the embedding on the first stage and the "
                 "head on the last");
  XP_REQUIRE(place.tp_size == tp.size(), "generator: placement tp_size does not match the tensor-parallel group");
  XP_REQUIRE(max_tokens >= 1 && max_tokens <= model.seq_len,
             "generator: KV cache of " + std::to_string(max_tokens) + " positions, the model has " +
                 std::to_string(model.seq_len));
  const int tp_size = place.tp_size;
  C_local_ = model.n_embd / tp_size;
  heads_local_ = model.n_head / tp_size;
  vocab_local_ = model.padded_vocab() / tp_size;
  vocab_start_ = place.tp_rank * vocab_local_;
  const int64_t n = max_tokens, C = model.n_embd, CL = C_local_, L = place.last_layer - place.first_layer;
  // Not in the memory ledger: a KV cache of L·T·2C/tp (this stage's L layers) and buffers of T rows,
  // small beside training's.
  tokens_ = TokenBuffer("xp::generate_tokens", n);
  host_tokens_ = Kokkos::create_mirror_view(tokens_);
  x_ = RealBuffer("xp::generate_residual", n * C);
  ln_ = RealBuffer("xp::generate_ln", n * C);
  qkv_ = RealBuffer("xp::generate_qkv", n * 3 * CL);
  atty_ = RealBuffer("xp::generate_atty", n * CL);
  fch_ = RealBuffer("xp::generate_fch", n * 4 * CL);
  fch_gelu_ = RealBuffer("xp::generate_fch_gelu", n * 4 * CL);
  scratch_ = RealBuffer("xp::generate_scratch", n * C);
  k_cache_ = RealBuffer("xp::generate_k_cache", L * n * CL);
  v_cache_ = RealBuffer("xp::generate_v_cache", L * n * CL);
  logits_ = RealBuffer("xp::generate_logits", vocab_local_);
  mean_ = FloatBuffer("xp::generate_mean", n);
  rstd_ = FloatBuffer("xp::generate_rstd", n);
  scores_ = FloatBuffer("xp::generate_scores", n * heads_local_ * n);
  local_logits_ = FloatBuffer("xp::generate_local_logits", vocab_local_);
  all_logits_ = FloatBuffer("xp::generate_all_logits", int64_t{vocab_local_} * tp_size);
  host_logits_ = Kokkos::create_mirror_view(all_logits_);
}

const std::vector<float>& Generator::feed(const std::vector<int32_t>& tokens) {
  const int n = static_cast<int>(tokens.size()), pos = position_;
  XP_REQUIRE(n >= 1 && pos + n <= max_tokens_,
             "generator: " + std::to_string(pos + n) + " tokens exceed the KV cache of " + std::to_string(max_tokens_));
  const int C = model_.n_embd, CL = C_local_, NH = heads_local_, VL = vocab_local_;
  const int64_t cache_layer = int64_t{max_tokens_} * CL;
  for (int i = 0; i < n; ++i) host_tokens_(i) = tokens[i];
  Kokkos::deep_copy(tokens_, host_tokens_);

  const Placement& place = layout_.placement();
  const int stage = pipeline_.stage;
  Real* x = x_.data();
  // Embedding of positions pos..pos+n-1 (wpe's rows from pos on), or the previous stage's output rows.
  if (place.has_embedding)
    vocab_parallel_embedding_fwd(x, tokens_.data(), weight(layout_.wte()), weight(layout_.wpe()) + int64_t{pos} * C,
                                 1, n, C, vocab_start_, VL, tp_);
  else
    pipeline_.activations->recv(x, size_t(n) * C, stage - 1);
  // The training forward's fusions (GPT2::run_forward): each block's residual additions normalise the sum
  // in the same pass, for ln2, the next block's ln1, and after the model's last block lnf (all n rows:
  // a row's LayerNorm does not depend on the others).
  for (int l = place.first_layer; l < place.last_layer; ++l) {
    const BlockOffsets& w = layout_.block(l);
    const int64_t cache_index = l - place.first_layer;
    if (l == place.first_layer)  // else the previous block's output step wrote ln_
      layernorm_fwd(ln_.data(), mean_.data(), rstd_.data(), x, weight(w.ln1_w), weight(w.ln1_b), n, C);
    column_parallel_fwd(qkv_.data(), ln_.data(), weight(w.qkv_w), weight(w.qkv_b), n, C, 3 * CL);
    // This layer's new keys and values join the cache at their positions.
    Real* k = k_cache_.data() + cache_index * cache_layer;
    Real* v = v_cache_.data() + cache_index * cache_layer;
    const Real* qkv = qkv_.data();
    Kokkos::parallel_for("xp::kv_cache_append", Range(0, int64_t{n} * CL), KOKKOS_LAMBDA(int64_t ic) {
      const int64_t i = ic / CL, c = ic % CL;
      k[(pos + i) * CL + c] = qkv[i * 3 * CL + CL + c];
      v[(pos + i) * CL + c] = qkv[i * 3 * CL + 2 * CL + c];
    });
    cached_attention_fwd(atty_.data(), scores_.data(), qkv, k, v, n, pos, CL, NH, max_tokens_);
    row_parallel_fwd(scratch_.data(), atty_.data(), weight(w.proj_w), n, CL, C, tp_);
    residual_layernorm_fwd(x, ln_.data(), mean_.data(), rstd_.data(), x, scratch_.data(), weight(w.proj_b),
                           weight(w.ln2_w), weight(w.ln2_b), n, C);
    column_parallel_gelu_fwd(fch_gelu_.data(), fch_.data(), ln_.data(), weight(w.fc_w), weight(w.fc_b), n, C, 4 * CL);
    row_parallel_fwd(scratch_.data(), fch_gelu_.data(), weight(w.fcproj_w), n, 4 * CL, C, tp_);
    const bool next_block = l + 1 < place.last_layer;
    if (next_block || place.has_head) {
      const int64_t ln_w = next_block ? layout_.block(l + 1).ln1_w : layout_.lnf_w();
      const int64_t ln_b = next_block ? layout_.block(l + 1).ln1_b : layout_.lnf_b();
      residual_layernorm_fwd(x, ln_.data(), mean_.data(), rstd_.data(), x, scratch_.data(), weight(w.fcproj_b),
                             weight(ln_w), weight(ln_b), n, C);
    } else {
      bias_residual_fwd(x, x, scratch_.data(), weight(w.fcproj_b), n, C);  // the next stage normalises it
    }
  }
  position_ += n;
  if (!place.has_head) {
    exec_space().fence();  // the last block's writes, before the rows leave
    pipeline_.activations->send(x, size_t(n) * C, stage + 1);
    logits_out_.clear();
    return logits_out_;
  }
  // This rank's vocabulary slice of the LM head, for the last token only (its lnf row is in ln_).
  column_parallel_fwd(logits_.data(), ln_.data() + int64_t{n - 1} * C, weight(layout_.wte()), nullptr, 1, C, VL);
  const Real* logits = logits_.data();
  float* local = local_logits_.data();
  Kokkos::parallel_for("xp::generate_logits_fp32", Range(0, VL), KOKKOS_LAMBDA(int64_t i) { local[i] = to_float(logits[i]); });
  exec_space().fence();
  // Slices in tp-rank order are the padded vocabulary in order; every rank gets the same bytes.
  tp_.all_gather(local, all_logits_.data(), VL);
  Kokkos::deep_copy(host_logits_, all_logits_);
  logits_out_.assign(host_logits_.data(), host_logits_.data() + model_.vocab_size);
  return logits_out_;
}

std::vector<int32_t> Generator::generate(const std::vector<int32_t>& prompt, int count,
                                         const SamplingSettings& settings) {
  XP_REQUIRE(!prompt.empty(), "generator: the prompt has no tokens");
  reset();
  std::vector<int32_t> generated;
  const std::vector<float>* logits = &feed(prompt);
  const int last = pipeline_.stages - 1;
  for (int i = 0; i < count; ++i) {
    int32_t token = pipeline_.stage == last ? sample_token(*logits, settings, static_cast<uint64_t>(i)) : 0;
    // Every tp rank of the last stage drew the same token; each sends it down its own pp group.
    if (pipeline_.stages > 1) XP_MPI_CHECK(MPI_Bcast(&token, 1, MPI_INT32_T, last, pipeline_.tokens));
    generated.push_back(token);
    if (i + 1 < count) logits = &feed({token});
  }
  return generated;
}

}  // namespace xp
