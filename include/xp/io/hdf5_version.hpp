#pragma once
// HDF5 aborts the whole process (a core dump, no message from us) at its first use when the library
// loaded at run time is not the release whose headers the program was compiled against — for
// xp_train that is the first checkpoint, after the training time is spent. Checked at start-up instead.
#include <string>

namespace xp {

struct Hdf5Version {
  unsigned major = 0, minor = 0, release = 0;
};

// Why HDF5 would abort, naming both versions; "" when it would not: the two versions are the same, or
// HDF5_DISABLE_VERSION_CHECK (its value, or null when unset) is a number >= 1, which tells HDF5 to go on.
std::string hdf5_version_problem(const Hdf5Version& headers, const Hdf5Version& library,
                                 const char* disable_version_check);

// Throws InputError with that message when the loaded HDF5 differs from the compiled-against headers.
void check_hdf5_version();

}  // namespace xp
