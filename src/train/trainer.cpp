#include "xp/train/trainer.hpp"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "xp/config/deck.hpp"
#include "xp/core/device.hpp"
#include "xp/core/error.hpp"
#include "xp/core/host_copy.hpp"
#include "xp/core/runtime.hpp"
#include "xp/core/types.hpp"
#include "xp/io/checkpoint.hpp"
#include "xp/io/hdf5_version.hpp"
#include "xp/kernels/elementwise.hpp"
#include "xp/kernels/kernel_path.hpp"  // set_kernel_path: every build (the CUDA build too)
#if !defined(XP_ENABLE_CUDA)
#include "xp/kernels/gemm.hpp"
#endif
#include "xp/parallel/node_map.hpp"
#include "xp/train/fit_check.hpp"
#include "xp/train/lr.hpp"
#include "xp/train/schedule.hpp"
#include "xp/train/stop_signal.hpp"

namespace xp {
namespace {

// After a stop signal, the current step (with its evaluation) gets this long to end on every rank: a
// few times the slowest step so far, and never less than the floor.
constexpr double stop_grace_floor_s = 10.0, stop_grace_steps = 4.0;

AdamMoment adam_moment(Moment moment) { return moment == Moment::ExpAvg ? AdamMoment::ExpAvg : AdamMoment::ExpAvgSq; }

}  // namespace

int usable_cores() {
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return static_cast<int>(std::thread::hardware_concurrency());
  return CPU_COUNT(&mask);
}

int host_threads(int threads, MPI_Comm world) {
  if (threads > 0) return threads;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // mpirun binds each rank to one core by default for small rank counts: threads beyond the cores
  // this rank may run on would only take turns on them.
  return std::max(1, std::min(cores / ranks_on_this_host(world), usable_cores()));
}

Trainer::Trainer(const Config& config, MPI_Comm world) : config_(config), device_memory_at_start_(device_memory_used()) {
  int world_size = 1, world_rank = 0;
  XP_MPI_CHECK(MPI_Comm_size(world, &world_size));
  XP_MPI_CHECK(MPI_Comm_rank(world, &world_rank));
  // From the start: a preemption warning during set-up still ends in a checkpoint after one step.
  install_stop_handlers(world_rank);
  set_kernel_path(config.run.gpu_kernels == "kokkos" ? KernelPath::Kokkos : KernelPath::Fused);
  const int host_ranks = ranks_on_this_host(world);
  const std::vector<int> nodes = node_of_ranks(world);
  agree_on_setup(world, [&] {
    check_hdf5_version();  // before anything is spent: a mismatch would abort at the first checkpoint
    plan_ = make_run_plan(config, world_size, world_rank, build_precision);
    // Beyond one host: a tensor-parallel group must not span two nodes.
    const std::string split = tp_node_split_problem(nodes, plan_.layout.tp);
    if (!split.empty()) throw InputError(split);
    // Refuse to start a run that cannot fit, before allocating anything, and say which knob to turn.
    const MemoryPlan fit = check_fit(config, plan_, available_memory(config, host_ranks), host_ranks);
    if (!fit.fits) throw InputError("the model does not fit in memory:\n" + format_memory_table(fit, plan_.layout));
    faults_ = faults_from_environment();
    for (const Fault& fault : faults_)
      if (fault.rank >= world_size)
        throw InputError("XP_INJECT: rank " + std::to_string(fault.rank) + " does not exist in a job of " +
                         std::to_string(world_size) + " ranks");
  });
  guard_ = std::make_unique<StepGuard>(config.guard);
  grid_ = std::make_unique<ParallelGrid>(world, plan_.layout);
  const int threads = host_threads(config.parallel.threads, world);
#if !defined(XP_ENABLE_CUDA)
  set_gemm_threads(threads);
#endif
  if (threads > usable_cores() && world_rank == 0)
    std::fprintf(stderr, "xp_train: warning: threads=%d but rank 0 may run on %d core(s); launch with "
                 "`mpirun --bind-to none` or `--map-by slot:PE=%d`\n", threads, usable_cores(), threads);

  const int64_t batch_sequences = global_batch_sequences();
  agree_on_setup(world, [&] {
    train_data_ = make_token_source(config.data, config.model, config.train.seed, false, batch_sequences);
    val_data_ = make_token_source(config.data, config.model, config.train.seed, true,
                                  int64_t{plan_.layout.dp} * config.train.batch_size);
    if (world_rank != 0) return;
    std::error_code error;
    std::filesystem::create_directories(config.run.run_dir, error);
    std::ofstream deck(config.run.run_dir + "/config.toml");
    if (error || !(deck << config_to_toml(config)))
      throw InputError("cannot write to run_dir '" + config.run.run_dir + "'" +
                       (error ? ": " + error.message() : std::string()));
  });

  model_ = std::make_unique<GPT2>(config.model, plan_.placement, grid_->tp(), plan_.micro_batch, plan_.slots,
                                  plan_.recompute, plan_.shard.buffer_size, config.parallel.optimizer_offload);
  model_->init_weights(config.train.seed, config.train.init_std, threads);
  const OffloadOptions offload{config.parallel.optimizer_offload, threads,
                               overlaps_offload_copies(config.parallel, plan_.layout.dp)};
  optimizer_ = std::make_unique<DistributedOptimizer>(*model_, *grid_, config.train, plan_.shard, plan_.zero, offload);
  sequences_.resize(int64_t{config.train.batch_size} * (config.model.seq_len + 1));

  // A resumed run continues its own checkpoint; init_from only starts a run that has none yet.
  const std::string& resume = config.run.resume;
  const std::string resume_dir =
      resume == "none" ? "" : resume == "latest" ? latest_checkpoint(config.run.run_dir) : resume;
  if (!resume_dir.empty()) resume_from(resume_dir);
  else if (resume == "latest" && world_rank == 0)
    std::printf("xp_train: resume = latest: no checkpoint in %s/ckpt yet, starting %s\n", config.run.run_dir.c_str(),
                config.run.init_from.empty() ? "fresh" : "from init_from");
  if (resume_dir.empty() && !config.run.init_from.empty()) init_from(config.run.init_from);

  if (config.sample.sample_every > 0) sampler_ = std::make_unique<TrainingSampler>(config, *grid_, *model_);

  const double peak = config.run.peak_tflops > 0 ? config.run.peak_tflops * 1e12 : host_peak_flops(threads);
  metrics_ = std::make_unique<MetricsLog>(config, plan_.layout, batch_sequences * config.model.seq_len, peak,
                                          world_rank == 0, steps_done_ > 0);
  metrics_->message("xp_train: " + grid_->describe() + (config.parallel.zero_stage == 1 ? " zero_stage=1" : "") +
                    ", " + std::to_string(threads) + " BLAS thread(s)/rank, " + std::to_string(plan_.parameters) +
                    " parameters (" + std::to_string(model_->layout().total()) + " on rank 0), global batch " +
                    std::to_string(batch_sequences) + " x " + std::to_string(config.model.seq_len) +
                    " tokens; data: " + train_data_->describe());
}

void Trainer::resume_from(const std::string& dir) {
  CheckpointState state;
  // Rank 0 reads every shard to check it; its verdict reaches every rank through agree_on_setup.
  agree_on_setup(grid_->world(),
                 [&] { state = read_checkpoint_state(dir, config_.model, grid_->world_rank() == 0); });
  // Weights and moments chunk by chunk through one bounded staging buffer (the saved run may have
  // sharded them differently); the optimizer keeps its range of each chunk.
  load_checkpoint_tensors(dir, model_->layout(), [&](Moment moment, int64_t begin, int64_t end, const float* staging) {
    if (moment == Moment::Param) load_weights_chunk(begin, end, staging);
    else optimizer_->load_chunk(adam_moment(moment), begin, end, staging);
  }, checkpoint_chunk_bytes_);
  optimizer_->weights_loaded();
  optimizer_->set_steps_taken(state.step);
  steps_done_ = last_checkpoint_ = state.step;
  last_checkpoint_dir_ = dir;
  train_data_->cursor = state.train_cursor;
  if (grid_->world_rank() == 0)
    std::printf("xp_train: resumed from %s at step %lld (saved with dp=%d tp=%d pp=%d zero_stage=%d)\n", dir.c_str(),
                static_cast<long long>(state.step), state.layout.dp, state.layout.tp, state.layout.pp,
                state.zero_stage);
}

void Trainer::init_from(const std::string& dir) {
  CheckpointState state;
  agree_on_setup(grid_->world(), [&] {
    try {
      state = read_checkpoint_state(dir, config_.model, grid_->world_rank() == 0);
    } catch (const InputError& error) {
      throw InputError(std::string("init_from: ") + error.what());
    }
  });
  load_checkpoint_tensors(dir, model_->layout(), [&](Moment, int64_t begin, int64_t end, const float* staging) {
    load_weights_chunk(begin, end, staging);
  }, checkpoint_chunk_bytes_, false);
  optimizer_->weights_loaded();
  if (grid_->world_rank() == 0)
    std::printf("xp_train: weights from %s (step %lld of its run, saved with dp=%d tp=%d pp=%d); step 0, fresh "
                "optimizer, data from the start\n", dir.c_str(), static_cast<long long>(state.step), state.layout.dp,
                state.layout.tp, state.layout.pp);
}

void Trainer::load_weights_chunk(int64_t begin, int64_t end, const float* staging) {
  if (optimizer_->holds_master_weights()) optimizer_->load_chunk(AdamMoment::Master, begin, end, staging);
  else copy_from_host(staging, begin, end, 0, model_->params);
}

std::string Trainer::save() {
  exec_space().fence();
  CheckpointState state;
  state.step = steps_done_;
  state.train_cursor = train_data_->cursor;
  state.seed = config_.train.seed;
  state.layout = grid_->layout();
  state.zero_stage = config_.parallel.zero_stage;
  state.config_toml = config_to_toml(config_);
  // Every replica holds all the weights in params; the moments, and with offload the master weights, come
  // from the optimizer's memory (gathered with ZeRO-1).
  const ChunkSource source = [&](Moment moment, int64_t begin, int64_t end, float* staging) {
    if (moment != Moment::Param) optimizer_->save_chunk(adam_moment(moment), begin, end, staging);
    else if (optimizer_->holds_master_weights()) optimizer_->save_chunk(AdamMoment::Master, begin, end, staging);
    else if (grid_->dp_rank() == 0) copy_to_host(model_->params, 0, begin, end, staging);
  };
  const std::string dir = save_checkpoint(config_.run.run_dir, *grid_, config_.model, model_->layout(), source, state,
                                          config_.run.keep_last, checkpoint_chunk_bytes_);
  last_checkpoint_ = steps_done_;
  last_checkpoint_dir_ = dir;
  metrics_->message("xp_train: checkpoint " + dir);
  if (rolls_back_in_memory()) keep_good_state();
  return dir;
}

int64_t Trainer::global_batch_sequences() const {
  const Layout& layout = grid_->layout();
  return int64_t{layout.dp} * config_.train.grad_accum_steps * config_.train.batch_size;
}

void Trainer::read_micro_batch(int micro) {
  const int B = config_.train.batch_size;
  const int64_t first_row = (int64_t{grid_->dp_rank()} * config_.train.grad_accum_steps + micro) * B;
  train_data_->read(first_row, B, sequences_.data());
}

void Trainer::run_pipeline(bool copy_grads) {
  const int B = config_.train.batch_size, stages = grid_->layout().pp, stage = grid_->pp_rank();
  const int last_micro_batch = config_.train.grad_accum_steps - 1;
  const size_t activation = size_t(B) * config_.model.seq_len * config_.model.n_embd;
  // Known before any forward (clipping, the guard come later and act on whole gradients; no loss scale).
  const float dloss = 1.0f / static_cast<float>(global_batch_sequences() * config_.model.seq_len);
  Communicator& pp = grid_->pp();
  // A send waits to be posted together with this stage's next receive, so neighbours that both send
  // first never wait on each other (Megatron's send_forward_recv_backward pairing).
  const Real* pending = nullptr;
  int pending_peer = -1;
  auto send = [&](const Real* data, int peer) {
    if (pending) pp.send(pending, activation, pending_peer);
    pending = data;
    pending_peer = peer;
  };
  auto receive = [&](Real* data, int peer) {
    if (pending) pp.send_recv(pending, activation, pending_peer, data, activation, peer);
    else pp.recv(data, activation, peer);
    pending = nullptr;
  };
  // Offload's overlapped copies: the stage's last backward (of the last micro-batch: backwards run in
  // micro-batch order) writes each range for the last time; the tied wte waits for its all-reduce (step()).
  const bool tied = grid_->embedding() != nullptr;
  const int64_t wte = model_->layout().wte();
  const GPT2::GradsWritten final_grads = [&](int64_t first, int64_t last) {
    if (!(tied && first == wte)) optimizer_->copy_final_grads(first, last);
  };
  for (const PipeStep& op : one_f_one_b(stages, stage, config_.train.grad_accum_steps)) {
    const int slot = op.micro_batch % model_->slots();
    if (op.op == PipeOp::Forward) {
      read_micro_batch(op.micro_batch);
      if (!grid_->first_stage()) receive(model_->input(slot), stage - 1);
      model_->forward_train(slot, sequences_.data(), B, dloss);  // loss sum on the device; dlogits kept in slot
      if (!grid_->last_stage()) send(model_->output(slot), stage + 1);
    } else {
      if (!grid_->last_stage()) receive(model_->output_grad(), stage + 1);
      const bool last = copy_grads && op.micro_batch == last_micro_batch;
      model_->backward(slot, dloss, last ? final_grads : GPT2::GradsWritten());
      if (!grid_->first_stage()) send(model_->input_grad(), stage - 1);
    }
  }
  if (pending) pp.send(pending, activation, pending_peer);
}

void Trainer::tie_embedding_grads() {
  // CPU builds: MPI reads the gradients in host memory, after the kernels. GPU builds need no wait: NCCL
  // runs on the program stream, and the MPI backend stages device buffers through stream-ordered copies.
  if (!device_build) exec_space().fence();
  if (Communicator* embedding = grid_->embedding()) {
    const TensorInfo& wte = model_->layout().find("wte.weight");
    embedding->all_reduce_sum(model_->grads.data() + wte.offset, wte.size);
  }
}

double Trainer::mean_loss(double loss_sum, int64_t sequences) const {
  // Every tp rank of the last stage has the whole sum: its tp rank 0 reports it.
  const bool reports_loss = grid_->last_stage() && grid_->tp_rank() == 0;
  return all_reduce_sum(grid_->world(), reports_loss ? loss_sum : 0.0) / (double(sequences) * config_.model.seq_len);
}

// Host synchronisations in a step on a GPU build (the host waits for the program stream), and why each stays:
//  1. take_loss_total(), after the backward pass has been queued: the loss (kept on the device through
//     the micro-batches) reaches the host for the fault injection (a test facility), the metrics and the
//     guard. It waits for the backward pass, as (2) would anyway.
//  2. sum_squares(grads) right after: the guard needs to know before the update whether this rank's own
//     gradients are finite (a NaN the all-reduce would hide in a shard counted elsewhere).
//  3. grad_norm_squared_part(): one reduction per range of counted tensors, after the gradient all-reduce.
//     The guard's verdict (skip or roll back before anything is updated) needs the norm on the host, so
//     the clip scale is computed there too; keeping it on the device alone would save no wait.
//  4. The guard's MPI_Allreduce and mean_loss's: host values, after (1)-(3).
//  5. The fence at the end: the step time and device memory of the metrics.
// With the MPI backend (no NCCL) every collective and pipeline send/recv also waits, through its
// host-staged copy. Nothing else waits: token uploads, fills and copies are queued on the stream.
StepResult Trainer::step() {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const int64_t sequences = global_batch_sequences();
  StepResult result;
  result.step = steps_done_ + 1;
  ++steps_run_;

  // Batch, forward and backward: this replica's micro-batches through the 1F1B pipeline schedule. With
  // offload's overlap (dp = 1) each range of gradients starts its copy to the host once final — not in a
  // step whose gradients a fault injected here changes after the backward: HostAdamW copies those.
  const bool fault_here = std::any_of(faults_.begin(), faults_.end(), [&](const Fault& fault) {
    return fault.step == result.step && (fault.rank < 0 || fault.rank == grid_->world_rank());
  });
  const bool copy_grads = optimizer_->overlaps_grad_copies() && !fault_here;
  optimizer_->reset_grad_copies();
  model_->zero_grads();
  train_data_->align(sequences);
  run_pipeline(copy_grads);
  train_data_->advance(sequences);

  // Tie embedding grads: the first and the last stage each hold a gradient of the one wte.
  tie_embedding_grads();
  if (copy_grads && grid_->embedding()) {
    const TensorInfo& wte = model_->layout().find("wte.weight");
    optimizer_->copy_final_grads(wte.offset, wte.offset + wte.size);
  }
  double loss_sum = model_->take_loss_total();

  // Faults of XP_INJECT (a test facility), then whether this rank's own gradients are finite: a NaN in
  // a tensor only this tp rank holds, or in a replicated copy the norm counts elsewhere, is seen here.
  loss_sum = inject_faults(faults_, result.step, grid_->world_rank(), *model_, loss_sum);
  const bool grads_finite = std::isfinite(sum_squares(model_->grads.data(), model_->layout().total()));

  // Reduce grads over the data-parallel replicas (all-reduce, or reduce-scatter with ZeRO-1).
  optimizer_->reduce_gradients();

  // Loss: the mean over the global batch.
  result.loss = mean_loss(loss_sum, sequences);

  // Clip by the global gradient norm (torch.nn.utils.clip_grad_norm_ semantics).
  result.grad_norm = std::sqrt(all_reduce_sum(grid_->world(), optimizer_->grad_norm_squared_part()));
  double grad_scale = 1.0;
  if (config_.train.grad_clip_norm > 0.0)
    grad_scale = std::min(1.0, config_.train.grad_clip_norm / (result.grad_norm + 1e-6));
  result.lr = learning_rate(config_.train, steps_done_);

  // Guard: one collective gives every rank the same verdict before anything is updated.
  const Verdict verdict = guard_->check(result.loss, result.grad_norm, grads_finite, grid_->world());
  if (!verdict.bad()) {
    // Optimizer step: AdamW on this rank's parameters; afterwards every replica has all updated weights.
    optimizer_->step(result.lr, grad_scale);
    ++steps_done_;
  } else {
    result.reason = verdict.reason;
    optimizer_->reset_grad_copies();  // before a rollback may write the gradient buffer (fp32_weights())
    handle_bad_step(result);
  }

  exec_space().fence();  // the metrics' wait: the step's time includes its device work
  result.device_memory = device_memory_used();
  result.ms = std::chrono::duration<double, std::milli>(clock::now() - start).count();
  return result;
}

double Trainer::evaluate() {
  if (!val_data_) return -1.0;
  const int B = config_.train.batch_size, T = config_.model.seq_len, stage = grid_->pp_rank();
  const size_t activation = size_t(B) * T * config_.model.n_embd;
  const int64_t batch_sequences = int64_t{grid_->layout().dp} * B;
  val_data_->cursor = DataCursor{};  // the same validation tokens every time
  for (int i = 0; i < config_.data.eval_batches; ++i) {
    val_data_->align(batch_sequences);
    val_data_->read(int64_t{grid_->dp_rank()} * B, B, sequences_.data());
    if (!grid_->first_stage()) grid_->pp().recv(model_->input(0), activation, stage - 1);
    model_->forward_accumulate(0, sequences_.data(), B);
    if (!grid_->last_stage()) grid_->pp().send(model_->output(0), activation, stage + 1);
    val_data_->advance(batch_sequences);
  }
  const double loss_sum = model_->take_loss_total();
  return mean_loss(loss_sum, int64_t{config_.data.eval_batches} * batch_sequences);
}

std::vector<double> Trainer::run() {
  std::vector<double> losses;
  bool stopped_by_signal = false;
  // A rollback needs a good state from the start: the newest checkpoint (written now when there is
  // none of this state yet), or its host copy.
  if (config_.guard.on_bad_step == OnBadStep::Rollback) {
    if (rolls_back_in_memory()) keep_good_state();
    else if (last_checkpoint_ != steps_done_) save();
  }
  double slowest_s = 0.0;  // step and evaluation, the longest so far
  const auto grace = [&] {
    return static_cast<unsigned>(std::ceil(std::max(stop_grace_floor_s, stop_grace_steps * slowest_s)));
  };
  while (steps_done_ < config_.train.steps) {
    // Armed from here to the agreement on a stop signal below, except while a checkpoint is written.
    const auto started = std::chrono::steady_clock::now();
    arm_stop_watchdog(grace());
    const StepResult result = step();
    losses.push_back(result.loss);
    StepRecord record;
    record.step = result.step;
    record.loss = result.loss;
    record.lr = result.lr;
    record.grad_norm = result.grad_norm;
    record.ms = result.ms;
    record.skipped = result.skipped;
    record.rolled_back = result.rolled_back;
    record.stopped = result.stopped;
    record.reason = result.reason;
    peak_device_memory_ = std::max(peak_device_memory_, result.device_memory);
    if (device_build) record.device_memory_gib = double(peak_device_memory_ - device_memory_at_start_) / (1 << 30);
    const int64_t every = config_.data.eval_every;
    const bool updated = !result.rolled_back && !result.stopped;
    if (updated && every > 0 && (steps_done_ % every == 0 || steps_done_ == config_.train.steps))
      record.val_loss = evaluate();
    metrics_->record(record);
    if (result.stopped) {
      restore_stop_handlers();
      throw RunStopped("step " + std::to_string(result.step) + ": " + result.reason +
                       ": the run stops (on_bad_step = " +
                       (config_.guard.on_bad_step == OnBadStep::Stop ? "stop" : "rollback") +
                       ") with the weights of step " + std::to_string(steps_done_) + "; newest checkpoint: " +
                       (last_checkpoint_dir_.empty() ? "none" : last_checkpoint_dir_));
    }
    if (sampler_ && updated) sampler_->after_step(steps_done_);
    slowest_s = std::max(slowest_s,
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    if (updated && config_.run.checkpoint_every > 0 && steps_done_ % config_.run.checkpoint_every == 0) {
      disarm_stop_watchdog();  // a write of many GB may take long
      save();
      arm_stop_watchdog(grace());
    }
    // Every rank must stop after the same step, whichever of them got the signal.
    int signal = stop_requested(), agreed = 0;
    XP_MPI_CHECK(MPI_Allreduce(&signal, &agreed, 1, MPI_INT, MPI_MAX, grid_->world()));
    disarm_stop_watchdog();
    if (agreed) {
      clear_stop_request();
      metrics_->message("xp_train: signal " + std::to_string(agreed) + " received: checkpoint and exit after step " +
                        std::to_string(steps_done_));
      stopped_by_signal = true;
      break;
    }
  }
  if (last_checkpoint_ != steps_done_ && (config_.run.final_checkpoint || stopped_by_signal)) save();
  restore_stop_handlers();
  return losses;
}

}  // namespace xp
