#include "xp/model/buffers.hpp"

#include <algorithm>

#include "xp/kernels/attention.hpp"

namespace xp {

double ModelBuffers::weight_bytes() const { return 4.0 * params + double(real_bytes) * compute_weights; }

double ModelBuffers::grad_bytes() const { return 4.0 * params; }

double ModelBuffers::activation_bytes() const {
  return double(real_bytes) * (double(slots) * acts.total + grad_acts.total) +
         4.0 * (double(slots) * stats.total + attention_scratch) + 2 * 4.0 * tokens;
}

ModelBuffers model_buffers(const ModelConfig& model, const ParameterLayout& layout, int max_batch, int slots,
                           int64_t buffer_size, const Precision& precision) {
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
  ActivationOffsets& a = buffers.acts;
  a.encoded = take(N * C);
  a.ln1 = take(L * N * C);
  a.qkv = take(L * N * 3 * CL);
  a.atty = take(L * N * CL);
  a.residual2 = take(L * N * C);
  a.ln2 = take(L * N * C);
  a.fch = take(L * N * 4 * CL);
  a.residual3 = take(L * N * C);
  a.lnf = take(head ? N * C : 0);
  a.logits = take(head ? N * VL : 0);
  a.total = total;

  total = 0;
  StatOffsets& s = buffers.stats;
  s.ln1_mean = take(L * N);
  s.ln1_rstd = take(L * N);
  s.att = take(L * attention_stats_size(max_batch, model.seq_len, C_local, heads_local, precision));
  s.ln2_mean = take(L * N);
  s.ln2_rstd = take(L * N);
  s.lnf_mean = take(head ? N : 0);
  s.lnf_rstd = take(head ? N : 0);
  s.lse = take(head ? N : 0);
  s.losses = take(head ? N : 0);
  s.row_stats = take(head ? 3 * N : 0);
  s.total = total;

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
  buffers.params = std::max(buffer_size, layout.total());
  buffers.compute_weights = precision.compute_copy() ? layout.total() : 0;
  buffers.attention_scratch = attention_scratch_size(max_batch, model.seq_len, C_local, heads_local, precision);
  buffers.tokens = slots * N;
  buffers.real_bytes = precision.real_bytes;
  return buffers;
}

}  // namespace xp
