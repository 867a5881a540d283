#pragma once
// Host emulation of the fused LayerNorm kernels (layernorm.cu): the same per-lane functions of
// layernorm_math.hpp, looped over rows, warps and lanes, with the warp butterflies and the backward's
// block and last-pass sums in the device's order. For tests (tests/kernels/test_fused_layernorm.cpp).
#include <vector>

#include "layernorm_math.hpp"

namespace xp::fused_layernorm {

// layernorm.cu's forward kernel: x == nullptr for layernorm_fwd, else residual_layernorm_fwd.
template <class T>
void layernorm_fwd_emulated(T* residual_out, T* out, float* mean, float* rstd, const T* inp, const T* x,
                            const T* xbias, const T* weight, const T* bias, int N, int C, float eps) {
  const bool packed = packable<T>(C, residual_out, out, inp, x, xbias, weight, bias);
  with_slots(slots_for<T>(C), [&](auto slots) {
    constexpr int S = decltype(slots)::value;
    std::vector<LaneRow<T, S>> rows(warp_size);
    float lanes[warp_size];
    for (int n = 0; n < N; ++n) {
      const long long offset = static_cast<long long>(n) * C;
      for (int lane = 0; lane < warp_size; ++lane)
        lanes[lane] = fwd_load(rows[lane], x ? residual_out + offset : nullptr, inp + offset,
                               x ? x + offset : nullptr, xbias, packed, lane, C);
      simt::warp_allreduce_emulated(lanes, ExactSum{});
      const float m = row_mean(lanes[0], C);
      for (int lane = 0; lane < warp_size; ++lane) lanes[lane] = fwd_centred_squares(rows[lane], m, packed, lane, C);
      simt::warp_allreduce_emulated(lanes, ExactSum{});
      const float s = row_rstd(lanes[0], C, eps);
      for (int lane = 0; lane < warp_size; ++lane) fwd_store(out + offset, rows[lane], m, s, weight, bias, packed, lane, C);
      mean[n] = m;
      rstd[n] = s;
    }
  });
}

// layernorm.cu's backward kernel and last pass, on `blocks` blocks (the device uses bwd_blocks(N); other
// counts show what the bits depend on).
template <class T>
void layernorm_bwd_emulated(T* dinp, float* dweight, float* dbias, const T* dout, const T* inp, const T* weight,
                            const float* mean, const float* rstd, int N, int C, int blocks) {
  const bool packed = packable<T>(C, dinp, dout, inp, weight);
  std::vector<float> partials(static_cast<size_t>(blocks) * 2 * C);
  with_slots(slots_for<T>(C), [&](auto slots) {
    constexpr int S = decltype(slots)::value;
    std::vector<LanePartials<T, S>> acc(warp_size);
    std::vector<LaneRow<T, S>> dy(warp_size), x(warp_size);
    simt::Floats<2> lanes[warp_size];
    for (int block = 0; block < blocks; ++block) {
      float* block_sums = partials.data() + static_cast<size_t>(block) * 2 * C;
      for (int warp = 0; warp < warps_per_block; ++warp) {
        for (int lane = 0; lane < warp_size; ++lane) zero(acc[lane]);
        for (int n = block * warps_per_block + warp; n < N; n += blocks * warps_per_block) {
          const long long offset = static_cast<long long>(n) * C;
          for (int lane = 0; lane < warp_size; ++lane)
            lanes[lane] = bwd_load(dy[lane], x[lane], acc[lane], dout + offset, inp + offset, weight, mean[n],
                                   rstd[n], packed, lane, C);
          simt::warp_allreduce_emulated(lanes, ExactSum{});
          for (int lane = 0; lane < warp_size; ++lane)
            bwd_store(dinp + offset, dy[lane], x[lane], weight, mean[n], rstd[n], lanes[0], packed, lane, C);
        }
        for (int lane = 0; lane < warp_size; ++lane) bwd_add_partials(block_sums, acc[lane], warp == 0, packed, lane, C);
      }
    }
  });
  for (int j = 0; j < 2 * C; ++j) {
    float& param = j < C ? dweight[j] : dbias[j - C];
    param = exact::add(param, partial_total(partials.data(), blocks, C, j));
  }
}

}  // namespace xp::fused_layernorm
