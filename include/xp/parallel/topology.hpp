#pragma once
// Choosing the parallel layout before anything is allocated: the `auto` seed heuristic of DESIGN.md,
// the checks that the model can run on a layout, and the rank map. Whether a run fits in memory is the
// fit check's (train/fit_check.hpp), over the run plan (train/run_plan.hpp).
#include <string>

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

// Whether the model runs on `layout` of `world_size` ranks: tp × pp × dp = world, whole heads and equal
// vocabulary slices per tp rank, at least one layer per stage.
bool runnable(const Layout& layout, const ModelConfig& model, int world_size);

// "tp_size 4, pp_stages 2, dp_size 1".
std::string layout_factors(const Layout& layout);

// Tensor-parallel groups stay inside one host (DESIGN.md: up to 8 GPUs).
constexpr int max_tensor_parallel = 8;

// Host RAM free for one of `ranks_on_host` ranks (MemAvailable of /proc/meminfo); 0 when unknown.
double detect_device_memory(int ranks_on_host);

}  // namespace xp
