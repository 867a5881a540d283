#pragma once
// Storage type of activations and of the compute copy of the weights: bf16 on GPU builds (with fp32
// master weights, gradients, optimizer state and fp32 accumulation everywhere), fp32 on the CPU path.
// Kernels load with to_float() and store with to_real(); on the CPU path both are the identity.
// XP_EMULATE_BF16 makes a CPU build whose Real is a software bf16, so the GPU build's mixed precision
// runs and is tested where no GPU is.
#include <Kokkos_Core.hpp>

#include <cstdint>
#include <cstring>

#if defined(XP_ENABLE_CUDA)
#include <cuda_bf16.h>
#endif

namespace xp {

// bf16 as 16 bits (the high half of an fp32) on the host: round to nearest even, NaN stays a quiet NaN of
// the same sign, overflow becomes ±inf. The one rounding rule of the emulated Real and of the host-side
// fp32 reductions of bf16 buffers (parallel/comm.cpp).
inline std::uint16_t bf16_bits(float x) {
  std::uint32_t wide;
  std::memcpy(&wide, &x, sizeof wide);
  if ((wide & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((wide >> 16) | 0x0040u);
  return static_cast<std::uint16_t>((wide + 0x7fffu + ((wide >> 16) & 1u)) >> 16);
}

inline float bf16_value(std::uint16_t bits) {
  const std::uint32_t wide = std::uint32_t{bits} << 16;
  float value;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

#if defined(XP_ENABLE_CUDA)
using Real = __nv_bfloat16;
constexpr bool real_is_float = false;
KOKKOS_INLINE_FUNCTION float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
#elif defined(XP_EMULATE_BF16)
// The 16 bits of a bf16 (the high half of an fp32), laid out like __nv_bfloat16. No arithmetic and no
// implicit conversions: every load and store must go through to_float / to_real, as on the GPU.
struct Bf16 {
  std::uint16_t bits;

  Bf16() = default;  // trivial, so Views value-initialise it to +0 and it copies as bytes
  explicit Bf16(float x) : bits(bf16_bits(x)) {}
};
using Real = Bf16;
constexpr bool real_is_float = false;
inline float to_float(Bf16 x) { return bf16_value(x.bits); }
#else
using Real = float;
constexpr bool real_is_float = true;
#endif

// How a build stores activations and which kernels it runs, for sizing buffers: this build's
// (build_precision), or another build's when planning for it (`--dry-run --gpu` from a CPU build).
struct Precision {
  int real_bytes = 4;  // bytes of Real: activations and, where 2, the bf16 compute copy of the weights
  bool gpu = false;    // the CUDA build: fused attention for head sizes 64 and 128, NCCL collectives
  constexpr bool compute_copy() const { return real_bytes != 4; }
};
constexpr Precision cpu_precision{4, false};  // the CPU build: fp32 throughout, Kokkos attention
constexpr Precision gpu_precision{2, true};   // the CUDA build: bf16 activations and compute copy
#if defined(XP_ENABLE_CUDA)
constexpr Precision build_precision = gpu_precision;
#else
constexpr Precision build_precision{static_cast<int>(sizeof(Real)), false};  // fp32, or emulated bf16
#endif

KOKKOS_INLINE_FUNCTION float to_float(float x) { return x; }
KOKKOS_INLINE_FUNCTION Real to_real(float x) { return Real(x); }

using RealBuffer = Kokkos::View<Real*>;

}  // namespace xp
