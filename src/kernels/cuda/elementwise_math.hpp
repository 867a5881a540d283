#pragma once
// The arithmetic of the fused element-wise kernels (elementwise.cu) and its host emulation: one source,
// compiled by nvcc for the GPU and by g++ for tests/kernels/test_fused_elementwise.cpp.
//
// Element-wise ops (bias + residual, bias add, GELU forward/backward, fp32 → bf16) are structs with
// element(i) (one value, the scalar path) and pack(p) (values 8p..8p+7: 16-byte loads and stores, one
// Pack<bf16> or two float4) and aligned() (every pointer 16-byte aligned and, where a bias repeats every C
// values, C % 8 == 0). A kernel thread t of a grid of `stride` threads runs elementwise_thread: packs
// t, t + stride, ... then the tail past the last whole pack; unaligned ops take the scalar path throughout.
// Each element's arithmetic is the Kokkos kernel's (src/kernels/elementwise.cpp, gelu.cpp), term for term.
//
// The column sum (bias gradients) sums (C) += Σ_n x (N,C) in the order of fixed_order_column_sums
// (src/kernels/fixed_order_sum.hpp): rows cut into chunks of column_chunk, each (chunk, column) summed in
// row order into an fp32 partial, then per column sums[c] + partial[0] + partial[1] + ... in chunk order.
// No atomics: the bits depend on N, C and x only — not on the run, the grid or the GPU — and equal the
// Kokkos kernel's.
#include <cmath>
#include <cstdint>

#include "kernels/cuda/simt.hpp"

namespace xp::simt {

// GPT-2's tanh-approximation GELU: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))); gelu.cpp uses these too.
constexpr float gelu_scale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float gelu_cube = 0.044715f;

// The accurate tanhf on the device (CUDA: ≤ 2 ulp; elementwise.cu is compiled without --use_fast_math,
// which would make it tanh.approx.f32, relative error 2^-11), std::tanh on the host: they differ by ≤ 2 ulp
// of fp32, i.e. ≤ 2.4e-7·|t|, far below the bf16 output's half ulp (2^-8 relative).
XP_HD float gelu_tanh(float u) {
#if defined(__CUDA_ARCH__)
  return tanhf(u);
#else
  return std::tanh(u);
#endif
}

XP_HD float gelu_value(float x) { return 0.5f * x * (1.0f + gelu_tanh(gelu_scale * (x + gelu_cube * x * x * x))); }

// GELU'(x)·dout.
XP_HD float gelu_grad(float x, float dout) {
  const float u = gelu_scale * (x + gelu_cube * x * x * x);
  const float t = gelu_tanh(u);
  const float sech2 = 1.0f - t * t;
  const float du_dx = gelu_scale * (1.0f + 3.0f * gelu_cube * x * x);
  return (0.5f * (1.0f + t) + 0.5f * x * sech2 * du_dx) * dout;
}

constexpr int pack_width = Pack<bf16>::size;  // 8 bf16 = 16 bytes

XP_HD bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// out (N,C) = residual + (x + bias[c]); out may alias residual.
struct BiasResidual {
  bf16* out;
  const bf16* residual;
  const bf16* x;
  const bf16* bias;
  int C;
  XP_HD bool aligned() const {
    return C % pack_width == 0 && aligned16(out) && aligned16(residual) && aligned16(x) && aligned16(bias);
  }
  XP_HD void element(int64_t i) const { out[i] = store_bf16(load(residual[i]) + (load(x[i]) + load(bias[i % C]))); }
  XP_HD void pack(int64_t p) const {
    const int64_t i = p * pack_width;
    const Pack<bf16> r = load_pack(residual + i), v = load_pack(x + i), b = load_pack(bias + i % C);
    Pack<bf16> o;
    for (int j = 0; j < pack_width; ++j) o.v[j] = store_bf16(load(r.v[j]) + (load(v.v[j]) + load(b.v[j])));
    store_pack(out + i, o);
  }
};

// out (N,C) += bias[c] (a GEMM's bias where no epilogue takes it).
struct BiasAdd {
  bf16* out;
  const bf16* bias;
  int C;
  XP_HD bool aligned() const { return C % pack_width == 0 && aligned16(out) && aligned16(bias); }
  XP_HD void element(int64_t i) const { out[i] = store_bf16(load(out[i]) + load(bias[i % C])); }
  XP_HD void pack(int64_t p) const {
    const int64_t i = p * pack_width;
    const Pack<bf16> v = load_pack(out + i), b = load_pack(bias + i % C);
    Pack<bf16> o;
    for (int j = 0; j < pack_width; ++j) o.v[j] = store_bf16(load(v.v[j]) + load(b.v[j]));
    store_pack(out + i, o);
  }
};

// out (n) = GELU(inp).
struct GeluForward {
  bf16* out;
  const bf16* inp;
  XP_HD bool aligned() const { return aligned16(out) && aligned16(inp); }
  XP_HD void element(int64_t i) const { out[i] = store_bf16(gelu_value(load(inp[i]))); }
  XP_HD void pack(int64_t p) const {
    const int64_t i = p * pack_width;
    const Pack<bf16> x = load_pack(inp + i);
    Pack<bf16> o;
    for (int j = 0; j < pack_width; ++j) o.v[j] = store_bf16(gelu_value(load(x.v[j])));
    store_pack(out + i, o);
  }
};

// dinp (n) = GELU'(inp)·dout; dinp may alias dout.
struct GeluBackward {
  bf16* dinp;
  const bf16* inp;
  const bf16* dout;
  XP_HD bool aligned() const { return aligned16(dinp) && aligned16(inp) && aligned16(dout); }
  XP_HD void element(int64_t i) const { dinp[i] = store_bf16(gelu_grad(load(inp[i]), load(dout[i]))); }
  XP_HD void pack(int64_t p) const {
    const int64_t i = p * pack_width;
    const Pack<bf16> x = load_pack(inp + i), d = load_pack(dout + i);
    Pack<bf16> o;
    for (int j = 0; j < pack_width; ++j) o.v[j] = store_bf16(gelu_grad(load(x.v[j]), load(d.v[j])));
    store_pack(dinp + i, o);
  }
};

// out (n) = x rounded to bf16 (the compute copy of the fp32 master weights): two float4 in, one pack out.
struct ConvertToBf16 {
  bf16* out;
  const float* x;
  XP_HD bool aligned() const { return aligned16(out) && aligned16(x); }
  XP_HD void element(int64_t i) const { out[i] = store_bf16(x[i]); }
  XP_HD void pack(int64_t p) const {
    const int64_t i = p * pack_width;
    const Pack<float> lo = load_pack(x + i), hi = load_pack(x + i + Pack<float>::size);
    Pack<bf16> o;
    for (int j = 0; j < Pack<float>::size; ++j) {
      o.v[j] = store_bf16(lo.v[j]);
      o.v[j + Pack<float>::size] = store_bf16(hi.v[j]);
    }
    store_pack(out + i, o);
  }
};

// Thread `thread` of `threads` (grid-stride) over n values: whole packs first, then the tail.
template <class Op>
XP_HD void elementwise_thread(const Op& op, int64_t n, bool vector, int64_t thread, int64_t threads) {
  int64_t first_scalar = 0;
  if (vector) {
    const int64_t packs = n / pack_width;
    for (int64_t p = thread; p < packs; p += threads) op.pack(p);
    first_scalar = packs * pack_width;
  }
  for (int64_t i = first_scalar + thread; i < n; i += threads) op.element(i);
}

// The host's run of the kernel: every thread of a grid of `threads`, the alignment checked as the launcher does.
template <class Op>
void elementwise_emulated(const Op& op, int64_t n, int64_t threads = 1024) {
  const bool vector = op.aligned();
  for (int64_t t = 0; t < threads; ++t) elementwise_thread(op, n, vector, t, threads);
}

// ---- Column sums (bias gradients) ----

constexpr int64_t column_chunk = 256;  // rows per partial; equals column_sum_chunk (static_assert in elementwise.cpp)
constexpr int column_batch = 16;       // row loads a thread issues before adding them (memory-level parallelism)

inline int64_t column_chunks(int64_t rows) { return (rows + column_chunk - 1) / column_chunk; }

// A thread's columns of one row: W consecutive bf16 in one load (W = 8: 16 bytes, 2: 4 bytes, 1: 2 bytes).
template <int W>
struct alignas(sizeof(bf16) * W) Columns {
  bf16 v[W];
};

// Threads below which the chunk pass reads 2 columns per thread instead of 8 (4-byte loads, four times the
// threads): the summation order is fixed, so memory-level parallelism must come from threads. At N 32768,
// C 768 (128 chunks) 8 columns give 12288 threads, 2 give 49152; C 2304 and 3072 keep 16-byte loads.
constexpr int64_t column_min_threads = 32768;

// Columns per thread of the chunk pass: the widest of 8, 2, 1 that C and x's alignment allow, and 2 rather
// than 8 where 8 leaves fewer than column_min_threads threads. Every width adds in the same order.
XP_HD int column_sums_width(const bf16* x, int64_t rows, int C) {
  const auto address = reinterpret_cast<std::uintptr_t>(x);
  const bool pairs = C % 2 == 0 && address % 4 == 0;
  if (C % 8 == 0 && address % 16 == 0 && (!pairs || ((rows + column_chunk - 1) / column_chunk) * (C / 8) >= column_min_threads))
    return 8;
  return pairs ? 2 : 1;
}

// acc[0..W) = Σ over the chunk's rows, in row order, of columns column..column+W-1. Loads go out
// column_batch rows at a time, kept as bf16 (4 registers for 8 columns); the additions stay in row order.
template <int W>
XP_HD void column_chunk_sum(float* acc, const bf16* x, int64_t rows, int C, int64_t chunk, int64_t column) {
  static_assert(W == 8 || W == 2 || W == 1, "8, 2 or 1 columns per thread");
  const int64_t first = chunk * column_chunk, last = first + column_chunk < rows ? first + column_chunk : rows;
  const bf16* column_start = x + column;
  auto load_row = [&](int64_t n) { return *reinterpret_cast<const Columns<W>*>(column_start + n * C); };
  auto add_row = [&](const Columns<W>& row) {
    for (int j = 0; j < W; ++j) acc[j] += load(row.v[j]);
  };
  for (int j = 0; j < W; ++j) acc[j] = 0.0f;
  int64_t n = first;
  for (; n + column_batch <= last; n += column_batch) {
    Columns<W> batch[column_batch];
    for (int r = 0; r < column_batch; ++r) batch[r] = load_row(n + r);
    for (int r = 0; r < column_batch; ++r) add_row(batch[r]);
  }
  for (; n < last; ++n) add_row(load_row(n));
}

// Work item `item` of the chunk pass (items: chunks · C/W, column-fastest): its partial sums go to
// partial (chunks, C).
template <int W>
XP_HD void column_chunk_item(float* partial, const bf16* x, int64_t rows, int C, int64_t item) {
  const int64_t per_row = C / W, chunk = item / per_row, column = (item % per_row) * W;
  float acc[W];
  column_chunk_sum<W>(acc, x, rows, C, chunk, column);
  for (int j = 0; j < W; ++j) partial[chunk * C + column + j] = acc[j];
}

// The finishing pass for column c: sums[c] + partial[0][c] + partial[1][c] + ..., in chunk order.
XP_HD void column_finish(float* sums, const float* partial, int64_t chunks, int C, int c) {
  float sum = sums[c];
  int64_t chunk = 0;
  for (; chunk + column_batch <= chunks; chunk += column_batch) {
    float batch[column_batch];
    for (int r = 0; r < column_batch; ++r) batch[r] = partial[(chunk + r) * C + c];
    for (int r = 0; r < column_batch; ++r) sum += batch[r];
  }
  for (; chunk < chunks; ++chunk) sum += partial[chunk * C + c];
  sums[c] = sum;
}

// The host's run of both passes; partial holds column_chunks(rows)·C floats. `width` forces the columns per
// thread (0: column_sums_width's choice, as the launcher makes it).
inline void column_sums_emulated(float* sums, const bf16* x, int64_t rows, int C, float* partial, int width = 0) {
  if (rows <= 0 || C <= 0) return;
  const int64_t chunks = column_chunks(rows);
  if (width == 0) width = column_sums_width(x, rows, C);
  for (int64_t item = 0; item < chunks * (C / width); ++item) {
    if (width == 8) column_chunk_item<8>(partial, x, rows, C, item);
    else if (width == 2) column_chunk_item<2>(partial, x, rows, C, item);
    else column_chunk_item<1>(partial, x, rows, C, item);
  }
  for (int c = 0; c < C; ++c) column_finish(sums, partial, chunks, C, c);
}

}  // namespace xp::simt
