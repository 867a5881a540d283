// GPT2::forward_train (training's forward, whose classifier pass on one tp rank also writes the dlogits)
// then backward, against forward_accumulate then backward: the same loss total and gradients, bit for bit,
// with two slots in flight as in 1F1B's warmup (F0 F1 B0 B1: slot 1's forward runs between slot 0's forward
// and backward, so each slot's dlogits must stay in its own logits buffer), and with recomputation.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "kernels/reference.hpp"
#include "model/generator_support.hpp"
#include "xp/model/gpt2.hpp"
#include "xp/parallel/comm.hpp"

namespace xp::test {
namespace {

struct Step {
  double loss;
  Floats grads;
};

Step run_step(Recompute recompute, bool fused) {
  const ModelConfig config = generator_model();
  const int B = 3, T = config.seq_len;
  std::unique_ptr<Communicator> self = make_self_communicator();
  GPT2 model{config, generator_placement(0, 1), *self, B, 2, recompute};
  model.init_weights(11, 0.05);
  std::vector<std::vector<int32_t>> sequences(3, std::vector<int32_t>(size_t(B) * (T + 1)));
  for (int m = 0; m < 3; ++m)
    for (size_t i = 0; i < sequences[m].size(); ++i)
      sequences[m][i] = static_cast<int32_t>((i * 7919 + size_t(m) * 104729) % config.vocab_size);
  const float dloss = 1.0f / (3.0f * B * T);
  const auto forward = [&](int slot, int m) {
    if (fused) model.forward_train(slot, sequences[m].data(), B, dloss);
    else model.forward_accumulate(slot, sequences[m].data(), B);
  };
  model.zero_grads();
  forward(0, 0);
  forward(1, 1);
  model.backward(0, dloss);
  forward(0, 2);
  model.backward(1, dloss);
  model.backward(0, dloss);
  const double loss = model.take_loss_total();
  Floats grads = to_host(model.grads);
  grads.resize(model.layout().total());
  return Step{loss, grads};
}

TEST(TrainForward, FusedHeadGivesTheBitsOfTheSeparateBackward) {
  for (const Recompute recompute : {Recompute::None, Recompute::Full}) {
    const Step separate = run_step(recompute, false), fused = run_step(recompute, true);
    EXPECT_GT(separate.loss, 0.0);
    EXPECT_EQ(std::memcmp(&separate.loss, &fused.loss, sizeof(double)), 0) << separate.loss << " vs " << fused.loss;
    ASSERT_EQ(separate.grads.size(), fused.grads.size());
    int64_t nonzero = 0;
    for (size_t i = 0; i < fused.grads.size(); ++i) {
      ASSERT_EQ(std::memcmp(&separate.grads[i], &fused.grads[i], sizeof(float)), 0)
          << "gradient " << i << ": " << separate.grads[i] << " vs " << fused.grads[i];
      nonzero += fused.grads[i] != 0.0f;
    }
    EXPECT_GT(nonzero, int64_t(fused.grads.size()) / 2);  // a gradient was computed at all
  }
}

}  // namespace
}  // namespace xp::test
