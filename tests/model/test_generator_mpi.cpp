// Generation in a tensor-parallel layout against one rank: MPI_COMM_WORLD is the tp group. Every rank
// holds its shard of the tiny model and also the whole model alone (weights are initialised from each
// element's index in the full tensor, so both are the same model). With the same seed the text must be
// the same token for token, greedy and sampled, and the gathered logits agree within the tolerance.
// Where Real is bf16 the layouts round partial sums differently (logits ~1e-2 apart), which can flip a
// draw: there the tp ranks must still agree with each other, and the first greedy token with one rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "model/generator_support.hpp"
#include "xp/model/generator.hpp"

namespace xp::test {
namespace {

struct Layouts {
  ModelConfig config = generator_model();
  std::unique_ptr<Communicator> world = make_mpi_communicator(MPI_COMM_WORLD);
  std::unique_ptr<Communicator> self = make_self_communicator();
  GPT2 sharded{config, generator_placement(world->rank(), world->size()), *world, 1};
  GPT2 whole{config, generator_placement(0, 1), *self, 1};
  Generator tp_generator{config, sharded.layout(), compute_weights(sharded), *world, config.seq_len};
  Generator one_rank{config, whole.layout(), compute_weights(whole), *self, config.seq_len};

  Layouts() {
    sharded.init_weights(generator_weight_seed, generator_init_std);
    whole.init_weights(generator_weight_seed, generator_init_std);
  }
};

// The same tokens on every rank of the world.
bool same_on_every_rank(const std::vector<int32_t>& tokens) {
  std::vector<int32_t> low(tokens.size()), high(tokens.size());
  MPI_Allreduce(tokens.data(), low.data(), int(tokens.size()), MPI_INT32_T, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(tokens.data(), high.data(), int(tokens.size()), MPI_INT32_T, MPI_MAX, MPI_COMM_WORLD);
  return low == tokens && high == tokens;
}

TEST(GeneratorTensorParallel, SameSeedGivesTheSameTextAsOneRank) {
  Layouts layouts;
  const std::vector<int32_t> prompt = generator_prompt();
  const int count = layouts.config.seq_len - static_cast<int>(prompt.size());
  const SamplingSettings settings[] = {{0.0, 0, 0}, {1.0, 0, 11}, {0.8, 10, 12}, {1.3, 0, 13}};
  for (const SamplingSettings& sampling : settings) {
    const std::vector<int32_t> tp_text = layouts.tp_generator.generate(prompt, count, sampling);
    const std::vector<int32_t> text = layouts.one_rank.generate(prompt, count, sampling);
    if (real_is_float)
      EXPECT_EQ(tp_text, text) << "temperature " << sampling.temperature << ", top_k " << sampling.top_k << ", seed "
                               << sampling.seed;
    else if (sampling.temperature == 0.0)
      EXPECT_EQ(tp_text.front(), text.front());
    EXPECT_TRUE(same_on_every_rank(tp_text)) << "tp ranks sampled different tokens";
  }
}

TEST(GeneratorTensorParallel, GatheredLogitsMatchOneRank) {
  Layouts layouts;
  const std::vector<float> tp_logits = layouts.tp_generator.feed(generator_prompt());
  const std::vector<float> logits = layouts.one_rank.feed(generator_prompt());
  ASSERT_EQ(tp_logits.size(), size_t(layouts.config.vocab_size));
  double worst = 0;
  for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, double(std::abs(tp_logits[i] - logits[i])));
  EXPECT_LE(worst, generator_logit_tolerance);
}

}  // namespace
}  // namespace xp::test
