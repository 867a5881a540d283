#pragma once
// The deterministic dQ pass's decomposition and per-element arithmetic (flash_attention_bwd_dq.cu), as
// XP_FA_HD functions the kernel calls, and a host emulation that walks the same CTAs, warps, key tiles and
// chunks with the same skips, masks and bf16 rounding points (tests/kernels/test_fused_attention_dq.cpp
// checks it against float64). The emulation sums each mma's products in its own order, so it reproduces
// the decomposition, not the device's bits.
// Free of Kokkos (unlike simt.hpp): flash_attention_bwd_dq.cu is compiled by nvcc without it.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__CUDACC__)
#define XP_FA_HD __host__ __device__ __forceinline__
#else
#define XP_FA_HD inline
#endif

namespace xp::attention_dq {

constexpr int key_tile = 64;   // keys per K/V tile in shared memory (kKeyTile)
constexpr int key_chunk = 16;  // keys per S/dP register tile
constexpr float log2e = 1.4426950408889634f;

// Query rows per CTA: 16 per warp, 8 warps for hs 64, 4 for hs 128.
XP_FA_HD constexpr int warps_per_cta(int hs) { return hs == 64 ? 8 : 4; }
XP_FA_HD constexpr int rows_per_cta(int hs) { return 16 * warps_per_cta(hs); }
// Key tiles a CTA whose first query is q0 walks: those holding a key ≤ its last row (and < T).
XP_FA_HD constexpr int key_tiles(int T, int q0, int rows) {
  const int all = (T + key_tile - 1) / key_tile, causal = (q0 + rows - 1) / key_tile + 1;
  return all < causal ? all : causal;
}
// Warp-uniform: does the warp of query rows [row0, row0+16) see the keys from key0 on? (Also ends the
// walk over a tile's chunks at the diagonal.)
XP_FA_HD constexpr bool warp_sees(int row0, int key0) { return key0 <= row0 + 15; }
// Does the 64-key tile at k0 reach past the warp's first row? Only those need the causal mask, which
// also hides keys ≥ T (they are past every row < T).
XP_FA_HD constexpr bool tile_needs_mask(int row0, int k0) { return k0 + key_tile - 1 > row0; }
XP_FA_HD constexpr bool masked(bool tile_mask, int key, int row) { return tile_mask && key > row; }
// P of one (query, key) is 2^exponent, recomputed from the forward's lse: s = q·k, scale·log2e, lse·log2e.
XP_FA_HD float p_exponent(float s, float scale_log2, float lse_log2) { return fmaf(s, scale_log2, -lse_log2); }
// dS = P∘(dP − D), the gradient of the scaled score: dp = dout·v, d = rowsum(dout∘out) of the query.
XP_FA_HD float dscore(float p, float dp, float d) { return p * (dp - d); }

// Round to the nearest bf16 (ties to even), as __floats2bfloat162_rn does for finite values.
inline float round_bf16(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
  std::memcpy(&x, &bits, sizeof bits);
  return x;
}

// Host emulation of the whole pass in float: dq (B,T,C) from qkv (B,T,3C), dout (B,T,C), lse and D
// (B,NH,T), all values already bf16-rounded where the kernel reads bf16. dS is rounded to bf16 where the
// kernel packs it into an A fragment; dq is scaled and rounded to bf16 once at the end.
inline std::vector<float> dq_emulated(const std::vector<float>& qkv, const std::vector<float>& dout,
                                      const std::vector<float>& lse, const std::vector<float>& D, int B, int T,
                                      int NH, int hs) {
  const int C = NH * hs, rows = rows_per_cta(hs);
  const float scale = 1.f / std::sqrt(float(hs)), scale_log2 = scale * log2e;
  std::vector<float> dq(std::size_t(B) * T * C, 0.f), acc(std::size_t(16) * hs);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int q0 = 0; q0 < T; q0 += rows)
        for (int warp = 0; warp < warps_per_cta(hs); ++warp) {
          const int row0 = q0 + 16 * warp;
          if (row0 >= T) continue;
          std::fill(acc.begin(), acc.end(), 0.f);
          auto qkv_at = [&](int t, int part, int d) {  // rows ≥ T are the kernel's zero-filled tile rows
            return t < T ? qkv[(std::size_t(b) * T + t) * 3 * C + std::size_t(part) * C + h * hs + d] : 0.f;
          };
          for (int j = 0; j < key_tiles(T, q0, rows); ++j) {
            const int k0 = j * key_tile;
            if (!warp_sees(row0, k0)) continue;
            const bool tile_mask = tile_needs_mask(row0, k0);
            for (int kc = 0; kc < key_tile && warp_sees(row0, k0 + kc); kc += key_chunk)
              for (int r = 0; r < 16; ++r) {
                const int row = row0 + r;
                const std::size_t stat = (std::size_t(b) * NH + h) * T + row;
                const float lse_log2 = row < T ? lse[stat] * log2e : INFINITY, d = row < T ? D[stat] : 0.f;
                for (int key = k0 + kc; key < k0 + kc + key_chunk; ++key) {
                  float s = 0.f, dp = 0.f;
                  for (int f = 0; f < hs; ++f) {
                    const float dout_rf = row < T ? dout[(std::size_t(b) * T + row) * C + h * hs + f] : 0.f;
                    s += qkv_at(row, 0, f) * qkv_at(key, 1, f);
                    dp += dout_rf * qkv_at(key, 2, f);
                  }
                  const float ds = masked(tile_mask, key, row) ? 0.f
                                                                : round_bf16(dscore(std::exp2(p_exponent(s, scale_log2, lse_log2)), dp, d));
                  for (int f = 0; f < hs; ++f) acc[std::size_t(r) * hs + f] += ds * qkv_at(key, 1, f);
                }
              }
          }
          for (int r = 0; r < 16 && row0 + r < T; ++r)
            for (int f = 0; f < hs; ++f)
              dq[(std::size_t(b) * T + row0 + r) * C + h * hs + f] = round_bf16(acc[std::size_t(r) * hs + f] * scale);
        }
  return dq;
}

}  // namespace xp::attention_dq
