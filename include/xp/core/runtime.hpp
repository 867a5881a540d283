#pragma once
// Process-wide start-up and shutdown (MPI, then Kokkos), and the rule for set-up errors: every rank
// runs set-up, and if any rank meets an InputError all ranks learn it, so none hangs in a collective.
#include <functional>
#include <string>
#include <vector>

#include <mpi.h>

namespace xp {

class Runtime {
 public:
  Runtime(int& argc, char**& argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }

 private:
  int rank_ = 0;
  int size_ = 1;
  std::vector<std::string> arguments_;  // argv as Kokkos sees it (and trims), kept alive for main
  std::vector<char*> argument_pointers_;
};

// Runs `setup` on every rank of `comm`. If it throws InputError on any rank, every rank throws an
// InputError carrying the message of the lowest failing rank, prefixed with that rank.
void agree_on_setup(MPI_Comm comm, const std::function<void()>& setup);

// Number of ranks of `comm` on this host (they share its cores and GPUs), and this rank's index among them.
int ranks_on_this_host(MPI_Comm comm);
int rank_on_this_host(MPI_Comm comm);

}  // namespace xp
