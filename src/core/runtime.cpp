#include "xp/core/runtime.hpp"

#include <string>
#include <utility>
#include <vector>

#include <Kokkos_Core.hpp>

#include "xp/core/device.hpp"
#include "xp/core/error.hpp"
#include "xp/core/program_stream.hpp"

namespace xp {

Runtime::Runtime(int& argc, char**& argv) {
  XP_MPI_CHECK(MPI_Init(&argc, &argv));
  // Errors in MPI calls come back to XP_MPI_CHECK, which names the call before aborting.
  XP_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  XP_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  XP_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  for (int i = 0; i < argc; ++i) {
    const bool for_kokkos = i == 0 || std::string(argv[i]).rfind("--kokkos-", 0) == 0;
    if (for_kokkos) kokkos_arguments_.push_back(argv[i]);
    if (!for_kokkos || i == 0) argument_pointers_.push_back(argv[i]);
  }
  argc = static_cast<int>(argument_pointers_.size());
  argument_pointers_.push_back(nullptr);
  argv = argument_pointers_.data();
}

void Runtime::start_device() {
  if (device_started_) return;
  int device = -1;
  agree_on_setup(MPI_COMM_WORLD, [&] { device = select_device(MPI_COMM_WORLD); });
  // This rank's GPU goes to Kokkos as one more argument (understood by Kokkos 3.4 and 4.x alike).
  std::vector<std::string> arguments = kokkos_arguments_;
  if (device >= 0) arguments.push_back("--kokkos-device-id=" + std::to_string(device));
  std::vector<char*> pointers;
  for (std::string& argument : arguments) pointers.push_back(argument.data());
  pointers.push_back(nullptr);
  int count = static_cast<int>(arguments.size());
  char** values = pointers.data();
  Kokkos::initialize(count, values);
  device_started_ = true;
  stream_ = std::make_unique<ProgramStream>();
}

Runtime::~Runtime() {
  if (device_started_) {
    stream_.reset();
    Kokkos::finalize();
  }
  MPI_Finalize();
}

void agree_on_setup(MPI_Comm comm, const std::function<void()>& setup) {
  int rank = 0, size = 1;
  XP_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  XP_MPI_CHECK(MPI_Comm_size(comm, &size));
  std::string message;
  int failed_rank = size;
  try {
    setup();
  } catch (const InputError& error) {
    message = error.what();
    failed_rank = rank;
  } catch (const std::exception& error) {  // e.g. a filesystem error: still one message, no hang
    message = error.what();
    failed_rank = rank;
  }
  int first_failed = size;
  XP_MPI_CHECK(MPI_Allreduce(&failed_rank, &first_failed, 1, MPI_INT, MPI_MIN, comm));
  if (first_failed == size) return;
  int length = static_cast<int>(message.size());
  XP_MPI_CHECK(MPI_Bcast(&length, 1, MPI_INT, first_failed, comm));
  message.resize(length);
  XP_MPI_CHECK(MPI_Bcast(message.data(), length, MPI_CHAR, first_failed, comm));
  throw InputError("rank " + std::to_string(first_failed) + ": " + message);
}

namespace {

// (rank, size) within the ranks of `comm` that share this host.
std::pair<int, int> place_on_this_host(MPI_Comm comm) {
  MPI_Comm host;
  XP_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host));
  int rank = 0, size = 1;
  XP_MPI_CHECK(MPI_Comm_rank(host, &rank));
  XP_MPI_CHECK(MPI_Comm_size(host, &size));
  XP_MPI_CHECK(MPI_Comm_free(&host));
  return {rank, size};
}

}  // namespace

int ranks_on_this_host(MPI_Comm comm) { return place_on_this_host(comm).second; }

int rank_on_this_host(MPI_Comm comm) { return place_on_this_host(comm).first; }

}  // namespace xp
