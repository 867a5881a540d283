#pragma once
// One set of checks for the whole code base: every failure names the rank, the file and line and
// the cause, then ends the whole MPI job. Nothing here returns on failure, so no rank is left waiting.
#include <stdexcept>
#include <string>

#include <mpi.h>

namespace xp {

// A problem with what the user asked for (deck, overrides, data files). Thrown during set-up, when
// every rank is still able to agree on it; see agree_on_setup() in core/runtime.hpp.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Ends the whole job: prints "<program>: rank R: file:line: message" and calls MPI_Abort (exit 1 without MPI).
[[noreturn]] void fatal(const char* file, int line, const std::string& message);

// The text MPI gives for an error code.
std::string mpi_error_string(int code);

}  // namespace xp

#define XP_REQUIRE(cond, message)                              \
  do {                                                         \
    if (!(cond)) ::xp::fatal(__FILE__, __LINE__, (message));   \
  } while (0)

#define XP_MPI_CHECK(call)                                                                  \
  do {                                                                                      \
    int xp_mpi_rc_ = (call);                                                                \
    if (xp_mpi_rc_ != MPI_SUCCESS)                                                          \
      ::xp::fatal(__FILE__, __LINE__, std::string(#call) + ": " + ::xp::mpi_error_string(xp_mpi_rc_)); \
  } while (0)

// HDF5 calls return a negative value on failure; the library's own error stack is printed too.
#define XP_HDF5_CHECK(call)                                                           \
  ([&]() {                                                                            \
    auto xp_h5_rc_ = (call);                                                          \
    if (xp_h5_rc_ < 0) ::xp::fatal(__FILE__, __LINE__, std::string("HDF5 call failed: ") + #call); \
    return xp_h5_rc_;                                                                 \
  }())
