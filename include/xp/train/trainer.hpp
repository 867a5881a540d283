#pragma once
// One training run: set-up from the run plan (grid, model share, data, optimizer, metrics), then
// optimizer steps. A step runs this rank's micro-batches through the 1F1B pipeline schedule (plain
// gradient accumulation when pp = 1), ties the embedding gradients of the first and last stage, and
// leaves the rest to the distributed optimizer: gradients reduced over dp, clipping by the global norm,
// AdamW. Before the update the step guard (train/step_guard.hpp) checks loss and gradients; a bad step
// is skipped, rolled back or ends the run (on_bad_step).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <mpi.h>

#include "xp/config/config.hpp"
#include "xp/io/checkpoint.hpp"
#include "xp/io/token_source.hpp"
#include "xp/model/gpt2.hpp"
#include "xp/parallel/grid.hpp"
#include "xp/train/distributed_optimizer.hpp"
#include "xp/train/metrics.hpp"
#include "xp/train/run_plan.hpp"
#include "xp/train/sampler.hpp"
#include "xp/train/step_guard.hpp"

namespace xp {

struct StepResult {
  int64_t step = 0;        // 1-based number of the step this was
  double loss = 0.0;       // mean over the global batch, before the update
  double grad_norm = 0.0;  // global, before clipping
  double lr = 0.0;
  double ms = 0.0;
  std::size_t device_memory = 0;  // bytes in use on the GPU after the step (0 on CPU builds)
  // A bad step (the guard's reason): its update dropped, or the state rolled back, or the run to stop.
  bool skipped = false, rolled_back = false, stopped = false;
  std::string reason;
};

class Trainer {
 public:
  // Collective over `world`. Input problems (layout, data files, run_dir) throw InputError on every rank.
  Trainer(const Config& config, MPI_Comm world);

  StepResult step();          // one optimizer step (or a bad step skipped or rolled back: see StepResult)
  double evaluate();          // mean validation loss; < 0 when there is no validation data
  // All remaining steps with logging and checkpoints (every checkpoint_every steps, and at the end
  // unless final_checkpoint is false).
  // SIGTERM or SIGUSR1 ends it after the current step with a checkpoint. Returns the losses (of every
  // step run, bad and redone ones included). A bad step with on_bad_step = stop, or one rollback more
  // than max_rollbacks allows, throws RunStopped on every rank.
  std::vector<double> run();
  std::string save();         // a checkpoint of the current state (collective); returns its directory
  // Weights, AdamW state, step and data cursor from checkpoint `dir` (collective; resume = ... does it
  // at construction).
  void resume_from(const std::string& dir);
  // Only the weights of checkpoint `dir` (any layout), keeping step 0, the data cursor at the start and
  // a fresh optimizer: fine-tuning (init_from = ... does it at construction unless a resume happened).
  void init_from(const std::string& dir);
  // Host staging per checkpoint chunk (io/checkpoint.hpp); tests make it small to exercise chunking.
  void set_checkpoint_chunk_bytes(int64_t bytes) { checkpoint_chunk_bytes_ = bytes; }
  // Faults to inject instead of XP_INJECT's (tests); each fires the first time its step runs.
  void set_faults(std::vector<Fault> faults) { faults_ = std::move(faults); }
  // Moves the data cursor past `batches` global batches without training on them (collective-free).
  void skip_batches(int64_t batches);

  const RunPlan& plan() const { return plan_; }
  const ParallelGrid& grid() const { return *grid_; }
  GPT2& model() { return *model_; }
  const DistributedOptimizer& optimizer() const { return *optimizer_; }
  int64_t steps_done() const { return steps_done_; }
  const DataCursor& data_cursor() const { return train_data_->cursor; }
  int64_t global_batch_sequences() const;

 private:
  // Forward/backward of this step's micro-batches (the loss sum stays on the device). `copy_grads`:
  // offload's overlapped gradient copies start during the stage's last backward.
  void run_pipeline(bool copy_grads);
  void tie_embedding_grads();            // sums wte's gradients of the first and the last stage
  double mean_loss(double loss_sum, int64_t sequences) const;  // over the world, per token
  void read_micro_batch(int micro);      // this replica's rows of micro-batch `micro` into sequences_
  // Weights [begin, end) of the flat layout from a checkpoint's host staging: into params, or with offload
  // into the optimizer's master copy (its range of them); optimizer_->weights_loaded() follows the chunks.
  void load_weights_chunk(int64_t begin, int64_t end, const float* staging);
  void keep_good_state();                // host copy of weights, moments and step (rollback in memory)
  // Back to the newest checkpoint (or its host copy), the data cursor set to `past_bad`.
  void roll_back(const DataCursor& past_bad);
  bool rolls_back_in_memory() const;
  void handle_bad_step(StepResult& result);  // skip, roll back or mark the step to stop (on_bad_step)

  Config config_;
  RunPlan plan_;
  std::unique_ptr<ParallelGrid> grid_;
  std::unique_ptr<GPT2> model_;
  std::unique_ptr<DistributedOptimizer> optimizer_;
  std::unique_ptr<TokenSource> train_data_, val_data_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<TrainingSampler> sampler_;  // null unless sample_every > 0
  std::vector<int32_t> sequences_;  // host rows (batch_size, T+1)
  std::size_t device_memory_at_start_ = 0, peak_device_memory_ = 0;  // GPU bytes in use (whole device)
  int64_t steps_done_ = 0;
  int64_t last_checkpoint_ = -1;     // step of the newest checkpoint this run wrote or resumed from
  int64_t checkpoint_chunk_bytes_ = checkpoint_chunk_bytes;
  std::string last_checkpoint_dir_;  // of the newest checkpoint this run wrote or resumed from
  std::vector<Fault> faults_;        // not yet fired
  std::unique_ptr<StepGuard> guard_;
  int64_t steps_run_ = 0;            // step() calls, redone steps included (the rollback window)
  struct GoodState {
    int64_t step = -1;
    // This rank's: params all of them (with offload the master weights of its optimizer range), the
    // moments its optimizer range.
    std::vector<float> params, exp_avg, exp_avg_sq;
  } kept_;
};

// BLAS threads for this rank: `threads`, or the host's cores shared among its ranks (no more than
// the cores this rank is bound to).
int host_threads(int threads, MPI_Comm world);

// Cores in this process's CPU affinity mask.
int usable_cores();

}  // namespace xp
