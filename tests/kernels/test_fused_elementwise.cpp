// The fused element-wise kernels' and column sum's arithmetic (src/kernels/cuda/elementwise_math.hpp), run
// by its host emulation on bf16 inputs against float64 at awkward sizes (n = 1, 7, 8, 1001; C = 7, 1600;
// N = 1 and N not a multiple of the 256-row chunk), on both the 16-byte path and the scalar path that
// misaligned pointers take. The kernel functions (Kokkos here, the fused kernels in a CUDA build) must
// agree with the emulation: bitwise for the sums, within a bf16 ulp for GELU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cuda/elementwise_math.hpp"
#include "kernels/reference.hpp"
#include "xp/kernels/elementwise.hpp"
#include "xp/kernels/gelu.hpp"

namespace xp::test {
namespace {

using simt::bf16;

// bf16 values in 16-byte aligned storage, seen from `offset` elements in: offset 1 misaligns every pack.
class Bf16s {
 public:
  Bf16s(const Floats& values, int offset) : storage_((values.size() + offset) / 8 + 1), offset_(offset) {
    for (size_t i = 0; i < values.size(); ++i) data()[i] = simt::store_bf16(values[i]);
    size_ = values.size();
  }
  bf16* data() { return reinterpret_cast<bf16*>(storage_.data()) + offset_; }
  double operator[](size_t i) { return simt::load(data()[i]); }
  Floats floats() {
    Floats out(size_);
    for (size_t i = 0; i < size_; ++i) out[i] = simt::load(data()[i]);
    return out;
  }

 private:
  std::vector<simt::Pack<bf16>> storage_;
  int offset_;
  size_t size_ = 0;
};

// Random values exactly representable in bf16.
Floats bf16_values(size_t n, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  Floats values = random_floats(n, seed, lo, hi);
  for (float& v : values) v = simt::load(simt::store_bf16(v));
  return values;
}

uint32_t bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// A bf16 result of fp32 arithmetic: half a bf16 ulp (8 significant bits: 2^-8 relative) plus the fp32 error.
constexpr double bf16_half_ulp = 1.0 / 256;

struct Shape {
  int N, C;
};
const Shape shapes[] = {{1, 1}, {1, 7}, {1, 8}, {7, 8}, {3, 1600}, {13, 7}, {1001, 8}, {5, 24}};

TEST(FusedElementwise, BiasResidualMatchesFloat64OnBothPaths) {
  for (const Shape& s : shapes) {
    const size_t n = size_t(s.N) * s.C;
    const Floats residual = bf16_values(n, 1), x = bf16_values(n, 2), bias = bf16_values(s.C, 3);
    Floats first;
    for (int offset : {0, 1}) {
      Bf16s r(residual, offset), v(x, offset), b(bias, offset), out(Floats(n, garbage), offset);
      const simt::BiasResidual op{out.data(), r.data(), v.data(), b.data(), s.C};
      EXPECT_EQ(op.aligned(), offset == 0 && s.C % 8 == 0);
      simt::elementwise_emulated(op, int64_t(n));
      for (size_t i = 0; i < n; ++i) {
        const double exact = r[i] + v[i] + b[i % s.C];
        const double bound = bf16_half_ulp * std::abs(exact) + 1.2e-7 * (std::abs(r[i]) + std::abs(v[i]) + std::abs(b[i % s.C]));
        ASSERT_LE(std::abs(out[i] - exact), bound) << "N " << s.N << " C " << s.C << " i " << i;
      }
      // In place (out aliasing residual), as the trainer may call it: the same bits.
      simt::elementwise_emulated(simt::BiasResidual{r.data(), r.data(), v.data(), b.data(), s.C}, int64_t(n));
      EXPECT_EQ(r.floats(), out.floats());
      if (offset == 0) first = out.floats();
      else EXPECT_EQ(out.floats(), first) << "the scalar path gives the packed path's bits";
    }
  }
}

TEST(FusedElementwise, BiasAddMatchesFloat64) {
  for (const Shape& s : shapes) {
    const size_t n = size_t(s.N) * s.C;
    const Floats x = bf16_values(n, 4), bias = bf16_values(s.C, 5);
    for (int offset : {0, 1}) {
      Bf16s out(x, offset), b(bias, offset);
      simt::elementwise_emulated(simt::BiasAdd{out.data(), b.data(), s.C}, int64_t(n));
      for (size_t i = 0; i < n; ++i) {
        const double exact = double(x[i]) + b[i % s.C];
        ASSERT_LE(std::abs(out[i] - exact), bf16_half_ulp * std::abs(exact) + 6e-8 * std::abs(exact));
      }
    }
  }
}

const int64_t lengths[] = {1, 7, 8, 9, 1001, 4096 + 5};

double gelu64(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
double gelu64_grad(double x) {
  const double k = std::sqrt(2.0 / M_PI), t = std::tanh(k * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
}

// Inputs over both tails and the curved middle. The fp32 formula's error is a few ulp of its largest
// intermediate (|x|, and x²·|dout| for the derivative), hence the absolute terms of the bounds.
TEST(FusedElementwise, GeluForwardMatchesFloat64) {
  for (int64_t n : lengths) {
    const Floats inp = bf16_values(n, 6, -6.0, 6.0);
    for (int offset : {0, 1}) {
      Bf16s x(inp, offset), out(Floats(n, garbage), offset);
      simt::elementwise_emulated(simt::GeluForward{out.data(), x.data()}, n);
      for (int64_t i = 0; i < n; ++i) {
        const double exact = gelu64(x[i]);
        ASSERT_LE(std::abs(out[i] - exact), bf16_half_ulp * std::abs(exact) + 1e-6 * (1.0 + std::abs(x[i])))
            << "n " << n << " x " << x[i];
      }
    }
  }
}

TEST(FusedElementwise, GeluBackwardMatchesFloat64InPlace) {
  for (int64_t n : lengths) {
    const Floats inp = bf16_values(n, 7, -6.0, 6.0), dout = bf16_values(n, 8);
    for (int offset : {0, 1}) {
      Bf16s x(inp, offset), d(dout, offset);
      simt::elementwise_emulated(simt::GeluBackward{d.data(), x.data(), d.data()}, n);  // dinp aliases dout
      for (int64_t i = 0; i < n; ++i) {
        const double exact = gelu64_grad(x[i]) * dout[i];
        const double bound = bf16_half_ulp * std::abs(exact) + 2e-6 * (1.0 + x[i] * x[i]) * std::abs(dout[i]);
        ASSERT_LE(std::abs(d[i] - exact), bound) << "n " << n << " x " << x[i];
      }
    }
  }
}

// Round to nearest, ties to even; within half a bf16 ulp of the float64 value.
TEST(FusedElementwise, ConvertRoundsToNearestEven) {
  for (int64_t n : lengths) {
    std::vector<simt::Pack<float>> storage(n / 4 + 2);
    for (int offset : {0, 1}) {
      float* x = reinterpret_cast<float*>(storage.data()) + offset;
      const Floats values = random_floats(n, 9, -3.0, 3.0);
      std::memcpy(x, values.data(), sizeof(float) * n);
      x[0] = 1.0f + 0x1p-8f;  // halfway between 1 and 1 + 2^-7: to 1 (even)
      if (n > 1) x[1] = 1.0f + 3 * 0x1p-8f;  // halfway between 1 + 2^-7 and 1 + 2^-6: to 1 + 2^-6
      Bf16s out(Floats(n, garbage), offset);
      simt::elementwise_emulated(simt::ConvertToBf16{out.data(), x}, n);
      EXPECT_EQ(out[0], 1.0);
      if (n > 1) EXPECT_EQ(out[1], 1.0 + 0x1p-6);
      for (int64_t i = 0; i < n; ++i) ASSERT_LE(std::abs(out[i] - x[i]), bf16_half_ulp * std::abs(x[i]));
    }
  }
}

// ---- Column sums ----

const Shape column_shapes[] = {{1, 8}, {1, 7}, {7, 1600}, {255, 8}, {256, 8}, {257, 16}, {1000, 7}, {600, 768},
                               {1000, 1600}};

// Emulated sums of x (rows, C) added to `init`, at `width` columns per thread (0: the launcher's choice).
Floats emulated_column_sums(Bf16s& x, int rows, int C, const Floats& init, int width = 0) {
  Floats sums = init;
  std::vector<float> partial(simt::column_chunks(rows) * C, garbage);
  simt::column_sums_emulated(sums.data(), x.data(), rows, C, partial.data(), width);
  return sums;
}

// 16-byte loads where C and x allow and they leave enough threads, else 4-byte pairs, else single values.
TEST(FusedElementwise, ColumnSumsPickTheirLoadWidth) {
  const auto at = [](std::uintptr_t address) { return reinterpret_cast<const bf16*>(address); };
  EXPECT_EQ(simt::column_sums_width(at(4096), 32768, 3072), 8);  // 128 chunks · 384 packs
  EXPECT_EQ(simt::column_sums_width(at(4096), 32768, 2304), 8);
  EXPECT_EQ(simt::column_sums_width(at(4096), 32768, 768), 2);   // 12288 threads at 8: too few
  EXPECT_EQ(simt::column_sums_width(at(4096 + 4), 32768, 3072), 2);
  EXPECT_EQ(simt::column_sums_width(at(4096 + 2), 32768, 3072), 1);
  EXPECT_EQ(simt::column_sums_width(at(4096), 1000, 7), 1);
  EXPECT_EQ(simt::column_sums_width(at(4096), 1, 6), 2);
}

// |error| ≤ (rows per chunk + chunks)·2^-24·(|init| + Σ|x|): fp32 sums of k terms are within (k-1)·u of
// the exact sum relative to the sum of magnitudes; each column adds ≤ 256 rows, then ≤ ⌈N/256⌉ partials.
// Every load width and a misaligned x give the same bits, and so does a second call.
TEST(FusedElementwise, ColumnSumsWithinBoundOfFloat64AndRepeatBitwise) {
  for (const Shape& s : column_shapes) {
    const Floats values = bf16_values(size_t(s.N) * s.C, 10, -2.0, 2.0), init = random_floats(s.C, 11);
    const int64_t chunks = simt::column_chunks(s.N);
    const double u = 0x1p-24, terms = double(std::min<int64_t>(s.N, simt::column_chunk) + chunks);
    Bf16s x(values, 0);
    const Floats sums = emulated_column_sums(x, s.N, s.C, init);
    for (int c = 0; c < s.C; ++c) {
      double exact = init[c], magnitude = std::abs(init[c]);
      for (int n = 0; n < s.N; ++n) {
        exact += values[size_t(n) * s.C + c];
        magnitude += std::abs(values[size_t(n) * s.C + c]);
      }
      ASSERT_LE(std::abs(sums[c] - exact), terms * u * magnitude) << "N " << s.N << " C " << s.C << " c " << c;
    }
    const Floats again = emulated_column_sums(x, s.N, s.C, init);
    for (int c = 0; c < s.C; ++c) ASSERT_EQ(bits(again[c]), bits(sums[c])) << "a second call, column " << c;
    for (int width : {8, 2, 1}) {
      if (s.C % width != 0) continue;
      const Floats other = emulated_column_sums(x, s.N, s.C, init, width);
      for (int c = 0; c < s.C; ++c) ASSERT_EQ(bits(other[c]), bits(sums[c])) << "width " << width << ", column " << c;
    }
    Bf16s misaligned(values, 1);
    const Floats scalar = emulated_column_sums(misaligned, s.N, s.C, init);
    for (int c = 0; c < s.C; ++c) ASSERT_EQ(bits(scalar[c]), bits(sums[c])) << "misaligned, column " << c;
  }
}

// The fused column sum adds in fixed_order_column_sums' order, so column_sums_add (Kokkos, or the fused
// kernel in a CUDA build) gives the emulation's bits — at 600 rows, three chunks.
TEST(FusedElementwise, ColumnSumsEqualTheKernelFunctionBitwise) {
  for (const Shape& s : column_shapes) {
    const Floats values = bf16_values(size_t(s.N) * s.C, 12, -2.0, 2.0), init = random_floats(s.C, 13);
    Bf16s x(values, 0);
    const Floats expected = emulated_column_sums(x, s.N, s.C, init);
    RealBuffer x_device = to_device_real(values);  // exact: the values are bf16
    FloatBuffer sums = to_device(init);
    column_sums_add(sums.data(), x_device.data(), s.N, s.C);
    const Floats got = to_host(sums);
    for (int c = 0; c < s.C; ++c) ASSERT_EQ(bits(got[c]), bits(expected[c])) << "N " << s.N << " C " << s.C;
  }
}

// The kernel functions against the emulation: bias + residual and bias add bitwise once rounded to bf16
// (the same fp32 additions), GELU within one bf16 ulp (tanh implementations differ by a few fp32 ulp).
TEST(FusedElementwise, KernelFunctionsAgreeWithTheEmulation) {
  const int N = 37, C = 24;
  const size_t n = size_t(N) * C;
  const Floats residual = bf16_values(n, 14), x = bf16_values(n, 15), bias = bf16_values(C, 16);
  const Floats inp = bf16_values(n, 17, -5.0, 5.0), dout = bf16_values(n, 18);
  auto bf16_of = [](const Floats& v) {
    Floats r(v);
    for (float& f : r) f = simt::load(simt::store_bf16(f));
    return r;
  };
  {
    Bf16s r(residual, 0), v(x, 0), b(bias, 0);
    simt::elementwise_emulated(simt::BiasResidual{r.data(), r.data(), v.data(), b.data(), C}, int64_t(n));
    RealBuffer rd = to_device_real(residual), vd = to_device_real(x), bd = to_device_real(bias);
    bias_residual_fwd(rd.data(), rd.data(), vd.data(), bd.data(), N, C);
    EXPECT_EQ(bf16_of(to_host(rd)), r.floats());
    Bf16s o(x, 0);
    simt::elementwise_emulated(simt::BiasAdd{o.data(), b.data(), C}, int64_t(n));
    bias_add(vd.data(), bd.data(), N, C);
    EXPECT_EQ(bf16_of(to_host(vd)), o.floats());
  }
  Bf16s xi(inp, 0), out(Floats(n, garbage), 0), d(dout, 0);
  simt::elementwise_emulated(simt::GeluForward{out.data(), xi.data()}, int64_t(n));
  simt::elementwise_emulated(simt::GeluBackward{d.data(), xi.data(), d.data()}, int64_t(n));
  RealBuffer inp_device = to_device_real(inp), out_device = to_device_real(Floats(n, garbage)),
             dout_device = to_device_real(dout);
  gelu_fwd(out_device.data(), inp_device.data(), int64_t(n));
  gelu_bwd(dout_device.data(), inp_device.data(), dout_device.data(), int64_t(n));
  const Floats fwd = bf16_of(to_host(out_device)), bwd = bf16_of(to_host(dout_device));
  for (size_t i = 0; i < n; ++i) {
    ASSERT_LE(std::abs(fwd[i] - out[i]), 2 * bf16_half_ulp * std::abs(out[i]) + 1e-6) << "gelu_fwd " << i;
    ASSERT_LE(std::abs(bwd[i] - d[i]), 2 * bf16_half_ulp * std::abs(d[i]) + 1e-6) << "gelu_bwd " << i;
  }
}

}  // namespace
}  // namespace xp::test
