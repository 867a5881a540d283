#pragma once
// AdamW over a range [begin, end) of the flat parameter buffer: the whole buffer, or with ZeRO-1 this
// data-parallel rank's shard. fp32 moments for the range only; weight decay on the tensors the
// parameter table marks (2-D weights).
#include <vector>

#include "xp/config/config.hpp"
#include "xp/core/types.hpp"
#include "xp/kernels/adamw.hpp"
#include "xp/model/layout.hpp"

namespace xp {

// Runs of adjacent tensors of [begin, end) with the same weight-decay flag, offsets within the range:
// one update pass (one launch) covers them all.
struct DecaySegment {
  int64_t offset, size;  // within [begin, end)
  bool decay;
};
std::vector<DecaySegment> decay_segments(const ParameterLayout& layout, int64_t begin, int64_t end);

// AdamW's hyper-parameters for its `step`-th update (1-based) at learning rate `lr`.
AdamWHyper adamw_hyper(const TrainConfig& train, int64_t step, double lr, double grad_scale);

class AdamW {
 public:
  AdamW(const ParameterLayout& layout, const TrainConfig& train, int64_t begin, int64_t end);

  // One update of params[begin, end) from grads (end - begin values, for that range), multiplied by
  // grad_scale (clipping) on the fly; one launch for every tensor of the range. compute (the whole
  // buffer's Real copy, or null) receives the updated weights of the range.
  void step(float* params, const float* grads, double lr, double grad_scale, Real* compute = nullptr);
  void set_steps_taken(int64_t steps) { steps_taken_ = steps; }  // when resuming
  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }

  FloatBuffer m, v;  // (end - begin)

 private:
  std::vector<DecaySegment> segments_;
  Kokkos::View<int64_t*> segment_ends_;  // device copies of segments_: end offsets and decay flags
  Kokkos::View<int8_t*> segment_decay_;
  TrainConfig train_;
  int64_t begin_, end_;
  int64_t steps_taken_ = 0;
};

}  // namespace xp
