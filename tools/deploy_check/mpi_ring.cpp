// Deployment check (tools/check_gpu_bundle.sh): built with the bundle's mpicxx, run by its mpirun in a
// clean root. Each rank sends its rank around a ring and all-reduces the ranks, so both the shared-memory
// transport and a collective run; it prints what it received, which the check compares with the arithmetic.
#include <mpi.h>

#include <cstdio>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int from_left = -1, sum = -1;
  MPI_Sendrecv(&rank, 1, MPI_INT, (rank + 1) % size, 0, &from_left, 1, MPI_INT, (rank + size - 1) % size, 0,
               MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  std::printf("rank %d of %d: left neighbour %d, sum of ranks %d\n", rank, size, from_left, sum);
  MPI_Finalize();
  return 0;
}
