#pragma once
// Per-step metrics: one console line and one JSON object in <run_dir>/metrics.jsonl (and, with
// tensorboard = true, the same values as TensorBoard scalars); a bad step's line always, saying what
// the guard did. Throughput and
// model FLOP utilisation use a documented FLOP count and a known per-rank peak, so MFU is comparable
// across runs and never exceeds what the hardware can do.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "xp/config/config.hpp"
#include "xp/parallel/grid.hpp"
#include "xp/train/tensorboard.hpp"

namespace xp {

// Training FLOPs per token: 6 × (matmul weights incl. the LM head) + 12 × n_layer × seq_len × n_embd
// for attention scores and weighted values (forward + backward, causal mask not discounted).
double training_flops_per_token(const ModelConfig& model);

// Peak fp32 FLOP/s of `threads` host cores: clock (from /proc/cpuinfo) × vector FLOPs per cycle
// (AVX-512: 64, AVX2+FMA: 32, else 8), the upper bound for the instruction set.
double host_peak_flops(int threads);

struct StepRecord {
  int64_t step = 0;        // 1-based
  double loss = 0.0;
  double lr = 0.0;
  double grad_norm = 0.0;
  double ms = 0.0;
  double val_loss = -1.0;  // < 0: no evaluation at this step
  double device_memory_gib = -1.0;  // GPU memory the run has used so far (peak), < 0 on CPU builds
  // A bad step (train/step_guard.hpp): update dropped, state rolled back, or the run stopped; and why.
  bool skipped = false, rolled_back = false, stopped = false;
  std::string reason;
};

class MetricsLog {
 public:
  // Only the writer (world rank 0) prints and writes; the others keep the counters. A resumed run
  // appends to metrics.jsonl instead of starting it anew.
  MetricsLog(const Config& config, const Layout& layout, int64_t tokens_per_step, double peak_flops_per_rank,
             bool writer, bool append = false);
  ~MetricsLog();
  void record(const StepRecord& record);
  void message(const std::string& text) const;  // a console line from the writer only

 private:
  Config config_;
  Layout layout_;
  int64_t tokens_per_step_;
  double flops_per_token_, peak_flops_per_rank_;
  bool writer_;
  std::FILE* jsonl_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tensorboard_;  // tensorboard = true: the writer's event file
  double total_ms_ = 0.0;
  int64_t timed_steps_ = 0;
  int64_t recorded_ = 0;  // steps recorded by this process (a resumed run starts past step 1)
};

}  // namespace xp
