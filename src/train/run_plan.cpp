#include "xp/train/run_plan.hpp"

#include <algorithm>

#include "xp/io/checkpoint.hpp"
#include "xp/model/buffers.hpp"
#include "xp/parallel/topology.hpp"
#include "xp/train/schedule.hpp"

namespace xp {
namespace {

// Bytes per rank of pipeline stage `stage`: the buffers its model and optimizer allocate, from the
// functions they allocate with, at the sizes the Trainer gives them.
StageMemory stage_memory(const Config& config, const Layout& layout, const StageRange& range, int stage,
                         const Precision& precision) {
  const ParameterLayout table(config.model, placement_of(range, layout.tp, 0));
  const bool zero = shards_optimizer(config.parallel.zero_stage, layout.dp);
  const ZeroShard shard = zero_shard(table.total(), layout.dp, 0, zero);
  const int slots = max_in_flight(layout.pp, stage, config.train.grad_accum_steps);
  const ModelBuffers model =
      model_buffers(config.model, table, config.train.batch_size, slots, config.parallel.recompute, shard.buffer_size,
                    precision, config.parallel.optimizer_offload);
  const bool gradient_copy = overlaps_offload_copies(config.parallel, layout.dp);
  const OptimizerBuffers optimizer = optimizer_buffers(shard, zero, config.parallel.optimizer_offload,
                                                       gradient_copy, precision.compute_copy());

  StageMemory memory;
  memory.stage = stage;
  memory.first_layer = range.first_layer;
  memory.last_layer = range.last_layer;
  memory.parameters = static_cast<double>(table.total());
  memory.weights = model.weight_bytes();
  memory.grads = model.grad_bytes() + 4.0 * optimizer.shard_grads;
  memory.optimizer = 2 * 4.0 * optimizer.moments;
  memory.activations = model.activation_bytes();
  memory.host_gradient_copy = gradient_copy;
  memory.host = 4.0 * (3 * optimizer.host.state + optimizer.host.staging) +
                double(precision.real_bytes) * optimizer.host.real_staging;
  // fp32 gradients down, the compute copy's Real weights up (fp32 params on the fp32 build).
  memory.offload_traffic = (4.0 + precision.real_bytes) * optimizer.host.state;
  const double boundary = double(config.train.batch_size) * config.model.seq_len * config.model.n_embd;
  if (layout.pp > 1) memory.comm_buffers += 2 * boundary * precision.real_bytes;
  if (precision.gpu && layout.dp > 1) memory.comm_buffers += std::min(25e6, memory.parameters) * 4.0;
  memory.checkpoint_staging = static_cast<double>(checkpoint_staging_bytes(table));
  memory.total = memory.weights + memory.grads + memory.optimizer + memory.activations + memory.comm_buffers;
  return memory;
}

}  // namespace

RunPlan make_run_plan(const Config& config, int world_size, int world_rank, const Precision& precision) {
  return make_run_plan(config, choose_layout(config.parallel, config.model, world_size), world_rank, precision);
}

RunPlan make_run_plan(const Config& config, const Layout& layout, int world_rank, const Precision& precision) {
  RunPlan plan;
  plan.layout = layout;
  plan.world_rank = world_rank;
  plan.position = grid_position(layout, world_rank);
  plan.stages = partition_layers(config.model, layout.pp);
  plan.placement = placement_of(plan.stages[plan.position.pp], layout.tp, plan.position.tp);
  plan.zero = shards_optimizer(config.parallel.zero_stage, layout.dp);
  const int64_t parameters = ParameterLayout(config.model, plan.placement).total();
  plan.shard = zero_shard(parameters, layout.dp, plan.position.dp, plan.zero);
  plan.slots = max_in_flight(layout.pp, plan.position.pp, config.train.grad_accum_steps);
  plan.micro_batch = config.train.batch_size;
  plan.recompute = config.parallel.recompute;
  plan.precision = precision;
  plan.parameters = count_parameters(config.model);
  for (size_t s = 0; s < plan.stages.size(); ++s)
    plan.memory.push_back(stage_memory(config, layout, plan.stages[s], static_cast<int>(s), precision));
  return plan;
}

}  // namespace xp
