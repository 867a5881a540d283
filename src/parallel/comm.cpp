#include "xp/parallel/comm.hpp"

#include <algorithm>

#include "xp/core/error.hpp"

namespace xp {

void all_reduce_sum(MPI_Comm comm, float* data, std::size_t count) {
  int size = 1;
  XP_MPI_CHECK(MPI_Comm_size(comm, &size));
  if (size == 1) return;
  constexpr std::size_t chunk = std::size_t{1} << 30;
  for (std::size_t offset = 0; offset < count; offset += chunk) {
    const int n = static_cast<int>(std::min(chunk, count - offset));
    XP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + offset, n, MPI_FLOAT, MPI_SUM, comm));
  }
}

double all_reduce_sum(MPI_Comm comm, double value) {
  double total = 0.0;
  XP_MPI_CHECK(MPI_Allreduce(&value, &total, 1, MPI_DOUBLE, MPI_SUM, comm));
  return total;
}

}  // namespace xp
