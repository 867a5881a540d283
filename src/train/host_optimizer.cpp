#include "xp/train/host_optimizer.hpp"

#include <algorithm>

#include "xp/core/allocation.hpp"
#include "xp/core/device.hpp"
#include "xp/kernels/adamw.hpp"
#include "xp/train/optimizer.hpp"

namespace xp {

OffloadBuffers offload_buffers(int64_t size, int64_t chunk) {
  const int64_t floats = std::max<int64_t>(0, size);
  return {floats, std::min(floats, chunk)};
}

HostAdamW::HostAdamW(const ParameterLayout& layout, const TrainConfig& train, int64_t begin, int64_t end, int threads,
                     int64_t chunk)
    : train_(train), begin_(begin), end_(end), threads_(std::max(1, threads)) {
  const OffloadBuffers sizes = offload_buffers(end - begin, std::max<int64_t>(1, chunk));
  master = allocate<PinnedFloats>("xp::offload_master", sizes.state, MemoryKind::Host);
  m = allocate<PinnedFloats>("xp::offload_adam_m", sizes.state, MemoryKind::Host);
  v = allocate<PinnedFloats>("xp::offload_adam_v", sizes.state, MemoryKind::Host);
  staging_ = allocate<PinnedFloats>("xp::offload_grad_staging", sizes.staging, MemoryKind::Host);
  for (const DecaySegment& segment : decay_segments(layout, begin, end)) {
    segment_ends_.push_back(segment.offset + segment.size);
    segment_decay_.push_back(segment.decay ? 1 : 0);
  }
}

void HostAdamW::load_weights(const float* weights) {
  copy_memory(master.data(), weights, sizeof(float) * master.size());
}

void HostAdamW::step(const float* grads, float* weights, double lr, double grad_scale) {
  ++steps_taken_;
  if (segment_ends_.empty()) return;
  const AdamWHyper hyper = adamw_hyper(train_, steps_taken_, lr, grad_scale);
  const int64_t n = segment_ends_.back(), chunk = std::max<int64_t>(1, staging_.extent(0));
  const int segments = static_cast<int>(segment_ends_.size());
  // Chunk by chunk: gradients device→host, AdamW on the host threads, master weights host→device.
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t last = std::min(n, first + chunk);
    const auto bytes = static_cast<size_t>(last - first) * sizeof(float);
    copy_memory(staging_.data(), grads + first, bytes);
    adamw_update_segments_host(master.data(), m.data(), v.data(), staging_.data(), first, last, segment_ends_.data(),
                               segment_decay_.data(), segments, hyper, threads_);
    copy_memory(weights + first, master.data() + first, bytes);
  }
}

}  // namespace xp
