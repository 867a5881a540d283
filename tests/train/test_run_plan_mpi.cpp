// The run plan's memory estimate is the allocation. For each configuration the Trainer is built (model,
// optimizer, data) and the bytes its model and optimizer allocated (device and, with optimizer offload,
// host), counted by allocate() in the ledger,
// must equal what its run plan predicts for this rank's stage — weights, grads, optimizer state and
// activations each (the issue allows 1%; they are exact). The `--dry-run` estimate (estimate_memory)
// must give the same numbers on the fp32 build, and the `--dry-run --gpu` one where Real is bf16 (the
// emulated build: 2-byte activations and the compute copy, unfused attention). Kokkos's own allocation
// events make sure nothing large bypasses allocate(): every byte still held in the default memory space
// after set-up is in the ledger, but for the optimizer's segment tables (a few bytes per tensor).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <Kokkos_Core.hpp>

#include "support.hpp"
#include "xp/core/allocation.hpp"
#include "xp/kernels/attention.hpp"
#include "xp/train/fit_check.hpp"
#include "xp/train/trainer.hpp"

namespace {

using xp::test::world_size;

struct Case {
  const char* name;
  int tp, pp, dp;
  int zero_stage;
  int batch_size, grad_accum_steps;
  int n_embd = 32, n_head = 4;  // head size 8; 128 and 2 give head size 64 (the fused attention on GPU)
  xp::Recompute recompute = xp::Recompute::None;  // what the model keeps for backward (model/buffers.hpp)
  bool offload = false;                          // optimizer_offload: AdamW state in host memory
  bool overlap = true;  // offload_overlap: with dp = 1 a host copy of all the gradients (4 B per parameter)
};

constexpr xp::Recompute selective = xp::Recompute::Selective, full = xp::Recompute::Full;

// Each runs where the world size is tp·pp·dp. grad_accum_steps sets the micro-batches in flight under
// 1F1B (pp 4 with 4 micro-batches keeps 4, 3, 2, 1 on its stages).
const std::vector<Case> cases = {
    {"one rank", 1, 1, 1, 0, 2, 1},
    {"one rank, B 3, accumulation", 1, 1, 1, 0, 3, 2},
    {"head size 64", 1, 1, 1, 0, 1, 1, 128, 2},
    {"dp 2", 1, 1, 2, 0, 2, 1},
    {"dp 2, ZeRO-1", 1, 1, 2, 1, 3, 2},
    {"tp 2", 2, 1, 1, 0, 2, 1},
    {"pp 2, 3 micro-batches", 1, 2, 1, 0, 2, 3},
    {"tp 2 × pp 2", 2, 2, 1, 0, 2, 2},
    {"pp 2 × dp 2, ZeRO-1", 1, 2, 2, 1, 1, 3},
    {"pp 4, 4 micro-batches", 1, 4, 1, 0, 2, 4},
    {"tp 2 × dp 2, ZeRO-1", 2, 1, 2, 1, 2, 1},
    {"tp 2 × pp 2 × dp 2, ZeRO-1", 2, 2, 2, 1, 2, 2},
    // Each recompute mode at every world size (its working buffers, and the fused path's statistics).
    {"one rank, selective", 1, 1, 1, 0, 3, 2, 32, 4, selective},
    {"one rank, full", 1, 1, 1, 0, 3, 2, 32, 4, full},
    {"head size 64, selective", 1, 1, 1, 0, 1, 1, 128, 2, selective},
    {"head size 64, full", 1, 1, 1, 0, 1, 1, 128, 2, full},
    {"tp 2, full", 2, 1, 1, 0, 2, 1, 32, 4, full},
    {"pp 2, 3 micro-batches, selective", 1, 2, 1, 0, 2, 3, 32, 4, selective},
    {"tp 2 × pp 2, selective", 2, 2, 1, 0, 2, 2, 32, 4, selective},
    {"pp 4, 4 micro-batches, full", 1, 4, 1, 0, 2, 4, 32, 4, full},
    {"tp 2 × pp 2 × dp 2, ZeRO-1, selective", 2, 2, 2, 1, 2, 2, 32, 4, selective},
    {"tp 2 × pp 2 × dp 2, ZeRO-1, full", 2, 2, 2, 1, 2, 2, 32, 4, full},
    {"one rank, offload", 1, 1, 1, 0, 2, 1, 32, 4, xp::Recompute::None, true},
    {"dp 2, ZeRO-1, offload", 1, 1, 2, 1, 3, 2, 32, 4, xp::Recompute::None, true},
    {"tp 2 × pp 2, offload, full", 2, 2, 1, 0, 2, 2, 32, 4, full, true},
    {"dp 2, offload", 1, 1, 2, 0, 2, 1, 32, 4, xp::Recompute::None, true},
    {"tp 2 × pp 2 × dp 2, ZeRO-1, offload", 2, 2, 2, 1, 2, 2, 32, 4, xp::Recompute::None, true},
    {"one rank, offload without overlap", 1, 1, 1, 0, 2, 1, 32, 4, xp::Recompute::None, true, false},
    {"tp 2, offload", 2, 1, 1, 0, 2, 1, 32, 4, xp::Recompute::None, true},
    {"pp 2, 3 micro-batches, offload", 1, 2, 1, 0, 2, 3, 32, 4, xp::Recompute::None, true},
    {"pp 2, offload without overlap", 1, 2, 1, 0, 2, 3, 32, 4, xp::Recompute::None, true, false},
};

// Bytes Kokkos holds in the default memory space, and under which labels, from its allocation events.
class KokkosAllocations {
 public:
  KokkosAllocations() {
    live_.clear();
    Kokkos::Tools::Experimental::set_allocate_data_callback(&allocated);
    Kokkos::Tools::Experimental::set_deallocate_data_callback(&deallocated);
  }
  ~KokkosAllocations() {
    Kokkos::Tools::Experimental::set_allocate_data_callback(nullptr);
    Kokkos::Tools::Experimental::set_deallocate_data_callback(nullptr);
  }
  // Bytes still held by allocations whose label is not in `labels`, and their labels.
  static double held_outside(const std::vector<std::string>& labels, std::string& names) {
    double bytes = 0;
    for (const auto& [pointer, allocation] : live_) {
      bool counted = false;
      for (const std::string& label : labels) counted = counted || label == allocation.first;
      if (counted) continue;
      bytes += allocation.second;
      names += " " + allocation.first;
    }
    return bytes;
  }

 private:
  static bool default_space(const Kokkos_Profiling_SpaceHandle& handle) {
    return std::strcmp(handle.name, xp::ExecSpace::memory_space::name()) == 0;
  }
  static void allocated(Kokkos_Profiling_SpaceHandle handle, const char* label, const void* pointer, uint64_t size) {
    if (default_space(handle)) live_[pointer] = {label, double(size)};
  }
  static void deallocated(Kokkos_Profiling_SpaceHandle handle, const char*, const void* pointer, uint64_t) {
    if (default_space(handle)) live_.erase(pointer);
  }
  static inline std::map<const void*, std::pair<std::string, double>> live_;
};

xp::Config case_config(const Case& c) {
  xp::Config config = xp::test::tiny_config(xp::test::temp_path(std::string("xp_run_plan_np") +
                                                                std::to_string(world_size())));
  config.model.n_embd = c.n_embd;
  config.model.n_head = c.n_head;
  config.parallel.tp_size = c.tp;
  config.parallel.pp_stages = c.pp;
  config.parallel.dp_size = c.dp;
  config.parallel.zero_stage = c.zero_stage;
  config.train.batch_size = c.batch_size;
  config.train.grad_accum_steps = c.grad_accum_steps;
  config.parallel.recompute = c.recompute;
  config.parallel.optimizer_offload = c.offload;
  config.parallel.offload_overlap = c.overlap;
  return config;
}

void expect_bytes(double allocated, double planned, const char* kind, bool may_be_zero = false) {
  if (!may_be_zero) EXPECT_GT(planned, 0) << kind;
  EXPECT_NEAR(allocated, planned, 0.01 * planned) << kind << ": allocated " << allocated << ", planned " << planned;
  EXPECT_EQ(allocated, planned) << kind << " (exact: the same size functions)";
}

}  // namespace

TEST(RunPlan, MemoryEstimateIsTheAllocation) {
  int tested = 0;
  for (const Case& c : cases) {
    if (c.tp * c.pp * c.dp != world_size()) continue;
    SCOPED_TRACE(c.name);
    ++tested;
    const xp::Config config = case_config(c);
    xp::memory_ledger().reset();
    KokkosAllocations kokkos;
    xp::Trainer trainer(config, MPI_COMM_WORLD);
    const xp::RunPlan& plan = trainer.plan();
    const xp::MemoryLedger& ledger = xp::memory_ledger();
    const xp::StageMemory& planned = plan.rank_memory();
    EXPECT_EQ(planned.stage, trainer.grid().pp_rank());
    EXPECT_EQ(plan.slots, trainer.model().slots());
    EXPECT_EQ(plan.shard.buffer_size, static_cast<int64_t>(trainer.model().grads.size()));
    // Offload with a compute copy (the emulated-bf16 and GPU builds): the fp32 master lives in host memory
    // only; the device's weights are the compute copy alone. The fp32 build computes with params: they stay.
    const bool master_on_host = c.offload && xp::build_precision.compute_copy();
    const bool has_params =
        std::find(ledger.labels.begin(), ledger.labels.end(), std::string("xp::params")) != ledger.labels.end();
    EXPECT_EQ(has_params, !master_on_host) << "an fp32 params buffer on the device";
    EXPECT_EQ(trainer.model().params.size(), master_on_host ? 0u : size_t(plan.shard.buffer_size));
    // (padded like the gradients: with ZeRO-1 the optimizer all-gathers it in dp equal slices)
    if (master_on_host) EXPECT_EQ(ledger.weights, double(sizeof(xp::Real)) * trainer.model().grads.size());
    EXPECT_EQ(plan.precision.real_bytes, static_cast<int>(sizeof(xp::Real)));
    expect_bytes(ledger.weights, planned.weights, "weights");
    expect_bytes(ledger.grads, planned.grads, "grads");
    expect_bytes(ledger.optimizer, planned.optimizer, "optimizer", c.offload);
    expect_bytes(ledger.activations, planned.activations, "activations");
    expect_bytes(ledger.host, planned.host, "host", !c.offload);
    EXPECT_EQ(planned.optimizer == 0, c.offload);
    EXPECT_EQ(planned.host > 0, c.offload);
    // Offload's host memory: master, m, v and the gradients' host copy (overlap: dp = 1), or one chunk.
    const bool overlap = c.offload && c.overlap && c.dp == 1;
    EXPECT_EQ(trainer.optimizer().overlaps_grad_copies(), overlap);
    // Builds with a compute copy add one chunk of Real weights on their way back.
    const int64_t chunk = std::min<int64_t>(plan.shard.size(), xp::offload_chunk_floats);
    const double back = xp::build_precision.compute_copy() ? double(sizeof(xp::Real)) * chunk : 0.0;
    if (overlap) EXPECT_EQ(ledger.host, 4.0 * 4 * plan.shard.size() + back);
    if (!overlap && c.offload) EXPECT_EQ(ledger.host, 4.0 * (3 * plan.shard.size() + chunk) + back);

    // The dry run's estimates are allocations too: the CPU build's (`--dry-run`) where this build is
    // fp32, the GPU build's (`--dry-run --gpu`) where Real is bf16 — on a CUDA build always, on the
    // emulated one where the GPU would not fuse attention either (head sizes other than 64 and 128).
    const bool fused_on_gpu = xp::attention_fused(c.n_embd, c.n_head, xp::gpu_precision);
    const bool gpu_build = xp::build_precision.gpu || (xp::build_precision.compute_copy() && !fused_on_gpu);
    if (xp::real_is_float || gpu_build) {
      const xp::Layout layout{c.dp, c.tp, c.pp};
      const xp::StageMemory dry = xp::estimate_memory(config, layout, gpu_build).stages.at(plan.position.pp);
      EXPECT_EQ(ledger.weights, dry.weights) << (gpu_build ? "--dry-run --gpu" : "--dry-run");
      EXPECT_EQ(ledger.grads, dry.grads) << (gpu_build ? "--dry-run --gpu" : "--dry-run");
      EXPECT_EQ(ledger.optimizer, dry.optimizer) << (gpu_build ? "--dry-run --gpu" : "--dry-run");
      EXPECT_EQ(ledger.activations, dry.activations) << (gpu_build ? "--dry-run --gpu" : "--dry-run");
      EXPECT_EQ(ledger.host, dry.host) << (gpu_build ? "--dry-run --gpu" : "--dry-run");
    }

    // Nothing of size went around allocate().
    std::string names;
    const double outside = KokkosAllocations::held_outside(ledger.labels, names);
    const double counted = ledger.weights + ledger.grads + ledger.optimizer + ledger.activations + ledger.host;
    EXPECT_LT(outside, 0.01 * counted) << "held by Kokkos but not counted:" << names;
  }
  if (tested == 0) GTEST_SKIP() << "no configuration has " << world_size() << " ranks";
}
