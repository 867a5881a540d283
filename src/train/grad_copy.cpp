#include "xp/train/grad_copy.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "xp/core/device.hpp"
#include "xp/core/error.hpp"

#if defined(XP_ENABLE_CUDA)
#include <cuda_runtime.h>

#include "xp/core/cuda_check.hpp"
#endif

namespace xp {

GradientCopies::GradientCopies(float* host, int64_t begin, int64_t end) : host_(host), begin_(begin), end_(end) {
#if defined(XP_ENABLE_CUDA)
  // Non-blocking: the copy stream orders itself after the program stream's work through the event only.
  cudaStream_t stream = nullptr;
  cudaEvent_t event = nullptr;
  XP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  XP_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  stream_ = stream;
  event_ = event;
#endif
}

GradientCopies::~GradientCopies() {
#if defined(XP_ENABLE_CUDA)
  cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  cudaEventDestroy(static_cast<cudaEvent_t>(event_));
  cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
#endif
}

void GradientCopies::reset_step() {
#if defined(XP_ENABLE_CUDA)
  XP_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
#endif
  ledger_.clear();
}

void GradientCopies::copy(const float* grads, int64_t first, int64_t last) {
  first = std::max(first, begin_);
  last = std::min(last, end_);
  if (first >= last) return;
  ledger_.emplace_back(first, last);
  const size_t bytes = sizeof(float) * static_cast<size_t>(last - first);
#if defined(XP_ENABLE_CUDA)
  // One event serves every copy: a wait takes the event's latest record at the time it is enqueued.
  auto stream = static_cast<cudaStream_t>(stream_);
  auto event = static_cast<cudaEvent_t>(event_);
  XP_CUDA_CHECK(cudaEventRecord(event, static_cast<cudaStream_t>(device_stream())));
  XP_CUDA_CHECK(cudaStreamWaitEvent(stream, event, 0));
  XP_CUDA_CHECK(cudaMemcpyAsync(host_ + (first - begin_), grads + first, bytes, cudaMemcpyDeviceToHost, stream));
#else
  std::memcpy(host_ + (first - begin_), grads + first, bytes);
#endif
}

std::string ledger_problem(std::vector<std::pair<int64_t, int64_t>> ledger, int64_t begin, int64_t end) {
  std::sort(ledger.begin(), ledger.end());
  int64_t covered = begin;
  for (const auto& [first, last] : ledger) {
    if (first >= last) return "an empty copy at flat offset " + std::to_string(first);
    if (first != covered)
      return std::string(first < covered ? "copies overlap" : "a gap between copies") + " at flat offset " +
             std::to_string(std::min(first, covered));
    covered = last;
  }
  if (covered != end)
    return "the copies end at flat offset " + std::to_string(covered) + ", not " + std::to_string(end);
  return "";
}

bool GradientCopies::finish() {
#if defined(XP_ENABLE_CUDA)
  XP_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
#endif
  if (ledger_.empty()) return false;
  const std::string problem = ledger_problem(ledger_, begin_, end_);
  XP_REQUIRE(problem.empty(), "gradient copies of optimizer offload: " + problem);
  return true;
}

}  // namespace xp
