#pragma once
// Deterministic reductions (STYLE rule 13): sums whose order is fixed by the shapes alone, never by the
// thread count, the scheduling or the backend, so results are bit-identical between runs, between OpenMP
// thread counts and on the GPU. No float atomics: each reduction writes fixed partials to a scratch
// buffer, then one pass adds the partials in order.
#include <cstddef>
#include <cstdint>

#include "xp/core/types.hpp"

namespace xp {

// Device scratch for the reductions' partials: at least `bytes` (8-byte aligned), grown when needed and
// released at Kokkos::finalize. Kernels run in order on the one execution space, so each reduction may use
// it afresh. Its size: the largest of K·⌈rows/256⌉·columns floats (column sums), B·T int64 keys
// (embedding) and ⌈n/group⌉ doubles (sums) — 1.6 MB for GPT-2 124M at B·T = 32768.
void* reduction_scratch(std::size_t bytes);

template <int K>
struct ColumnOutputs {
  float* column[K];
};

// out.column[k][c] += Σ_n value_k(n, c) over rows n in [0, rows): the rows are cut into chunks of
// column_sum_chunk rows (independent of the thread count); each (chunk, column) is summed in row order,
// then one pass per column adds the chunk sums in chunk order to the existing value — the order in which
// the Serial backend always added them. add_row(n, c, acc) adds row n's K values for column c to acc[].
template <int K, class AddRow>
void fixed_order_column_sums(const char* chunks_label, const char* finish_label, ColumnOutputs<K> out,
                             int64_t rows, int C, const AddRow& add_row) {
  if (rows <= 0 || C <= 0) return;
  const int64_t chunks = (rows + column_sum_chunk - 1) / column_sum_chunk;
  // One chunk: its sums go straight to the outputs (the same order, no second pass).
  float* partial = chunks > 1 ? static_cast<float*>(reduction_scratch(sizeof(float) * K * chunks * C)) : nullptr;
  Kokkos::parallel_for(chunks_label, Range(0, chunks * C), KOKKOS_LAMBDA(int64_t i) {
    const int64_t c = i % C, chunk = i / C, first = chunk * column_sum_chunk;
    const int64_t last = first + column_sum_chunk < rows ? first + column_sum_chunk : rows;
    float acc[K] = {};
    for (int64_t n = first; n < last; ++n) add_row(n, c, acc);
    for (int k = 0; k < K; ++k) {
      if (partial)
        partial[(chunk * K + k) * C + c] = acc[k];
      else
        out.column[k][c] += acc[k];
    }
  });
  if (!partial) return;
  Kokkos::parallel_for(finish_label, Range(0, int64_t{K} * C), KOKKOS_LAMBDA(int64_t i) {
    const int64_t k = i / C, c = i % C;
    float sum = out.column[k][c];
    for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partial[(chunk * K + k) * C + c];
    out.column[k][c] = sum;
  });
}

// The group partials of Σ value(i) over i in [0, n): ⌈n/group⌉ doubles in reduction scratch, each
// group of `group` items summed in order on the device. Returns the number of groups.
template <class Value>
int64_t fixed_order_group_sums(const char* label, int64_t n, int64_t group, const Value& value, double*& partial) {
  const int64_t groups = (n + group - 1) / group;
  double* sums = static_cast<double*>(reduction_scratch(sizeof(double) * groups));
  Kokkos::parallel_for(label, Range(0, groups), KOKKOS_LAMBDA(int64_t g) {
    const int64_t first = g * group, last = first + group < n ? first + group : n;
    double sum = 0.0;
    for (int64_t i = first; i < last; ++i) sum += value(i);
    sums[g] = sum;
  });
  partial = sums;
  return groups;
}

// Σ value(i) over i in [0, n) in double: fixed groups of `group` items, each summed in order on the device,
// the group sums then added in order on the host. The host waits for the device.
template <class Value>
double fixed_order_sum(const char* label, int64_t n, int64_t group, const Value& value) {
  if (n <= 0) return 0.0;
  double* partial = nullptr;
  const int64_t groups = fixed_order_group_sums(label, n, group, value, partial);
  Kokkos::View<double*, Kokkos::HostSpace> host("xp::fixed_order_sum_host", groups);
  Kokkos::deep_copy(exec_space(), host, Kokkos::View<const double*, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(partial, groups));
  exec_space().fence();
  double total = 0.0;
  for (int64_t g = 0; g < groups; ++g) total += host(g);
  return total;
}

// *total += the Σ of fixed_order_sum, on the device and in the same order (the group sums added from 0,
// then that sum to *total), so a total kept on the device has the bits of one summed on the host; the host
// does not wait. `total` is one device double.
template <class Value>
void fixed_order_sum_into(const char* label, int64_t n, int64_t group, const Value& value, double* total) {
  if (n <= 0) return;
  double* partial = nullptr;
  const int64_t groups = fixed_order_group_sums(label, n, group, value, partial);
  Kokkos::parallel_for("xp::fixed_order_sum_into", Range(0, 1), KOKKOS_LAMBDA(int64_t) {
    double sum = 0.0;
    for (int64_t g = 0; g < groups; ++g) sum += partial[g];
    *total += sum;
  });
}

}  // namespace xp
