#include "xp/parallel/nccl_comm.hpp"

#include <cstring>

#include "xp/core/runtime.hpp"

namespace xp {
namespace {

// Every operation is only enqueued on stream_; see nccl_comm.hpp for what that means to callers.
class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(MPI_Comm comm, cudaStream_t stream) : stream_(stream) {
    XP_REQUIRE(comm != MPI_COMM_NULL, "make_nccl_communicator: MPI_COMM_NULL");
    XP_MPI_CHECK(MPI_Comm_rank(comm, &rank_));
    XP_MPI_CHECK(MPI_Comm_size(comm, &size_));
    // MPI bootstraps NCCL: rank 0 of the group makes the id, every rank of the group receives it.
    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    if (rank_ == 0) XP_NCCL_CHECK(ncclGetUniqueId(&id));
    XP_MPI_CHECK(MPI_Bcast(&id, static_cast<int>(sizeof(id)), MPI_BYTE, 0, comm));
    XP_NCCL_CHECK(ncclCommInitRank(&comm_, size_, id, rank_));
  }

  // Finalize drains this communicator's operations on every rank (collective), then Destroy frees
  // them locally without blocking: NCCL's recommended order.
  ~NcclCommunicator() override {
    XP_NCCL_CHECK(ncclCommFinalize(comm_));
    XP_NCCL_CHECK(ncclCommDestroy(comm_));
  }

  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce(void* data, std::size_t count, DataType type, ReduceOp op) override {
    XP_NCCL_CHECK(ncclAllReduce(data, data, count, type == DataType::Float32 ? ncclFloat32 : ncclBfloat16,
                                op == ReduceOp::Sum ? ncclSum : ncclMax, comm_, stream_));
  }

  // send (size · recv_count), rank r's slice at [r·recv_count, (r+1)·recv_count): NCCL's own layout.
  void reduce_scatter_sum(const float* send, float* recv, std::size_t recv_count) override {
    XP_NCCL_CHECK(ncclReduceScatter(send, recv, recv_count, ncclFloat32, ncclSum, comm_, stream_));
  }

  // recv (size · send_count), rank r's block at [r·send_count, (r+1)·send_count): NCCL's own layout.
  void all_gather(const float* send, float* recv, std::size_t send_count) override {
    XP_NCCL_CHECK(ncclAllGather(send, recv, send_count, ncclFloat32, comm_, stream_));
  }

  // The same layout in bytes (any element type; no arithmetic, so ncclChar).
  void all_gather_bytes(const void* send, void* recv, std::size_t send_bytes) override {
    XP_NCCL_CHECK(ncclAllGather(send, recv, send_bytes, ncclChar, comm_, stream_));
  }

  // One operation each, so no group is needed; the peer must post the matching call with this count.
  void send_bytes(const void* data, std::size_t bytes, int peer) override {
    XP_REQUIRE(peer != rank_, "nccl send: a rank cannot send to itself outside a group");
    XP_NCCL_CHECK(ncclSend(data, bytes, ncclChar, peer, comm_, stream_));
  }

  void recv_bytes(void* data, std::size_t bytes, int peer) override {
    XP_REQUIRE(peer != rank_, "nccl recv: a rank cannot receive from itself outside a group");
    XP_NCCL_CHECK(ncclRecv(data, bytes, ncclChar, peer, comm_, stream_));
  }

  // One group: NCCL progresses both together, so neighbours that both send first do not deadlock.
  void send_recv_bytes(const void* send_data, std::size_t send_bytes, int send_peer, void* recv_data,
                       std::size_t recv_bytes, int recv_peer) override {
    XP_NCCL_CHECK(ncclGroupStart());
    XP_NCCL_CHECK(ncclSend(send_data, send_bytes, ncclChar, send_peer, comm_, stream_));
    XP_NCCL_CHECK(ncclRecv(recv_data, recv_bytes, ncclChar, recv_peer, comm_, stream_));
    XP_NCCL_CHECK(ncclGroupEnd());
  }

 private:
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, cudaStream_t stream) {
  return std::make_unique<NcclCommunicator>(comm, stream);
}

bool nccl_usable(MPI_Comm world) {
  const int ranks_on_host = ranks_on_this_host(world);
  // No driver or no device is an answer here ("use MPI"), not an error.
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) {
    devices = 0;
    cudaGetLastError();  // clear it, so the next CUDA check does not report it
  }
  int usable = devices >= ranks_on_host ? 1 : 0, everywhere = 0;
  XP_MPI_CHECK(MPI_Allreduce(&usable, &everywhere, 1, MPI_INT, MPI_MIN, world));
  return everywhere == 1;
}

void nccl_fatal(const char* file, int line, const char* call, ncclResult_t result) {
  std::string message = std::string(call) + ": " + ncclGetErrorString(result);
  // The detail (which peer, which transport) is in NCCL's last error, when it recorded one.
  const char* detail = ncclGetLastError(nullptr);
  if (detail != nullptr && detail[0] != '\0') message += " (" + std::string(detail) + ")";
  fatal(file, line, message);
}

}  // namespace xp
