// The fused classifier's host emulation (src/kernels/cuda/classifier_math.hpp: the CUDA kernels'
// decomposition into threads, packs and block reductions) against float64 softmax cross-entropy, at
// awkward sizes: V not a multiple of 8, rows not 16-byte aligned, one row, tp-split vocabularies,
// extreme logits; and against the Kokkos kernels (xp/kernels/cross_entropy.hpp) it replaces on the GPU.
//
// Tolerances, from the fp32 arithmetic (u = 2^-24):
// - lse and loss: |error| ≤ 6e-6 + 2^-22·|lse|, the worst case of the device's order: Σ exp is a chain
//   of ≤ 13 packs per thread (8 additions, then an exp and an fma rescaling the running sum: ≲ 46u) and a
//   9-level butterfly (two products, an exp and an addition per level: ≲ 36u), ≲ 5e-6 relative, which is
//   lse's absolute error; the exponents (x - m)·log2 e add ≤ 16u for |x - m| ≤ 16 (farther terms are
//   negligible). The relative part is four half-ulps of lse itself (m + log s, - target), which dominate
//   at |logits| ~ 1e4. Random rows measure ≤ 8e-7.
// - dlogits (bf16): |error| ≤ 2^-8·|exact| (one rounding to bf16's 8-bit significand; random rows reach
//   0.99 of it) + 1e-5·|dloss|·softmax (the lse bound above and the exponent's rounding, through exp)
//   + 1e-37 (denormal softmax values).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/classifier_support.hpp"
#include "xp/kernels/cross_entropy.hpp"
#include "xp/kernels/kernel_path.hpp"

namespace xp::test {
namespace {

using classifier::Online;
using namespace fused_classifier;

// Every row start the kernels meet: the packs begin on a 16-byte boundary (the device's 128-bit loads
// need it), the head and tail are shorter than a pack, and the three parts cover the row once.
TEST(FusedClassifier, RowSplitAlignsThePacks) {
  Logits storage(1, 64, 0);
  for (int misaligned = 0; misaligned < 8; ++misaligned)
    for (int n : {0, 1, 7, 8, 9, 16, 23, 57}) {
      const bf16* row = storage.row(0) + misaligned;
      const classifier::RowSplit split = classifier::split_row(row, n);
      const std::string what = "+" + std::to_string(misaligned) + " n " + std::to_string(n);
      EXPECT_LT(split.head, classifier::pack) << what;
      EXPECT_EQ(split.head, std::min(n, (classifier::pack - misaligned) % classifier::pack)) << what;
      if (split.packs > 0) EXPECT_EQ(reinterpret_cast<std::uintptr_t>(row + split.head) % 16, 0u) << what;
      EXPECT_EQ(split.tail_start, split.head + classifier::pack * split.packs) << what;
      EXPECT_LE(split.tail_start, n) << what;
      EXPECT_LT(n - split.tail_start, classifier::pack) << what;
    }
}

void expect_forward_matches_reference(const Logits& logits, const Tokens& targets, int V, int threads,
                                      const std::string& what) {
  const int N = logits.N;
  Floats losses(N, garbage), lse(N, garbage);
  classifier::emulate_fwd(losses.data(), lse.data(), logits.row(0), targets.data(), N, V, logits.stride, threads);
  for (int n = 0; n < N; ++n) {
    const double exact = reference_lse(logits, n, 0, V);
    EXPECT_NEAR(lse[n], exact, lse_tolerance(exact)) << what << " row " << n;
    EXPECT_NEAR(losses[n], exact - logits.value(n, targets[n]), lse_tolerance(exact)) << what << " row " << n;
  }
}

TEST(FusedClassifier, ForwardMatchesFloat64AtAwkwardSizes) {
  uint32_t seed = 100;
  for (const Shape& s : shapes) {
    const Logits logits = random_logits(s.N, s.Vp, s.misaligned, ++seed);
    expect_forward_matches_reference(logits, random_targets(s.N, s.V, ++seed), s.V, s.threads, s.name());
  }
}

// The running max changes many times (rising rows), once at the very end, or never (the max first); logits
// of ±1e4 and -1e30 make any missed rescaling show up as inf, NaN or an error of many units.
TEST(FusedClassifier, ForwardRescalesExtremeLogits) {
  const int N = 6, V = 1001, Vp = 1001;
  Logits logits = random_logits(N, Vp, 0, 7, -3.0, 3.0);
  for (int v = 0; v < V; ++v) {
    logits.set(0, v, -1e4f + 20.0f * v);            // rising: every pack raises the max
    logits.set(1, v, 1e4f - 20.0f * v);             // falling: the max first
    logits.set(2, v, v == V - 1 ? 80.0f : -80.0f);  // one large logit in the scalar tail
    logits.set(3, v, -1e30f * (1.0f + (v % 5) / 8.0f));  // all hugely negative
    logits.set(4, v, 1e4f);                         // all equal: lse = 1e4 + log V
  }
  for (int v = 0; v < V; ++v) logits.set(5, v, v % 2 ? 3e4f : -3e4f);
  const Tokens targets = {0, V - 1, V - 1, 3, 500, 1};
  for (int threads : {32, classifier::block_threads})
    expect_forward_matches_reference(logits, targets, V, threads, "threads " + std::to_string(threads));
}

// Two tp ranks hold halves of the padded vocabulary (rank 1's last columns are padding): the tp path's
// row_max and sum_exp passes, combined as the all-reduces do, give the whole row's lse; so do the two
// halves' online states combined with the block reduction's own operator.
TEST(FusedClassifier, TpHalvesCombineToTheWholeRow) {
  struct Split {
    int N, V, Vp, threads;
  };
  for (const Split& s : {Split{3, 50257, 50304, classifier::block_threads}, Split{5, 1001, 1002, 32}}) {
    const int Vl = s.Vp / 2;
    const int valid[2] = {Vl, s.V - Vl};
    std::vector<Logits> halves;
    for (int r = 0; r < 2; ++r) halves.push_back(random_logits(s.N, Vl, 0, 200 + r, -6.0, 6.0));
    Floats local_max[2] = {Floats(s.N), Floats(s.N)}, sum_exp[2] = {Floats(s.N), Floats(s.N)};
    for (int r = 0; r < 2; ++r)
      classifier::emulate_row_max(local_max[r].data(), halves[r].row(0), s.N, valid[r], Vl, s.threads);
    Floats row_max(s.N);
    for (int n = 0; n < s.N; ++n) row_max[n] = std::max(local_max[0][n], local_max[1][n]);  // all_reduce_max
    for (int r = 0; r < 2; ++r)
      classifier::emulate_sum_exp(sum_exp[r].data(), halves[r].row(0), row_max.data(), s.N, valid[r], Vl, s.threads);
    for (int n = 0; n < s.N; ++n) {
      // float64 over the whole row: the halves side by side.
      double m = -1e300, total = 0.0;
      for (int r = 0; r < 2; ++r)
        for (int v = 0; v < valid[r]; ++v) m = std::max(m, halves[r].value(n, v));
      for (int r = 0; r < 2; ++r)
        for (int v = 0; v < valid[r]; ++v) total += std::exp(halves[r].value(n, v) - m);
      const double exact = m + std::log(total);
      EXPECT_EQ(row_max[n], m) << "row " << n;
      const float lse = row_max[n] + std::log(sum_exp[0][n] + sum_exp[1][n]);  // all_reduce_sum, then finish
      EXPECT_NEAR(lse, exact, lse_tolerance(exact)) << "V " << s.V << " row " << n;
      Online state[2];
      for (int r = 0; r < 2; ++r) state[r] = classifier::emulate_row_online(halves[r].row(n), valid[r], s.threads);
      const Online whole = classifier::OnlineCombine{}(state[0], state[1]);
      EXPECT_NEAR(whole.v[0] + std::log(whole.v[1]), exact, lse_tolerance(exact)) << "V " << s.V << " row " << n;
    }
  }
}

// The tp path's passes over no valid columns (a rank holding only padding): max -3e38, Σ exp 0.
TEST(FusedClassifier, RankWithoutValidColumnsContributesNothing) {
  const Logits logits = random_logits(2, 24, 1, 9);
  Floats row_max(2, garbage), sum_exp(2, garbage);
  classifier::emulate_row_max(row_max.data(), logits.row(0), 2, 0, 24, 32);
  const Floats global_max = {1.0f, -2.0f};
  classifier::emulate_sum_exp(sum_exp.data(), logits.row(0), global_max.data(), 2, 0, 24, 32);
  EXPECT_EQ(row_max, Floats(2, classifier::lowest));
  EXPECT_EQ(sum_exp, Floats(2, 0.0f));
}

// dlogits against float64 dloss·(softmax - onehot) from the emulated forward's lse; padding exactly 0;
// the same bits in place as into a separate buffer.
TEST(FusedClassifier, BackwardMatchesFloat64AndZeroesPadding) {
  uint32_t seed = 300;
  for (const Shape& s : shapes) {
    Logits logits = random_logits(s.N, s.Vp, s.misaligned, ++seed);
    const Tokens targets = random_targets(s.N, s.V, ++seed);
    Floats losses(s.N), lse(s.N);
    classifier::emulate_fwd(losses.data(), lse.data(), logits.row(0), targets.data(), s.N, s.V, s.Vp, s.threads);
    Logits dlogits(s.N, s.Vp, s.misaligned);
    for (bf16& x : dlogits.storage) x = simt::store_bf16(garbage);
    classifier::emulate_bwd(dlogits.data(), logits.row(0), lse.data(), targets.data(), dloss, s.N, s.V, s.Vp, 0,
                            s.threads);
    for (int n = 0; n < s.N; ++n) ASSERT_NO_FATAL_FAILURE(check_dlogits_row(dlogits, logits, targets, s, n));
    classifier::emulate_bwd(logits.data(), logits.row(0), lse.data(), targets.data(), dloss, s.N, s.V, s.Vp, 0,
                            s.threads);
    for (int n = 0; n < s.N; ++n)
      for (int v = 0; v < s.Vp; ++v)
        ASSERT_EQ(bits_of(logits.row(n)[v]), bits_of(dlogits.row(n)[v]))
            << s.name() << " in place, row " << n << " column " << v;
  }
}

// A tp rank's backward: its targets are global (vocab_start shifts them), other ranks' targets get no -1.
TEST(FusedClassifier, BackwardOnATpRankShiftsTargets) {
  const int N = 3, Vl = 501, valid = 500, vocab_start = 501;
  const Logits logits = random_logits(N, Vl, 0, 17);
  const Tokens targets = {vocab_start + 4, 2, vocab_start + valid - 1};  // row 1's target is on rank 0
  Floats lse(N);
  for (int n = 0; n < N; ++n) lse[n] = static_cast<float>(reference_lse(logits, n, 0, valid) + 0.5);
  Logits dlogits(N, Vl, 0);
  classifier::emulate_bwd(dlogits.data(), logits.row(0), lse.data(), targets.data(), dloss, N, valid, Vl, vocab_start,
                          64);
  for (int n = 0; n < N; ++n)
    for (int v = 0; v < Vl; ++v) {
      const double softmax = v < valid ? std::exp(logits.value(n, v) - double(lse[n])) : 0.0;
      const double exact = dloss * (softmax - (v == targets[n] - vocab_start ? 1.0 : 0.0));
      ASSERT_NEAR(dlogits.value(n, v), exact, dlogit_tolerance(exact, softmax)) << "row " << n << " column " << v;
    }
}

// The emulation and the Kokkos kernels (this build's cross_entropy_fwd / _bwd on the same bf16 values)
// agree within their two rounding errors: the Kokkos CPU kernel sums a row left to right, whose fp32
// error grows like sqrt(V)·u (≈ 1e-5 at V = 50257), so the forward allows twice lse_tolerance plus that.
TEST(FusedClassifier, EmulationMatchesTheKokkosKernel) {
  for (const Shape& s : {shapes[0], shapes[3], shapes[4]}) {
    const Logits logits = random_logits(s.N, s.Vp, 0, 400);
    const Tokens targets = random_targets(s.N, s.V, 401);
    Floats values(size_t(s.N) * s.Vp);
    for (int n = 0; n < s.N; ++n)
      for (int v = 0; v < s.Vp; ++v) values[size_t(n) * s.Vp + v] = static_cast<float>(logits.value(n, v));
    RealBuffer logits_device = to_device_real(values);
    TokenBuffer targets_device = to_device(targets);
    FloatBuffer losses_device = to_device(Floats(s.N, garbage)), lse_device = to_device(Floats(s.N, garbage));
    cross_entropy_fwd(losses_device.data(), lse_device.data(), logits_device.data(), targets_device.data(), s.N, s.V,
                      s.Vp);
    const Floats kokkos_losses = to_host(losses_device), kokkos_lse = to_host(lse_device);
    Floats losses(s.N), lse(s.N);
    classifier::emulate_fwd(losses.data(), lse.data(), logits.row(0), targets.data(), s.N, s.V, s.Vp, s.threads);
    for (int n = 0; n < s.N; ++n) {
      const double tolerance = 2 * lse_tolerance(lse[n]) + std::sqrt(double(s.V)) * std::ldexp(1.0, -24) * 4;
      EXPECT_NEAR(lse[n], kokkos_lse[n], tolerance) << s.name() << " row " << n;
      EXPECT_NEAR(losses[n], kokkos_losses[n], tolerance) << s.name() << " row " << n;
    }
    cross_entropy_bwd(logits_device.data(), logits_device.data(), lse_device.data(), targets_device.data(), dloss, s.N,
                      s.V, s.Vp);
    const Floats kokkos_dlogits = to_host(logits_device);
    Logits dlogits(s.N, s.Vp, 0);
    classifier::emulate_bwd(dlogits.data(), logits.row(0), lse.data(), targets.data(), dloss, s.N, s.V, s.Vp, 0,
                            s.threads);
    for (int n = 0; n < s.N; ++n)
      for (int v = 0; v < s.Vp; ++v) {
        // Both round to bf16 (or the Kokkos one stays fp32): one bf16 ulp (2^-7) apart at most, plus the
        // difference of the two lse.
        const double kokkos = kokkos_dlogits[size_t(n) * s.Vp + v];
        const double softmax = v < s.V ? std::exp(logits.value(n, v) - double(lse[n])) : 0.0;
        ASSERT_NEAR(dlogits.value(n, v), kokkos, std::ldexp(std::abs(kokkos), -7) + 6e-5 * dloss * softmax + 1e-37)
            << s.name() << " row " << n << " column " << v;
      }
  }
}

#if defined(XP_ENABLE_CUDA)
// On the GPU: the fused kernels (the default path) against the Kokkos ones and the host emulation, on the
// same bf16 logits, through the kernel functions the model calls. The Kokkos side's sums run ~V/128 terms
// in sequence per thread, so, as on the CPU, it gets sqrt(V)·4u on top of two lse_tolerance; the emulation
// differs from the device by ex2.approx's and lg2.approx's few ulps per term, well inside lse_tolerance.
TEST(FusedClassifier, DeviceKernelsMatchKokkosAndTheEmulation) {
  for (const Shape& s : {shapes[0], shapes[2], shapes[5]}) {
    const Floats values = random_reals(size_t(s.N) * s.Vp, 500, -4.0, 4.0);
    const Tokens targets = random_targets(s.N, s.V, 501);
    std::vector<bf16> host(values.size());
    for (size_t i = 0; i < values.size(); ++i) host[i] = simt::store_bf16(values[i]);
    const RealBuffer logits = to_device_real(values);
    const TokenBuffer targets_device = to_device(targets);
    struct Result {
      Floats losses, lse, row_max, sum_exp, dlogits;
    };
    const auto run = [&](KernelPath path) {
      set_kernel_path(path);
      FloatBuffer losses = to_device(Floats(s.N, garbage)), lse = to_device(Floats(s.N, garbage));
      FloatBuffer row_max = to_device(Floats(s.N, garbage)), sum_exp = to_device(Floats(s.N, garbage));
      RealBuffer dlogits = to_device_real(Floats(values.size(), garbage));
      cross_entropy_fwd(losses.data(), lse.data(), logits.data(), targets_device.data(), s.N, s.V, s.Vp);
      cross_entropy_row_max(row_max.data(), logits.data(), s.N, s.V, s.Vp);
      cross_entropy_sum_exp(sum_exp.data(), logits.data(), row_max.data(), s.N, s.V, s.Vp);
      cross_entropy_bwd(dlogits.data(), logits.data(), lse.data(), targets_device.data(), dloss, s.N, s.V, s.Vp);
      set_kernel_path(KernelPath::Fused);
      return Result{to_host(losses), to_host(lse), to_host(row_max), to_host(sum_exp), to_host(dlogits)};
    };
    const Result fused = run(KernelPath::Fused), kokkos = run(KernelPath::Kokkos);
    Floats losses(s.N), lse(s.N);
    classifier::emulate_fwd(losses.data(), lse.data(), host.data(), targets.data(), s.N, s.V, s.Vp);
    const double kokkos_sum_error = std::sqrt(double(s.V)) * std::ldexp(1.0, -24) * 4;
    for (int n = 0; n < s.N; ++n) {
      const double tolerance = 2 * lse_tolerance(lse[n]) + kokkos_sum_error;
      EXPECT_NEAR(fused.lse[n], lse[n], lse_tolerance(lse[n])) << s.name() << " row " << n;
      EXPECT_NEAR(fused.losses[n], losses[n], lse_tolerance(lse[n])) << s.name() << " row " << n;
      EXPECT_NEAR(fused.lse[n], kokkos.lse[n], tolerance) << s.name() << " row " << n;
      EXPECT_NEAR(fused.losses[n], kokkos.losses[n], tolerance) << s.name() << " row " << n;
      EXPECT_EQ(fused.row_max[n], kokkos.row_max[n]) << s.name() << " row " << n;  // a max is exact
      EXPECT_NEAR(fused.sum_exp[n], kokkos.sum_exp[n], (12e-6 + kokkos_sum_error) * kokkos.sum_exp[n])
          << s.name() << " row " << n;
      for (int v = 0; v < s.Vp; ++v) {
        const size_t i = size_t(n) * s.Vp + v;
        const double softmax = v < s.V ? std::exp(double(values[i]) - double(lse[n])) : 0.0;
        ASSERT_NEAR(fused.dlogits[i], kokkos.dlogits[i],
                    std::ldexp(std::abs(kokkos.dlogits[i]), -7) + 2e-5 * dloss * softmax + 1e-37)
            << s.name() << " row " << n << " column " << v;
      }
    }
  }
}
#endif

}  // namespace
}  // namespace xp::test
