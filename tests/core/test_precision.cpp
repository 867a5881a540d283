// Real, the storage type of activations: fp32 on CPU builds, and with XP_EMULATE_BF16 a software bf16 that
// must round like the GPU's (__float2bfloat16: to nearest, ties to even; NaN stays NaN; overflow to inf).
#include "xp/core/precision.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace xp {
namespace {

float through_real(float x) { return to_float(to_real(x)); }

float from_bits(std::uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// Buffers of Real are copied as bytes (MPI, checkpoints of activations) and zeroed by Kokkos.
static_assert(std::is_trivially_copyable_v<Real>);
static_assert(sizeof(Real) == (real_is_float ? 4 : 2));

TEST(Precision, RealRoundsToNearestEven) {
  const float ulp = real_is_float ? std::ldexp(1.0f, -23) : std::ldexp(1.0f, -7);  // spacing above 1
  EXPECT_EQ(through_real(1.0f + ulp), 1.0f + ulp);                                  // representable
  EXPECT_EQ(through_real(1.0f + 0.75f * ulp), 1.0f + ulp);                          // nearest
  EXPECT_EQ(through_real(-1.0f - 0.25f * ulp), -1.0f);
  if constexpr (!real_is_float) {
    EXPECT_EQ(through_real(1.0f + 0.5f * ulp), 1.0f);                // tie: to the even neighbour below
    EXPECT_EQ(through_real(1.0f + 1.5f * ulp), 1.0f + 2.0f * ulp);  // tie: to the even neighbour above
    // fp32's largest value lies past the midpoint between bf16's largest and 2^128: it rounds to inf.
    EXPECT_EQ(through_real(std::numeric_limits<float>::max()), std::numeric_limits<float>::infinity());
  }
}

TEST(Precision, SpecialValuesSurvive) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(through_real(inf), inf);
  EXPECT_EQ(through_real(-inf), -inf);
  EXPECT_TRUE(std::isnan(through_real(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(through_real(-std::numeric_limits<float>::quiet_NaN())));
  // A NaN whose payload sits only in the low 16 bits must not round to inf.
  EXPECT_TRUE(std::isnan(through_real(from_bits(0x7f800001u))));
  EXPECT_TRUE(std::signbit(through_real(-0.0f)));
}

TEST(Precision, RealBuffersStartAtZero) {
  RealBuffer buffer("test::zeros", 5);
  auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), buffer);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(to_float(host(i)), 0.0f);
}

// The host-side bf16 rounding (the emulated Real and the MPI backend's bf16 reductions), in every build.
TEST(Precision, Bf16BitsRoundToNearestEven) {
  const auto round = [](float x) { return bf16_value(bf16_bits(x)); };
  const float step = std::ldexp(1.0f, -7);                      // bf16 spacing above 1
  EXPECT_EQ(round(1.0f + step / 2), 1.0f);                      // tie, towards the even 1
  EXPECT_EQ(round(1.0f + 3 * step / 2), 1.0f + 2 * step);       // tie, towards the even 1 + 2·step
  EXPECT_EQ(round(1.0f + step / 2 + step / 64), 1.0f + step);   // just above the tie: up
  EXPECT_EQ(round(-3.0f), -3.0f);                               // exact values stay
  EXPECT_TRUE(std::signbit(round(-0.0f)));
  EXPECT_TRUE(std::isinf(round(std::numeric_limits<float>::max())));
  const float nan = round(-std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(std::isnan(nan));
  EXPECT_TRUE(std::signbit(nan));
}

}  // namespace
}  // namespace xp
