// The reductions over rows (bias, LayerNorm parameter and embedding gradients, Σ x², the loss sum) at more
// than 256 rows, where they run as several chunks: each repeats bitwise, and the pure sums equal, bit for
// bit, a host loop in the order the kernels document (so they are the same at every thread count and on
// every backend). Each test prints a digest of its results ("digest NAME HEX"), which
// tools/check_openmp_build.sh compares between runs at 1 and 4 OpenMP threads (for the sums with products,
// whose bits a host loop cannot promise to match: the compiler may fuse them differently).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <random>

#include "kernels/reference.hpp"
#include "xp/kernels/cross_entropy.hpp"
#include "xp/kernels/elementwise.hpp"
#include "xp/kernels/embedding.hpp"
#include "xp/kernels/layernorm.hpp"

namespace xp::test {
namespace {

// 4 chunks of 256 rows and a short fifth; an odd number of columns.
constexpr int N = 1100, C = 37;

// FNV-1a over the bytes of the values: one line per result for the cross-thread-count comparison.
template <typename T>
void print_digest(const std::string& name, const std::vector<T>& values) {
  uint64_t hash = 1469598103934665603ull;
  const auto* bytes = reinterpret_cast<const unsigned char*>(values.data());
  for (size_t i = 0; i < values.size() * sizeof(T); ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  std::printf("digest %s %016llx\n", name.c_str(), static_cast<unsigned long long>(hash));
}

void expect_bitwise_equal(const Floats& actual, const Floats& expected, const std::string& name) {
  ASSERT_EQ(actual.size(), expected.size()) << name;
  size_t differing = 0, first = 0;
  for (size_t i = 0; i < actual.size(); ++i)
    if (std::memcmp(&actual[i], &expected[i], sizeof(float)) != 0 && differing++ == 0) first = i;
  EXPECT_EQ(differing, 0u) << name << ": " << differing << " values differ in their bits, first at " << first << " ("
                           << actual[first] << " vs " << expected[first] << ")";
}

// column_sums_add twice from the same start: the same bits, and those of the documented order (chunks of
// 256 rows summed in row order, the chunk sums added in chunk order to the old value).
TEST(DeterministicSums, ColumnSumsFollowTheChunkOrder) {
  const Floats x = random_reals(N * C, 301), before = random_floats(C, 302);
  RealBuffer x_device = to_device_real(x);
  Floats expected = before;
  for (int c = 0; c < C; ++c)
    for (int first = 0; first < N; first += int(column_sum_chunk)) {
      float chunk = 0.0f;
      for (int n = first; n < N && n < first + int(column_sum_chunk); ++n) chunk += x[n * C + c];
      expected[c] += chunk;
    }
  for (int run = 0; run < 2; ++run) {
    FloatBuffer sums = to_device(before);
    column_sums_add(sums.data(), x_device.data(), N, C);
    expect_bitwise_equal(to_host(sums), expected, "sums, run " + std::to_string(run));
    if (run == 0) print_digest("column_sums", to_host(sums));
  }
  Doubles exact(C);
  for (int c = 0; c < C; ++c) {
    exact[c] = before[c];
    for (int n = 0; n < N; ++n) exact[c] += x[n * C + c];
  }
  expect_close(expected, exact, forward_tolerance, "sums vs float64");
}

// embedding_bwd's scatter with heavily repeated tokens (11 distinct among 1100 positions) and with the
// vocabulary split (this rank owns tokens 3..8): each row gets its positions added in position order.
TEST(DeterministicSums, EmbeddingScatterFollowsPositionOrder) {
  constexpr int B = 4, T = N / B, Vp = 16;
  std::mt19937 engine(303);
  Tokens tokens(B * T);
  for (int32_t& token : tokens) token = static_cast<int32_t>(engine() % 11);
  const Floats dout = random_reals(B * T * C, 304), before = random_floats(Vp * C, 305);
  RealBuffer dout_device = to_device_real(dout);
  TokenBuffer tokens_device = to_device(tokens);
  struct Split {
    int start, count;
  };
  for (const Split split : {Split{0, -1}, Split{3, 6}}) {
    const std::string name = "dwte, vocab_start " + std::to_string(split.start);
    Floats expected = before;
    for (int bt = 0; bt < B * T; ++bt) {
      const int local = tokens[bt] - split.start;
      if (local < 0 || (split.count >= 0 && local >= split.count)) continue;
      for (int c = 0; c < C; ++c) expected[local * C + c] += dout[bt * C + c];
    }
    for (int run = 0; run < 2; ++run) {
      FloatBuffer dwte = to_device(before);
      embedding_bwd(dwte.data(), nullptr, dout_device.data(), tokens_device.data(), B, T, C, split.start,
                    split.count);
      expect_bitwise_equal(to_host(dwte), expected, name + ", run " + std::to_string(run));
      if (run == 0) print_digest("embedding_dwte_" + std::to_string(split.start), to_host(dwte));
    }
  }
}

// layernorm_bwd's parameter gradients (sums of products): two runs give the same bits, and the float64
// sums Σ dy·x̂ and Σ dy within fp32 accuracy.
TEST(DeterministicSums, LayerNormParameterGradientsRepeat) {
  const Floats inp = random_reals(N * C, 306), dout = random_reals(N * C, 307), weight = random_reals(C, 308);
  const Floats bias = random_reals(C, 309), dweight_before = random_floats(C, 310), dbias_before = random_floats(C, 311);
  RealBuffer inp_device = to_device_real(inp), dout_device = to_device_real(dout), weight_device = to_device_real(weight);
  RealBuffer bias_device = to_device_real(bias), out = to_device_real(Floats(N * C, 0.0f));
  FloatBuffer mean = to_device(Floats(N, 0.0f)), rstd = to_device(Floats(N, 0.0f));
  layernorm_fwd(out.data(), mean.data(), rstd.data(), inp_device.data(), weight_device.data(), bias_device.data(), N,
                C);
  Floats first_dweight, first_dbias;
  for (int run = 0; run < 2; ++run) {
    FloatBuffer dweight = to_device(dweight_before), dbias = to_device(dbias_before);
    RealBuffer dinp = to_device_real(Floats(N * C, 0.0f));
    layernorm_bwd(dinp.data(), dweight.data(), dbias.data(), dout_device.data(), inp_device.data(), weight_device.data(),
                  mean.data(), rstd.data(), N, C);
    if (run == 0) {
      first_dweight = to_host(dweight), first_dbias = to_host(dbias);
      print_digest("layernorm_dweight", first_dweight);
      print_digest("layernorm_dbias", first_dbias);
      continue;
    }
    expect_bitwise_equal(to_host(dweight), first_dweight, "dweight");
    expect_bitwise_equal(to_host(dbias), first_dbias, "dbias");
  }
  const Floats mean_host = to_host(mean), rstd_host = to_host(rstd);
  Doubles dweight_exact(C), dbias_exact(C);
  for (int c = 0; c < C; ++c) {
    dweight_exact[c] = dweight_before[c], dbias_exact[c] = dbias_before[c];
    for (int n = 0; n < N; ++n) {
      dweight_exact[c] += double(dout[n * C + c]) * (double(inp[n * C + c]) - mean_host[n]) * rstd_host[n];
      dbias_exact[c] += dout[n * C + c];
    }
  }
  expect_close(first_dweight, dweight_exact, forward_tolerance, "dweight vs float64");
  expect_close(first_dbias, dbias_exact, forward_tolerance, "dbias vs float64");
}

// The double sums the step reads back (Σ g² for the global norm, Σ losses): two runs give the same bits.
TEST(DeterministicSums, SumSquaresAndLossSumRepeat) {
  const int64_t count = (int64_t(1) << 20) + 5;  // 4 groups of 1024 blocks of 256, the last one short
  FloatBuffer x = to_device(random_floats(count, 312));
  constexpr int rows = 700, V = 50, Vp = 64;
  RealBuffer logits = to_device_real(random_reals(rows * Vp, 313, -4.0, 4.0));
  std::mt19937 engine(314);
  Tokens targets(rows);
  for (int32_t& target : targets) target = static_cast<int32_t>(engine() % V);
  TokenBuffer targets_device = to_device(targets);
  FloatBuffer losses = to_device(Floats(rows, 0.0f)), lse = to_device(Floats(rows, 0.0f));
  std::vector<double> first;
  for (int run = 0; run < 2; ++run) {
    const std::vector<double> sums = {
        sum_squares(x.data(), count),
        cross_entropy_fwd(losses.data(), lse.data(), logits.data(), targets_device.data(), rows, V, Vp)};
    if (run == 0) {
      first = sums;
      print_digest("sum_squares_and_loss", sums);
      continue;
    }
    for (size_t i = 0; i < sums.size(); ++i)
      EXPECT_EQ(std::memcmp(&sums[i], &first[i], sizeof(double)), 0) << "sum " << i << ": " << sums[i] << " vs " << first[i];
  }
  // The loss total is the sum of the rows' losses it wrote.
  double total = 0.0;
  for (float loss : to_host(losses)) total += loss;
  EXPECT_NEAR(first[1], total, 1e-9 * total);
}

}  // namespace
}  // namespace xp::test
