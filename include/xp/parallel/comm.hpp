#pragma once
// Collectives used by the trainer, over MPI (host memory on CPU builds). Counts are 64-bit: large
// models' flat gradient buffers pass 2^31 floats, so calls are chunked below MPI's int limit.
#include <cstddef>

#include <mpi.h>

namespace xp {

// In-place sum of `count` floats over `comm`.
void all_reduce_sum(MPI_Comm comm, float* data, std::size_t count);

// Sum of one double over `comm`.
double all_reduce_sum(MPI_Comm comm, double value);

}  // namespace xp
