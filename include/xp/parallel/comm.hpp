#pragma once
// The communicator interface: the collectives and point-to-point transfers the trainer uses, over one
// group of ranks (a dp, tp or pp group of the ParallelGrid). Two backends: MPI (host memory; every CPU
// run, and GPU runs whose ranks share a GPU) and NCCL (device memory, one GPU per rank; CUDA builds).
// Counts are 64-bit: flat gradient buffers of large models pass 2^31 floats.
#include <cstddef>
#include <memory>
#include <string>

#include <mpi.h>

namespace xp {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;

  virtual void all_reduce_sum(float* data, std::size_t count) = 0;  // in place
  virtual void all_reduce_max(float* data, std::size_t count) = 0;  // in place
  // recv (recv_count) = this rank's slice of Σ send (size() · recv_count).
  virtual void reduce_scatter_sum(const float* send, float* recv, std::size_t recv_count) = 0;
  // recv (size() · send_count) = every rank's send (send_count), in rank order.
  virtual void all_gather(const float* send, float* recv, std::size_t send_count) = 0;
  virtual void broadcast(float* data, std::size_t count, int root) = 0;
  // Blocking point-to-point with a rank of this group (pipeline neighbours).
  virtual void send(const float* data, std::size_t count, int peer) = 0;
  virtual void recv(float* data, std::size_t count, int peer) = 0;
  // A send and a receive posted together, so two neighbours that both send before they receive do not
  // wait on each other (Megatron's send_forward_recv_backward and send_backward_recv_forward).
  virtual void send_recv(const float* send_data, std::size_t send_count, int send_peer, float* recv_data,
                         std::size_t recv_count, int recv_peer) = 0;
};

// MPI backend over `comm` (not owned).
std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm);

// Host-side sums used for metrics (MPI on every build).
double all_reduce_sum(MPI_Comm comm, double value);

}  // namespace xp
