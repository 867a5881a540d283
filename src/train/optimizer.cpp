#include "xp/train/optimizer.hpp"

#include <algorithm>

#include "xp/kernels/adamw.hpp"

namespace xp {

AdamW::AdamW(const ParameterLayout& layout, const TrainConfig& train, int64_t begin, int64_t end)
    : m("xp::adam_m", std::max<int64_t>(0, end - begin)), v("xp::adam_v", std::max<int64_t>(0, end - begin)),
      train_(train), begin_(begin), end_(end) {
  for (const TensorInfo& tensor : layout.tensors()) {
    const int64_t first = std::max(begin, tensor.offset), last = std::min(end, tensor.offset + tensor.size);
    if (first >= last) continue;
    if (!segments_.empty() && segments_.back().decay == tensor.decay &&
        segments_.back().offset + segments_.back().size == first - begin)
      segments_.back().size += last - first;
    else
      segments_.push_back({first - begin, last - first, tensor.decay});
  }
}

void AdamW::step(float* params, const float* grads, double lr, double grad_scale) {
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
    adamw_update(params + begin_ + segment.offset, m.data() + segment.offset, v.data() + segment.offset,
                 grads + segment.offset, segment.size, hyper);
  }
}

}  // namespace xp
