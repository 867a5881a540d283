#pragma once
// Counter-based random numbers: a value depends only on (seed, stream, index), so any rank can make
// any slice of a tensor or of the synthetic data without sharing generator state. Callable in device
// kernels too (the GPU build fills its weights where they live).
#include <cstdint>
#include <string>

#include "xp/core/math.hpp"

namespace xp {

KOKKOS_INLINE_FUNCTION uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

KOKKOS_INLINE_FUNCTION uint64_t random_bits(uint64_t seed, uint64_t stream, uint64_t index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ stream) + index);
}

// Uniform in (0, 1): never 0, so log() is safe.
KOKKOS_INLINE_FUNCTION double random_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return (static_cast<double>(random_bits(seed, stream, index) >> 11) + 0.5) * 0x1.0p-53;
}

// Standard normal by Box-Muller from two counter draws.
KOKKOS_INLINE_FUNCTION double random_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  const double u1 = random_uniform(seed, stream, 2 * index);
  const double u2 = random_uniform(seed, stream, 2 * index + 1);
  return math::sqrt(-2.0 * math::log(u1)) * math::cos(6.283185307179586 * u2);
}

// A stream id from a name (FNV-1a), e.g. one per parameter tensor.
inline uint64_t stream_id(const std::string& name) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : name) hash = (hash ^ c) * 1099511628211ULL;
  return hash;
}

}  // namespace xp
