#pragma once
// AdamW over the flat parameter buffer: fp32 moments laid out like the parameters; weight decay only
// on the tensors the parameter table marks (2-D weights).
#include <vector>

#include "xp/config/config.hpp"
#include "xp/core/types.hpp"
#include "xp/model/layout.hpp"

namespace xp {

class AdamW {
 public:
  AdamW(const ParameterLayout& layout, const TrainConfig& train);

  // One update; grads are multiplied by grad_scale (clipping) on the fly.
  void step(FloatBuffer& params, const FloatBuffer& grads, double lr, double grad_scale);
  int64_t steps_taken() const { return steps_taken_; }

  FloatBuffer m, v;

 private:
  struct Segment {
    int64_t offset, size;
    bool decay;
  };
  std::vector<Segment> segments_;  // runs of adjacent tensors with the same decay flag
  TrainConfig train_;
  int64_t steps_taken_ = 0;
};

}  // namespace xp
