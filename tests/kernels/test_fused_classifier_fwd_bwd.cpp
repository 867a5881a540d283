// The fused classifier's training pass, cross_entropy_fwd_bwd: the host emulation of the CUDA kernel
// (classifier_math.hpp's emulate_fwd_bwd, the kernel's threads, packs and block reduction) and this build's
// kernel function, against the forward then the backward (the same bits: the fused pass runs the same
// per-thread functions, with the lse it has just reduced) and against float64 softmax cross-entropy within
// test_fused_classifier.cpp's tolerances, at the same awkward sizes (V not a multiple of 8, rows not
// 16-byte aligned, one row, rows shorter than a pack), in place over the logits and into another buffer.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/classifier_support.hpp"
#include "xp/kernels/cross_entropy.hpp"
#include "xp/kernels/kernel_path.hpp"

namespace xp::test {
namespace {

using namespace fused_classifier;

Logits filled(int N, int stride, int misaligned, float value) {
  Logits logits(N, stride, misaligned);
  for (bf16& x : logits.storage) x = simt::store_bf16(value);
  return logits;
}

void expect_same_bits(const Logits& a, const Logits& b, const std::string& what) {
  for (int n = 0; n < a.N; ++n)
    for (int v = 0; v < a.stride; ++v)
      ASSERT_EQ(bits_of(a.row(n)[v]), bits_of(b.row(n)[v])) << what << " row " << n << " column " << v;
}

TEST(FusedClassifier, FwdBwdEmulationHasTheBitsOfFwdThenBwd) {
  uint32_t seed = 600;
  for (const Shape& s : shapes) {
    const uint32_t logit_seed = ++seed;
    const Logits logits = random_logits(s.N, s.Vp, s.misaligned, logit_seed);
    const Tokens targets = random_targets(s.N, s.V, ++seed);
    Floats losses(s.N, garbage), lse(s.N, garbage);
    classifier::emulate_fwd(losses.data(), lse.data(), logits.row(0), targets.data(), s.N, s.V, s.Vp, s.threads);
    Logits dlogits = filled(s.N, s.Vp, s.misaligned, garbage);
    classifier::emulate_bwd(dlogits.data(), logits.row(0), lse.data(), targets.data(), dloss, s.N, s.V, s.Vp, 0,
                            s.threads);

    Floats fused_losses(s.N, garbage), fused_lse(s.N, garbage);
    Logits other = filled(s.N, s.Vp, s.misaligned, garbage);
    classifier::emulate_fwd_bwd(fused_losses.data(), fused_lse.data(), other.data(), logits.row(0), targets.data(),
                                dloss, s.N, s.V, s.Vp, s.threads);
    EXPECT_EQ(fused_losses, losses) << s.name();
    EXPECT_EQ(fused_lse, lse) << s.name();
    expect_same_bits(other, dlogits, s.name() + " into another buffer");

    // In place, as training runs it: the target logit is read before the row is overwritten.
    Logits in_place = random_logits(s.N, s.Vp, s.misaligned, logit_seed);
    classifier::emulate_fwd_bwd(fused_losses.data(), fused_lse.data(), in_place.data(), in_place.row(0),
                                targets.data(), dloss, s.N, s.V, s.Vp, s.threads);
    EXPECT_EQ(fused_losses, losses) << s.name() << " in place";
    expect_same_bits(in_place, dlogits, s.name() + " in place");
  }
}

TEST(FusedClassifier, FwdBwdEmulationMatchesFloat64) {
  uint32_t seed = 700;
  for (const Shape& s : shapes) {
    const Logits logits = random_logits(s.N, s.Vp, s.misaligned, ++seed);
    const Tokens targets = random_targets(s.N, s.V, ++seed);
    Floats losses(s.N, garbage), lse(s.N, garbage);
    Logits dlogits = filled(s.N, s.Vp, s.misaligned, garbage);
    classifier::emulate_fwd_bwd(losses.data(), lse.data(), dlogits.data(), logits.row(0), targets.data(), dloss, s.N,
                                s.V, s.Vp, s.threads);
    for (int n = 0; n < s.N; ++n) {
      const double exact_lse = reference_lse(logits, n, 0, s.V);
      EXPECT_NEAR(lse[n], exact_lse, lse_tolerance(exact_lse)) << s.name() << " row " << n;
      EXPECT_NEAR(losses[n], exact_lse - logits.value(n, targets[n]), lse_tolerance(exact_lse))
          << s.name() << " row " << n;
      ASSERT_NO_FATAL_FAILURE(check_dlogits_row(dlogits, logits, targets, s, n));
    }
  }
}

// This build's kernel functions at the large shapes: cross_entropy_fwd_bwd in place over the logits against
// cross_entropy_fwd then cross_entropy_bwd, bit for bit, on each kernel path (the CUDA build's fused kernel
// and its Kokkos one; elsewhere only Kokkos).
TEST(FusedClassifier, KernelFunctionFwdBwdHasTheBitsOfFwdThenBwd) {
  std::vector<KernelPath> paths = {KernelPath::Kokkos};
#if defined(XP_ENABLE_CUDA)
  paths.push_back(KernelPath::Fused);
#endif
  for (const KernelPath path : paths) {
    set_kernel_path(path);
    for (const Shape& s : {shapes[0], shapes[1], shapes[3], shapes[4]}) {
      const std::string what = s.name() + (path == KernelPath::Fused ? " fused" : " kokkos");
      const Floats values = random_reals(size_t(s.N) * s.Vp, 800, -4.0, 4.0);
      const Tokens targets = random_targets(s.N, s.V, 801);
      const TokenBuffer targets_device = to_device(targets);
      RealBuffer logits = to_device_real(values), dlogits = to_device_real(Floats(values.size(), garbage));
      FloatBuffer losses = to_device(Floats(s.N, garbage)), lse = to_device(Floats(s.N, garbage));
      const double sum = cross_entropy_fwd(losses.data(), lse.data(), logits.data(), targets_device.data(), s.N, s.V,
                                           s.Vp);
      cross_entropy_bwd(dlogits.data(), logits.data(), lse.data(), targets_device.data(), dloss, s.N, s.V, s.Vp);

      FloatBuffer fused_losses = to_device(Floats(s.N, garbage)), fused_lse = to_device(Floats(s.N, garbage));
      const double fused_sum = cross_entropy_fwd_bwd(fused_losses.data(), fused_lse.data(), logits.data(),
                                                     logits.data(), targets_device.data(), dloss, s.N, s.V, s.Vp);
      EXPECT_EQ(fused_sum, sum) << what;
      EXPECT_EQ(to_host(fused_losses), to_host(losses)) << what;
      EXPECT_EQ(to_host(fused_lse), to_host(lse)) << what;
      const Floats expected = to_host(dlogits), got = to_host(logits);
      for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], expected[i]) << what << " element " << i;
    }
  }
  set_kernel_path(KernelPath::Fused);
}

}  // namespace
}  // namespace xp::test
