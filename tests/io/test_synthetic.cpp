// The synthetic Markov-chain source: reproducible, `branching` equally likely successors per token (so
// its entropy is ln(branching)), and rows that do not depend on how a batch is split between ranks.
#include "xp/io/synthetic.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

namespace xp::test {
namespace {

constexpr int vocab = 16, branching = 4, seq_len = 32;

std::vector<int32_t> read_rows(SyntheticSource& source, int64_t first, int count) {
  std::vector<int32_t> tokens(int64_t{count} * (seq_len + 1), -1);
  source.read(first, count, tokens.data());
  return tokens;
}

// (token, successor) → how often it occurs in `rows` rows.
std::map<std::pair<int32_t, int32_t>, int64_t> transitions(SyntheticSource& source, int rows) {
  std::map<std::pair<int32_t, int32_t>, int64_t> counts;
  const std::vector<int32_t> tokens = read_rows(source, 0, rows);
  for (int row = 0; row < rows; ++row)
    for (int t = 1; t <= seq_len; ++t) {
      const int64_t i = int64_t{row} * (seq_len + 1) + t;
      ++counts[{tokens[i - 1], tokens[i]}];
    }
  return counts;
}

TEST(Synthetic, SameSeedAndStreamGiveTheSameRows) {
  SyntheticSource a(7, 1, vocab, branching, seq_len), b(7, 1, vocab, branching, seq_len);
  EXPECT_EQ(read_rows(a, 0, 16), read_rows(b, 0, 16));
  for (int32_t token : read_rows(a, 0, 64)) {
    EXPECT_GE(token, 0);
    EXPECT_LT(token, vocab);
  }
}

TEST(Synthetic, StreamsAndSeedsDiffer) {
  SyntheticSource train(7, 1, vocab, branching, seq_len), val(7, 2, vocab, branching, seq_len),
      other_seed(8, 1, vocab, branching, seq_len);
  const std::vector<int32_t> rows = read_rows(train, 0, 8);
  EXPECT_NE(rows, read_rows(val, 0, 8));
  EXPECT_NE(rows, read_rows(other_seed, 0, 8));
  EXPECT_NE(rows, read_rows(train, 8, 8));  // later rows are new sequences, not repeats
}

// Both streams of one seed share the chain, so validation measures the same distribution.
TEST(Synthetic, EveryTokenHasExactlyBranchingSuccessors) {
  SyntheticSource train(3, 1, vocab, branching, seq_len), val(3, 2, vocab, branching, seq_len);
  std::map<int32_t, std::set<int32_t>> successors, val_successors;
  for (const auto& [pair, count] : transitions(train, 2000)) successors[pair.first].insert(pair.second);
  for (const auto& [pair, count] : transitions(val, 2000)) val_successors[pair.first].insert(pair.second);
  ASSERT_EQ(successors.size(), static_cast<size_t>(vocab));
  for (const auto& [token, next] : successors) EXPECT_EQ(next.size(), static_cast<size_t>(branching)) << token;
  EXPECT_EQ(successors, val_successors);
}

// 2000 rows of 32 transitions, each (token, successor) within five binomial deviations. The statistic over all pairs has
// vocab·(branching − 1) = 48 degrees of freedom; 100 is more than six standard deviations above its mean.
TEST(Synthetic, SuccessorsAreEquallyLikely) {
  SyntheticSource source(11, 1, vocab, branching, seq_len);
  const auto counts = transitions(source, 2000);
  std::map<int32_t, int64_t> from;
  for (const auto& [pair, count] : counts) from[pair.first] += count;
  double chi_square = 0.0;
  for (const auto& [pair, count] : counts) {
    const double expected = static_cast<double>(from[pair.first]) / branching;
    chi_square += (count - expected) * (count - expected) / expected;
    EXPECT_NEAR(count, expected, 5.0 * std::sqrt(expected)) << pair.first << " -> " << pair.second;
  }
  EXPECT_LT(chi_square, 100.0);
}

TEST(Synthetic, EntropyIsLogOfBranching) {
  for (int b : {1, 2, 4, 7, 16}) {
    SyntheticSource source(1, 1, vocab, b, seq_len);
    EXPECT_DOUBLE_EQ(source.entropy(), std::log(static_cast<double>(b))) << b;
  }
  SyntheticSource deterministic(1, 1, vocab, 1, seq_len);
  EXPECT_EQ(transitions(deterministic, 200).size(), static_cast<size_t>(vocab));
}

TEST(Synthetic, RowsDoNotDependOnHowTheBatchIsSplit) {
  SyntheticSource whole(5, 1, vocab, branching, seq_len), parts(5, 1, vocab, branching, seq_len);
  const std::vector<int32_t> all = read_rows(whole, 0, 12);
  std::vector<int32_t> joined = read_rows(parts, 0, 4);
  const std::vector<int32_t> second = read_rows(parts, 4, 4);
  joined.insert(joined.end(), second.begin(), second.end());
  EXPECT_EQ(joined, std::vector<int32_t>(all.begin(), all.begin() + 8 * (seq_len + 1)));
  // After a batch of 8, the cursor's row 0 is row 8 of the stream.
  parts.advance(8);
  EXPECT_EQ(read_rows(parts, 1, 3), std::vector<int32_t>(all.begin() + 9 * (seq_len + 1), all.end()));
}

}  // namespace
}  // namespace xp::test
