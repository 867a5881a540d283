#pragma once
// View aliases, declared once. Buffers are Views in the default memory space; kernels take raw
// pointers into them (llm.c style: every tensor is an offset into a flat buffer).
#include <cstdint>

#include <Kokkos_Core.hpp>

namespace xp {

using ExecSpace = Kokkos::DefaultExecutionSpace;
using FloatBuffer = Kokkos::View<float*>;
using TokenBuffer = Kokkos::View<int32_t*>;
using HostFloatBuffer = FloatBuffer::HostMirror;
using HostTokenBuffer = TokenBuffer::HostMirror;

// Range policy with 64-bit indices: tensors of large models pass 2^31 elements.
using Range = Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<int64_t>>;

}  // namespace xp
