// The trainer's side of the bad-step guard (train/step_guard.hpp): what a bad step does to the run —
// skip its update, roll back to the newest checkpoint (or its host copy) with the data moved past the
// bad batches, or mark the run to stop — and the host copy a rollback in memory returns to.
#include <string>

#include "xp/core/host_copy.hpp"
#include "xp/train/trainer.hpp"

namespace xp {

bool Trainer::rolls_back_in_memory() const {
  return config_.guard.on_bad_step == OnBadStep::Rollback && config_.guard.rollback_keep_in_memory;
}

void Trainer::keep_good_state() {
  exec_space().fence();
  kept_.step = steps_done_;
  if (optimizer_->holds_master_weights()) {
    kept_.params = optimizer_->moment_copy(AdamMoment::Master);  // host to host: the device has no fp32 copy
  } else {
    kept_.params.resize(static_cast<size_t>(model_->layout().total()));
    copy_to_host(model_->params, 0, 0, model_->layout().total(), kept_.params.data());
  }
  kept_.exp_avg = optimizer_->moment_copy(AdamMoment::ExpAvg);
  kept_.exp_avg_sq = optimizer_->moment_copy(AdamMoment::ExpAvgSq);
}

void Trainer::roll_back(const DataCursor& past_bad) {
  if (rolls_back_in_memory()) {
    const int64_t begin = plan_.shard.begin;
    if (optimizer_->holds_master_weights())
      optimizer_->load_chunk(AdamMoment::Master, begin, begin + int64_t(kept_.params.size()), kept_.params.data());
    else
      copy_from_host(kept_.params.data(), 0, model_->layout().total(), 0, model_->params);
    optimizer_->weights_loaded();  // the compute copy follows (with offload through the device's fp32 staging)
    optimizer_->load_chunk(AdamMoment::ExpAvg, begin, begin + int64_t(kept_.exp_avg.size()), kept_.exp_avg.data());
    optimizer_->load_chunk(AdamMoment::ExpAvgSq, begin, begin + int64_t(kept_.exp_avg_sq.size()),
                           kept_.exp_avg_sq.data());
    optimizer_->set_steps_taken(kept_.step);
    steps_done_ = kept_.step;
  } else {
    resume_from(last_checkpoint_dir_);
  }
  train_data_->cursor = past_bad;
}

void Trainer::skip_batches(int64_t batches) {
  const int64_t sequences = global_batch_sequences();
  for (int64_t i = 0; i < batches; ++i) {
    train_data_->align(sequences);
    train_data_->advance(sequences);
  }
}

void Trainer::handle_bad_step(StepResult& result) {
  const GuardConfig& guard = config_.guard;
  switch (guard.on_bad_step) {
    case OnBadStep::Skip:
      // The step counts (LR schedule, data) without an update; AdamW's count follows, as a resume would set it.
      ++steps_done_;
      optimizer_->set_steps_taken(steps_done_);
      result.skipped = true;
      return;
    case OnBadStep::Stop:
      result.stopped = true;
      return;
    case OnBadStep::Rollback:
      if (!guard_->allow_rollback(steps_run_)) {
        result.stopped = true;
        result.reason += "; max_rollbacks = " + std::to_string(guard.max_rollbacks) + " rollbacks within " +
                         std::to_string(guard.spike_window) + " steps were made already (at steps run " +
                         guard_->rollback_history() + ")";
        return;
      }
      // The data cursor is past this step's batch now: the rolled-back run never sees the batches since
      // the good state.
      const DataCursor past_bad = train_data_->cursor;
      const int64_t bad_step = steps_done_ + 1;
      roll_back(past_bad);
      result.rolled_back = true;
      metrics_->message("xp_train: step " + std::to_string(bad_step) + ": " + result.reason + ": rolled back to step " +
                        std::to_string(steps_done_) + (rolls_back_in_memory() ? " (host copy)" : " (" +
                        last_checkpoint_dir_ + ")") + ", data moved past the batches of steps " +
                        std::to_string(steps_done_ + 1) + "-" + std::to_string(bad_step));
      return;
  }
}

}  // namespace xp
