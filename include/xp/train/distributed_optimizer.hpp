#pragma once
// The data-parallel half of the update in one object (ZeRO-1 as DeepSpeed's stage 1; an optimizer that
// saves and loads its own state as torchtitan's): it sums the gradients over the dp replicas (all-reduce,
// or with ZeRO-1 a reduce-scatter that leaves each replica one slice), gives this rank's share of the
// global squared gradient norm, runs AdamW on this rank's range of the flat buffer (all of it, or its
// slice), all-gathers the updated slices and refreshes the bf16 compute weights. With optimizer offload
// the AdamW state of the range — fp32 master weights and both moments — lives in host memory only and the
// update runs there (HostAdamW); on builds with a compute copy the device then holds no fp32 weights: a
// step's updated master chunks come back already rounded, as the compute copy, and ZeRO-1 all-gathers
// that (bf16, half the bytes). Only a load (init, a resume, init_from, a rollback) passes fp32 values
// through the gradient buffer lent for it (GPT2::fp32_weights()) to convert them on the device. On the fp32 CPU build params are the
// compute copy, so they stay (the "device" of that build is the same RAM as the host).
//
// The checkpoint, init_from and the step guard see the master weights as one more optimizer state
// (AdamMoment::Master): saved and loaded chunk by chunk from host memory (gathered over dp with ZeRO-1),
// then weights_loaded() rebuilds the device's copies from them.
#include <cstdint>
#include <memory>
#include <vector>

#include "xp/config/config.hpp"
#include "xp/core/types.hpp"
#include "xp/model/gpt2.hpp"
#include "xp/parallel/grid.hpp"
#include "xp/train/grad_copy.hpp"
#include "xp/train/host_optimizer.hpp"
#include "xp/train/optimizer.hpp"

namespace xp {

// The range [begin, end) of the flat parameter buffer whose AdamW state one rank keeps, and the length
// the flat params and grads are padded to: the whole buffer without ZeRO; with ZeRO-1 slice `dp_rank` of
// dp equal slices (the buffers padded to dp slices; the padding stays 0).
struct ZeroShard {
  int64_t begin = 0, end = 0;
  int64_t buffer_size = 0;  // floats of params and of grads
  int64_t size() const { return end - begin; }
};
ZeroShard zero_shard(int64_t parameters, int dp, int dp_rank, bool zero);

// Whether zero_stage shards the optimizer over `dp` replicas: only where there are replicas to share
// with (with dp = 1 ZeRO-1 would only add a copy of the gradients; the arithmetic is the same).
inline bool shards_optimizer(int zero_stage, int dp) { return zero_stage == 1 && dp > 1; }

// Whether offload's gradient copies overlap the backward (GradientCopies): only without dp replicas, whose
// gradients are final only after the all-reduce of the whole buffer; with them the copies follow it.
inline bool overlaps_offload_copies(const ParallelConfig& parallel, int dp) {
  return parallel.optimizer_offload && parallel.offload_overlap && dp == 1;
}

// Floats the optimizer allocates, by the kinds the allocation ledger counts.
struct OptimizerBuffers {
  int64_t moments = 0;      // of m and of v each (Optimizer); 0 with offload
  int64_t shard_grads = 0;  // ZeRO-1: the dp-summed gradients of the slice (Grads); 0 without
  OffloadBuffers host;      // with offload: master weights, m, v and the gradient chunk or copy (Host); else 0
};
// `overlap`: offload's gradient staging is the whole range's host copy (overlaps_offload_copies).
// `compute_copy`: the build planned for has a bf16 compute copy (Precision::compute_copy()), which
// offload's weights go back as through a Real chunk.
OptimizerBuffers optimizer_buffers(const ZeroShard& shard, bool zero, bool offload = false, bool overlap = false,
                                   bool compute_copy = !real_is_float);

// Where the optimizer keeps its state: on the device with the model (threads unused), or offloaded to
// host memory and updated by `threads` host threads.
// `overlap`: the gradient copies overlap the backward (overlaps_offload_copies; GradientCopies).
struct OffloadOptions {
  bool enabled = false;
  int threads = 1;
  bool overlap = false;
};

// The two AdamW moments a checkpoint keeps of the optimizer besides the step; with offload also the fp32
// master weights, which only the optimizer holds then.
enum class AdamMoment { ExpAvg, ExpAvgSq, Master };

class DistributedOptimizer {
 public:
  // `model` (whose params and grads are shard.buffer_size long) and `grid` must outlive it.
  DistributedOptimizer(GPT2& model, const ParallelGrid& grid, const TrainConfig& train, const ZeroShard& shard,
                       bool zero, const OffloadOptions& offload = {});

  // Sums the gradients over the dp group: in place, or with ZeRO-1 this rank's slice into its own buffer.
  void reduce_gradients();
  // This rank's part of Σ g² over the whole model, each parameter counted once: replicated tensors on
  // tp rank 0, the tied embedding on the first stage, each element on one dp rank.
  double grad_norm_squared_part() const;
  // AdamW on this rank's range with the gradients × grad_scale; then every replica has all the updated
  // weights (ZeRO-1: all-gathered) and the compute copy matches them.
  void step(double lr, double grad_scale);

  // The checkpoint's view of the moments, one chunk [begin, end) of the rank's flat layout at a time
  // (the whole-model state never sits in host memory at once).
  // save_chunk fills `staging` (end - begin floats) on dp rank 0; with ZeRO-1 it is collective over dp:
  // each replica sends its part of the chunk. Without ZeRO-1 the other replicas do nothing.
  void save_chunk(AdamMoment moment, int64_t begin, int64_t end, float* staging) const;
  // Takes this rank's range of a chunk of the full moments, whatever sharding saved them.
  void load_chunk(AdamMoment moment, int64_t begin, int64_t end, const float* staging);
  // This rank's range of `moment` as host floats: an in-memory rollback point (load_chunk over the same
  // range puts it back).
  std::vector<float> moment_copy(AdamMoment moment) const;
  // Steps already taken (AdamW's bias correction) after a resume.
  void set_steps_taken(int64_t steps);
  // Whether the master weights are the optimizer's (offload): then a load goes to load_chunk(Master), a
  // save comes from save_chunk(Master); else they are the model's params.
  bool holds_master_weights() const { return host_adamw_ != nullptr; }
  // The weights were loaded (a resume, init_from, a rollback) — into the master copy (offload) or into
  // the model's params: the device's copies follow (the fp32 staging and compute copy, or the compute
  // copy). Collective over dp with ZeRO-1 and offload (an all-gather).
  void weights_loaded();

  // Offload with overlap (OffloadOptions::overlap): the trainer starts a step's gradient copies with
  // reset_grad_copies() (which waits for copies in flight and empties the ledger; after a bad step too),
  // hands each range of the flat buffer to copy_final_grads() once no write or reduction is left for it
  // (the stage's last backward, the tied wte after its all-reduce), and step() updates from the host copy
  // (the ledger checked) — or copies as without overlap where the step started none. Without overlap
  // these do nothing.
  bool overlaps_grad_copies() const { return copies_ != nullptr; }
  void reset_grad_copies();
  void copy_final_grads(int64_t first, int64_t last);
  // The step's copies so far (tests) and the host copy of [begin, end)'s gradients; empty, null without.
  std::vector<std::pair<int64_t, int64_t>> grad_copy_ledger() const;
  const float* host_grads() const { return host_adamw_ ? host_adamw_->gradient_copy() : nullptr; }

 private:
  const float* reduced_grads() const;  // the dp-summed gradients of [begin, end)
  Real* compute_weights() const;       // the model's compute copy: compute_weights_copy(), or params (fp32)
  // Offload: this rank's master range into the model's fp32_weights(), all-gathered over dp with ZeRO-1,
  // then the compute copy from them.
  void publish_master_weights();
  float* moment_data(AdamMoment moment) const;  // element i of the flat layout at [i - shard.begin]

  GPT2& model_;
  const ParallelGrid& grid_;
  ZeroShard shard_;
  bool zero_;
  std::unique_ptr<AdamW> adamw_;         // on the device, or
  std::unique_ptr<HostAdamW> host_adamw_;  // offloaded
  FloatBuffer shard_grads_;  // ZeRO-1 only
  std::unique_ptr<GradientCopies> copies_;  // offload with overlap only
};

}  // namespace xp
