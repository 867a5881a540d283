#include "xp/core/error.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace xp {

[[noreturn]] void fatal(const char* file, int line, const std::string& message) {
  int initialized = 0, finalized = 0, rank = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  const bool mpi_up = initialized && !finalized;
  if (mpi_up) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::fprintf(stderr, "%s: rank %d: %s:%d: %s\n", program_invocation_short_name, rank, file, line, message.c_str());
  std::fflush(stderr);
  if (mpi_up) MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);  // a tool without MPI: nothing else to stop
}

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, length);
}

}  // namespace xp
