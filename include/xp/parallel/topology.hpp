#pragma once
// Choosing the parallel layout and checking that it fits before anything is allocated: the `auto`
// seed heuristic of DESIGN.md, a per-stage memory estimate (weights, grads, AdamW state, activations
// of the micro-batches in flight under 1F1B, communication buffers) and, when it does not fit, the
// knob to turn. `xp_train DECK --dry-run` prints dry_run_report().
#include <string>
#include <vector>

#include "xp/config/config.hpp"
#include "xp/parallel/grid.hpp"

namespace xp {

// Resolves `auto` (0) degrees for `world_size` ranks with the seed heuristic (params ≤ 2 B and
// seq_len ≤ 2048 → tp = pp = 1; ≤ 7 B → tp = 2; else tp = 4, pp = 2; an auto degree shrinks until it
// divides what the world leaves); integers override. Throws InputError naming every factor and
// proposing a valid combination when tp × pp × dp ≠ world, n_head or the padded vocabulary is not
// divisible by tp, or pp > n_layer.
Layout choose_layout(const ParallelConfig& parallel, const ModelConfig& model, int world_size);

// "tp groups: [0,1] [2,3] ...", one line each for tp, pp and dp (up to 16 ranks).
std::string rank_map(const Layout& layout);

struct StageMemory {
  int stage = 0;
  int first_layer = 0, last_layer = 0;  // last exclusive
  double parameters = 0;                // per rank
  // Bytes per rank.
  double weights = 0, grads = 0, optimizer = 0, activations = 0, comm_buffers = 0, total = 0;
};

struct MemoryPlan {
  std::vector<StageMemory> stages;
  double available = 0;  // bytes per rank; 0 = unknown (nothing checked)
  bool fits = true;
  bool gpu = false;
  std::string advice;    // the knob to turn when it does not fit
};

// Per rank of each pipeline stage, at the configured micro-batch (batch_size × seq_len tokens):
//   weights      4 B/param fp32 master (+ 2 B/param bf16 compute copy on GPU)
//   grads        4 B/param
//   optimizer    8 B/param AdamW m and v, ÷ dp with zero_stage = 1
//   activations  what GPT2::forward saves for backward, per micro-batch in flight on the stage
//                (1F1B: min(pp − stage, grad_accum_steps)), plus one micro-batch of backward
//                working buffers; tensors split across tp count 1/tp; 4 B/element (2 B on GPU)
//   comm         pipeline send + receive of one boundary activation (pp > 1); on GPU a gradient
//                all-reduce bucket of min(25 M, stage params) fp32 (dp > 1)
// `available` is device_memory, or detect_device_memory(world) on CPU.
MemoryPlan estimate_memory(const Config& config, const Layout& layout, bool gpu);

// Host RAM free for one of `ranks_on_host` ranks (MemAvailable of /proc/meminfo); 0 when unknown.
double detect_device_memory(int ranks_on_host);

// The per-stage table in GiB and a verdict line (fits / does not fit: advice).
std::string format_memory_table(const MemoryPlan& plan, const Layout& layout);

// Model shape and size, layout, rank map, stage partition and memory table for `world_size` ranks.
// Builds the parameter table only; allocates no weights. Throws InputError for an impossible layout.
std::string dry_run_report(const Config& config, int world_size, bool gpu);

}  // namespace xp
