#include "xp/train/trainer.hpp"

#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "xp/config/deck.hpp"
#include "xp/core/error.hpp"
#include "xp/core/runtime.hpp"
#include "xp/kernels/elementwise.hpp"
#include "xp/kernels/gemm.hpp"
#include "xp/parallel/comm.hpp"
#include "xp/train/lr.hpp"

namespace xp {

int host_threads(int threads, MPI_Comm world) {
  if (threads > 0) return threads;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // mpirun binds each rank to one core by default for small rank counts: threads beyond the cores
  // this rank may run on would only take turns on them.
  return std::max(1, std::min(cores / ranks_on_this_host(world), usable_cores()));
}

int usable_cores() {
  cpu_set_t mask;
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return static_cast<int>(std::thread::hardware_concurrency());
  return CPU_COUNT(&mask);
}

Trainer::Trainer(const Config& config, MPI_Comm world) : config_(config) {
  int world_size = 1, world_rank = 0;
  XP_MPI_CHECK(MPI_Comm_size(world, &world_size));
  XP_MPI_CHECK(MPI_Comm_rank(world, &world_rank));
  Layout layout;
  agree_on_setup(world, [&] {
    layout = resolve_layout(config.parallel, config.model, world_size, count_parameters(config.model));
  });
  grid_ = std::make_unique<ParallelGrid>(world, layout);
  const int threads = host_threads(config.parallel.threads, world);
  set_gemm_threads(threads);
  if (threads > usable_cores() && world_rank == 0)
    std::fprintf(stderr, "xp_train: warning: threads=%d but rank 0 may run on %d core(s); launch with "
                 "`mpirun --bind-to none` or `--map-by slot:PE=%d`\n", threads, usable_cores(), threads);

  const int64_t batch_sequences = global_batch_sequences();
  agree_on_setup(world, [&] {
    train_data_ = make_token_source(config.data, config.model, config.train.seed, false, batch_sequences);
    val_data_ = make_token_source(config.data, config.model, config.train.seed, true,
                                  int64_t{layout.dp} * config.train.batch_size);
    if (world_rank != 0) return;
    std::error_code error;
    std::filesystem::create_directories(config.run.run_dir, error);
    std::ofstream deck(config.run.run_dir + "/config.toml");
    if (error || !(deck << config_to_toml(config)))
      throw InputError("cannot write to run_dir '" + config.run.run_dir + "'" +
                       (error ? ": " + error.message() : std::string()));
  });

  model_ = std::make_unique<GPT2>(config.model, config.train.batch_size);
  model_->init_weights(config.train.seed, config.train.init_std);
  optimizer_ = std::make_unique<AdamW>(model_->layout(), config.train);
  sequences_.resize(int64_t{config.train.batch_size} * (config.model.seq_len + 1));

  const double peak = config.run.peak_tflops > 0 ? config.run.peak_tflops * 1e12 : host_peak_flops(threads);
  metrics_ = std::make_unique<MetricsLog>(config, layout, batch_sequences * config.model.seq_len, peak,
                                          world_rank == 0);
  metrics_->message("xp_train: " + grid_->describe() + ", " + std::to_string(threads) + " BLAS thread(s)/rank, " +
                    std::to_string(model_->layout().total()) + " parameters, global batch " +
                    std::to_string(batch_sequences) + " x " + std::to_string(config.model.seq_len) +
                    " tokens; data: " + train_data_->describe());
}

int64_t Trainer::global_batch_sequences() const {
  const Layout& layout = grid_->layout();
  return int64_t{layout.dp} * config_.train.grad_accum_steps * config_.train.batch_size;
}

StepResult Trainer::step() {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const int B = config_.train.batch_size, T = config_.model.seq_len;
  const int accum = config_.train.grad_accum_steps;
  const int64_t batch_sequences = global_batch_sequences();
  const float dloss = 1.0f / static_cast<float>(batch_sequences * T);  // the loss is a mean over the global batch
  StepResult result;

  // Forward and backward over this replica's micro-batches; gradients accumulate.
  model_->zero_grads();
  train_data_->align(batch_sequences);
  double loss_sum = 0.0;
  for (int micro = 0; micro < accum; ++micro) {
    const int64_t first_row = (int64_t{grid_->dp_rank()} * accum + micro) * B;
    train_data_->read(first_row, B, sequences_.data());
    loss_sum += model_->forward(sequences_.data(), B);
    model_->backward(dloss);
  }
  train_data_->advance(batch_sequences);

  // Sum gradients and losses over data-parallel replicas.
  Kokkos::fence();
  grid_->dp().all_reduce_sum(model_->grads.data(), model_->grads.size());
  result.loss = all_reduce_sum(grid_->dp_comm(), loss_sum) / (batch_sequences * T);

  // Clip by the global gradient norm (torch.nn.utils.clip_grad_norm_ semantics).
  result.grad_norm = std::sqrt(sum_squares(model_->grads.data(), model_->grads.size()));
  double grad_scale = 1.0;
  if (config_.train.grad_clip_norm > 0.0)
    grad_scale = std::min(1.0, config_.train.grad_clip_norm / (result.grad_norm + 1e-6));

  // AdamW update.
  result.lr = learning_rate(config_.train, steps_done_);
  optimizer_->step(model_->params, model_->grads, result.lr, grad_scale);
  Kokkos::fence();
  ++steps_done_;
  result.ms = std::chrono::duration<double, std::milli>(clock::now() - start).count();
  return result;
}

double Trainer::evaluate() {
  if (!val_data_) return -1.0;
  const int B = config_.train.batch_size, T = config_.model.seq_len;
  const int64_t batch_sequences = int64_t{grid_->layout().dp} * B;
  val_data_->cursor = DataCursor{};  // the same validation tokens every time
  double loss_sum = 0.0;
  for (int i = 0; i < config_.data.eval_batches; ++i) {
    val_data_->align(batch_sequences);
    val_data_->read(int64_t{grid_->dp_rank()} * B, B, sequences_.data());
    loss_sum += model_->forward(sequences_.data(), B);
    val_data_->advance(batch_sequences);
  }
  return all_reduce_sum(grid_->dp_comm(), loss_sum) / (double(config_.data.eval_batches) * batch_sequences * T);
}

std::vector<double> Trainer::run() {
  std::vector<double> losses;
  while (steps_done_ < config_.train.steps) {
    const StepResult result = step();
    losses.push_back(result.loss);
    StepRecord record{steps_done_, result.loss, result.lr, result.grad_norm, result.ms, -1.0};
    const int64_t every = config_.data.eval_every;
    if (every > 0 && (steps_done_ % every == 0 || steps_done_ == config_.train.steps)) record.val_loss = evaluate();
    metrics_->record(record);
  }
  return losses;
}

}  // namespace xp
