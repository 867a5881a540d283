// The deterministic dQ pass of the fused attention backward (src/kernels/cuda/flash_attention_bwd_dq.cu)
// on the host: its walk over CTAs, warps, key tiles and chunks visits every causal (query, key) pair once,
// and its emulation (flash_attention_bwd_math.hpp: the kernel's skips, masks, P and dS arithmetic and
// bf16 rounding points) matches a float64 dq at awkward T.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/cuda/flash_attention_bwd_math.hpp"

namespace xp::attention_dq {
namespace {

// Walks the kernel's loops with its predicates and counts, per (row, key), the unmasked visits.
std::vector<int> visits(int T, int hs) {
  std::vector<int> count(std::size_t(T) * T, 0);
  const int rows = rows_per_cta(hs);
  for (int q0 = 0; q0 < T; q0 += rows)
    for (int warp = 0; warp < warps_per_cta(hs); ++warp) {
      const int row0 = q0 + 16 * warp;
      if (row0 >= T) continue;
      for (int j = 0; j < key_tiles(T, q0, rows); ++j) {
        const int k0 = j * key_tile;
        if (!warp_sees(row0, k0)) continue;
        for (int kc = 0; kc < key_tile && warp_sees(row0, k0 + kc); kc += key_chunk)
          for (int row = row0; row < std::min(row0 + 16, T); ++row)
            for (int key = k0 + kc; key < k0 + kc + key_chunk; ++key)
              if (!masked(tile_needs_mask(row0, k0), key, row)) {
                EXPECT_LT(key, T) << "an unmasked key past T, row " << row;
                if (key < T) ++count[std::size_t(row) * T + key];
              }
      }
    }
  return count;
}

TEST(FusedAttentionDq, WalkVisitsEveryCausalPairOnce) {
  for (int hs : {64, 128})
    for (int T : {1, 2, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200, 257}) {
      const std::vector<int> count = visits(T, hs);
      for (int row = 0; row < T; ++row)
        for (int key = 0; key < T; ++key)
          ASSERT_EQ(count[std::size_t(row) * T + key], key <= row ? 1 : 0)
              << "hs " << hs << " T " << T << " row " << row << " key " << key;
    }
}

float round_to_bf16(double x) { return round_bf16(float(x)); }

struct Case {
  std::vector<float> qkv, dout, lse, D;  // as the kernel reads them: bf16 values, fp32 lse and D
  std::vector<double> dq;                // float64 reference
};

// Causal attention and its dq in float64 from bf16-rounded inputs; lse and D = rowsum(dout∘out) as the
// forward and the preprocess hand them to the dQ pass (out rounded to bf16 first, as the kernel stores it).
Case make_case(int B, int T, int NH, int hs, unsigned seed) {
  const int C = NH * hs;
  const double scale = 1.0 / std::sqrt(double(hs));
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  Case c{std::vector<float>(std::size_t(B) * T * 3 * C), std::vector<float>(std::size_t(B) * T * C),
         std::vector<float>(std::size_t(B) * NH * T), std::vector<float>(std::size_t(B) * NH * T),
         std::vector<double>(std::size_t(B) * T * C, 0.0)};
  for (float& x : c.qkv) x = round_to_bf16(1.5 * normal(rng));  // scores of a few units: peaked rows
  for (float& x : c.dout) x = round_to_bf16(normal(rng));
  std::vector<double> p(T);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h) {
      auto at = [&](int t, int part) { return (std::size_t(b) * T + t) * 3 * C + std::size_t(part) * C + h * hs; };
      for (int t = 0; t < T; ++t) {
        double m = -INFINITY;
        for (int j = 0; j <= t; ++j) {
          double s = 0;
          for (int f = 0; f < hs; ++f) s += double(c.qkv[at(t, 0) + f]) * c.qkv[at(j, 1) + f];
          p[j] = s * scale;
          m = std::max(m, p[j]);
        }
        double sum = 0;
        for (int j = 0; j <= t; ++j) sum += std::exp(p[j] - m);
        const double lse = m + std::log(sum);
        const std::size_t stat = (std::size_t(b) * NH + h) * T + t, row = (std::size_t(b) * T + t) * C + h * hs;
        c.lse[stat] = float(lse);
        double D = 0;
        for (int f = 0; f < hs; ++f) {
          double o = 0;
          for (int j = 0; j <= t; ++j) o += std::exp(p[j] - lse) * c.qkv[at(j, 2) + f];
          D += double(c.dout[row + f]) * round_to_bf16(o);
        }
        c.D[stat] = float(D);
        for (int j = 0; j <= t; ++j) {
          double dp = 0;
          for (int f = 0; f < hs; ++f) dp += double(c.dout[row + f]) * c.qkv[at(j, 2) + f];
          const double ds = std::exp(p[j] - lse) * (dp - D);
          for (int f = 0; f < hs; ++f) c.dq[row + f] += scale * ds * c.qkv[at(j, 1) + f];
        }
      }
    }
  return c;
}

TEST(FusedAttentionDq, EmulationMatchesFloat64) {
  struct Shape {
    int B, T, NH, hs;
  };
  const Shape shapes[] = {{2, 1, 2, 64}, {1, 7, 2, 64},  {1, 64, 1, 64},  {2, 65, 1, 64},
                          {1, 200, 2, 64}, {1, 1, 1, 128}, {1, 63, 1, 128}, {1, 129, 2, 128}};
  unsigned seed = 1;
  for (const Shape& s : shapes) {
    const Case c = make_case(s.B, s.T, s.NH, s.hs, seed++);
    const std::vector<float> dq = dq_emulated(c.qkv, c.dout, c.lse, c.D, s.B, s.T, s.NH, s.hs);
    double max_ref = 0, max_err = 0;
    for (std::size_t i = 0; i < dq.size(); ++i) {
      ASSERT_TRUE(std::isfinite(dq[i])) << i;
      max_ref = std::max(max_ref, std::abs(c.dq[i]));
      max_err = std::max(max_err, std::abs(dq[i] - c.dq[i]));
    }
    // bf16 dS and dq (2^-9 relative each) over up to 200 keys: 2.2e-3 to 4.3e-3 seen; the GPU check allows 2e-2.
    EXPECT_LE(max_err / std::max(max_ref, 1e-3), 1e-2) << "B " << s.B << " T " << s.T << " NH " << s.NH << " hs " << s.hs;
    if (s.T > 1) EXPECT_GT(max_ref, 0.1) << "a case whose dq is all but zero checks nothing";
  }
}

}  // namespace
}  // namespace xp::attention_dq
