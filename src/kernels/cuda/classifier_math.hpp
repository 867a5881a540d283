#pragma once
// The fused classifier's arithmetic (softmax cross-entropy over bf16 logits), shared by the CUDA kernels
// (classifier.cu) and their host emulation (below; tests/kernels/test_fused_classifier.cpp).
//
// One block per row. A row of n columns starting at any 2-byte-aligned address splits into a scalar head
// (the columns before the first 16-byte boundary, < 8), 16-byte packs of 8 bf16, and a scalar tail (< 8):
// rows are Vl columns apart and Vl need not be a multiple of 8 (V = 1001, or tp-split vocabularies), so
// row starts are not all aligned. Thread t takes head column t, packs t, t + threads, ..., and tail
// column tail_start + t. Each thread keeps an online softmax state (m, s = Σ exp(x - m)); states combine
// as (max(m1, m2), s1·exp(m1 - m) + s2·exp(m2 - m)), a commutative op, so the block butterfly
// (simt::block_allreduce) leaves every thread the same bits. Exponentials are exp2f((x - m)·log2 e):
// under --use_fast_math one ex2.approx on the device, exp2 on the host; that and log are the only
// places where the emulation's bits may differ from the device's.
#include <cmath>
#include <cstdint>

#include "kernels/cuda/simt.hpp"

namespace xp::classifier {

using simt::bf16;
using simt::Floats;
using simt::Pack;

constexpr int block_threads = 512;       // threads per row on the device (50304 columns: ~12 packs each)
constexpr float lowest = -3.0e38f;       // the max of no columns, as the Kokkos kernels' team_max
constexpr float log2e = 1.4426950408889634f;
constexpr int pack = Pack<bf16>::size;   // 8 columns per 16-byte load or store

XP_HD float exp_of(float x) { return exp2f(x * log2e); }
XP_HD float log_of(float x) { return logf(x); }
XP_HD float max_of(float a, float b) { return a > b ? a : b; }
// A product nvcc may not fuse into an FMA: keeps OnlineCombine commutative to the bit.
XP_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

// Columns [0, head) scalar, [head, head + 8·packs) in 16-byte packs, [tail_start, n) scalar.
struct RowSplit {
  int head, packs, tail_start;
};
XP_HD RowSplit split_row(const void* row, int n) {
  const int misaligned = static_cast<int>(reinterpret_cast<std::uintptr_t>(row) & 15u);
  int head = misaligned == 0 ? 0 : (16 - misaligned) / static_cast<int>(sizeof(bf16));
  if (head > n) head = n;
  const int packs = (n - head) / pack;
  return RowSplit{head, packs, head + packs * pack};
}

// Runs f(column, value) over thread t's columns of the first n of `row` (values loaded as floats), and
// fpack(first_column, values[8]) over its packs in order. Packs are loaded two at a time so that each
// thread has 32 bytes in flight (64 KiB per SM at full occupancy, above the ~25 KiB the H200's bandwidth
// × latency asks for); the order of the arithmetic is that of one pack at a time.
template <class Scalar, class Packed>
XP_HD void for_thread_columns(const bf16* row, const RowSplit& split, int n, int t, int threads, Scalar f,
                              Packed fpack) {
  if (t < split.head) f(t, simt::load(row[t]));
  const auto unpack = [](const Pack<bf16>& loaded, float* x) {
    for (int i = 0; i < pack; ++i) x[i] = simt::load(loaded.v[i]);
  };
  int p = t;
  for (; p + threads < split.packs; p += 2 * threads) {
    const int first = split.head + p * pack, second = first + threads * pack;
    const Pack<bf16> a = simt::load_pack(row + first), b = simt::load_pack(row + second);
    float x[pack];
    unpack(a, x);
    fpack(first, x);
    unpack(b, x);
    fpack(second, x);
  }
  if (p < split.packs) {
    const int first = split.head + p * pack;
    float x[pack];
    unpack(simt::load_pack(row + first), x);
    fpack(first, x);
  }
  const int tail = split.tail_start + t;
  if (tail < n) f(tail, simt::load(row[tail]));
}

// ---- online softmax state -----------------------------------------------------------------------

using Online = Floats<2>;  // v[0] = running max m, v[1] = Σ exp(x - m)
XP_HD Online online_identity() { return Online{{lowest, 0.0f}}; }

struct OnlineCombine {
  XP_HD Online operator()(const Online& a, const Online& b) const {
    const float m = max_of(a.v[0], b.v[0]);
    return Online{{m, mul_rn(a.v[1], exp_of(a.v[0] - m)) + mul_rn(b.v[1], exp_of(b.v[0] - m))}};
  }
};

XP_HD void online_add(Online& state, float x) {
  const float m = max_of(state.v[0], x);
  state.v[1] = fmaf(state.v[1], exp_of(state.v[0] - m), exp_of(x - m));
  state.v[0] = m;
}

// A pack rescales the running sum once: its max first, then its 8 exponentials in column order.
XP_HD void online_add_pack(Online& state, const float* x) {
  float m = state.v[0];
  for (int i = 0; i < pack; ++i) m = max_of(m, x[i]);
  float sum = 0.0f;
  for (int i = 0; i < pack; ++i) sum += exp_of(x[i] - m);
  state.v[1] = fmaf(state.v[1], exp_of(state.v[0] - m), sum);
  state.v[0] = m;
}

// ---- per-thread work of each kernel -------------------------------------------------------------

// Thread t's (m, s) over the first `valid` columns: the fused forward, or a tp rank's local statistics.
XP_HD Online thread_online(const bf16* row, int valid, int t, int threads) {
  Online state = online_identity();
  for_thread_columns(
      row, split_row(row, valid), valid, t, threads, [&](int, float x) { online_add(state, x); },
      [&](int, const float* x) { online_add_pack(state, x); });
  return state;
}

// Thread t's max over the first `valid` columns (the tp path's first pass).
XP_HD float thread_max(const bf16* row, int valid, int t, int threads) {
  float m = lowest;
  for_thread_columns(
      row, split_row(row, valid), valid, t, threads, [&](int, float x) { m = max_of(m, x); },
      [&](int, const float* x) {
        for (int i = 0; i < pack; ++i) m = max_of(m, x[i]);
      });
  return m;
}

// Thread t's Σ exp(x - row_max) over the first `valid` columns (the tp path's second pass).
XP_HD float thread_sum_exp(const bf16* row, int valid, float row_max, int t, int threads) {
  float s = 0.0f;
  for_thread_columns(
      row, split_row(row, valid), valid, t, threads, [&](int, float x) { s += exp_of(x - row_max); },
      [&](int, const float* x) {
        float part = 0.0f;
        for (int i = 0; i < pack; ++i) part += exp_of(x[i] - row_max);
        s += part;
      });
  return s;
}

// What the forward's thread 0 writes from the row's combined state and its target logit.
struct RowLoss {
  float lse, loss;
};
XP_HD RowLoss row_loss(const Online& total, float target_logit) {
  const float lse = total.v[0] + log_of(total.v[1]);
  return RowLoss{lse, lse - target_logit};
}

// dlogits for column v: dloss·(softmax - onehot) on the valid columns, 0 on the padding.
XP_HD float dlogit(float x, int v, int valid, int target, float lse, float dloss) {
  const float softmax = v < valid ? exp_of(x - lse) : 0.0f;
  return dloss * (softmax - (v == target ? 1.0f : 0.0f));
}

// Thread t's share of the backward over all Vl columns of a row: reads each logit once and writes its
// gradient in place of the same pack (dlogits may alias logits).
XP_HD void thread_bwd(bf16* drow, const bf16* row, int valid, int Vl, int target, float lse, float dloss, int t,
                      int threads) {
  const RowSplit split = split_row(row, Vl);
  for_thread_columns(
      row, split, Vl, t, threads,
      [&](int v, float x) { drow[v] = simt::store_bf16(dlogit(x, v, valid, target, lse, dloss)); },
      [&](int first, const float* x) {
        Pack<bf16> out;
        for (int i = 0; i < pack; ++i) out.v[i] = simt::store_bf16(dlogit(x[i], first + i, valid, target, lse, dloss));
        simt::store_pack(drow + first, out);
      });
}

// ---- host emulation: the kernels' decomposition, block by block (host functions) ----------------

// One row's block-reduced (m, s), as every device thread of the fused forward ends with it.
inline Online emulate_row_online(const bf16* row, int valid, int threads) {
  Online states[1024];
  for (int t = 0; t < threads; ++t) states[t] = thread_online(row, valid, t, threads);
  return simt::block_allreduce_emulated(states, threads, OnlineCombine{}, online_identity());
}

// cross_entropy_fwd: losses, lse (N) from logits (N, Vp) with the first V columns real.
inline void emulate_fwd(float* losses, float* lse, const bf16* logits, const int32_t* targets, int N, int V, int Vp,
                        int threads = block_threads) {
  for (int n = 0; n < N; ++n) {
    const bf16* row = logits + std::int64_t{n} * Vp;
    const RowLoss out = row_loss(emulate_row_online(row, V, threads), simt::load(row[targets[n]]));
    lse[n] = out.lse;
    losses[n] = out.loss;
  }
}

// cross_entropy_row_max and cross_entropy_sum_exp: one rank's share of the tp path's two passes.
inline void emulate_row_max(float* row_max, const bf16* logits, int N, int valid, int Vl, int threads = block_threads) {
  float values[1024];
  for (int n = 0; n < N; ++n) {
    const bf16* row = logits + std::int64_t{n} * Vl;
    for (int t = 0; t < threads; ++t) values[t] = thread_max(row, valid, t, threads);
    row_max[n] = simt::block_allreduce_emulated(values, threads, simt::Max{}, lowest);
  }
}

inline void emulate_sum_exp(float* sum_exp, const bf16* logits, const float* row_max, int N, int valid, int Vl,
                            int threads = block_threads) {
  float values[1024];
  for (int n = 0; n < N; ++n) {
    const bf16* row = logits + std::int64_t{n} * Vl;
    for (int t = 0; t < threads; ++t) values[t] = thread_sum_exp(row, valid, row_max[n], t, threads);
    sum_exp[n] = simt::block_allreduce_emulated(values, threads, simt::Sum{}, 0.0f);
  }
}

// cross_entropy_fwd_bwd: the forward's row statistics and loss, then the backward's dlogits (N, Vp) from the
// same lse, as the fused kernel does: the target logit is read before the block reduction (the kernel's
// barrier), so dlogits may alias logits. The same functions as emulate_fwd then emulate_bwd: the same bits.
inline void emulate_fwd_bwd(float* losses, float* lse, bf16* dlogits, const bf16* logits, const int32_t* targets,
                            float dloss, int N, int V, int Vp, int threads = block_threads) {
  for (int n = 0; n < N; ++n) {
    const std::int64_t offset = std::int64_t{n} * Vp;
    const float target_logit = simt::load(logits[offset + targets[n]]);
    const RowLoss out = row_loss(emulate_row_online(logits + offset, V, threads), target_logit);
    lse[n] = out.lse;
    losses[n] = out.loss;
    for (int t = 0; t < threads; ++t)
      thread_bwd(dlogits + offset, logits + offset, V, Vp, targets[n], out.lse, dloss, t, threads);
  }
}

// cross_entropy_bwd: dlogits (N, Vl), which may alias logits.
inline void emulate_bwd(bf16* dlogits, const bf16* logits, const float* lse, const int32_t* targets, float dloss, int N,
                        int valid, int Vl, int vocab_start, int threads = block_threads) {
  for (int n = 0; n < N; ++n) {
    const std::int64_t offset = std::int64_t{n} * Vl;
    for (int t = 0; t < threads; ++t)
      thread_bwd(dlogits + offset, logits + offset, valid, Vl, targets[n] - vocab_start, lse[n], dloss, t, threads);
  }
}

}  // namespace xp::classifier
