#include "xp/parallel/comm.hpp"

#include <algorithm>
#include <vector>

#include "xp/core/error.hpp"

namespace xp {
namespace {

// MPI counts are int: large transfers go in chunks. Chunks of collectives whose layout must be
// regrouped are staged through a buffer of size() · staging_chunk floats.
constexpr std::size_t max_chunk = std::size_t{1} << 30;
constexpr std::size_t staging_chunk = std::size_t{1} << 24;

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    XP_MPI_CHECK(MPI_Comm_rank(comm, &rank_));
    XP_MPI_CHECK(MPI_Comm_size(comm, &size_));
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void all_reduce_sum(float* data, std::size_t count) override { all_reduce(data, count, MPI_SUM); }
  void all_reduce_max(float* data, std::size_t count) override { all_reduce(data, count, MPI_MAX); }

  void reduce_scatter_sum(const float* send, float* recv, std::size_t recv_count) override {
    if (size_ == 1) {
      if (send != recv) std::copy(send, send + recv_count, recv);
      return;
    }
    if (recv_count <= max_chunk) {  // the layout is MPI's own: no staging copy
      XP_MPI_CHECK(MPI_Reduce_scatter_block(send, recv, static_cast<int>(recv_count), MPI_FLOAT, MPI_SUM, comm_));
      return;
    }
    for (std::size_t offset = 0; offset < recv_count; offset += staging_chunk) {
      const std::size_t n = std::min(staging_chunk, recv_count - offset);
      // Gather this chunk of every rank's slice into one contiguous block per rank.
      std::vector<float> block(n * size_);
      for (int r = 0; r < size_; ++r)
        std::copy(send + r * recv_count + offset, send + r * recv_count + offset + n, block.data() + r * n);
      XP_MPI_CHECK(MPI_Reduce_scatter_block(block.data(), recv + offset, static_cast<int>(n), MPI_FLOAT, MPI_SUM,
                                            comm_));
    }
  }

  void all_gather(const float* send, float* recv, std::size_t send_count) override {
    if (size_ == 1) {
      if (send != recv) std::copy(send, send + send_count, recv);
      return;
    }
    if (send_count <= max_chunk) {  // MPI's own layout; a send slice inside recv is MPI_IN_PLACE
      const void* source = send == recv + rank_ * send_count ? MPI_IN_PLACE : send;
      XP_MPI_CHECK(MPI_Allgather(source, static_cast<int>(send_count), MPI_FLOAT, recv, static_cast<int>(send_count),
                                 MPI_FLOAT, comm_));
      return;
    }
    for (std::size_t offset = 0; offset < send_count; offset += staging_chunk) {
      const std::size_t n = std::min(staging_chunk, send_count - offset);
      std::vector<float> block(n * size_);
      XP_MPI_CHECK(MPI_Allgather(send + offset, static_cast<int>(n), MPI_FLOAT, block.data(), static_cast<int>(n),
                                 MPI_FLOAT, comm_));
      for (int r = 0; r < size_; ++r)
        std::copy(block.data() + r * n, block.data() + (r + 1) * n, recv + r * send_count + offset);
    }
  }

  void broadcast(float* data, std::size_t count, int root) override {
    for (std::size_t offset = 0; offset < count; offset += max_chunk)
      XP_MPI_CHECK(MPI_Bcast(data + offset, static_cast<int>(std::min(max_chunk, count - offset)), MPI_FLOAT, root,
                             comm_));
  }

  void send(const float* data, std::size_t count, int peer) override {
    for (std::size_t offset = 0; offset < count; offset += max_chunk)
      XP_MPI_CHECK(MPI_Send(data + offset, static_cast<int>(std::min(max_chunk, count - offset)), MPI_FLOAT, peer,
                            0, comm_));
  }

  void recv(float* data, std::size_t count, int peer) override {
    for (std::size_t offset = 0; offset < count; offset += max_chunk)
      XP_MPI_CHECK(MPI_Recv(data + offset, static_cast<int>(std::min(max_chunk, count - offset)), MPI_FLOAT, peer,
                            0, comm_, MPI_STATUS_IGNORE));
  }

  void send_recv(const float* send_data, std::size_t send_count, int send_peer, float* recv_data,
                 std::size_t recv_count, int recv_peer) override {
    std::vector<MPI_Request> requests;
    for (std::size_t offset = 0; offset < recv_count; offset += max_chunk) {
      requests.emplace_back();
      XP_MPI_CHECK(MPI_Irecv(recv_data + offset, static_cast<int>(std::min(max_chunk, recv_count - offset)),
                             MPI_FLOAT, recv_peer, 0, comm_, &requests.back()));
    }
    for (std::size_t offset = 0; offset < send_count; offset += max_chunk) {
      requests.emplace_back();
      XP_MPI_CHECK(MPI_Isend(send_data + offset, static_cast<int>(std::min(max_chunk, send_count - offset)),
                             MPI_FLOAT, send_peer, 0, comm_, &requests.back()));
    }
    XP_MPI_CHECK(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE));
  }

 private:
  void all_reduce(float* data, std::size_t count, MPI_Op op) {
    if (size_ == 1) return;
    for (std::size_t offset = 0; offset < count; offset += max_chunk)
      XP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + offset, static_cast<int>(std::min(max_chunk, count - offset)),
                                 MPI_FLOAT, op, comm_));
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm) { return std::make_unique<MpiCommunicator>(comm); }

double all_reduce_sum(MPI_Comm comm, double value) {
  double total = 0.0;
  XP_MPI_CHECK(MPI_Allreduce(&value, &total, 1, MPI_DOUBLE, MPI_SUM, comm));
  return total;
}

}  // namespace xp
