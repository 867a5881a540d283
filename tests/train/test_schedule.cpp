// The 1F1B pipeline schedule: hand-written orders for small cases, and a simulation of all stages running
// their orders at once with the executor's communication (buffered FIFO sends, blocking receives).
#include "xp/train/schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <string>
#include <vector>

namespace xp::test {
namespace {

constexpr int max_stages = 8;
constexpr int max_micro_batches = 16;

// "F0 F1 B0 ..." for readable failures.
std::string format(const std::vector<PipeStep>& steps) {
  std::string text;
  for (const PipeStep& step : steps) {
    if (!text.empty()) text += ' ';
    text += (step.op == PipeOp::Forward ? 'F' : 'B') + std::to_string(step.micro_batch);
  }
  return text;
}

// One direction between two neighbouring stages: the messages in flight and every micro-batch ever sent
// and received, in order (the two differ when a receiver expects another micro-batch than arrives).
// `ready` holds the time each message in flight arrives.
struct Channel {
  std::deque<int> in_flight;
  std::deque<int> ready;
  std::vector<int> sent, received;
};

struct Simulation {
  bool deadlocked = false;
  int makespan = 0;                               // time units, every step taking one
  std::vector<Channel> activations, gradients;    // [s]: stage s -> s+1, and stage s+1 -> s
};

// Runs every stage's schedule until all finish or none can move (a deadlock). A stage blocks on a receive
// whose channel is empty; a step starts when both the stage and its input are ready and takes one unit.
// A receive takes the channel's oldest message and logs the micro-batch the receiver's schedule expects.
Simulation simulate(int stages, int micro_batches) {
  Simulation sim;
  sim.activations.resize(stages);
  sim.gradients.resize(stages);
  std::vector<std::vector<PipeStep>> schedules;
  for (int stage = 0; stage < stages; ++stage) schedules.push_back(one_f_one_b(stages, stage, micro_batches));
  std::vector<size_t> next(stages, 0);
  std::vector<int> clock(stages, 0);

  for (bool moved = true; moved;) {
    moved = false;
    for (int stage = 0; stage < stages; ++stage) {
      if (next[stage] == schedules[stage].size()) continue;
      const PipeStep step = schedules[stage][next[stage]];
      const bool forward = step.op == PipeOp::Forward;
      Channel* in = nullptr;
      if (forward && stage > 0) in = &sim.activations[stage - 1];
      if (!forward && stage < stages - 1) in = &sim.gradients[stage];
      Channel* out = nullptr;
      if (forward && stage < stages - 1) out = &sim.activations[stage];
      if (!forward && stage > 0) out = &sim.gradients[stage - 1];

      if (in != nullptr && in->in_flight.empty()) continue;  // blocking receive
      int start = clock[stage];
      if (in != nullptr) {
        in->received.push_back(step.micro_batch);
        start = std::max(start, in->ready.front());
        in->in_flight.pop_front();
        in->ready.pop_front();
      }
      clock[stage] = start + 1;
      if (out != nullptr) {  // buffered send: never blocks
        out->in_flight.push_back(step.micro_batch);
        out->ready.push_back(clock[stage]);
        out->sent.push_back(step.micro_batch);
      }
      ++next[stage];
      moved = true;
    }
  }
  for (int stage = 0; stage < stages; ++stage) {
    sim.deadlocked |= next[stage] != schedules[stage].size();
    sim.makespan = std::max(sim.makespan, clock[stage]);
  }
  return sim;
}

TEST(Schedule, FourStagesEightMicroBatches) {
  EXPECT_EQ(format(one_f_one_b(4, 0, 8)), "F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7");
  EXPECT_EQ(format(one_f_one_b(4, 1, 8)), "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 F6 B4 F7 B5 B6 B7");
  EXPECT_EQ(format(one_f_one_b(4, 3, 8)), "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7");
}

TEST(Schedule, TwoStagesOneMicroBatch) {
  EXPECT_EQ(format(one_f_one_b(2, 0, 1)), "F0 B0");
  EXPECT_EQ(format(one_f_one_b(2, 1, 1)), "F0 B0");
}

TEST(Schedule, FewerMicroBatchesThanStages) {
  EXPECT_EQ(format(one_f_one_b(4, 0, 2)), "F0 F1 B0 B1");
  EXPECT_EQ(format(one_f_one_b(4, 1, 2)), "F0 F1 B0 B1");
  EXPECT_EQ(format(one_f_one_b(4, 2, 2)), "F0 F1 B0 B1");
  EXPECT_EQ(format(one_f_one_b(4, 3, 2)), "F0 B0 F1 B1");
}

TEST(Schedule, OneStageIsGradientAccumulation) {
  EXPECT_EQ(format(one_f_one_b(1, 0, 1)), "F0 B0");
  EXPECT_EQ(format(one_f_one_b(1, 0, 4)), "F0 B0 F1 B1 F2 B2 F3 B3");
}

TEST(Schedule, EachMicroBatchRunsForwardThenBackwardOnce) {
  for (int stages = 1; stages <= max_stages; ++stages)
    for (int stage = 0; stage < stages; ++stage)
      for (int micro_batches = 1; micro_batches <= max_micro_batches; ++micro_batches) {
        const std::vector<PipeStep> steps = one_f_one_b(stages, stage, micro_batches);
        SCOPED_TRACE(std::to_string(stages) + " stages, stage " + std::to_string(stage) + ": " + format(steps));
        ASSERT_EQ(steps.size(), 2u * micro_batches);
        std::vector<int> forwards, backwards;  // micro-batches in the order each direction runs them
        for (const PipeStep& step : steps) {
          if (step.op == PipeOp::Forward) {
            forwards.push_back(step.micro_batch);
          } else {
            EXPECT_LT(step.micro_batch, int(forwards.size())) << "backward before its forward";
            backwards.push_back(step.micro_batch);
          }
        }
        std::vector<int> in_order(micro_batches);
        for (int m = 0; m < micro_batches; ++m) in_order[m] = m;
        EXPECT_EQ(forwards, in_order);
        EXPECT_EQ(backwards, in_order);
      }
}

TEST(Schedule, HeldActivationsPeakAtMaxInFlight) {
  for (int stages = 1; stages <= max_stages; ++stages)
    for (int stage = 0; stage < stages; ++stage)
      for (int micro_batches = 1; micro_batches <= max_micro_batches; ++micro_batches) {
        const int limit = max_in_flight(stages, stage, micro_batches);
        EXPECT_EQ(limit, std::min(stages - stage, micro_batches)) << stages << " stages, stage " << stage;
        int held = 0, peak = 0;
        for (const PipeStep& step : one_f_one_b(stages, stage, micro_batches)) {
          held += step.op == PipeOp::Forward ? 1 : -1;
          peak = std::max(peak, held);
        }
        EXPECT_EQ(held, 0);
        EXPECT_EQ(peak, limit) << stages << " stages, stage " << stage << ", " << micro_batches << " micro-batches";
      }
}

TEST(Schedule, LastStageAlternatesForwardAndBackward) {
  for (int stages = 1; stages <= max_stages; ++stages)
    for (int micro_batches = 1; micro_batches <= max_micro_batches; ++micro_batches) {
      const std::vector<PipeStep> steps = one_f_one_b(stages, stages - 1, micro_batches);
      ASSERT_EQ(steps.size(), 2u * micro_batches);
      for (int m = 0; m < micro_batches; ++m) {
        EXPECT_EQ(steps[2 * m].op, PipeOp::Forward);
        EXPECT_EQ(steps[2 * m].micro_batch, m);
        EXPECT_EQ(steps[2 * m + 1].op, PipeOp::Backward);
        EXPECT_EQ(steps[2 * m + 1].micro_batch, m);
      }
    }
}

TEST(Schedule, AllStagesTogetherFinishWithChannelsInOrder) {
  for (int stages = 1; stages <= max_stages; ++stages)
    for (int micro_batches = 1; micro_batches <= max_micro_batches; ++micro_batches) {
      SCOPED_TRACE(std::to_string(stages) + " stages, " + std::to_string(micro_batches) + " micro-batches");
      const Simulation sim = simulate(stages, micro_batches);
      ASSERT_FALSE(sim.deadlocked);
      std::vector<int> in_order(micro_batches);
      for (int m = 0; m < micro_batches; ++m) in_order[m] = m;
      for (int stage = 0; stage + 1 < stages; ++stage) {
        for (const Channel* channel : {&sim.activations[stage], &sim.gradients[stage]}) {
          EXPECT_TRUE(channel->in_flight.empty()) << "message left unreceived, stage " << stage;
          EXPECT_EQ(channel->sent, in_order) << "stage " << stage;
          EXPECT_EQ(channel->received, channel->sent) << "stage " << stage;
        }
      }
      // With forward and backward equally long, 1F1B leaves only the fill and drain bubble: 2(M + S - 1).
      EXPECT_EQ(sim.makespan, 2 * (micro_batches + stages - 1));
    }
}

}  // namespace
}  // namespace xp::test
