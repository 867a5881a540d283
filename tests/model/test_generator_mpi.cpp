// Generation in a tensor-parallel layout against one rank: MPI_COMM_WORLD is the tp group. Every rank
// holds its shard of the tiny model and also the whole model alone (weights are initialised from each
// element's index in the full tensor, so both are the same model). With the same seed the text must be
// the same token for token, greedy and sampled, and the gathered logits agree within the tolerance.
// Where Real is bf16 the layouts round partial sums differently (logits ~1e-2 apart), which can flip a
// draw: there the tp ranks must still agree with each other, and the first greedy token with one rank.
// The same holds for two pipeline stages (tp = 1 at 2 ranks, tp = 2 × pp = 2 at 4): each stage runs its
// own layer, and the last stage's tokens reach every rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "model/generator_support.hpp"
#include "xp/model/generator.hpp"
#include "xp/model/partition.hpp"
#include "xp/parallel/grid.hpp"

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

// Two pipeline stages of one layer each, tp = world / 2, beside the whole model on one rank.
struct PipelineLayouts {
  ModelConfig config = generator_model();
  ParallelGrid grid{MPI_COMM_WORLD, Layout{1, world_size() / 2, 2}};
  std::unique_ptr<Communicator> self = make_self_communicator();
  GPT2 stage{config, placement_of(partition_layers(config, 2)[grid.pp_rank()], grid.layout().tp, grid.tp_rank()),
             grid.tp(), 1};
  GPT2 whole{config, generator_placement(0, 1), *self, 1};
  Generator pipeline{config, stage.layout(), compute_weights(stage), grid.tp(), config.seq_len,
                     GenerationPipeline{&grid.pp(), grid.pp_comm(), grid.pp_rank(), 2}};
  Generator one_rank{config, whole.layout(), compute_weights(whole), *self, config.seq_len};

  static int world_size() {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
  }
  PipelineLayouts() {
    stage.init_weights(generator_weight_seed, generator_init_std);
    whole.init_weights(generator_weight_seed, generator_init_std);
  }
};

TEST(GeneratorPipeline, SameSeedGivesTheSameTextAsOneRank) {
  PipelineLayouts layouts;
  ASSERT_EQ(layouts.stage.layout().placement().last_layer - layouts.stage.layout().placement().first_layer, 1);
  const std::vector<int32_t> prompt = generator_prompt();
  const int count = layouts.config.seq_len - static_cast<int>(prompt.size());
  const SamplingSettings settings[] = {{0.0, 0, 0}, {1.0, 0, 21}, {0.8, 10, 22}, {1.3, 0, 23}};
  for (const SamplingSettings& sampling : settings) {
    const std::vector<int32_t> pp_text = layouts.pipeline.generate(prompt, count, sampling);
    const std::vector<int32_t> text = layouts.one_rank.generate(prompt, count, sampling);
    ASSERT_EQ(pp_text.size(), size_t(count));
    if (real_is_float)
      EXPECT_EQ(pp_text, text) << "temperature " << sampling.temperature << ", top_k " << sampling.top_k << ", seed "
                               << sampling.seed << ", stage " << layouts.grid.pp_rank();
    else if (sampling.temperature == 0.0)
      EXPECT_EQ(pp_text.front(), text.front());
    EXPECT_TRUE(same_on_every_rank(pp_text)) << "stages or tp ranks ended with different tokens";
  }
}

TEST(GeneratorPipeline, LastStageLogitsMatchOneRank) {
  PipelineLayouts layouts;
  const std::vector<float> pp_logits = layouts.pipeline.feed(generator_prompt());
  const std::vector<float> logits = layouts.one_rank.feed(generator_prompt());
  if (!layouts.grid.last_stage()) {
    EXPECT_TRUE(pp_logits.empty()) << "only the last stage computes logits";
    return;
  }
  ASSERT_EQ(pp_logits.size(), size_t(layouts.config.vocab_size));
  double worst = 0;
  for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, double(std::abs(pp_logits[i] - logits[i])));
  EXPECT_LE(worst, generator_logit_tolerance);
}

}  // namespace
}  // namespace xp::test
