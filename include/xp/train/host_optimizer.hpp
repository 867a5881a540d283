#pragma once
// AdamW with its state in host memory (optimizer_offload, as DeepSpeed's ZeRO-Offload): the fp32 master
// weights and both moments of the range [begin, end) live in host memory only (pinned on GPU builds, so
// the copies run at PCIe speed); the gradients come device→host one bounded chunk at a time (or are in
// the host copy already: below), the rank's host threads update the chunk, and the updated master chunk
// goes back host→device into the model's fp32 weights on the device (GPT2::fp32_weights(): on bf16
// builds the gradient buffer, whose chunk was just read — no fp32 params are kept there), from which the
// compute copy is converted on the device. The arithmetic is AdamW's own (adamw_update_segments_host), so
// the losses equal the device optimizer's bit for bit.
//
// The gradient copies and the backward (the "where the stream allows"). A chunk [first, last) of
// the flat buffer is final once (a) the last micro-batch's backward has run over every tensor it covers —
// the buffer is laid out embedding, blocks 0..L-1, head, and backward walks it from the back, except wte,
// which the head's backward touches first and the embedding's last (and tie_embedding_grads after both
// where pp > 1); and (b) its dp reduction is done. No tensor-parallel reduction of parameter gradients is
// needed: replicated tensors (LayerNorms, row-parallel biases, wpe) get the same gradient on every tp
// rank, because their inputs and output gradients are all-reduced activations.
//   With dp = 1 (offload_overlap, on by default; GradientCopies, train/grad_copy.hpp) the trainer hands
// each range to the copies as GPT2::backward reports it on the last micro-batch (the tied wte after its
// all-reduce): on GPU builds a cudaMemcpyAsync on a copy stream of its own, after an event on the program
// stream, into `gradient_copy()`, a pinned host copy of the whole range (4 B per parameter more host
// memory than the chunk, counted by the plan), and step() updates from it without copying. By the end of
// the backward only the embedding's copy (and on pp > 1 wte's, after the tie) is left to wait for. The
// clipping norm and the step guard still read the device's gradients; the update still waits for them.
//   With dp > 1 nothing is final before the all-reduce / reduce-scatter of the whole buffer, so step()
// copies chunk by chunk after it, as without overlap. Overlapping those too would need the reduction
// cut into the same chunks (bucketed all-reduces, as DDP does); overlapping the host update of chunk k
// with the copy of chunk k+1 needs double-buffered staging. Neither is done.
#include <cstdint>
#include <vector>

#include "xp/config/config.hpp"
#include "xp/core/thread_pool.hpp"
#include "xp/core/types.hpp"
#include "xp/model/layout.hpp"

namespace xp {

#if defined(KOKKOS_ENABLE_CUDA)
using PinnedSpace = Kokkos::CudaHostPinnedSpace;
#else
using PinnedSpace = Kokkos::HostSpace;
#endif
using PinnedFloats = Kokkos::View<float*, PinnedSpace>;
using PinnedReals = Kokkos::View<Real*, PinnedSpace>;

// Floats of the gradient staging chunk (64 MiB): large enough for full PCIe speed, small enough to stay
// out of the memory plan's way.
constexpr int64_t offload_chunk_floats = int64_t{16} << 20;

// What the offloaded optimizer keeps in host memory for a range of `size` parameters. `whole`: the
// gradient staging holds the whole range (the gradient copy the backward fills: GradientCopies).
// `compute_copy`: the build (planned for) has a bf16 compute copy, which the weights go back as, through
// a Real chunk (precision.hpp's Precision::compute_copy()).
struct OffloadBuffers {
  int64_t state = 0;         // floats of the master weights, of m and of v each
  int64_t staging = 0;       // floats: the gradient chunk, or with `whole` the range's gradients
  int64_t real_staging = 0;  // Real elements: one chunk of rounded weights on their way back; 0 on fp32
};
OffloadBuffers offload_buffers(int64_t size, int64_t chunk = offload_chunk_floats, bool whole = false,
                               bool compute_copy = !real_is_float);

class HostAdamW {
 public:
  // `threads`: the rank's host threads (the same count BLAS gets; the two never run at once). `chunk`:
  // floats of gradients per copy (smaller only in tests, which check that the chunking changes nothing).
  // `whole_grads`: the staging holds all end - begin gradients (gradient_copy()), which step() may find
  // filled already.
  HostAdamW(const ParameterLayout& layout, const TrainConfig& train, int64_t begin, int64_t end, int threads,
            int64_t chunk = offload_chunk_floats, bool whole_grads = false);

  // The master weights of the range from weights[0, end - begin) (device memory on GPU builds): the
  // initial weights GPT2::init_weights wrote there. Later loads (a resume, a rollback) write `master`.
  void load_weights(const float* weights);
  // One update from grads[0, end - begin) × grad_scale (device memory on GPU builds); the updated master
  // weights, rounded to Real, are copied to compute[0, end - begin) (the compute copy's range; params on
  // the fp32 build, which `grads` must not be).
  // `grads_on_host`: gradient_copy() holds the step's gradients already (GradientCopies filled it during
  // the backward); `grads` is not read then.
  void step(const float* grads, Real* compute, double lr, double grad_scale, bool grads_on_host = false);
  // The host copy of the range's gradients where the staging holds all of them (whole_grads), else null.
  float* gradient_copy() { return whole_ ? staging_.data() : nullptr; }
  void set_steps_taken(int64_t steps) { steps_taken_ = steps; }
  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }

  PinnedFloats master, m, v;  // (end - begin), host memory

 private:
  std::vector<int64_t> segment_ends_;  // of the range's decay segments (host arrays: the update runs here)
  std::vector<int8_t> segment_decay_;
  PinnedFloats staging_;  // one chunk of gradients, or (whole_) all of the range's
  PinnedReals real_staging_;  // one chunk of weights rounded to Real (bf16 builds; empty on fp32)
  bool whole_ = false;
  TrainConfig train_;
  int64_t begin_, end_;
  ThreadPool threads_;  // the rank's host threads, started once
  int64_t steps_taken_ = 0;
};

}  // namespace xp
