#include "xp/train/schedule.hpp"

#include <algorithm>
#include <string>

#include "xp/core/error.hpp"

namespace xp {
namespace {

void check_arguments(int stages, int stage, int micro_batches) {
  XP_REQUIRE(stages >= 1 && stage >= 0 && stage < stages && micro_batches >= 1,
             "1F1B schedule: need stages >= 1, 0 <= stage < stages, micro_batches >= 1; got stages=" +
                 std::to_string(stages) + " stage=" + std::to_string(stage) +
                 " micro_batches=" + std::to_string(micro_batches));
}

// Forwards a stage runs before its first backward: enough to fill the stages after it.
int warmup_forwards(int stages, int stage, int micro_batches) {
  return std::min(stages - stage - 1, micro_batches);
}

}  // namespace

std::vector<PipeStep> one_f_one_b(int stages, int stage, int micro_batches) {
  check_arguments(stages, stage, micro_batches);
  const int warmup = warmup_forwards(stages, stage, micro_batches);
  const int steady = micro_batches - warmup;
  std::vector<PipeStep> steps;
  steps.reserve(2 * static_cast<size_t>(micro_batches));

  // Warmup: forwards only, filling the pipeline downstream of this stage.
  for (int m = 0; m < warmup; ++m) steps.push_back({PipeOp::Forward, m});

  // Steady 1F1B: each forward is followed by the backward of the oldest micro-batch still held.
  for (int i = 0; i < steady; ++i) {
    steps.push_back({PipeOp::Forward, warmup + i});
    steps.push_back({PipeOp::Backward, i});
  }

  // Cooldown: backwards of the micro-batches still held, draining the pipeline.
  for (int m = steady; m < micro_batches; ++m) steps.push_back({PipeOp::Backward, m});
  return steps;
}

int max_in_flight(int stages, int stage, int micro_batches) {
  check_arguments(stages, stage, micro_batches);
  // Warmup holds `warmup` activations; the first steady forward adds one more before any backward.
  const int warmup = warmup_forwards(stages, stage, micro_batches);
  return warmup < micro_batches ? warmup + 1 : warmup;
}

}  // namespace xp
