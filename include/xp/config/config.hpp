#pragma once
// The whole run configuration. Every field is an input-deck key of the same name (inputs/README.md);
// deck.hpp fills these from a TOML deck plus key=value overrides and validates them together.
#include <cstdint>
#include <string>

namespace xp {

struct ModelConfig {
  std::string model = "custom";  // preset name: gpt2, gpt2-medium, gpt2-large, gpt2-xl, or custom
  int n_layer = 2;
  int n_head = 2;
  int n_embd = 64;
  int seq_len = 64;              // context length T (rows of the position embedding)
  int vocab_size = 256;          // real vocabulary V; logits are padded to padded_vocab()

  // GPT-2's 50257 becomes 50304: matmuls over the vocabulary get friendly sizes.
  int padded_vocab() const { return (vocab_size + 127) / 128 * 128; }
};

struct TrainConfig {
  int64_t steps = 100;
  uint64_t seed = 1337;
  int batch_size = 4;            // sequences per micro-batch per data-parallel replica
  int grad_accum_steps = 1;
  double lr = 6e-4;              // peak learning rate, reached after warmup_steps
  double min_lr = 0.0;           // end of the cosine decay, as an absolute learning rate
  int64_t warmup_steps = 0;
  double weight_decay = 0.1;     // decoupled, on 2-D weight matrices only
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip_norm = 1.0;   // <= 0 (deck value "none") disables clipping
  double init_std = 0.02;
};

struct DataConfig {
  std::string train_data;        // glob of llm.c token shards; empty = the built-in synthetic source
  std::string val_data;          // glob; empty = synthetic validation stream (or none with shard data)
  int64_t eval_every = 0;        // steps between validation passes; 0 = never
  int eval_batches = 4;          // micro-batches per replica in one validation pass
  int synthetic_branching = 4;   // successors per token in the synthetic source; loss floor ln(this)
  std::string tokenizer = "auto";  // byte | gpt2 | auto (the shards' header says; synthetic data is byte)
  std::string vocab;             // GPT-2 vocabulary (folder or ranks file) to decode samples; needed for gpt2
};

// Activation recomputation (issue: 30–40 B on one node): none keeps every activation backward needs;
// selective recomputes the attention internals and the MLP's activations from kept block tensors;
// full keeps only each block's input and reruns the block's forward in backward.
enum class Recompute { None, Selective, Full };

struct ParallelConfig {
  int tp_size = 0;               // 0 = auto
  int pp_stages = 0;             // 0 = auto
  int dp_size = 0;               // 0 = auto (world / (tp * pp))
  int threads = 0;               // host threads per rank for BLAS; 0 = cores / ranks on this host
  int zero_stage = 0;            // 1: AdamW moments sharded over dp (reduce-scatter + all-gather)
  int world_size = 0;            // what-if rank count for --dry-run; 0 = the ranks of this job
  double device_memory = 0.0;    // bytes available to each rank; 0 = this host's free RAM / its ranks
  Recompute recompute = Recompute::None;
  bool optimizer_offload = false;  // fp32 master weights and AdamW moments in host memory, AdamW on the host
  bool offload_overlap = true;     // offload with dp = 1: gradients copied to the host during the backward
  double host_memory = 0.0;      // bytes of host memory per node; 0 = this host's RAM (unknown for --gpu what-ifs)
};

struct RunConfig {
  std::string run_dir = "runs/default";
  int64_t log_every = 1;         // console line every this many steps (metrics.jsonl gets every step)
  double peak_tflops = 0.0;      // per-rank peak for MFU; 0 = host cores × clock × vector FLOP/cycle
  int64_t checkpoint_every = 0;  // steps between checkpoints; 0 = only at the end and on SIGTERM/SIGUSR1
  bool final_checkpoint = true;  // false: none after the last step (benchmarks); SIGTERM/SIGUSR1 still write one
  int keep_last = 3;             // complete checkpoints kept; 0 = all
  std::string resume = "none";   // none, latest, or a checkpoint directory
  bool tensorboard = false;      // rank 0 also writes a TensorBoard event file in run_dir
  std::string init_from;         // checkpoint whose weights start a fresh run (fine-tuning); resume wins
  std::string gpu_kernels = "fused";  // fused | kokkos: the GPU build's kernel implementation (kernels/kernel_path.hpp)
};

// Samples printed during training (train/sampler.hpp): the same settings as xp_generate's options.
struct SampleConfig {
  int64_t sample_every = 0;          // steps between samples; 0 = never
  int sample_tokens = 64;            // tokens generated per sample
  std::string sample_prompt = "\n";  // text the sample continues
  double temperature = 1.0;          // 0 = greedy
  int top_k = 0;                     // 0 = the whole vocabulary
};

// What a step with a NaN/Inf or spiking loss or gradient norm does (train/step_guard.hpp): skip drops
// its update, rollback returns to the newest checkpoint and moves the data past the bad batches, stop
// ends the run.
enum class OnBadStep { Skip, Rollback, Stop };

struct GuardConfig {
  double spike_zscore = 6.0;     // spike: this many std above the trailing window's mean; 0 ("none") = off
  int64_t spike_window = 100;    // good steps in the trailing window; no spike test until it is full
  OnBadStep on_bad_step = OnBadStep::Skip;
  bool rollback_keep_in_memory = false;  // roll back to a host copy of the newest checkpoint, not the file
  int max_rollbacks = 3;         // rollbacks allowed within spike_window steps run; one more stops the run
};

struct Config {
  ModelConfig model;
  TrainConfig train;
  DataConfig data;
  ParallelConfig parallel;
  RunConfig run;
  SampleConfig sample;
  GuardConfig guard;
};

}  // namespace xp
