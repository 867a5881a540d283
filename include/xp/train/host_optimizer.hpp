#pragma once
// AdamW with its state in host memory (optimizer_offload, as DeepSpeed's ZeRO-Offload): the fp32 master
// weights and both moments of the range [begin, end) live in host memory (pinned on GPU builds, so the
// copies run at PCIe speed); the gradients come device→host one bounded chunk at a time, the rank's host
// threads update the chunk, and the updated master chunk goes back host→device into the model's fp32
// weights. The arithmetic is AdamW's own (adamw_update_segments_host), so the losses equal the device
// optimizer's bit for bit.
#include <cstdint>
#include <vector>

#include "xp/config/config.hpp"
#include "xp/core/types.hpp"
#include "xp/model/layout.hpp"

namespace xp {

#if defined(KOKKOS_ENABLE_CUDA)
using PinnedSpace = Kokkos::CudaHostPinnedSpace;
#else
using PinnedSpace = Kokkos::HostSpace;
#endif
using PinnedFloats = Kokkos::View<float*, PinnedSpace>;

// Floats of the gradient staging chunk (64 MiB): large enough for full PCIe speed, small enough to stay
// out of the memory plan's way.
constexpr int64_t offload_chunk_floats = int64_t{16} << 20;

// Floats the offloaded optimizer keeps in host memory for a range of `size` parameters.
struct OffloadBuffers {
  int64_t state = 0;    // of the master weights, of m and of v each
  int64_t staging = 0;  // the gradient chunk
};
OffloadBuffers offload_buffers(int64_t size, int64_t chunk = offload_chunk_floats);

class HostAdamW {
 public:
  // `threads`: the rank's host threads (the same count BLAS gets; the two never run at once). `chunk`:
  // floats of gradients per copy (smaller only in tests, which check that the chunking changes nothing).
  HostAdamW(const ParameterLayout& layout, const TrainConfig& train, int64_t begin, int64_t end, int threads,
            int64_t chunk = offload_chunk_floats);

  // The master weights of the range from weights[0, end - begin) (device memory on GPU builds): at the
  // start and after a resume loaded the model's weights.
  void load_weights(const float* weights);
  // One update from grads[0, end - begin) × grad_scale (device memory on GPU builds); the updated master
  // weights are copied to weights[0, end - begin).
  void step(const float* grads, float* weights, double lr, double grad_scale);
  void set_steps_taken(int64_t steps) { steps_taken_ = steps; }
  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }

  PinnedFloats master, m, v;  // (end - begin), host memory

 private:
  std::vector<int64_t> segment_ends_;  // of the range's decay segments (host arrays: the update runs here)
  std::vector<int8_t> segment_decay_;
  PinnedFloats staging_;  // one chunk of gradients
  TrainConfig train_;
  int64_t begin_, end_;
  int threads_;
  int64_t steps_taken_ = 0;
};

}  // namespace xp
