#pragma once
// The run plan: every fact about a run's shape, computed once from the Config and the world size and
// read by everything after — the Trainer (grid, model, optimizer, pipeline), `--dry-run`, the fit check
// and the checkpoint writer. Its memory per stage comes from the functions the model and the optimizer
// allocate with (model_buffers, optimizer_buffers), so the estimate is the allocation.
//
// Each field comes from the one function that owns its fact:
//   layout     choose_layout(config.parallel, config.model, world size)
//   position   grid_position(layout, rank)                 (ParallelGrid places ranks with it too)
//   stages     partition_layers(config.model, pp)
//   placement  placement_of(stage, tp, tp rank)
//   shard      zero_shard(parameters of the placement, dp, dp rank, shards_optimizer(zero_stage, dp))
//   slots      max_in_flight(pp, stage, grad_accum_steps)  (the 1F1B schedule's)
//   memory     model_buffers(..., recompute, ...) and optimizer_buffers(shard) of each stage, in bytes
#include <cstdint>
#include <vector>

#include "xp/config/config.hpp"
#include "xp/core/precision.hpp"
#include "xp/model/layout.hpp"
#include "xp/model/partition.hpp"
#include "xp/parallel/grid.hpp"
#include "xp/train/distributed_optimizer.hpp"

namespace xp {

// Bytes per rank of one pipeline stage (every rank of a stage holds the same amount).
struct StageMemory {
  int stage = 0;
  int first_layer = 0, last_layer = 0;  // last exclusive
  double parameters = 0;                // per rank
  // weights: fp32 params (+ the bf16 compute copy); grads: fp32 grads (+ ZeRO-1's reduced slice);
  // optimizer: AdamW m and v of the rank's range; activations: what the model keeps for backward for
  // each micro-batch in flight, its backward buffers, attention scratch and token ids; comm_buffers:
  // what the libraries hold for us (pipeline send + receive of one boundary activation; on GPU an
  // all-reduce bucket), an estimate — the only one here.
  double weights = 0, grads = 0, optimizer = 0, activations = 0, comm_buffers = 0, total = 0;
  // Host memory the rank allocates besides those (optimizer_offload: fp32 master weights, both AdamW
  // moments of its range and one gradient chunk; pinned on GPU builds). Not in `total`, which is the
  // device's; on CPU builds both are the same RAM (ram_need()).
  double host = 0;
  bool host_gradient_copy = false;  // offload_overlap: the host holds all the range's gradients, not one chunk
  double offload_traffic = 0;  // bytes per step between device and host with offload: fp32 grads down, Real weights up
  double ram_need() const { return total + host; }  // a CPU build's whole need
  // Host memory a checkpoint save or resume adds for its duration (its staging buffer, one chunk:
  // checkpoint_staging_bytes); host memory on GPU builds, so not in `total`.
  double checkpoint_staging = 0;
};

struct RunPlan {
  Layout layout;                   // tp × pp × dp (choose_layout)
  int world_rank = 0;              // the rank this plan is seen from
  GridPosition position;           // its place in the layout, as ParallelGrid puts it
  std::vector<StageRange> stages;  // layers of each pipeline stage (partition_layers)
  Placement placement;             // this rank's share of the model
  ZeroShard shard;                 // this rank's optimizer range and the padded length of params/grads
  bool zero = false;               // the optimizer is sharded over dp (zero_stage = 1 and dp > 1)
  int slots = 1;                   // micro-batches in flight on this rank's stage under 1F1B
  int micro_batch = 1;             // sequences per micro-batch (batch_size)
  Recompute recompute = Recompute::None;  // what the model keeps for backward (config.parallel.recompute)
  Precision precision;             // of the build the buffers are sized for
  int64_t parameters = 0;          // of the whole model (the tied embedding once)
  std::vector<StageMemory> memory;  // per rank of each stage

  int world_size() const { return layout.dp * layout.tp * layout.pp; }
  const StageMemory& rank_memory() const { return memory[position.pp]; }  // this rank's
};

// The plan of `config` on `world_size` ranks, seen from `world_rank`, with buffers sized for a build of
// `precision` (build_precision; gpu_precision for `--dry-run --gpu`). Throws InputError for a layout
// that cannot run (choose_layout).
RunPlan make_run_plan(const Config& config, int world_size, int world_rank, const Precision& precision);
// The same for a given layout (the fit check's candidates); the layout must be runnable.
RunPlan make_run_plan(const Config& config, const Layout& layout, int world_rank, const Precision& precision);

}  // namespace xp
