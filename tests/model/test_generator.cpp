// Generation with a KV cache against the training forward pass: at every step the cached path's logits
// equal those of a full forward over the whole sequence so far (GPT2::forward's residual stream, then
// the final LayerNorm and LM head in float64 here), and greedy choices are their argmax. Sampling:
// top_k = 1 is greedy, draws follow softmax(logits / T) over the top_k tokens only, seeds reproduce.
#include "xp/model/generator.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "model/generator_support.hpp"
#include "support.hpp"
#include "xp/io/text_codec.hpp"
#include "xp/kernels/layernorm.hpp"
#include "xp/model/sampling.hpp"

namespace xp::test {
namespace {

// One model, its weights on the host, and a generator over its compute weights.
struct TinyModel {
  ModelConfig config = generator_model();
  std::unique_ptr<Communicator> self = make_self_communicator();
  GPT2 model{config, generator_placement(0, 1), *self, 1};
  std::vector<float> weights;
  std::unique_ptr<Generator> generator;

  TinyModel() {
    model.init_weights(generator_weight_seed, generator_init_std);
    auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), model.params);
    // Every LayerNorm its own gains and biases (init gives them all 1 and 0), so a LayerNorm fed another's
    // parameters (the fused residual + LayerNorm steps: ln2, the next block's ln1, lnf) shows.
    const ParameterLayout& layout = model.layout();
    std::vector<int64_t> norms = {layout.lnf_w(), layout.lnf_b()};
    for (int l = 0; l < config.n_layer; ++l) {
      const BlockOffsets& w = layout.block(l);
      norms.insert(norms.end(), {w.ln1_w, w.ln1_b, w.ln2_w, w.ln2_b});
    }
    for (size_t k = 0; k < norms.size(); ++k)
      for (int c = 0; c < config.n_embd; ++c) host(norms[k] + c) += 0.3f * std::sin(1.7f * k + 0.37f * c);
    Kokkos::deep_copy(model.params, host);
    model.refresh_compute_weights();
    weights.assign(host.data(), host.data() + model.layout().total());
    generator = std::make_unique<Generator>(config, model.layout(), compute_weights(model), *self, config.seq_len);
  }

  // Next-token logits after `tokens` from a full forward pass of the training path: the residual stream
  // leaving the last block at the last position, then LayerNorm and the tied head in float64.
  std::vector<double> full_forward_logits(const std::vector<int32_t>& tokens) {
    const int T = config.seq_len, C = config.n_embd;
    std::vector<int32_t> sequence(T + 1, 0);  // later positions cannot influence earlier ones (causal)
    std::copy(tokens.begin(), tokens.end(), sequence.begin());
    model.forward(0, sequence.data(), 1);
    Kokkos::View<const Real*, Kokkos::MemoryTraits<Kokkos::Unmanaged>> stream(model.output(0), int64_t{T} * C);
    auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), stream);
    const Real* x = host.data() + (tokens.size() - 1) * C;
    double mean = 0, var = 0;
    for (int c = 0; c < C; ++c) mean += to_float(x[c]);
    mean /= C;
    for (int c = 0; c < C; ++c) var += (to_float(x[c]) - mean) * (to_float(x[c]) - mean);
    const double rstd = 1.0 / std::sqrt(var / C + layernorm_eps);
    const ParameterLayout& layout = model.layout();
    std::vector<double> ln(C), logits(config.vocab_size);
    for (int c = 0; c < C; ++c)
      ln[c] = (to_float(x[c]) - mean) * rstd * weights[layout.lnf_w() + c] + weights[layout.lnf_b() + c];
    for (int v = 0; v < config.vocab_size; ++v) {
      double sum = 0;
      for (int c = 0; c < C; ++c) sum += ln[c] * weights[layout.wte() + int64_t{v} * C + c];
      logits[v] = sum;
    }
    return logits;
  }
};

double max_difference(const std::vector<float>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

TEST(Generator, GreedyWithKvCacheIsArgmaxOfFullForwardPasses) {
  TinyModel tiny;
  const std::vector<int32_t> prompt = generator_prompt();
  const int count = tiny.config.seq_len - static_cast<int>(prompt.size());  // fill the whole context
  const SamplingSettings greedy{0.0, 0, 0};
  const std::vector<int32_t> generated = tiny.generator->generate(prompt, count, greedy);
  ASSERT_EQ(generated.size(), size_t(count));

  // The same steps by hand, each cached step beside a full forward pass over the sequence so far.
  std::vector<int32_t> sequence = prompt;
  tiny.generator->reset();
  const std::vector<float>* cached = &tiny.generator->feed(prompt);
  int exact_argmax = 0;
  for (int step = 0; step < count; ++step) {
    const std::vector<double> reference = tiny.full_forward_logits(sequence);
    ASSERT_EQ(cached->size(), reference.size());
    EXPECT_LE(max_difference(*cached, reference), generator_logit_tolerance) << "step " << step;
    // Ties: the chosen token must be the reference's argmax, or within the tolerance of its logit.
    const int best = static_cast<int>(std::max_element(reference.begin(), reference.end()) - reference.begin());
    const int32_t chosen = generated[step];
    EXPECT_GE(reference[chosen], reference[best] - 2 * generator_logit_tolerance) << "step " << step;
    exact_argmax += chosen == best;
    EXPECT_EQ(chosen, sample_token(*cached, greedy, step)) << "generate() and feed() disagree at step " << step;
    sequence.push_back(chosen);
    if (step + 1 < count) cached = &tiny.generator->feed({chosen});
  }
  EXPECT_EQ(tiny.generator->position(), tiny.config.seq_len - 1);  // the last token is chosen, never fed
  // In fp32 no step is close enough to a tie for rounding to flip it (the model's top logits are ~0.1 apart).
  if (real_is_float) EXPECT_EQ(exact_argmax, count);
}

TEST(Generator, PromptAtOnceEqualsTokenByToken) {
  TinyModel tiny;
  const std::vector<int32_t> prompt = {5, 99, 0, 64, 12, 7, 7, 31};
  const std::vector<float> at_once = tiny.generator->feed(prompt);
  tiny.generator->reset();
  std::vector<float> one_by_one;
  for (const int32_t token : prompt) one_by_one = tiny.generator->feed({token});
  const std::vector<double> reference(one_by_one.begin(), one_by_one.end());
  EXPECT_LE(max_difference(at_once, reference), generator_logit_tolerance);
}

TEST(Generator, TopKOneIsGreedyAndSeedsReproduce) {
  TinyModel tiny;
  const std::vector<int32_t> prompt = generator_prompt();
  const std::vector<int32_t> greedy = tiny.generator->generate(prompt, 16, {0.0, 0, 0});
  EXPECT_EQ(tiny.generator->generate(prompt, 16, {1.5, 1, 7}), greedy);
  const std::vector<int32_t> first = tiny.generator->generate(prompt, 16, {1.0, 0, 7});
  EXPECT_EQ(tiny.generator->generate(prompt, 16, {1.0, 0, 7}), first) << "same seed, other text";
  EXPECT_NE(tiny.generator->generate(prompt, 16, {1.0, 0, 8}), first) << "another seed, the same 16 tokens";
  for (const int32_t token : first) EXPECT_LT(token, tiny.config.vocab_size) << "a padding token was sampled";
}

TEST(Sampling, DrawsFollowSoftmaxOverTheTopK) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 1.5f, 1.9f, 0.0f, 3.0f, 1.5f, -4.0f, 1.0f};
  const double temperature = 0.7;
  const int top_k = 4;  // tokens 6, 1, 4 and then 3 (tied with 7 at 1.5: the lower id is kept)
  const std::vector<int> kept = {6, 1, 4, 3};
  std::vector<double> expected(logits.size(), 0.0);
  double sum = 0;
  for (const int id : kept) sum += expected[id] = std::exp(logits[id] / temperature);
  for (double& p : expected) p /= sum;
  const SamplingSettings settings{temperature, top_k, 99};
  const std::vector<double> probabilities = sampling_probabilities(logits, settings);
  for (size_t i = 0; i < logits.size(); ++i) EXPECT_NEAR(probabilities[i], expected[i], 1e-12) << "token " << i;

  const int draws = 40000;
  std::vector<int> counts(logits.size(), 0);
  for (int draw = 0; draw < draws; ++draw) ++counts.at(sample_token(logits, settings, draw));
  for (size_t i = 0; i < logits.size(); ++i) {
    if (expected[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " is outside the top " << top_k;
      continue;
    }
    // Binomial counts: 5 standard deviations.
    const double sigma = std::sqrt(draws * expected[i] * (1 - expected[i]));
    EXPECT_NEAR(counts[i], draws * expected[i], 5 * sigma) << "token " << i;
  }
}

TEST(Sampling, GreedyTakesTheLowestIdAmongTiedMaxima) {
  const std::vector<float> logits = {1.0f, 4.0f, 2.0f, 4.0f};
  EXPECT_EQ(sample_token(logits, {0.0, 0, 1}, 0), 1);
  EXPECT_EQ(sample_token(logits, {2.0, 1, 1}, 5), 1);
  const std::vector<double> probabilities = sampling_probabilities(logits, {0.0, 0, 1});
  EXPECT_EQ(probabilities, (std::vector<double>{0, 1, 0, 0}));
}

TEST(TextCodec, BytesRoundTripAndUnknownIdsShow) {
  const auto codec = make_text_codec("byte", 256);
  std::string all;
  for (int byte = 0; byte < 256; ++byte) all += static_cast<char>(byte);
  const std::vector<int32_t> ids = codec->encode(all);
  ASSERT_EQ(ids.size(), 256u);
  for (int byte = 0; byte < 256; ++byte) EXPECT_EQ(ids[byte], byte);
  EXPECT_EQ(codec->decode(ids), all);
  EXPECT_EQ(codec->decode({72, 105, 50256}), "Hi<|50256|>");
  const auto narrow = make_text_codec("byte", 100);
  EXPECT_NE(input_error([&] { narrow->encode("\x05\xff"); }).find("byte 255"), std::string::npos);
  EXPECT_NE(input_error([] { make_text_codec("sentencepiece", 256); }).find("allowed: byte"), std::string::npos);
}

}  // namespace
}  // namespace xp::test
