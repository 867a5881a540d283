#pragma once
// The 1F1B pipeline schedule: the order in which one pipeline stage runs the forward and backward passes
// of a step's micro-batches. Only the order lives here; the executor wraps each step in communication
// (Forward m receives m's activation from stage-1 and sends its output to stage+1; Backward m receives
// m's output gradient from stage+1 and sends its input gradient to stage-1).
#include <vector>

namespace xp {

enum class PipeOp { Forward, Backward };

struct PipeStep {
  PipeOp op;
  int micro_batch;
};

// The steps of stage `stage` (0-based, of `stages`) for `micro_batches` micro-batches under 1F1B: warmup
// forwards (min(stages - stage - 1, micro_batches)), then steady state of one forward and one backward,
// then cooldown backwards. Micro-batches run in order 0..M-1 in both directions. With one stage this is
// F0 B0 F1 B1 ... (plain gradient accumulation).
std::vector<PipeStep> one_f_one_b(int stages, int stage, int micro_batches);

// The most micro-batches whose activations stage `stage` holds at once under this schedule:
// min(stages - stage, micro_batches).
int max_in_flight(int stages, int stage, int micro_batches);

}  // namespace xp
