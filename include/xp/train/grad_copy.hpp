#pragma once
// The gradient copies of optimizer offload that overlap the backward (offload_overlap, where the plan
// allows it: optimizer_overlaps_copies). A range of the flat gradient buffer is copied device→host as
// soon as the trainer knows it final — the stage's last micro-batch has written it (GPT2::backward's
// report) and no reduction is left for it — into the host copy HostAdamW then updates from, so only the
// copies of the last ranges (the embedding, on the first stage) are left when the backward ends.
//
// On GPU builds each copy runs on a stream of its own: an event recorded on the program stream
// (device_stream()) after the work queued so far, which wrote the range, is what the copy stream waits
// for, then cudaMemcpyAsync into the pinned host copy; the backward's kernels go on meanwhile, and
// nothing writes a final range again before finish() has waited for the copies. On CPU builds a copy is
// a plain memcpy at the same point, so the ordering (what is copied when) is the GPU build's.
//
// The ledger: every copy of a step is recorded, and finish() checks that they are disjoint and cover
// the range [begin, end) exactly once (the job ends otherwise: a range copied twice or not at all would be
// a wrong update). A step with no copies (none started: a fault injected
// into the gradients after the backward, say) leaves the copy to HostAdamW::step, as without overlap.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace xp {

// What is wrong with copies `ledger` ([first, last) each) of the range [begin, end): "" when they are
// disjoint and cover it exactly once.
std::string ledger_problem(std::vector<std::pair<int64_t, int64_t>> ledger, int64_t begin, int64_t end);

class GradientCopies {
 public:
  // `host` receives the gradients of [begin, end) of the flat buffer: host[i - begin] = grads[i]
  // (pinned host memory on GPU builds); it must outlive this.
  GradientCopies(float* host, int64_t begin, int64_t end);
  ~GradientCopies();
  GradientCopies(const GradientCopies&) = delete;
  GradientCopies& operator=(const GradientCopies&) = delete;

  // A new step, or a step not taken: waits for copies still in flight and empties the ledger.
  void reset_step();
  // Copies grads[first, last) ∩ [begin, end) to the host after the work queued on the program stream so
  // far; returns without waiting for it on GPU builds.
  void copy(const float* grads, int64_t first, int64_t last);
  // Waits for the step's copies; true when they covered [begin, end) (checked as above), false when there
  // were none.
  bool finish();

  // The step's copies so far, [first, last) in flat offsets, in the order they were started.
  const std::vector<std::pair<int64_t, int64_t>>& ledger() const { return ledger_; }

 private:
  float* host_;
  int64_t begin_, end_;
  std::vector<std::pair<int64_t, int64_t>> ledger_;
  void* stream_ = nullptr;  // cudaStream_t, cudaEvent_t on GPU builds
  void* event_ = nullptr;
};

}  // namespace xp
