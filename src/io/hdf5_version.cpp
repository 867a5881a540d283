#include "xp/io/hdf5_version.hpp"

#include <cstdlib>

#include <hdf5.h>

#include "xp/core/error.hpp"

namespace xp {
namespace {

std::string text(const Hdf5Version& version) {
  return std::to_string(version.major) + "." + std::to_string(version.minor) + "." + std::to_string(version.release);
}

}  // namespace

std::string hdf5_version_problem(const Hdf5Version& headers, const Hdf5Version& library,
                                 const char* disable_version_check) {
  // H5check_version's own rule: all three numbers must agree unless the check is disabled.
  if (headers.major == library.major && headers.minor == library.minor && headers.release == library.release)
    return "";
  if (disable_version_check != nullptr && std::atoi(disable_version_check) >= 1) return "";
  return "the HDF5 library loaded at run time is " + text(library) + " but this program was compiled against the "
         "headers of HDF5 " + text(headers) + "; HDF5 would abort at the first checkpoint. Put the HDF5 " +
         text(headers) + " library first on LD_LIBRARY_PATH, or rebuild against " + text(library);
}

void check_hdf5_version() {
  Hdf5Version library;
  // H5get_libversion itself does not run HDF5's version check (H5check_version), so it cannot abort.
  XP_HDF5_CHECK(H5get_libversion(&library.major, &library.minor, &library.release));
  const std::string problem = hdf5_version_problem({H5_VERS_MAJOR, H5_VERS_MINOR, H5_VERS_RELEASE}, library,
                                                   std::getenv("HDF5_DISABLE_VERSION_CHECK"));
  if (!problem.empty()) throw InputError(problem);
}

}  // namespace xp
