#pragma once
// View aliases, declared once. Buffers are Views in the default memory space; kernels take raw
// pointers into them (llm.c style: every tensor is an offset into a flat buffer).
#include <cstdint>

#include <Kokkos_Core.hpp>

#include "xp/core/precision.hpp"

namespace xp {

using ExecSpace = Kokkos::DefaultExecutionSpace;
using FloatBuffer = Kokkos::View<float*>;
using TokenBuffer = Kokkos::View<int32_t*>;
using HostFloatBuffer = FloatBuffer::HostMirror;
using HostTokenBuffer = TokenBuffer::HostMirror;

// The execution-space instance every kernel of the program runs on: on CUDA builds the one on the
// program's stream (xp/core/program_stream.hpp), which cuBLASLt, the fused kernels and NCCL share;
// the default instance on CPU builds and before a ProgramStream exists. Every policy below is built on
// it, and "wait for the device" is exec_space().fence(), not the device-wide Kokkos::fence().
ExecSpace exec_space();

// Range policy with 64-bit indices (tensors of large models pass 2^31 elements), on exec_space().
// A function with a type's name, so that kernels write `Range(0, n)` as they always have.
using RangePolicy64 = Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<int64_t>>;
inline RangePolicy64 Range(int64_t begin, int64_t end) { return RangePolicy64(exec_space(), begin, end); }

// One team per row for row reductions (LayerNorm, softmax): on a GPU the team's threads split the row
// (coalesced loads, a tree reduction); on the host a team is one thread and the row is a plain loop.
using RowPolicy = Kokkos::TeamPolicy<ExecSpace>;
using RowMember = RowPolicy::member_type;
inline RowPolicy row_policy(int64_t rows) {
#if defined(KOKKOS_ENABLE_CUDA)
  return RowPolicy(exec_space(), static_cast<int>(rows), 128);
#else
  return RowPolicy(exec_space(), static_cast<int>(rows), 1);
#endif
}

// Row reductions inside a row_policy team: the team's threads split [0, n) on a GPU; on the host the
// team is one thread and these are plain loops that the compiler can vectorise.
template <class F>
KOKKOS_INLINE_FUNCTION float team_sum(const RowMember& team, int n, const F& f) {
  float sum = 0.0f;
#if defined(KOKKOS_ENABLE_CUDA)
  Kokkos::parallel_reduce(Kokkos::TeamThreadRange(team, n), [&](int i, float& part) { part += f(i); }, sum);
#else
  (void)team;
  for (int i = 0; i < n; ++i) sum += f(i);
#endif
  return sum;
}

template <class F>
KOKKOS_INLINE_FUNCTION float team_max(const RowMember& team, int n, const F& f) {
  float max = -3.0e38f;
#if defined(KOKKOS_ENABLE_CUDA)
  Kokkos::parallel_reduce(Kokkos::TeamThreadRange(team, n), [&](int i, float& part) {
    const float value = f(i);
    part = value > part ? value : part;
  }, Kokkos::Max<float>(max));
#else
  (void)team;
  for (int i = 0; i < n; ++i) {
    const float value = f(i);
    max = value > max ? value : max;
  }
#endif
  return max;
}

template <class F>
KOKKOS_INLINE_FUNCTION void team_for(const RowMember& team, int n, const F& f) {
#if defined(KOKKOS_ENABLE_CUDA)
  Kokkos::parallel_for(Kokkos::TeamThreadRange(team, n), f);
#else
  (void)team;
  for (int i = 0; i < n; ++i) f(i);
#endif
}

// Rows per chunk when columns are summed over many rows (bias and LayerNorm gradients): chunks of rows
// are summed in parallel, then their sums added in chunk order (src/kernels/fixed_order_sum.hpp).
constexpr int64_t column_sum_chunk = 256;

}  // namespace xp
