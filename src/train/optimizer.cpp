#include "xp/train/optimizer.hpp"

#include "xp/kernels/adamw.hpp"

namespace xp {

AdamW::AdamW(const ParameterLayout& layout, const TrainConfig& train)
    : m("xp::adam_m", layout.total()), v("xp::adam_v", layout.total()), train_(train) {
  for (const TensorInfo& tensor : layout.tensors()) {
    if (!segments_.empty() && segments_.back().decay == tensor.decay &&
        segments_.back().offset + segments_.back().size == tensor.offset)
      segments_.back().size += tensor.size;
    else
      segments_.push_back({tensor.offset, tensor.size, tensor.decay});
  }
}

void AdamW::step(FloatBuffer& params, const FloatBuffer& grads, double lr, double grad_scale) {
  ++steps_taken_;
  AdamWHyper hyper;
  hyper.lr = static_cast<float>(lr);
  hyper.beta1 = static_cast<float>(train_.beta1);
  hyper.beta2 = static_cast<float>(train_.beta2);
  hyper.eps = static_cast<float>(train_.eps);
  hyper.grad_scale = static_cast<float>(grad_scale);
  hyper.step = steps_taken_;
  for (const Segment& segment : segments_) {
    hyper.weight_decay = segment.decay ? static_cast<float>(train_.weight_decay) : 0.0f;
    adamw_update(params.data() + segment.offset, m.data() + segment.offset, v.data() + segment.offset,
                 grads.data() + segment.offset, segment.size, hyper);
  }
}

}  // namespace xp
