#pragma once
// Shared by the fused classifier's tests (test_fused_classifier.cpp, test_fused_classifier_fwd_bwd.cpp): bf16
// logit rows at chosen alignments, their float64 lse, the awkward shapes, and the tolerances derived in
// test_fused_classifier.cpp's header comment.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cuda/classifier_math.hpp"
#include "kernels/reference.hpp"

// In a namespace of its own: other tests' Shape and Logits live in their files' anonymous namespaces.
namespace xp::test::fused_classifier {

using simt::bf16;

constexpr float dloss = 1.0f / 3.0f;

// simt::bf16 is 16 bits on the host and __nv_bfloat16 where nvcc compiles the test (the CUDA build).
inline std::uint16_t bits_of(bf16 x) {
  std::uint16_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

inline double lse_tolerance(double lse) { return 6e-6 + std::ldexp(std::abs(lse), -22); }
inline double dlogit_tolerance(double exact, double softmax) {
  return std::ldexp(std::abs(exact), -8) + 1e-5 * std::abs(dloss) * softmax + 1e-37;
}

// N rows of `stride` bf16 logits whose first element sits `misaligned` elements past a 16-byte boundary.
struct Logits {
  Logits(int rows, int row_stride, int misaligned)
      : N(rows), stride(row_stride), storage(size_t(rows) * row_stride + 16) {
    const auto address = reinterpret_cast<std::uintptr_t>(storage.data());
    offset = static_cast<int>((16 - address % 16) % 16 / 2) + misaligned;
  }
  bf16* data() { return storage.data() + offset; }
  const bf16* row(int n) const { return storage.data() + offset + int64_t{n} * stride; }
  double value(int n, int v) const { return simt::load(row(n)[v]); }
  void set(int n, int v, float x) { data()[int64_t{n} * stride + v] = simt::store_bf16(x); }

  int N, stride, offset = 0;
  std::vector<bf16> storage;
};

inline Logits random_logits(int N, int stride, int misaligned, uint32_t seed, double lo = -4.0, double hi = 4.0) {
  Logits logits(N, stride, misaligned);
  const Floats values = random_floats(size_t(N) * stride, seed, lo, hi);
  for (int n = 0; n < N; ++n)
    for (int v = 0; v < stride; ++v) logits.set(n, v, values[size_t(n) * stride + v]);
  return logits;
}

inline Tokens random_targets(int N, int V, uint32_t seed) {
  const Floats u = random_floats(N, seed, 0.0, 1.0);
  Tokens targets(N);
  for (int n = 0; n < N; ++n) targets[n] = std::min(V - 1, static_cast<int>(u[n] * V));
  return targets;
}

// float64: log Σ_{v < valid} exp(logit_v) of row n, with the max subtracted first.
inline double reference_lse(const Logits& logits, int n, int first, int valid) {
  double m = -1e300, s = 0.0;
  for (int v = first; v < first + valid; ++v) m = std::max(m, logits.value(n, v));
  for (int v = first; v < first + valid; ++v) s += std::exp(logits.value(n, v) - m);
  return m + std::log(s);
}

struct Shape {
  int N, V, Vp, misaligned, threads;
  std::string name() const {
    return "N " + std::to_string(N) + " V " + std::to_string(V) + " Vp " + std::to_string(Vp) + " +" +
           std::to_string(misaligned) + " threads " + std::to_string(threads);
  }
};

// Every row start: aligned, 2..14 bytes past a boundary (V = 1001 rows drift through all of them), one row,
// rows shorter than a pack, several packs per thread at 32 threads.
inline const std::vector<Shape> shapes = {
    {4, 50257, 50304, 0, classifier::block_threads}, {3, 50257, 50304, 3, classifier::block_threads},
    {8, 1001, 1001, 0, classifier::block_threads},   {8, 1001, 1008, 5, 32},
    {1, 7, 7, 0, classifier::block_threads},         {1, 7, 8, 7, 32},
    {5, 1, 8, 1, 32},                                {2, 4099, 4104, 2, 64},
};

// Row n of dlogits against float64 dloss·(softmax - onehot) from the exact lse; padding exactly 0. Call it
// through ASSERT_NO_FATAL_FAILURE: the first wrong value ends the test.
inline void check_dlogits_row(const Logits& dlogits, const Logits& logits, const Tokens& targets, const Shape& s,
                              int n) {
  const double exact_lse = reference_lse(logits, n, 0, s.V);
  for (int v = 0; v < s.Vp; ++v) {
    if (v >= s.V) {
      ASSERT_EQ(dlogits.value(n, v), 0.0) << s.name() << " row " << n << " padding column " << v;
      continue;
    }
    const double softmax = std::exp(logits.value(n, v) - exact_lse);
    const double exact = dloss * (softmax - (v == targets[n] ? 1.0 : 0.0));
    ASSERT_NEAR(dlogits.value(n, v), exact, dlogit_tolerance(exact, softmax))
        << s.name() << " row " << n << " column " << v;
  }
}

}  // namespace xp::test::fused_classifier
