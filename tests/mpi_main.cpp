// One GoogleTest main for every test binary: starts MPI and, to run tests, the device and Kokkos as
// xp_train does (xp::Runtime); prints results from rank 0 only, and makes every rank exit with the
// worst result so mpirun reports any rank's failure. Listing the tests needs no GPU.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <cstring>

#include "xp/core/error.hpp"
#include "xp/core/runtime.hpp"

int main(int argc, char** argv) {
  xp::Runtime runtime(argc, argv);
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing = listing || std::strcmp(argv[i], "--gtest_list_tests") == 0;
  try {
    if (!listing) runtime.start_device();
  } catch (const xp::InputError& error) {
    if (runtime.rank() == 0) std::fprintf(stderr, "%s: %s\n", argv[0], error.what());
    return 2;
  }
  ::testing::InitGoogleTest(&argc, argv);
  if (runtime.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int result = RUN_ALL_TESTS();
  int worst = result;
  MPI_Allreduce(&result, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return worst;
}
