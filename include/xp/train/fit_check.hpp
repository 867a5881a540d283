#pragma once
// Whether a run fits before anything is allocated: the run plan's memory per stage against what a rank
// may use and, when it does not fit, the knob to turn (tried through candidate plans). `xp_train DECK
// --dry-run` prints dry_run_report().
#include <string>

#include "xp/config/config.hpp"
#include "xp/parallel/grid.hpp"
#include "xp/train/run_plan.hpp"

namespace xp {

struct MemoryPlan {
  std::vector<StageMemory> stages;  // the run plan's
  double available = 0;             // bytes per rank; 0 = unknown (nothing checked)
  // Host memory (optimizer offload's state): what the node's ranks together need, and have; 0 = unknown.
  int ranks_per_node = 1;
  double host_per_node = 0;
  double host_available = 0;        // bytes per node; 0 = unknown (not checked)
  bool device_fits = true, host_fits = true;
  bool fits = true;                 // both
  Precision precision;              // of the build planned for
  std::string advice;               // the knob to turn when it does not fit
};

// `plan`'s stages against `available` bytes per rank (0: unknown, nothing checked) and their host memory,
// summed over the `ranks_per_node` ranks of a node (0: the whole world on one host), against
// host_memory_per_node(), with advice when either does not fit: the first change, in order of preference
// (more pipeline stages, more tensor parallelism, ZeRO-1, a smaller micro-batch with more accumulation
// for the same global batch, selective then full recomputation, optimizer offload, then those options
// together and with another tp × pp), each with its cost, else the shortfall and the smallest larger
// world where some layout fits. On CPU builds device and host memory are one RAM: a stage needs both.
// `what_if`: a plan for a machine that need not be this one (--dry-run, estimate_memory).
MemoryPlan check_fit(const Config& config, const RunPlan& plan, double available, int ranks_per_node = 0,
                     bool what_if = false);

// Host memory per node the fit check allows: host_memory when set; else this host's free RAM for a CPU
// plan, and for a GPU plan of a real run on a GPU build; unknown (0) for a GPU what-if, whichever build
// plans it (as its device memory is unknown without device_memory), so every build prints the same plan.
double host_memory_per_node(const Config& config, const Precision& precision, bool what_if);

// Bytes one rank of this build may use: device_memory when set, else its share of its GPU (GPU builds)
// or of this host's free RAM among the `ranks_on_host` ranks of the job on this host.
double available_memory(const Config& config, int ranks_on_host);

// The fit check of `layout` for the CPU build (fp32) or the GPU build (`gpu`: bf16 activations and
// compute copy, fused attention) as a what-if: device_memory when set; else for a CPU plan this host's
// free RAM shared by all the layout's ranks (a dry run previews a run on this host), unknown for a GPU one.
MemoryPlan estimate_memory(const Config& config, const Layout& layout, bool gpu);

// The per-stage table in GiB and a verdict line (fits / does not fit: advice).
std::string format_memory_table(const MemoryPlan& plan, const Layout& layout);

// Model shape and size, layout, rank map, stage partition and memory table of the run plan for
// `world_size` ranks (for the CPU build, or the GPU build with `gpu`). Allocates nothing. Throws
// InputError for an impossible layout.
std::string dry_run_report(const Config& config, int world_size, bool gpu);

}  // namespace xp
