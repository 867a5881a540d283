// embedding_fwd / embedding_bwd against float64 token + position lookup and its finite differences.
#include "xp/kernels/embedding.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "kernels/reference.hpp"

namespace xp::test {
namespace {

constexpr int B = 2, T = 5, C = 8, Vp = 16;
// tokens (B,T): 3 five times, 3 and 7 at the same position in both rows, so the backward must scatter-add.
const Tokens tokens = {3, 7, 3, 3, 0, 3, 7, 9, 3, 1};
// out is Real, token + position summed in fp32 and rounded once. dwte and dwpe are fp32 sums of Real
// gradients that the reference sees exactly: the fp32 tolerance in every build.
constexpr double out_tolerance = real_tolerance(forward_tolerance, bf16_rounded_once_tolerance);

// out[b,t] = wte[tokens[b,t]] + wpe[t]
Doubles embedding_reference(const Doubles& wte, const Doubles& wpe) {
  Doubles out(B * T * C);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < C; ++c) out[(b * T + t) * C + c] = wte[tokens[b * T + t] * C + c] + wpe[t * C + c];
  return out;
}

struct EmbeddingInputs {
  Floats wte = random_reals(Vp * C, 51), wpe = random_reals(T * C, 52);
  RealBuffer wte_device = to_device_real(wte), wpe_device = to_device_real(wpe);
  TokenBuffer tokens_device = to_device(tokens);
};

TEST(Embedding, ForwardMatchesReference) {
  EmbeddingInputs x;
  RealBuffer out = to_device_real(Floats(B * T * C, garbage));
  embedding_fwd(out.data(), x.tokens_device.data(), x.wte_device.data(), x.wpe_device.data(), B, T, C);
  expect_close(to_host(out), embedding_reference(widen(x.wte), widen(x.wpe)), out_tolerance, "out");
}

// dwte and dwpe accumulate, so they start from non-zero values.
TEST(Embedding, BackwardScatterAddsRepeatedTokens) {
  EmbeddingInputs x;
  const Floats dout = random_reals(B * T * C, 53);
  const Floats dwte_before = random_floats(Vp * C, 54), dwpe_before = random_floats(T * C, 55);
  RealBuffer dout_device = to_device_real(dout);
  FloatBuffer dwte = to_device(dwte_before), dwpe = to_device(dwpe_before);
  embedding_bwd(dwte.data(), dwpe.data(), dout_device.data(), x.tokens_device.data(), B, T, C);

  Doubles wte = widen(x.wte), wpe = widen(x.wpe);
  const auto forward = [&] { return embedding_reference(wte, wpe); };
  const Floats dwte_after = to_host(dwte);
  expect_close(added(dwte_after, dwte_before), finite_difference(forward, wte, widen(dout)), backward_tolerance,
               "dwte");
  expect_close(added(to_host(dwpe), dwpe_before), finite_difference(forward, wpe, widen(dout)), backward_tolerance,
               "dwpe");
  // Rows of tokens absent from the batch (padding rows included) are left exactly as they were.
  for (int row = 0; row < Vp; ++row) {
    if (std::find(tokens.begin(), tokens.end(), row) != tokens.end()) continue;
    for (int c = 0; c < C; ++c) EXPECT_EQ(dwte_after[row * C + c], dwte_before[row * C + c]) << "row " << row;
  }
}

}  // namespace
}  // namespace xp::test
