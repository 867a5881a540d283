#include "xp/train/host_optimizer.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "xp/core/allocation.hpp"
#include "xp/core/device.hpp"
#include "xp/core/error.hpp"
#include "xp/kernels/adamw.hpp"
#include "xp/train/optimizer.hpp"

namespace xp {

OffloadBuffers offload_buffers(int64_t size, int64_t chunk, bool whole, bool compute_copy) {
  const int64_t floats = std::max<int64_t>(0, size);
  // The weights go back one chunk of the usual size at a time, whatever the gradient staging holds.
  const int64_t back = std::min(floats, whole ? offload_chunk_floats : chunk);
  return {floats, whole ? floats : std::min(floats, chunk), compute_copy ? back : 0};
}

namespace {

// out[i] = to_real(x[i]) for i < n on the host threads of `threads`: bf16 round to nearest even (bf16_bits, the
// emulated Real's own rule and __float2bfloat16_rn's for finite values), written as Real's 16 bits.
void round_to_real(const float* x, Real* out, int64_t n, ThreadPool& threads) {
  if constexpr (!real_is_float) {
    static_assert(real_is_float || sizeof(Real) == sizeof(std::uint16_t), "the compute copy is bf16");
    auto part = [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const std::uint16_t bits = bf16_bits(x[i]);
        std::memcpy(static_cast<void*>(out + i), &bits, sizeof bits);  // Real as its 16 bits
      }
    };
    threads.run_ranges(n, 65536, [&](int64_t lo, int64_t hi) { part(lo, hi); });
  } else {
    std::copy(x, x + n, out);
  }
}

}  // namespace

HostAdamW::HostAdamW(const ParameterLayout& layout, const TrainConfig& train, int64_t begin, int64_t end, int threads,
                     int64_t chunk, bool whole_grads)
    : whole_(whole_grads), train_(train), begin_(begin), end_(end), threads_(std::max(1, threads)) {
  const OffloadBuffers sizes = offload_buffers(end - begin, std::max<int64_t>(1, chunk), whole_grads);
  master = allocate<PinnedFloats>("xp::offload_master", sizes.state, MemoryKind::Host);
  m = allocate<PinnedFloats>("xp::offload_adam_m", sizes.state, MemoryKind::Host);
  v = allocate<PinnedFloats>("xp::offload_adam_v", sizes.state, MemoryKind::Host);
  staging_ = allocate<PinnedFloats>("xp::offload_grad_staging", sizes.staging, MemoryKind::Host);
  real_staging_ = allocate<PinnedReals>("xp::offload_weight_staging", sizes.real_staging, MemoryKind::Host);
  for (const DecaySegment& segment : decay_segments(layout, begin, end)) {
    segment_ends_.push_back(segment.offset + segment.size);
    segment_decay_.push_back(segment.decay ? 1 : 0);
  }
}

void HostAdamW::load_weights(const float* weights) {
  copy_memory(master.data(), weights, sizeof(float) * master.size());
}

void HostAdamW::step(const float* grads, Real* compute, double lr, double grad_scale, bool grads_on_host) {
  XP_REQUIRE(whole_ || !grads_on_host, "HostAdamW: gradients on the host need a whole-range staging");
  ++steps_taken_;
  if (segment_ends_.empty()) return;
  const AdamWHyper hyper = adamw_hyper(train_, steps_taken_, lr, grad_scale);
  const int64_t n = segment_ends_.back();
  // A staging of the whole range is still walked in chunks of the usual size: one bound per copy back.
  const int64_t chunk = std::max<int64_t>(1, whole_ ? offload_chunk_floats : staging_.extent(0));
  const int segments = static_cast<int>(segment_ends_.size());
  // Chunk by chunk: gradients device→host (unless there already), AdamW on the host threads, the compute
  // copy host→device (bf16: rounded into the Real chunk first; fp32: the master chunk itself).
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t last = std::min(n, first + chunk);
    const auto bytes = static_cast<size_t>(last - first) * sizeof(float);
    float* staged = staging_.data() + (whole_ ? first : 0);
    if (!grads_on_host) copy_memory(staged, grads + first, bytes);
    adamw_update_segments_host(master.data(), m.data(), v.data(), staged, first, last, segment_ends_.data(),
                               segment_decay_.data(), segments, hyper, threads_);
    if constexpr (real_is_float) {
      copy_memory(compute + first, master.data() + first, bytes);
    } else {
      round_to_real(master.data() + first, real_staging_.data(), last - first, threads_);
      copy_memory(compute + first, real_staging_.data(), static_cast<size_t>(last - first) * sizeof(Real));
    }
  }
}

}  // namespace xp
