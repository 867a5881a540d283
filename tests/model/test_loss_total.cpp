// GPT2::forward_accumulate / take_loss_total (the training step's loss, kept on the device through the
// micro-batches) against forward()'s returned sums added on the host: the same bits. 4224 rows per
// micro-batch make 17 groups of the fixed-order sum, enough that a vectorised host sum would differ.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "model/generator_support.hpp"
#include "xp/model/gpt2.hpp"
#include "xp/parallel/comm.hpp"

namespace xp::test {
namespace {

TEST(LossTotal, DeviceTotalHasTheBitsOfTheHostSum) {
  const ModelConfig config = generator_model();
  const int B = 176, T = config.seq_len, micro_batches = 3;
  std::unique_ptr<Communicator> self = make_self_communicator();
  GPT2 model{config, generator_placement(0, 1), *self, B, 2};
  model.init_weights(7, 0.02);
  std::vector<std::vector<int32_t>> sequences(micro_batches, std::vector<int32_t>(size_t(B) * (T + 1)));
  for (int m = 0; m < micro_batches; ++m)
    for (size_t i = 0; i < sequences[m].size(); ++i)
      sequences[m][i] = static_cast<int32_t>((i * 7919 + size_t(m) * 104729) % config.vocab_size);

  double host_sum = 0.0;
  for (int m = 0; m < micro_batches; ++m) host_sum += model.forward(m % 2, sequences[m].data(), B);
  for (int m = 0; m < micro_batches; ++m) model.forward_accumulate(m % 2, sequences[m].data(), B);
  const double device_sum = model.take_loss_total();
  EXPECT_GT(host_sum, 0.0);
  EXPECT_EQ(std::memcmp(&host_sum, &device_sum, sizeof(double)), 0) << host_sum << " vs " << device_sum;
  // Taken means zeroed: the next step starts from 0.
  model.forward_accumulate(0, sequences[0].data(), B);
  const double again = model.take_loss_total(), once = model.forward(0, sequences[0].data(), B);
  EXPECT_EQ(std::memcmp(&again, &once, sizeof(double)), 0) << again << " vs " << once;
}

}  // namespace
}  // namespace xp::test
