#pragma once
// Copies between a range of a flat buffer (in device memory on GPU builds) and plain host memory, for
// the checkpoint's chunked staging: element `index` of the flat layout is at buffer(index - origin).
#include <cstdint>
#include <utility>

#include "xp/core/types.hpp"

namespace xp {

using UnmanagedHostFloats = Kokkos::View<float*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;
using UnmanagedConstHostFloats =
    Kokkos::View<const float*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

// host[0, end - begin) = buffer[begin - origin, end - origin)
inline void copy_to_host(const FloatBuffer& buffer, int64_t origin, int64_t begin, int64_t end, float* host) {
  Kokkos::deep_copy(UnmanagedHostFloats(host, size_t(end - begin)),
                    Kokkos::subview(buffer, std::make_pair(begin - origin, end - origin)));
}

// buffer[begin - origin, end - origin) = host[0, end - begin)
inline void copy_from_host(const float* host, int64_t begin, int64_t end, int64_t origin, const FloatBuffer& buffer) {
  Kokkos::deep_copy(Kokkos::subview(buffer, std::make_pair(begin - origin, end - origin)),
                    UnmanagedConstHostFloats(host, size_t(end - begin)));
}

}  // namespace xp
