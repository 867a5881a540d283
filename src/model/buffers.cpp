#include "xp/model/buffers.hpp"

#include <algorithm>

#include "xp/kernels/attention.hpp"

namespace xp {

double ModelBuffers::weight_bytes() const { return 4.0 * params + double(real_bytes) * compute_weights; }

double ModelBuffers::grad_bytes() const { return 4.0 * grads; }

double ModelBuffers::activation_bytes() const {
  return double(real_bytes) * (double(slots) * acts.total + recompute_acts + grad_acts.total) +
         4.0 * (double(slots) * stats.total + recompute_stats + attention_scratch) + 2 * 4.0 * tokens;
}

ModelBuffers model_buffers(const ModelConfig& model, const ParameterLayout& layout, int max_batch, int slots,
                           Recompute recompute, int64_t buffer_size, const Precision& precision,
                           bool master_on_host) {
  const Placement& place = layout.placement();
  const int64_t L = place.last_layer - place.first_layer, C = model.n_embd, T = model.seq_len;
  const int C_local = model.n_embd / place.tp_size, heads_local = model.n_head / place.tp_size;
  const int64_t N = int64_t{max_batch} * T, CL = C_local, VL = model.padded_vocab() / place.tp_size;
  const bool head = place.has_head;

  ModelBuffers buffers;
  int64_t total = 0;
  auto take = [&total](int64_t size) {
    const int64_t offset = total;
    total += size;
    return offset;
  };
  // What the mode keeps (buffers.hpp); the rest goes to one block's worth of working buffers.
  const bool keep_inner = recompute == Recompute::None;       // ln1, atty, ln2, fch and their statistics
  const bool keep_qkv_residual2 = recompute != Recompute::Full;
  int64_t work = 0;
  auto block = [&](int64_t per_layer, bool kept) {
    if (!kept) {
      const int64_t offset = work;
      work += per_layer;
      return BlockTensor{offset, 0, false};
    }
    return BlockTensor{take(L * per_layer), per_layer, true};
  };
  ActivationOffsets& a = buffers.acts;
  a.encoded = take(N * C);
  a.ln1 = block(N * C, keep_inner);
  a.qkv = block(N * 3 * CL, keep_qkv_residual2);
  a.atty = block(N * CL, keep_inner);
  a.residual2 = block(N * C, keep_qkv_residual2);
  a.ln2 = block(N * C, keep_inner);
  a.fch = block(N * 4 * CL, keep_inner);
  a.residual3 = take(L * N * C);
  a.lnf = take(head ? N * C : 0);
  a.logits = take(head ? N * VL : 0);
  a.total = total;
  buffers.recompute_acts = work;

  total = 0;
  work = 0;
  StatOffsets& s = buffers.stats;
  s.ln1_mean = block(N, keep_inner);
  s.ln1_rstd = block(N, keep_inner);
  s.att = block(attention_stats_size(max_batch, model.seq_len, C_local, heads_local, precision), keep_inner);
  s.ln2_mean = block(N, keep_inner);
  s.ln2_rstd = block(N, keep_inner);
  s.lnf_mean = take(head ? N : 0);
  s.lnf_rstd = take(head ? N : 0);
  s.lse = take(head ? N : 0);
  s.losses = take(head ? N : 0);
  s.row_stats = take(head ? 3 * N : 0);
  s.total = total;
  buffers.recompute_stats = work;

  total = 0;
  GradOffsets& g = buffers.grad_acts;
  g.dresidual = take(N * C);
  g.doutput = take(head ? 0 : N * C);
  g.dC = take(N * C);
  g.d3C = take(N * 3 * CL);
  g.d4C = take(N * 4 * CL);
  g.gelu = take(N * 4 * CL);
  g.scratch = take(N * C);
  g.total = total;

  buffers.slots = slots;
  buffers.grads = std::max(buffer_size, layout.total());
  buffers.params = params_on_device(precision, master_on_host) ? buffers.grads : 0;
  // With the master on the host the optimizer writes the compute copy itself, and with ZeRO-1 all-gathers
  // it in dp equal slices: it is then padded like params (the padding, < dp elements, stays 0).
  buffers.compute_weights = precision.compute_copy() ? (master_on_host ? buffers.grads : layout.total()) : 0;
  buffers.attention_scratch = attention_scratch_size(max_batch, model.seq_len, C_local, heads_local, precision);
  buffers.tokens = slots * N;
  buffers.real_bytes = precision.real_bytes;
  return buffers;
}

}  // namespace xp
