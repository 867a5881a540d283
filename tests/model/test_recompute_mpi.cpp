// Activation recomputation changes what is kept, never what is computed: with recompute = selective or
// full, every step's gradients (the whole grads buffer after the step's backward and dp reduction), the
// global gradient norm, the losses and the trained weights must be bitwise those of recompute = none, in
// pipeline, tensor- and data-parallel layouts, with and without ZeRO-1. And the modes must keep less:
// the activation bytes allocated fall from none to selective to full.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include <Kokkos_Core.hpp>

#include "support.hpp"
#include "xp/core/allocation.hpp"
#include "xp/train/trainer.hpp"

namespace {

using xp::test::world_size;

struct Case {
  const char* name;
  xp::test::TestLayout layout;
  int n_embd = 32, n_head = 4;  // head size 8; 128 and 2 give head size 64 (the fused attention on GPU)
};

// Each runs where the world size is dp·tp·pp. Two micro-batches per step: with pp 2 the first stage keeps
// both in flight, so one micro-batch's forward runs between another's forward and its recomputation.
const std::vector<Case> cases = {
    {"one rank", {1, 1, 1, 0}},
    {"one rank, head size 64", {1, 1, 1, 0}, 128, 2},
    {"pp 2", {1, 1, 2, 0}},
    {"dp 2, ZeRO-1", {2, 1, 1, 1}},
    {"tp 2 × pp 2", {1, 2, 2, 0}},
    {"tp 2 × pp 2 × dp 2", {2, 2, 2, 0}},
    {"tp 2 × pp 2 × dp 2, ZeRO-1", {2, 2, 2, 1}},
};
constexpr int steps = 3;

struct RunRecord {
  std::vector<double> losses, grad_norms;
  std::vector<std::vector<float>> grads;  // this rank's whole buffer after each step
  std::vector<float> params;              // after the last step
  double activation_bytes = 0;            // allocated, from the ledger
};

std::vector<float> host_copy(const xp::FloatBuffer& buffer) {
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), buffer);
  return std::vector<float>(host.data(), host.data() + host.size());
}

RunRecord train(const Case& c, xp::Recompute recompute, const std::string& mode) {
  xp::Config config = xp::test::tiny_config(xp::test::temp_path("xp_recompute_" + mode + "_np" +
                                                                std::to_string(world_size())));
  config.model.n_embd = c.n_embd;
  config.model.n_head = c.n_head;
  config.train.steps = steps;
  xp::test::set_layout(config, c.layout);
  config.parallel.recompute = recompute;
  xp::memory_ledger().reset();
  xp::Trainer trainer(config, MPI_COMM_WORLD);
  RunRecord run;
  run.activation_bytes = xp::memory_ledger().activations;
  for (int s = 0; s < steps; ++s) {
    const xp::StepResult result = trainer.step();
    run.losses.push_back(result.loss);
    run.grad_norms.push_back(result.grad_norm);
    run.grads.push_back(host_copy(trainer.model().grads));
  }
  run.params = host_copy(trainer.model().params);
  return run;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void expect_identical(const RunRecord& run, const RunRecord& none, const char* mode) {
  for (int s = 0; s < steps; ++s) {
    EXPECT_EQ(run.losses[s], none.losses[s]) << mode << " loss, step " << s + 1;
    EXPECT_EQ(run.grad_norms[s], none.grad_norms[s]) << mode << " grad norm, step " << s + 1;
    EXPECT_TRUE(bitwise_equal(run.grads[s], none.grads[s])) << mode << " grads, step " << s + 1;
  }
  EXPECT_TRUE(bitwise_equal(run.params, none.params)) << mode << " weights after " << steps << " steps";
}

}  // namespace

TEST(Recompute, GradientsAreBitIdenticalToKeepingEverything) {
  int tested = 0;
  for (const Case& c : cases) {
    if (c.layout.dp * c.layout.tp * c.layout.pp != world_size()) continue;
    SCOPED_TRACE(c.name);
    ++tested;
    const RunRecord none = train(c, xp::Recompute::None, "none");
    const RunRecord selective = train(c, xp::Recompute::Selective, "selective");
    const RunRecord full = train(c, xp::Recompute::Full, "full");
    // The comparison means something: training moved and the gradients are not all zero.
    EXPECT_NE(none.losses.front(), none.losses.back());
    double sum = 0;
    for (float g : none.grads.back()) sum += g * g;
    EXPECT_GT(sum, 0);
    expect_identical(selective, none, "selective");
    expect_identical(full, none, "full");
    EXPECT_LT(selective.activation_bytes, none.activation_bytes);
    EXPECT_LT(full.activation_bytes, selective.activation_bytes);
  }
  if (tested == 0) GTEST_SKIP() << "no configuration has " << world_size() << " ranks";
}
