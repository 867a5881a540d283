#pragma once
// Process-wide start-up and shutdown (MPI, then — only where a run needs it — the device and Kokkos),
// and the rule for set-up errors: every rank runs set-up, and if any rank meets an InputError all ranks
// learn it, so none hangs in a collective.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <mpi.h>

namespace xp {

class ProgramStream;

class Runtime {
 public:
  // Starts MPI only, which is all that argument checks and --dry-run need (a GPU build's dry run works
  // where no GPU is). Kokkos' own options (--kokkos-*) are taken out of argv and kept for start_device().
  Runtime(int& argc, char**& argv);
  ~Runtime();  // Kokkos (when started), then MPI
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }

  // Gives this rank its GPU (GPU builds: by its index on the host), starts Kokkos and creates the
  // program's one stream (xp/core/program_stream.hpp); does nothing the second time. Collective over MPI_COMM_WORLD: where a rank sees no GPU, every rank throws InputError.
  void start_device();

 private:
  int rank_ = 0;
  int size_ = 1;
  bool device_started_ = false;
  std::unique_ptr<ProgramStream> stream_;  // after Kokkos::initialize, released before Kokkos::finalize
  std::vector<std::string> kokkos_arguments_;  // argv[0] and the --kokkos-* options, for Kokkos::initialize
  std::vector<char*> argument_pointers_;       // argv without the --kokkos-* options, kept alive for main
};

// Runs `setup` on every rank of `comm`. If it throws InputError on any rank, every rank throws an
// InputError carrying the message of the lowest failing rank, prefixed with that rank.
void agree_on_setup(MPI_Comm comm, const std::function<void()>& setup);

// Number of ranks of `comm` on this host (they share its cores and GPUs), and this rank's index among them.
int ranks_on_this_host(MPI_Comm comm);
int rank_on_this_host(MPI_Comm comm);

}  // namespace xp
