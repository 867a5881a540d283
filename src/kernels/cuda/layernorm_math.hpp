#pragma once
// The fused LayerNorm kernels' arithmetic (src/kernels/cuda/layernorm.cu) and its host emulation, one
// source for both (simt.hpp). One warp per row: lane `lane` holds `slots` packs of the row, channels
// width·(lane + 32·slot) + [0, width) (width = 8 bf16): one coalesced 16-byte load per pack, or, when C is not
// a multiple of the pack width or a pointer is misaligned, scalar loads of the same channels (the last pack
// of a row partly past C). The row stays in registers between the passes.
//
// Forward: [residual_out = residual + (x + bias), rounded as bias_residual_fwd does], then sum → warp
// butterfly → mean; Σ (v - mean)² over the registers (two passes, not E[v²] - mean²) → rstd; out.
// Backward: per row, Σ dy·w and Σ dy·w·xhat → warp butterfly, then dinp += rstd·(dy·w - mean1 - xhat·mean2).
// Each lane also keeps dweight/dbias partials for its channels over the rows its warp visits (rows
// g, g + G·warps, ... for global warp g of G blocks); the block adds its warps' partials in warp order
// through shared memory and writes them to partials[block] (fp32); a last pass adds the blocks in block
// order. No float atomics: the bits depend on (N, C) only — G is a function of N, not of the device —
// and not on the order in which the GPU runs blocks, nor (forward and backward) on the pointers'
// alignment. Registers (sm_90, nvcc 13, ptxas -v): forward ≤ 99; backward 171 at C = 768 (one block of
// 8 warps per SM) and 255 with a 56-byte spill at C = 1600 — unmeasured; if the backward is far from its
// floor, template on `packed` or keep the partials in per-warp shared memory.
//
// All float operations go through exact:: (round-to-nearest intrinsics on the device, so nvcc's fast
// math neither contracts nor approximates them): the emulation gives the device's bits.
#include <cmath>
#include <type_traits>

#include "simt.hpp"

namespace xp::fused_layernorm {

using simt::bf16;
using simt::Pack;
using simt::warp_size;

// Loops over a lane's slots and pack elements unroll, so the register arrays stay in registers.
#if defined(__CUDA_ARCH__)
#define XP_UNROLL _Pragma("unroll")
#else
#define XP_UNROLL
#endif

constexpr int warps_per_block = 8;  // rows per forward block; each warp one row at a time
constexpr int threads_per_block = warps_per_block * warp_size;
constexpr int max_slots = 8;           // packs per lane held in registers: C ≤ 32·8·8 = 2048 for bf16
constexpr int max_param_blocks = 512;  // backward blocks: bounds the partials (512·2C floats) and the last pass

namespace exact {
#if defined(__CUDA_ARCH__)
XP_HD float add(float a, float b) { return __fadd_rn(a, b); }
XP_HD float sub(float a, float b) { return __fsub_rn(a, b); }
XP_HD float mul(float a, float b) { return __fmul_rn(a, b); }
XP_HD float fma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
XP_HD float div(float a, float b) { return __fdiv_rn(a, b); }
XP_HD float sqrt(float a) { return __fsqrt_rn(a); }
#else
XP_HD float add(float a, float b) { return a + b; }
XP_HD float sub(float a, float b) { return a - b; }
XP_HD float mul(float a, float b) { return a * b; }
XP_HD float fma(float a, float b, float c) { return std::fma(a, b, c); }
XP_HD float div(float a, float b) { return a / b; }
XP_HD float sqrt(float a) { return std::sqrt(a); }
#endif
}  // namespace exact

template <class T>
constexpr int width = Pack<T>::size;

// Packs per lane for a row of C channels; the kernels run in registers where it is ≤ max_slots.
template <class T>
XP_HD int slots_for(int C) { return (C + warp_size * width<T> - 1) / (warp_size * width<T>); }
template <class T>
XP_HD bool fits(int C) { return C >= 1 && slots_for<T>(C) <= max_slots; }

// Element i of slot `slot` of lane `lane`. The same channels whether the slot is one 16-byte load or
// `width` scalar ones, so the bits never depend on the pointers' alignment.
template <class T>
XP_HD int channel(int lane, int slot, int i) { return width<T> * (lane + warp_size * slot) + i; }

// Whether element i of the slot is a channel of the row: for 16-byte loads (C a multiple of the width)
// one test per slot.
template <class T>
XP_HD bool in_row(bool packed, int lane, int slot, int i, int C) {
  return channel<T>(lane, slot, packed ? 0 : i) < C;
}

XP_HD bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }
// 16-byte loads need every row start aligned: C a multiple of the pack width, base pointers aligned.
template <class T, class... Pointers>
XP_HD bool packable(int C, const Pointers*... pointers) {
  return C % width<T> == 0 && (aligned16(pointers) && ...);
}

// Calls f(std::integral_constant<int, S>{}) for S = slots (1 ≤ slots ≤ max_slots): the kernels' register
// arrays need S at compile time.
template <class F>
void with_slots(int slots, F&& f) {
  switch (slots) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    default: return f(std::integral_constant<int, 8>{});
  }
}
static_assert(max_slots == 8, "with_slots covers 1..8");

// The butterflies' addition (one float, or the backward's two sums together), exact like the rest.
struct ExactSum {
  XP_HD float operator()(float a, float b) const { return exact::add(a, b); }
  XP_HD simt::Floats<2> operator()(const simt::Floats<2>& a, const simt::Floats<2>& b) const {
    return {{exact::add(a.v[0], b.v[0]), exact::add(a.v[1], b.v[1])}};
  }
};

template <class T>
XP_HD Pack<T> zero_pack() {
  Pack<T> p;
  XP_UNROLL
  for (int i = 0; i < width<T>; ++i) p.v[i] = simt::store<T>(0.0f);
  return p;
}

// Slot `slot` of this lane's part of `row` (C channels); channels ≥ C read as 0.
template <class T>
XP_HD Pack<T> load_slot(const T* row, bool packed, int lane, int slot, int C) {
  if (packed) {
    const int first = channel<T>(lane, slot, 0);
    return first < C ? simt::load_pack(row + first) : zero_pack<T>();
  }
  Pack<T> p;
  XP_UNROLL
  for (int i = 0; i < width<T>; ++i) {
    const int c = channel<T>(lane, slot, i);
    p.v[i] = c < C ? row[c] : simt::store<T>(0.0f);
  }
  return p;
}

template <class T>
XP_HD void store_slot(T* row, const Pack<T>& p, bool packed, int lane, int slot, int C) {
  if (packed) {
    const int first = channel<T>(lane, slot, 0);
    if (first < C) simt::store_pack(row + first, p);
    return;
  }
  XP_UNROLL
  for (int i = 0; i < width<T>; ++i) {
    const int c = channel<T>(lane, slot, i);
    if (c < C) row[c] = p.v[i];
  }
}

// One lane's share of a row, as stored (bf16 in the GPU build).
template <class T, int S>
struct LaneRow {
  Pack<T> slot[S];
};

// ---- forward -----------------------------------------------------------------------------------

// Loads the lane's share of the row to normalise: inp, or (x given) residual_out = inp + (x + xbias)
// rounded to T and stored, the order of bias_residual_fwd. Returns the lane's sum of the stored values.
template <class T, int S>
XP_HD float fwd_load(LaneRow<T, S>& r, T* residual_out, const T* inp, const T* x, const T* xbias, bool packed,
                     int lane, int C) {
  float sum = 0.0f;
  XP_UNROLL
  for (int s = 0; s < S; ++s) {
    r.slot[s] = load_slot(inp, packed, lane, s, C);
    if (x != nullptr) {
      const Pack<T> xs = load_slot(x, packed, lane, s, C), bs = load_slot(xbias, packed, lane, s, C);
      XP_UNROLL
      for (int i = 0; i < width<T>; ++i)
        r.slot[s].v[i] =
            simt::store<T>(exact::add(simt::load(r.slot[s].v[i]), exact::add(simt::load(xs.v[i]), simt::load(bs.v[i]))));
      store_slot(residual_out, r.slot[s], packed, lane, s, C);
    }
    XP_UNROLL
    for (int i = 0; i < width<T>; ++i) sum = exact::add(sum, simt::load(r.slot[s].v[i]));  // channels ≥ C add 0
  }
  return sum;
}

XP_HD float row_mean(float sum, int C) { return exact::div(sum, float(C)); }

template <class T, int S>
XP_HD float fwd_centred_squares(const LaneRow<T, S>& r, float mean, bool packed, int lane, int C) {
  float sum = 0.0f;
  XP_UNROLL
  for (int s = 0; s < S; ++s)
    XP_UNROLL
    for (int i = 0; i < width<T>; ++i)
      if (in_row<T>(packed, lane, s, i, C)) {
        const float centred = exact::sub(simt::load(r.slot[s].v[i]), mean);
        sum = exact::add(sum, exact::mul(centred, centred));
      }
  return sum;
}

XP_HD float row_rstd(float centred_squares, int C, float eps) {
  return exact::div(1.0f, exact::sqrt(exact::add(exact::div(centred_squares, float(C)), eps)));
}

// out = (v - mean)·rstd·weight + bias.
template <class T, int S>
XP_HD void fwd_store(T* out, const LaneRow<T, S>& r, float mean, float rstd, const T* weight, const T* bias,
                     bool packed, int lane, int C) {
  XP_UNROLL
  for (int s = 0; s < S; ++s) {
    const Pack<T> w = load_slot(weight, packed, lane, s, C), b = load_slot(bias, packed, lane, s, C);
    Pack<T> y;
    XP_UNROLL
    for (int i = 0; i < width<T>; ++i) {
      const float xhat = exact::mul(exact::sub(simt::load(r.slot[s].v[i]), mean), rstd);
      y.v[i] = simt::store<T>(exact::fma(xhat, simt::load(w.v[i]), simt::load(b.v[i])));
    }
    store_slot(out, y, packed, lane, s, C);
  }
}

// ---- backward ----------------------------------------------------------------------------------

// A lane's dweight / dbias partials for its channels (the same layout as its LaneRow).
template <class T, int S>
struct LanePartials {
  float dweight[S][width<T>];
  float dbias[S][width<T>];
};

template <class T, int S>
XP_HD void zero(LanePartials<T, S>& p) {
  XP_UNROLL
  for (int s = 0; s < S; ++s)
    XP_UNROLL
    for (int i = 0; i < width<T>; ++i) p.dweight[s][i] = p.dbias[s][i] = 0.0f;
}

// Loads dy and x, adds dy·xhat and dy to the partials; returns the lane's Σ dy·w and Σ dy·w·xhat.
template <class T, int S>
XP_HD simt::Floats<2> bwd_load(LaneRow<T, S>& dy, LaneRow<T, S>& x, LanePartials<T, S>& acc, const T* dout_row,
                               const T* inp_row, const T* weight, float mean, float rstd, bool packed, int lane,
                               int C) {
  simt::Floats<2> sums{{0.0f, 0.0f}};
  XP_UNROLL
  for (int s = 0; s < S; ++s) {
    dy.slot[s] = load_slot(dout_row, packed, lane, s, C);
    x.slot[s] = load_slot(inp_row, packed, lane, s, C);
    const Pack<T> w = load_slot(weight, packed, lane, s, C);
    XP_UNROLL
    for (int i = 0; i < width<T>; ++i) {
      if (!in_row<T>(packed, lane, s, i, C)) continue;
      const float d = simt::load(dy.slot[s].v[i]);
      const float xhat = exact::mul(exact::sub(simt::load(x.slot[s].v[i]), mean), rstd);
      const float dnorm = exact::mul(d, simt::load(w.v[i]));
      sums.v[0] = exact::add(sums.v[0], dnorm);
      sums.v[1] = exact::add(sums.v[1], exact::mul(dnorm, xhat));
      acc.dweight[s][i] = exact::add(acc.dweight[s][i], exact::mul(d, xhat));
      acc.dbias[s][i] = exact::add(acc.dbias[s][i], d);
    }
  }
  return sums;
}

// dinp += rstd·(dy·w - mean(dy·w) - xhat·mean(dy·w·xhat)); `sums` are the row's (after the butterfly).
template <class T, int S>
XP_HD void bwd_store(T* dinp_row, const LaneRow<T, S>& dy, const LaneRow<T, S>& x, const T* weight, float mean,
                     float rstd, simt::Floats<2> sums, bool packed, int lane, int C) {
  const float dnorm_mean = row_mean(sums.v[0], C), dnorm_xhat_mean = row_mean(sums.v[1], C);
  XP_UNROLL
  for (int s = 0; s < S; ++s) {
    const Pack<T> w = load_slot(weight, packed, lane, s, C);
    Pack<T> dx = load_slot(dinp_row, packed, lane, s, C);
    XP_UNROLL
    for (int i = 0; i < width<T>; ++i) {
      const float xhat = exact::mul(exact::sub(simt::load(x.slot[s].v[i]), mean), rstd);
      const float dnorm = exact::mul(simt::load(dy.slot[s].v[i]), simt::load(w.v[i]));
      const float delta = exact::sub(exact::sub(dnorm, dnorm_mean), exact::mul(xhat, dnorm_xhat_mean));
      dx.v[i] = simt::store<T>(exact::add(simt::load(dx.v[i]), exact::mul(rstd, delta)));
    }
    store_slot(dinp_row, dx, packed, lane, s, C);
  }
}

// Adds a warp's partials into the block's (2C floats: dweight then dbias); the first warp writes them.
template <class T, int S>
XP_HD void bwd_add_partials(float* block_sums, const LanePartials<T, S>& acc, bool first_warp, bool packed,
                            int lane, int C) {
  XP_UNROLL
  for (int s = 0; s < S; ++s)
    XP_UNROLL
    for (int i = 0; i < width<T>; ++i) {
      if (!in_row<T>(packed, lane, s, i, C)) continue;
      const int c = channel<T>(lane, s, i);
      block_sums[c] = first_warp ? acc.dweight[s][i] : exact::add(block_sums[c], acc.dweight[s][i]);
      block_sums[C + c] = first_warp ? acc.dbias[s][i] : exact::add(block_sums[C + c], acc.dbias[s][i]);
    }
}

// Backward geometry, a function of N only (so the sums are the same on any GPU).
inline int bwd_blocks(int N) {
  const int blocks = (N + warps_per_block - 1) / warps_per_block;
  return blocks < max_param_blocks ? blocks : max_param_blocks;
}
inline long long bwd_partials_floats(int N, int C) { return static_cast<long long>(bwd_blocks(N)) * 2 * C; }

// The last pass for one of the 2C outputs j: params[j] += Σ over blocks of partials[block][j], in block order.
XP_HD float partial_total(const float* partials, int blocks, int C, int j) {
  float total = partials[j];
  for (int b = 1; b < blocks; ++b) total = exact::add(total, partials[static_cast<long long>(b) * 2 * C + j]);
  return total;
}

}  // namespace xp::fused_layernorm
