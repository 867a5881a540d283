#include "xp/parallel/comm.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "xp/core/device.hpp"
#include "xp/core/precision.hpp"
#include "xp/core/error.hpp"

namespace xp {
namespace {

// MPI counts are int: large transfers go in chunks. Chunks of collectives whose layout must be
// regrouped are staged through a buffer of size() · staging_chunk floats.
constexpr std::size_t max_chunk = std::size_t{1} << 30;
constexpr std::size_t staging_chunk = std::size_t{1} << 24;

// A buffer as MPI sees it: the caller's own when it is host memory, else a host copy of the device
// buffer that write_back() returns to it. Several ranks on one GPU communicate this way.
class HostStage {
 public:
  HostStage(const void* data, std::size_t bytes, bool copy_in)
      : data_(const_cast<void*>(data)), bytes_(bytes), staged_(bytes > 0 && is_device_pointer(data)) {
    if (!staged_) return;
    buffer_.resize(bytes);
    if (copy_in) copy_to_host(buffer_.data(), data, bytes);
  }
  void* get() { return staged_ ? buffer_.data() : data_; }
  void write_back() {
    if (staged_) copy_to_device(data_, buffer_.data(), bytes_);
  }

 private:
  void* data_;
  std::size_t bytes_;
  bool staged_;
  std::vector<char> buffer_;
};

// A group of one rank: nothing to exchange, only copies between distinct send and receive buffers.
class SelfCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }

  void all_reduce(void*, std::size_t, DataType, ReduceOp) override {}
  void reduce_scatter_sum(const float* send, float* recv, std::size_t recv_count) override {
    copy(recv, send, recv_count);
  }
  void all_gather(const float* send, float* recv, std::size_t send_count) override { copy(recv, send, send_count); }
  void all_gather_bytes(const void* send, void* recv, std::size_t send_bytes) override {
    if (send != recv && send_bytes > 0) copy_memory(recv, send, send_bytes);
  }
  void send_bytes(const void*, std::size_t, int peer) override { no_peer(peer); }
  void recv_bytes(void*, std::size_t, int peer) override { no_peer(peer); }
  void send_recv_bytes(const void*, std::size_t, int send_peer, void*, std::size_t, int) override {
    no_peer(send_peer);
  }

 private:
  static void copy(float* to, const float* from, std::size_t count) {
    if (to != from && count > 0) copy_memory(to, from, count * sizeof(float));
  }
  [[noreturn]] static void no_peer(int peer) {
    fatal(__FILE__, __LINE__, "send/recv with rank " + std::to_string(peer) + " in a group of one rank");
  }
};

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    XP_MPI_CHECK(MPI_Comm_rank(comm, &rank_));
    XP_MPI_CHECK(MPI_Comm_size(comm, &size_));
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce(void* data, std::size_t count, DataType type, ReduceOp op) override {
    if (count == 0) return;
    HostStage host(data, count * size_of(type), true);
    if (type == DataType::Float32) {
      all_reduce_floats(static_cast<float*>(host.get()), count, op);
    } else {
      // bf16 has no MPI type and its sums lose precision: reduce in fp32.
      auto* halves = static_cast<std::uint16_t*>(host.get());
      std::vector<float> values(count);
      for (std::size_t i = 0; i < count; ++i) values[i] = bf16_value(halves[i]);
      all_reduce_floats(values.data(), count, op);
      for (std::size_t i = 0; i < count; ++i) halves[i] = bf16_bits(values[i]);
    }
    host.write_back();
  }

  void reduce_scatter_sum(const float* send, float* recv, std::size_t recv_count) override {
    HostStage send_host(send, size_ * recv_count * sizeof(float), true);
    HostStage recv_host(recv, recv_count * sizeof(float), false);
    reduce_scatter_host(static_cast<const float*>(send_host.get()), static_cast<float*>(recv_host.get()), recv_count);
    recv_host.write_back();
  }

  void all_gather(const float* send, float* recv, std::size_t send_count) override {
    all_gather_bytes(send, recv, send_count * sizeof(float));  // a gather moves bytes: the same bits
  }

  void all_gather_bytes(const void* send, void* recv, std::size_t send_bytes) override {
    HostStage recv_host(recv, size_ * send_bytes, true);
    const bool inside = send == static_cast<const char*>(recv) + rank_ * send_bytes;  // this rank's block of recv
    HostStage send_host(inside ? nullptr : send, inside ? 0 : send_bytes, true);
    auto* recv_data = static_cast<char*>(recv_host.get());
    all_gather_host(inside ? recv_data + rank_ * send_bytes : static_cast<const char*>(send_host.get()), recv_data,
                    send_bytes);
    recv_host.write_back();
  }

  void send_bytes(const void* data, std::size_t bytes, int peer) override {
    HostStage host(data, bytes, true);
    const char* base = static_cast<const char*>(host.get());
    for (std::size_t offset = 0; offset < bytes; offset += max_chunk)
      XP_MPI_CHECK(MPI_Send(base + offset, static_cast<int>(std::min(max_chunk, bytes - offset)), MPI_BYTE, peer, 0,
                            comm_));
  }

  void recv_bytes(void* data, std::size_t bytes, int peer) override {
    HostStage host(data, bytes, false);
    char* base = static_cast<char*>(host.get());
    for (std::size_t offset = 0; offset < bytes; offset += max_chunk)
      XP_MPI_CHECK(MPI_Recv(base + offset, static_cast<int>(std::min(max_chunk, bytes - offset)), MPI_BYTE, peer, 0,
                            comm_, MPI_STATUS_IGNORE));
    host.write_back();
  }

  void send_recv_bytes(const void* send_data, std::size_t send_bytes, int send_peer, void* recv_data,
                       std::size_t recv_bytes, int recv_peer) override {
    HostStage send_host(send_data, send_bytes, true);
    HostStage recv_host(recv_data, recv_bytes, false);
    const char* send_base = static_cast<const char*>(send_host.get());
    char* recv_base = static_cast<char*>(recv_host.get());
    std::vector<MPI_Request> requests;
    for (std::size_t offset = 0; offset < recv_bytes; offset += max_chunk) {
      requests.emplace_back();
      XP_MPI_CHECK(MPI_Irecv(recv_base + offset, static_cast<int>(std::min(max_chunk, recv_bytes - offset)), MPI_BYTE,
                             recv_peer, 0, comm_, &requests.back()));
    }
    for (std::size_t offset = 0; offset < send_bytes; offset += max_chunk) {
      requests.emplace_back();
      XP_MPI_CHECK(MPI_Isend(send_base + offset, static_cast<int>(std::min(max_chunk, send_bytes - offset)), MPI_BYTE,
                             send_peer, 0, comm_, &requests.back()));
    }
    XP_MPI_CHECK(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE));
    recv_host.write_back();
  }

 private:
  void all_reduce_floats(float* data, std::size_t count, ReduceOp op) {
    for (std::size_t offset = 0; offset < count; offset += max_chunk)
      XP_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + offset, static_cast<int>(std::min(max_chunk, count - offset)),
                                 MPI_FLOAT, op == ReduceOp::Sum ? MPI_SUM : MPI_MAX, comm_));
  }

  void reduce_scatter_host(const float* send, float* recv, std::size_t recv_count) {
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

  void all_gather_host(const char* send, char* recv, std::size_t send_bytes) {
    if (send_bytes <= max_chunk) {  // MPI's own layout; a send slice inside recv is MPI_IN_PLACE
      const void* source = send == recv + rank_ * send_bytes ? MPI_IN_PLACE : send;
      XP_MPI_CHECK(MPI_Allgather(source, static_cast<int>(send_bytes), MPI_BYTE, recv, static_cast<int>(send_bytes),
                                 MPI_BYTE, comm_));
      return;
    }
    const std::size_t chunk_bytes = staging_chunk * sizeof(float);
    for (std::size_t offset = 0; offset < send_bytes; offset += chunk_bytes) {
      const std::size_t n = std::min(chunk_bytes, send_bytes - offset);
      std::vector<char> block(n * size_);
      XP_MPI_CHECK(MPI_Allgather(send + offset, static_cast<int>(n), MPI_BYTE, block.data(), static_cast<int>(n),
                                 MPI_BYTE, comm_));
      for (int r = 0; r < size_; ++r)
        std::copy(block.data() + r * n, block.data() + (r + 1) * n, recv + r * send_bytes + offset);
    }
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm) {
  int size = 0;
  XP_MPI_CHECK(MPI_Comm_size(comm, &size));
  if (size == 1) return make_self_communicator();  // nothing to stage through the host
  return std::make_unique<MpiCommunicator>(comm);
}

std::unique_ptr<Communicator> make_self_communicator() { return std::make_unique<SelfCommunicator>(); }

double all_reduce_sum(MPI_Comm comm, double value) {
  double total = 0.0;
  XP_MPI_CHECK(MPI_Allreduce(&value, &total, 1, MPI_DOUBLE, MPI_SUM, comm));
  return total;
}

}  // namespace xp
