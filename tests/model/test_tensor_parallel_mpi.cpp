// Tensor-parallel layers on MPI_COMM_WORLD as the tp group: every rank holds the slice of the same full
// tensors that ParameterLayout assigns it, runs the tensor-parallel layer, and must reproduce the unsplit
// layer (plain kernels on the full tensors): outputs and input gradients whole, parameter gradients as
// the matching slice of the full gradient.
#include "xp/model/tensor_parallel.hpp"

#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "kernels/reference.hpp"
#include "xp/kernels/cross_entropy.hpp"
#include "xp/kernels/embedding.hpp"
#include "xp/kernels/matmul.hpp"
#include "xp/model/layout.hpp"

namespace xp::test {
namespace {

// B·T = N rows; C divisible by 8 and n_head = 8 so every tp size up to 8 splits whole heads;
// vocabulary 100 padded to 128: the padding lies on the last rank(s).
constexpr int B = 2, T = 6, N = B * T, C = 32, n_head = 8, V = 100;
constexpr double tolerance = 1e-5;    // relative to the largest magnitude
// Real outputs and input gradients where Real is bf16: each rank rounds its partial sums to bf16 before the
// fp32 all-reduce, and an fp32 value summed in another order may round to the neighbouring bf16 (2^-8
// apart): a few bf16 roundings. Weight gradients and loss statistics are fp32 from identical Real inputs
// and keep `tolerance`.
constexpr double real_output_tolerance = real_tolerance(tolerance, 1e-2);
constexpr float huge_padding = 1e4f;  // a padded logit that counts would dominate the loss
constexpr float dloss = 1.0f / N;

struct TpGroup {
  int rank = 0, size = 1;
  std::unique_ptr<Communicator> comm = make_mpi_communicator(MPI_COMM_WORLD);
  TpGroup() {
    rank = comm->rank();
    size = comm->size();
  }
};

ModelConfig model_config() { return {"custom", 1, n_head, C, T, V}; }

ParameterLayout rank_layout(const TpGroup& tp) {
  Placement placement;
  placement.tp_size = tp.size;
  placement.tp_rank = tp.rank;
  return ParameterLayout(model_config(), placement);
}

// This rank's slice of a whole tensor, element by element through TensorInfo::full_index.
Floats slice(const Floats& full, const TensorInfo& info, const TpGroup& tp) {
  Floats local(info.size);
  for (int64_t i = 0; i < info.size; ++i) local[i] = full[info.full_index(i, tp.rank, tp.size)];
  return local;
}

// Columns of a (rows, full_columns) activation whose features this rank holds (feature_of maps a local one).
template <typename FeatureOf>
Floats slice_columns(const Floats& full, int rows, int full_columns, int local_columns, FeatureOf feature_of) {
  Floats local(int64_t{rows} * local_columns);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < local_columns; ++j) local[r * local_columns + j] = full[r * full_columns + feature_of(j)];
  return local;
}

std::string on_rank(const TpGroup& tp, const std::string& what) {
  return what + " (tp rank " + std::to_string(tp.rank) + " of " + std::to_string(tp.size) + ")";
}

// Column-parallel linear `name` (weight (OC,C) and, with bias, bias (OC), split by output rows) against
// matmul on the whole weight: out, dinp (summed over tp), this rank's dweight and dbias.
void expect_column_parallel_matches_full(const std::string& name, bool with_bias, uint32_t seed) {
  TpGroup tp;
  if (n_head % tp.size != 0 || C % tp.size != 0) GTEST_SKIP() << "n_head " << n_head << " not divisible by " << tp.size;
  const ParameterLayout layout = rank_layout(tp);
  const TensorInfo& weight_info = layout.find(name + ".weight");
  const int OC = static_cast<int>(weight_info.full_shape[0]), OCl = static_cast<int>(weight_info.shape[0]);
  // Output feature j of this rank is the full weight row of its local row j.
  auto feature_of = [&](int j) {
    return static_cast<int>(weight_info.full_index(int64_t{j} * C, tp.rank, tp.size) / C);
  };

  const Floats inp = random_reals(N * C, seed), weight = random_reals(int64_t{OC} * C, seed + 1);
  const Floats bias = random_reals(OC, seed + 2), dout = random_reals(int64_t{N} * OC, seed + 3);
  const Floats dweight_before = random_floats(int64_t{OC} * C, seed + 4), dbias_before = random_floats(OC, seed + 5);

  // The unsplit layer.
  RealBuffer inp_d = to_device_real(inp), weight_d = to_device_real(weight), bias_d = to_device_real(bias);
  RealBuffer out_full = to_device_real(Floats(int64_t{N} * OC, garbage));
  RealBuffer dinp_full = to_device_real(Floats(N * C, garbage));
  FloatBuffer dweight_full = to_device(dweight_before), dbias_full = to_device(dbias_before);
  RealBuffer dout_full = to_device_real(dout);
  matmul_fwd(out_full.data(), inp_d.data(), weight_d.data(), with_bias ? bias_d.data() : nullptr, N, C, OC);
  matmul_bwd(dinp_full.data(), dweight_full.data(), with_bias ? dbias_full.data() : nullptr, dout_full.data(),
             inp_d.data(), weight_d.data(), N, C, OC);

  // This rank's share.
  RealBuffer weight_l = to_device_real(slice(weight, weight_info, tp));
  FloatBuffer dweight_l = to_device(slice(dweight_before, weight_info, tp));
  RealBuffer bias_l;
  FloatBuffer dbias_l;
  if (with_bias) {
    const TensorInfo& bias_info = layout.find(name + ".bias");
    ASSERT_EQ(bias_info.shape[0], OCl);
    bias_l = to_device_real(slice(bias, bias_info, tp));
    dbias_l = to_device(slice(dbias_before, bias_info, tp));
    for (int j = 0; j < OCl; ++j) ASSERT_EQ(bias_info.full_index(j, tp.rank, tp.size), feature_of(j));
  }
  RealBuffer out_l = to_device_real(Floats(int64_t{N} * OCl, garbage)), dinp_l = to_device_real(Floats(N * C, garbage));
  RealBuffer dout_l = to_device_real(slice_columns(dout, N, OC, OCl, feature_of));
  column_parallel_fwd(out_l.data(), inp_d.data(), weight_l.data(), with_bias ? bias_l.data() : nullptr, N, C, OCl);
  column_parallel_bwd(dinp_l.data(), dweight_l.data(), with_bias ? dbias_l.data() : nullptr, dout_l.data(),
                      inp_d.data(), weight_l.data(), N, C, OCl, *tp.comm);

  expect_close(to_host(out_l), widen(slice_columns(to_host(out_full), N, OC, OCl, feature_of)), real_output_tolerance,
               on_rank(tp, name + " out"));
  expect_close(to_host(dinp_l), widen(to_host(dinp_full)), real_output_tolerance, on_rank(tp, name + " dinp"));
  expect_close(to_host(dweight_l), widen(slice(to_host(dweight_full), weight_info, tp)), tolerance,
               on_rank(tp, name + " dweight"));
  if (with_bias)
    expect_close(to_host(dbias_l), widen(slice(to_host(dbias_full), layout.find(name + ".bias"), tp)), tolerance,
                 on_rank(tp, name + " dbias"));
}

// Targets on both ends of the vocabulary, on every rank's slice, and the last real token.
Tokens targets_over_vocabulary() {
  Tokens targets(N);
  for (int n = 0; n < N; ++n) targets[n] = (n * 37 + 5) % V;
  targets[0] = 0;
  targets[1] = V - 1;
  targets[2] = V - 1;  // repeated
  return targets;
}

struct VocabSlice {
  int Vp, Vl, start, valid;
};

VocabSlice vocab_slice(const TpGroup& tp) {
  const int Vp = model_config().padded_vocab(), Vl = Vp / tp.size, start = tp.rank * Vl;
  return {Vp, Vl, start, std::clamp(V - start, 0, Vl)};
}

}  // namespace

TEST(TensorParallel, ColumnParallelQkvMatchesFullLayer) {
  expect_column_parallel_matches_full("h.0.attn.qkv", true, 101);
}

TEST(TensorParallel, ColumnParallelMlpUpMatchesFullLayer) {
  expect_column_parallel_matches_full("h.0.mlp.fc", true, 201);
}

// The LM head: column-parallel over the vocabulary rows of wte, no bias; the input gradient is the sum
// over tp of every rank's vocabulary share.
TEST(TensorParallel, LmHeadInputGradientIsSummedOverVocabulary) {
  expect_column_parallel_matches_full("wte", false, 301);
}

TEST(TensorParallel, RowParallelMatchesFullLayer) {
  TpGroup tp;
  if ((4 * C) % tp.size != 0) GTEST_SKIP() << "4·C = " << 4 * C << " not divisible by " << tp.size;
  const ParameterLayout layout = rank_layout(tp);
  const TensorInfo& weight_info = layout.find("h.0.mlp.proj.weight");
  const TensorInfo& bias_info = layout.find("h.0.mlp.proj.bias");
  ASSERT_EQ(bias_info.split, Split::Replicated);
  const int OC = static_cast<int>(weight_info.full_shape[0]), IC = static_cast<int>(weight_info.full_shape[1]);
  const int ICl = static_cast<int>(weight_info.shape[1]);
  // Input feature j of this rank is the full weight column of its local column j.
  auto feature_of = [&](int j) { return static_cast<int>(weight_info.full_index(j, tp.rank, tp.size)); };

  const Floats inp = random_reals(int64_t{N} * IC, 401), weight = random_reals(int64_t{OC} * IC, 402);
  const Floats dout = random_reals(N * OC, 403);
  const Floats dweight_before = random_floats(int64_t{OC} * IC, 404), dbias_before = random_floats(OC, 405);

  RealBuffer inp_d = to_device_real(inp), weight_d = to_device_real(weight), dout_d = to_device_real(dout);
  RealBuffer out_full = to_device_real(Floats(N * OC, garbage));
  RealBuffer dinp_full = to_device_real(Floats(int64_t{N} * IC, garbage));
  FloatBuffer dweight_full = to_device(dweight_before), dbias_full = to_device(dbias_before);
  matmul_fwd(out_full.data(), inp_d.data(), weight_d.data(), nullptr, N, IC, OC);
  matmul_bwd(dinp_full.data(), dweight_full.data(), dbias_full.data(), dout_d.data(), inp_d.data(), weight_d.data(),
             N, IC, OC);

  RealBuffer inp_l = to_device_real(slice_columns(inp, N, IC, ICl, feature_of));
  RealBuffer weight_l = to_device_real(slice(weight, weight_info, tp));
  FloatBuffer dweight_l = to_device(slice(dweight_before, weight_info, tp));
  FloatBuffer dbias_l = to_device(dbias_before);  // replicated: every rank holds the whole bias
  RealBuffer out_l = to_device_real(Floats(N * OC, garbage));
  RealBuffer dinp_l = to_device_real(Floats(int64_t{N} * ICl, garbage));
  row_parallel_fwd(out_l.data(), inp_l.data(), weight_l.data(), N, ICl, OC, *tp.comm);
  row_parallel_bwd(dinp_l.data(), dweight_l.data(), dbias_l.data(), dout_d.data(), inp_l.data(), weight_l.data(), N,
                   ICl, OC);

  expect_close(to_host(out_l), widen(to_host(out_full)), real_output_tolerance, on_rank(tp, "out"));
  expect_close(to_host(dinp_l), widen(slice_columns(to_host(dinp_full), N, IC, ICl, feature_of)),
               real_output_tolerance, on_rank(tp, "dinp"));
  expect_close(to_host(dweight_l), widen(slice(to_host(dweight_full), weight_info, tp)), tolerance,
               on_rank(tp, "dweight"));
  expect_close(to_host(dbias_l), widen(to_host(dbias_full)), tolerance, on_rank(tp, "dbias (replicated)"));
}

TEST(TensorParallel, VocabParallelEmbeddingMatchesFullEmbedding) {
  TpGroup tp;
  const VocabSlice vocab = vocab_slice(tp);
  if (vocab.Vp % tp.size != 0) GTEST_SKIP() << "Vp " << vocab.Vp << " not divisible by " << tp.size;
  const ParameterLayout layout = rank_layout(tp);
  const TensorInfo& wte_info = layout.find("wte.weight");
  ASSERT_EQ(wte_info.shape[0], vocab.Vl);
  ASSERT_EQ(wte_info.full_index(0, tp.rank, tp.size), int64_t{vocab.start} * C);

  const Tokens tokens = targets_over_vocabulary();
  const Floats wte = random_reals(int64_t{vocab.Vp} * C, 501), wpe = random_reals(T * C, 502);
  const Floats dout = random_reals(N * C, 503), dwte_before = random_floats(int64_t{vocab.Vp} * C, 504);

  TokenBuffer tokens_d = to_device(tokens);
  RealBuffer wte_d = to_device_real(wte), wpe_d = to_device_real(wpe), dout_d = to_device_real(dout);
  RealBuffer out_full = to_device_real(Floats(N * C, garbage));
  FloatBuffer dwte_full = to_device(dwte_before);
  embedding_fwd(out_full.data(), tokens_d.data(), wte_d.data(), wpe_d.data(), B, T, C);
  embedding_bwd(dwte_full.data(), nullptr, dout_d.data(), tokens_d.data(), B, T, C);

  RealBuffer wte_l = to_device_real(slice(wte, wte_info, tp));
  FloatBuffer dwte_l = to_device(slice(dwte_before, wte_info, tp));
  RealBuffer out_l = to_device_real(Floats(N * C, garbage));
  vocab_parallel_embedding_fwd(out_l.data(), tokens_d.data(), wte_l.data(), wpe_d.data(), B, T, C, vocab.start,
                               vocab.Vl, *tp.comm);
  embedding_bwd(dwte_l.data(), nullptr, dout_d.data(), tokens_d.data(), B, T, C, vocab.start, vocab.Vl);

  expect_close(to_host(out_l), widen(to_host(out_full)), real_output_tolerance, on_rank(tp, "embedding out"));
  expect_close(to_host(dwte_l), widen(slice(to_host(dwte_full), wte_info, tp)), tolerance, on_rank(tp, "dwte"));
}

// No rank holds all logits; padded columns (huge values here) must count nowhere, whichever rank holds them.
TEST(TensorParallel, VocabParallelCrossEntropyMatchesFullSoftmax) {
  TpGroup tp;
  const VocabSlice vocab = vocab_slice(tp);
  if (vocab.Vp % tp.size != 0) GTEST_SKIP() << "Vp " << vocab.Vp << " not divisible by " << tp.size;
  const Tokens targets = targets_over_vocabulary();
  Floats logits = random_reals(int64_t{N} * vocab.Vp, 601, -3.0, 3.0);
  for (int n = 0; n < N; ++n) std::fill(&logits[n * vocab.Vp + V], &logits[(n + 1) * vocab.Vp], huge_padding);

  TokenBuffer targets_d = to_device(targets);
  RealBuffer logits_d = to_device_real(logits);
  FloatBuffer losses_full = to_device(Floats(N, garbage)), lse_full = to_device(Floats(N, garbage));
  RealBuffer dlogits_full = to_device_real(Floats(int64_t{N} * vocab.Vp, garbage));
  const double sum_full =
      cross_entropy_fwd(losses_full.data(), lse_full.data(), logits_d.data(), targets_d.data(), N, V, vocab.Vp);
  cross_entropy_bwd(dlogits_full.data(), logits_d.data(), lse_full.data(), targets_d.data(), dloss, N, V, vocab.Vp);

  auto column_of = [&](int j) { return vocab.start + j; };
  RealBuffer logits_l = to_device_real(slice_columns(logits, N, vocab.Vp, vocab.Vl, column_of));
  FloatBuffer losses_l = to_device(Floats(N, garbage)), lse_l = to_device(Floats(N, garbage));
  FloatBuffer stats = to_device(Floats(3 * N, garbage));
  RealBuffer dlogits_l = to_device_real(Floats(int64_t{N} * vocab.Vl, garbage));
  const double sum_l = vocab_parallel_cross_entropy_fwd(losses_l.data(), lse_l.data(), stats.data(), logits_l.data(),
                                                        targets_d.data(), N, vocab.valid, vocab.Vl, vocab.start,
                                                        *tp.comm);
  cross_entropy_bwd(dlogits_l.data(), logits_l.data(), lse_l.data(), targets_d.data(), dloss, N, vocab.valid,
                    vocab.Vl, vocab.start);

  expect_close(Doubles{sum_l}, Doubles{sum_full}, tolerance, on_rank(tp, "loss sum"));
  expect_close(to_host(losses_l), widen(to_host(losses_full)), tolerance, on_rank(tp, "losses"));
  expect_close(to_host(lse_l), widen(to_host(lse_full)), tolerance, on_rank(tp, "lse"));
  expect_close(to_host(dlogits_l), widen(slice_columns(to_host(dlogits_full), N, vocab.Vp, vocab.Vl, column_of)),
               real_output_tolerance, on_rank(tp, "dlogits"));
  const Floats dlogits = to_host(dlogits_l);
  for (int n = 0; n < N; ++n)
    for (int j = vocab.valid; j < vocab.Vl; ++j)
      EXPECT_EQ(dlogits[n * vocab.Vl + j], 0.0f) << on_rank(tp, "padded column " + std::to_string(vocab.start + j));
}

}  // namespace xp::test
