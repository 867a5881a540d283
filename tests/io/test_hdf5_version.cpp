// The start-up check that replaces HDF5's abort on a header/library mismatch: the rule is HDF5's own
// (all of major.minor.release, unless HDF5_DISABLE_VERSION_CHECK >= 1), and the message names both.
#include <gtest/gtest.h>

#include <string>

#include "xp/io/hdf5_version.hpp"

namespace xp::test {
namespace {

TEST(Hdf5Version, SameVersionIsFine) { EXPECT_EQ(hdf5_version_problem({1, 10, 8}, {1, 10, 8}, nullptr), ""); }

TEST(Hdf5Version, AnyDifferingNumberIsAProblemNamingBoth) {
  for (const Hdf5Version& library : {Hdf5Version{1, 10, 9}, Hdf5Version{1, 14, 8}, Hdf5Version{2, 10, 8}}) {
    const std::string message = hdf5_version_problem({1, 10, 8}, library, nullptr);
    const std::string loaded = std::to_string(library.major) + "." + std::to_string(library.minor) + "." +
                               std::to_string(library.release);
    EXPECT_NE(message.find("loaded at run time is " + loaded), std::string::npos) << message;
    EXPECT_NE(message.find("compiled against the headers of HDF5 1.10.8"), std::string::npos) << message;
  }
}

TEST(Hdf5Version, DisabledCheckLetsHdf5GoOn) {
  EXPECT_EQ(hdf5_version_problem({1, 10, 8}, {1, 14, 3}, "1"), "");
  EXPECT_EQ(hdf5_version_problem({1, 10, 8}, {1, 14, 3}, "2"), "");
  EXPECT_NE(hdf5_version_problem({1, 10, 8}, {1, 14, 3}, "0"), "");
  EXPECT_NE(hdf5_version_problem({1, 10, 8}, {1, 14, 3}, ""), "");
}

// This build's own headers and library agree (CI links Debian's HDF5 it was compiled with).
TEST(Hdf5Version, ThisBuildPasses) { EXPECT_NO_THROW(check_hdf5_version()); }

}  // namespace
}  // namespace xp::test
