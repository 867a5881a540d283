#include "xp/train/distributed_optimizer.hpp"

#include <algorithm>
#include <utility>

#include "xp/core/allocation.hpp"
#include "xp/core/error.hpp"
#include "xp/core/device.hpp"
#include "xp/kernels/elementwise.hpp"

namespace xp {

ZeroShard zero_shard(int64_t parameters, int dp, int dp_rank, bool zero) {
  if (!zero) return {0, parameters, parameters};
  const int64_t slice = (parameters + dp - 1) / dp;
  return {dp_rank * slice, (dp_rank + 1) * slice, slice * dp};
}

OptimizerBuffers optimizer_buffers(const ZeroShard& shard, bool zero, bool offload, bool overlap, bool compute_copy) {
  OptimizerBuffers buffers;
  buffers.moments = offload ? 0 : std::max<int64_t>(0, shard.size());
  buffers.shard_grads = zero ? shard.size() : 0;
  if (offload) buffers.host = offload_buffers(shard.size(), offload_chunk_floats, overlap, compute_copy);
  return buffers;
}

DistributedOptimizer::DistributedOptimizer(GPT2& model, const ParallelGrid& grid, const TrainConfig& train,
                                           const ZeroShard& shard, bool zero, const OffloadOptions& offload)
    : model_(model), grid_(grid), shard_(shard), zero_(zero) {
  const bool overlap = offload.enabled && offload.overlap;
  XP_REQUIRE(!overlap || (!zero && grid.layout().dp == 1), "offload's gradient copies overlap only where dp = 1");
  const OptimizerBuffers sizes = optimizer_buffers(shard, zero, offload.enabled, overlap);
  if (offload.enabled) {
    host_adamw_ = std::make_unique<HostAdamW>(model.layout(), train, shard.begin, shard.end, offload.threads,
                                              offload_chunk_floats, overlap);
    if (overlap) copies_ = std::make_unique<GradientCopies>(host_adamw_->gradient_copy(), shard.begin, shard.end);
    // The initial weights (GPT2::init_weights, on the device where the build has one: the same bits as the
    // device optimizer's run starts from); the range's end may lie in the ZeRO padding, which stays 0.
    exec_space().fence();
    host_adamw_->load_weights(model.fp32_weights().data() + shard.begin);
  } else {
    adamw_ = std::make_unique<AdamW>(model.layout(), train, shard.begin, shard.end);
  }
  if (sizes.shard_grads > 0)
    shard_grads_ = allocate<FloatBuffer>("xp::shard_grads", sizes.shard_grads, MemoryKind::Grads);
}

void DistributedOptimizer::set_steps_taken(int64_t steps) {
  if (host_adamw_) host_adamw_->set_steps_taken(steps);
  else adamw_->set_steps_taken(steps);
}

void DistributedOptimizer::weights_loaded() {
  if (host_adamw_) publish_master_weights();
  else model_.refresh_compute_weights();
}

void DistributedOptimizer::publish_master_weights() {
  float* weights = model_.fp32_weights().data();
  exec_space().fence();
  copy_memory(weights + shard_.begin, host_adamw_->master.data(), sizeof(float) * size_t(shard_.size()));
  if (zero_) grid_.dp().all_gather(weights + shard_.begin, weights, shard_.size());
  model_.refresh_compute_weights();
}

Real* DistributedOptimizer::compute_weights() const {
  Real* copy = model_.compute_weights_copy();
  // fp32 builds compute with params themselves (Real is float there; the cast is the identity).
  if (!copy && real_is_float) copy = reinterpret_cast<Real*>(model_.params.data());
  XP_REQUIRE(copy, "the model has no compute weights");
  return copy;
}

const float* DistributedOptimizer::reduced_grads() const {
  return zero_ ? shard_grads_.data() : model_.grads.data() + shard_.begin;
}

namespace {

// Before a collective or the host optimizer reads device-written buffers: CPU builds wait for the kernels (MPI
// and the host read them directly); GPU builds need no wait, as NCCL runs on the program stream and the MPI
// backend and copy_memory copy in stream order and wait themselves.
void wait_before_host_reads() {
  if (!device_build) exec_space().fence();
}

}  // namespace

void DistributedOptimizer::reduce_gradients() {
  wait_before_host_reads();
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
  if (host_adamw_) {
    // The updated weights come back as the compute copy (bf16 builds: rounded on the host; fp32: params),
    // then ZeRO-1 all-gathers that: no fp32 weights on the device, none converted there. The gradient
    // buffer keeps the step's gradients until the next zero_grads().
    Real* compute = compute_weights();
    wait_before_host_reads();
    const bool copied = copies_ && copies_->finish();
    host_adamw_->step(reduced_grads(), compute + shard_.begin, lr, grad_scale, copied);
    if (zero_) grid_.dp().all_gather_elements(compute + shard_.begin, compute, shard_.size());
    return;
  }
  if (!zero_) {  // the update writes the compute weights of the whole buffer too
    adamw_->step(model_.params.data(), reduced_grads(), lr, grad_scale, model_.compute_weights_copy());
    return;
  }
  adamw_->step(model_.params.data(), reduced_grads(), lr, grad_scale);
  wait_before_host_reads();
  grid_.dp().all_gather(model_.params.data() + shard_.begin, model_.params.data(), shard_.size());
  model_.refresh_compute_weights();
}

void DistributedOptimizer::reset_grad_copies() {
  if (copies_) copies_->reset_step();
}

void DistributedOptimizer::copy_final_grads(int64_t first, int64_t last) {
  if (copies_) copies_->copy(model_.grads.data(), first, last);
}

std::vector<std::pair<int64_t, int64_t>> DistributedOptimizer::grad_copy_ledger() const {
  return copies_ ? copies_->ledger() : std::vector<std::pair<int64_t, int64_t>>{};
}

float* DistributedOptimizer::moment_data(AdamMoment moment) const {
  XP_REQUIRE(moment != AdamMoment::Master || host_adamw_, "the master weights are the model's without offload");
  if (moment == AdamMoment::Master) return host_adamw_->master.data();
  if (host_adamw_) return (moment == AdamMoment::ExpAvg ? host_adamw_->m : host_adamw_->v).data();
  return (moment == AdamMoment::ExpAvg ? adamw_->m : adamw_->v).data();
}

void DistributedOptimizer::save_chunk(AdamMoment moment, int64_t begin, int64_t end, float* staging) const {
  // Element i of the flat layout is values[i - shard.begin], in device or (offload) host memory.
  const float* values = moment_data(moment);
  auto copy_out = [&](int64_t first, int64_t last, float* to) {
    if (last > first) copy_memory(to, values + (first - shard_.begin), sizeof(float) * size_t(last - first));
  };
  exec_space().fence();
  if (!zero_) {
    if (grid_.dp_rank() == 0) copy_out(begin, end, staging);
    return;
  }
  // Replica r holds [r·slice, (r+1)·slice): its overlap with the chunk goes to its place in dp rank 0's
  // staging (that rank's own part is already there: MPI_IN_PLACE).
  const int dp = grid_.layout().dp;
  std::vector<int> counts(dp), offsets(dp);
  for (int r = 0; r < dp; ++r) {
    const ZeroShard shard = zero_shard(model_.layout().total(), dp, r, true);
    const int64_t first = std::max(begin, shard.begin), last = std::min(end, shard.end);
    counts[r] = static_cast<int>(std::max<int64_t>(0, last - first));
    offsets[r] = static_cast<int>(std::min(first, end) - begin);
  }
  const int me = grid_.dp_rank();
  copy_out(begin + offsets[me], begin + offsets[me] + counts[me], staging + offsets[me]);
  XP_MPI_CHECK(MPI_Gatherv(me == 0 ? MPI_IN_PLACE : staging + offsets[me], counts[me], MPI_FLOAT, staging,
                           counts.data(), offsets.data(), MPI_FLOAT, 0, grid_.dp_comm()));
}

std::vector<float> DistributedOptimizer::moment_copy(AdamMoment moment) const {
  const int64_t last = std::min(shard_.end, model_.layout().total());
  std::vector<float> copy(static_cast<size_t>(std::max<int64_t>(0, last - shard_.begin)));
  exec_space().fence();
  if (!copy.empty()) copy_memory(copy.data(), moment_data(moment), sizeof(float) * copy.size());
  return copy;
}

void DistributedOptimizer::load_chunk(AdamMoment moment, int64_t begin, int64_t end, const float* staging) {
  float* values = moment_data(moment);
  const int64_t first = std::max(begin, shard_.begin), last = std::min({end, shard_.end, model_.layout().total()});
  exec_space().fence();
  if (first < last)
    copy_memory(values + (first - shard_.begin), staging + (first - begin), sizeof(float) * size_t(last - first));
}

}  // namespace xp
