#include "xp/train/distributed_optimizer.hpp"

#include <algorithm>
#include <utility>

#include "xp/core/allocation.hpp"
#include "xp/kernels/elementwise.hpp"

namespace xp {

ZeroShard zero_shard(int64_t parameters, int dp, int dp_rank, bool zero) {
  if (!zero) return {0, parameters, parameters};
  const int64_t slice = (parameters + dp - 1) / dp;
  return {dp_rank * slice, (dp_rank + 1) * slice, slice * dp};
}

OptimizerBuffers optimizer_buffers(const ZeroShard& shard, bool zero) {
  return {std::max<int64_t>(0, shard.size()), zero ? shard.size() : 0};
}

DistributedOptimizer::DistributedOptimizer(GPT2& model, const ParallelGrid& grid, const TrainConfig& train,
                                           const ZeroShard& shard, bool zero)
    : model_(model), grid_(grid), shard_(shard), zero_(zero), adamw_(model.layout(), train, shard.begin, shard.end) {
  const OptimizerBuffers sizes = optimizer_buffers(shard, zero);
  if (sizes.shard_grads > 0)
    shard_grads_ = allocate<FloatBuffer>("xp::shard_grads", sizes.shard_grads, MemoryKind::Grads);
}

const float* DistributedOptimizer::reduced_grads() const {
  return zero_ ? shard_grads_.data() : model_.grads.data() + shard_.begin;
}

void DistributedOptimizer::reduce_gradients() {
  Kokkos::fence();
  if (zero_) grid_.dp().reduce_scatter_sum(model_.grads.data(), shard_grads_.data(), shard_.size());
  else grid_.dp().all_reduce_sum(model_.grads.data(), model_.grads.size());
}

double DistributedOptimizer::grad_norm_squared_part() const {
  // Without ZeRO every replica holds the same summed gradients: replica 0 counts them.
  if (!zero_ && grid_.dp_rank() != 0) return 0.0;
  const int64_t begin = shard_.begin, end = shard_.end;
  const ParameterLayout& layout = model_.layout();
  // Adjacent counted tensors form one range: one reduction (one wait for the GPU) per range.
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (const TensorInfo& tensor : layout.tensors()) {
    if (tensor.split == Split::Replicated && grid_.tp_rank() != 0) continue;
    if (tensor.name == "wte.weight" && !layout.placement().has_embedding) continue;
    const int64_t first = std::max(begin, tensor.offset), last = std::min(end, tensor.offset + tensor.size);
    if (first >= last) continue;
    if (!ranges.empty() && ranges.back().second == first) ranges.back().second = last;
    else ranges.emplace_back(first, last);
  }
  const float* grads = reduced_grads();
  double sum = 0.0;
  for (const auto& [first, last] : ranges) sum += sum_squares(grads + (first - begin), last - first);
  return sum;
}

void DistributedOptimizer::step(double lr, double grad_scale) {
  if (!zero_) {  // the update writes the compute weights of the whole buffer too
    adamw_.step(model_.params.data(), reduced_grads(), lr, grad_scale, model_.compute_weights_copy());
    return;
  }
  adamw_.step(model_.params.data(), reduced_grads(), lr, grad_scale);
  Kokkos::fence();
  grid_.dp().all_gather(model_.params.data() + shard_.begin, model_.params.data(), shard_.size());
  model_.refresh_compute_weights();
}

OptimizerState DistributedOptimizer::state() const {
  OptimizerState state;
  // Only data-parallel replica 0 writes; ZeRO-1's all-gather still needs every replica.
  if (!zero_ && grid_.dp_rank() != 0) return state;
  const int64_t local = model_.layout().total();
  auto full = [&](const FloatBuffer& moment) {
    HostFloatBuffer host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), moment);
    std::vector<float> values(zero_ ? shard_.buffer_size : local);
    if (zero_) grid_.dp_host().all_gather(host.data(), values.data(), shard_.size());
    else std::copy(host.data(), host.data() + local, values.data());
    values.resize(local);
    return values;
  };
  state.exp_avg = full(adamw_.m);
  state.exp_avg_sq = full(adamw_.v);
  return state;
}

void DistributedOptimizer::load_state(const OptimizerState& state, int64_t steps) {
  const int64_t begin = shard_.begin, end = std::min<int64_t>(shard_.end, model_.layout().total());
  HostFloatBuffer m = Kokkos::create_mirror_view(adamw_.m), v = Kokkos::create_mirror_view(adamw_.v);
  for (int64_t i = begin; i < end; ++i) {
    m(i - begin) = state.exp_avg[i];
    v(i - begin) = state.exp_avg_sq[i];
  }
  Kokkos::deep_copy(adamw_.m, m);
  Kokkos::deep_copy(adamw_.v, v);
  adamw_.set_steps_taken(steps);
}

}  // namespace xp
