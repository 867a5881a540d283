#include "xp/train/host_optimizer.hpp"

#include <algorithm>

#include "xp/core/allocation.hpp"
#include "xp/core/device.hpp"
#include "xp/core/error.hpp"
#include "xp/kernels/adamw.hpp"
#include "xp/train/optimizer.hpp"

namespace xp {

OffloadBuffers offload_buffers(int64_t size, int64_t chunk, bool whole) {
  const int64_t floats = std::max<int64_t>(0, size);
  return {floats, whole ? floats : std::min(floats, chunk)};
}

HostAdamW::HostAdamW(const ParameterLayout& layout, const TrainConfig& train, int64_t begin, int64_t end, int threads,
                     int64_t chunk, bool whole_grads)
    : whole_(whole_grads), train_(train), begin_(begin), end_(end), threads_(std::max(1, threads)) {
  const OffloadBuffers sizes = offload_buffers(end - begin, std::max<int64_t>(1, chunk), whole_grads);
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

void HostAdamW::step(const float* grads, float* weights, double lr, double grad_scale, bool grads_on_host) {
  XP_REQUIRE(whole_ || !grads_on_host, "HostAdamW: gradients on the host need a whole-range staging");
  ++steps_taken_;
  if (segment_ends_.empty()) return;
  const AdamWHyper hyper = adamw_hyper(train_, steps_taken_, lr, grad_scale);
  const int64_t n = segment_ends_.back();
  // A staging of the whole range is still walked in chunks of the usual size: one bound per copy back.
  const int64_t chunk = std::max<int64_t>(1, whole_ ? offload_chunk_floats : staging_.extent(0));
  const int segments = static_cast<int>(segment_ends_.size());
  // Chunk by chunk: gradients device→host (unless there already), AdamW on the host threads, master
  // weights host→device.
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t last = std::min(n, first + chunk);
    const auto bytes = static_cast<size_t>(last - first) * sizeof(float);
    float* staged = staging_.data() + (whole_ ? first : 0);
    if (!grads_on_host) copy_memory(staged, grads + first, bytes);
    adamw_update_segments_host(master.data(), m.data(), v.data(), staged, first, last, segment_ends_.data(),
                               segment_decay_.data(), segments, hyper, threads_);
    copy_memory(weights + first, master.data() + first, bytes);
  }
}

}  // namespace xp
