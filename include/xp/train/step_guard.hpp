#pragma once
// The bad-step guard: before each update, the step's loss and global gradient norm are checked for
// NaN/Inf and for a spike (more than spike_zscore standard deviations above the trailing window of
// good steps), and every rank's own gradients for NaN/Inf. One collective gives every rank the same
// verdict at the same step, so a NaN in one tp rank's shard is seen everywhere and nothing hangs; the
// trainer then skips the update, rolls back to the last good state, or stops (on_bad_step).
//
// Fault injection, a test facility: XP_INJECT=nan_grad@7 (a NaN in step 7's gradients on every rank),
// nan_grad@7:3 (on rank 3 only), spike_loss@12 (step 12's loss and gradients × 1000), several joined
// by commas. Read once per process, at the first Trainer.
#include <cstdint>
#include <deque>
#include <stdexcept>
#include <string>
#include <vector>

#include <mpi.h>

#include "xp/config/config.hpp"
#include "xp/model/gpt2.hpp"

namespace xp {

enum class FaultKind { NanGrad, SpikeLoss };
struct Fault {
  FaultKind kind = FaultKind::NanGrad;
  int64_t step = 0;  // 1-based
  int rank = -1;     // world rank; -1 = every rank
};
constexpr double spike_injection_scale = 1000.0;

// "nan_grad@7,nan_grad@7:3,spike_loss@12" (empty: none). Throws InputError naming the bad item and the
// accepted form.
std::vector<Fault> parse_faults(const std::string& text);
// XP_INJECT of this process, parsed at the first call (later calls return the same list).
const std::vector<Fault>& faults_from_environment();

// Applies the faults of step `step` on world rank `rank` to this rank's gradients (before the dp
// reduction), removes them from `pending` (a fault fires once: a step redone after a rollback runs
// clean, as a batch the rollback moved past would) and returns the loss sum to use (spike_loss scales
// it too).
double inject_faults(std::vector<Fault>& pending, int64_t step, int rank, GPT2& model, double loss_sum);

// Verdicts, ordered by severity: the collective keeps the worst of all ranks.
enum class BadStep { None = 0, LossSpike, GradNormSpike, NonFiniteLoss, NonFiniteGradNorm, NonFiniteGradient };

struct Verdict {
  BadStep kind = BadStep::None;
  int rank = 0;        // lowest world rank that saw it (only meaningful for NonFiniteGradient)
  std::string reason;  // "non-finite gradient (rank 3)", "loss spike: 9.1e+03 is 410 std above ..."
  bool bad() const { return kind != BadStep::None; }
};

// Mean and standard deviation of the last `size` good values of one quantity.
class TrailingWindow {
 public:
  explicit TrailingWindow(int64_t size) : size_(size) {}
  bool full() const { return static_cast<int64_t>(values_.size()) == size_; }
  void push(double value);
  double mean() const;
  double stddev() const;  // population standard deviation
  // Spike: the window is full, its spread is non-zero and `value` lies more than `zscore` of it above
  // the mean (a constant window has no z-score to measure against).
  bool spike(double value, double zscore) const;

 private:
  int64_t size_;
  std::deque<double> values_;
};

class StepGuard {
 public:
  explicit StepGuard(const GuardConfig& config);
  // Collective over `world` (one MPI_Allreduce): `loss` and `grad_norm` are the global values every rank
  // holds; `local_grads_finite` whether this rank's own gradients are all finite. Good steps join the
  // trailing windows.
  Verdict check(double loss, double grad_norm, bool local_grads_finite, MPI_Comm world);
  // Records a rollback at `steps_run` (steps executed by this process, redone ones included); false when
  // max_rollbacks were already made within the last spike_window of them.
  bool allow_rollback(int64_t steps_run);
  std::string rollback_history() const;  // "steps run 12, 15, 19"

 private:
  GuardConfig config_;
  TrailingWindow losses_, grad_norms_;
  std::deque<int64_t> rollbacks_;
};

// A run ended by on_bad_step = stop or by too many rollbacks; every rank throws it at the same step.
class RunStopped : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace xp
