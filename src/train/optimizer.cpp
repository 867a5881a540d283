#include "xp/train/optimizer.hpp"

#include <algorithm>

#include "xp/core/allocation.hpp"
#include "xp/kernels/adamw.hpp"

namespace xp {

std::vector<DecaySegment> decay_segments(const ParameterLayout& layout, int64_t begin, int64_t end) {
  std::vector<DecaySegment> segments;
  for (const TensorInfo& tensor : layout.tensors()) {
    const int64_t first = std::max(begin, tensor.offset), last = std::min(end, tensor.offset + tensor.size);
    if (first >= last) continue;
    if (!segments.empty() && segments.back().decay == tensor.decay &&
        segments.back().offset + segments.back().size == first - begin)
      segments.back().size += last - first;
    else
      segments.push_back({first - begin, last - first, tensor.decay});
  }
  return segments;
}

AdamWHyper adamw_hyper(const TrainConfig& train, int64_t step, double lr, double grad_scale) {
  AdamWHyper hyper;
  hyper.lr = static_cast<float>(lr);
  hyper.beta1 = static_cast<float>(train.beta1);
  hyper.beta2 = static_cast<float>(train.beta2);
  hyper.eps = static_cast<float>(train.eps);
  hyper.grad_scale = static_cast<float>(grad_scale);
  hyper.step = step;
  hyper.weight_decay = static_cast<float>(train.weight_decay);
  return hyper;
}

AdamW::AdamW(const ParameterLayout& layout, const TrainConfig& train, int64_t begin, int64_t end)
    : m(allocate<FloatBuffer>("xp::adam_m", std::max<int64_t>(0, end - begin), MemoryKind::Optimizer)),
      v(allocate<FloatBuffer>("xp::adam_v", std::max<int64_t>(0, end - begin), MemoryKind::Optimizer)),
      segments_(decay_segments(layout, begin, end)), train_(train), begin_(begin), end_(end) {
  const auto count = static_cast<int64_t>(segments_.size());
  segment_ends_ = Kokkos::View<int64_t*>("xp::adamw_segment_ends", count);
  segment_decay_ = Kokkos::View<int8_t*>("xp::adamw_segment_decay", count);
  auto ends = Kokkos::create_mirror_view(segment_ends_);
  auto decay = Kokkos::create_mirror_view(segment_decay_);
  for (int64_t s = 0; s < count; ++s) {
    ends(s) = segments_[s].offset + segments_[s].size;
    decay(s) = segments_[s].decay ? 1 : 0;
  }
  Kokkos::deep_copy(segment_ends_, ends);
  Kokkos::deep_copy(segment_decay_, decay);
}

void AdamW::step(float* params, const float* grads, double lr, double grad_scale, Real* compute) {
  ++steps_taken_;
  const AdamWHyper hyper = adamw_hyper(train_, steps_taken_, lr, grad_scale);
  if (segments_.empty()) return;
  const int64_t n = segments_.back().offset + segments_.back().size;
  adamw_update_segments(params + begin_, m.data(), v.data(), grads, n, segment_ends_.data(), segment_decay_.data(),
                        static_cast<int>(segments_.size()), hyper, compute ? compute + begin_ : nullptr);
}

}  // namespace xp
