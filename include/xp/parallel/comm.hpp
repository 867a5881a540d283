#pragma once
// The communicator interface: the collectives and point-to-point transfers the trainer uses, over one
// group of ranks (a dp, tp or pp group of the ParallelGrid). Two backends: MPI (every CPU run, and GPU
// runs whose ranks share a GPU: device buffers are staged through host memory) and NCCL (device memory,
// one GPU per rank; CUDA builds); and for a group of one rank neither, just copies where they are due.
// Counts are 64-bit: flat gradient buffers of large models pass 2^31 floats.
#include <cstddef>
#include <memory>

#include <mpi.h>

#if defined(XP_ENABLE_CUDA)
#include <cuda_bf16.h>
#elif defined(XP_EMULATE_BF16)
#include "xp/core/precision.hpp"
#endif

namespace xp {

// Element types that cross a communicator: fp32 (gradients, statistics, CPU activations) and bf16
// (GPU activations, 2 bytes, reduced in fp32 by the MPI backend).
enum class DataType { Float32, BFloat16 };
enum class ReduceOp { Sum, Max };

template <class T>
struct DataTypeOf;
template <>
struct DataTypeOf<float> {
  static constexpr DataType value = DataType::Float32;
};
#if defined(XP_ENABLE_CUDA)
template <>
struct DataTypeOf<__nv_bfloat16> {
  static constexpr DataType value = DataType::BFloat16;
};
#elif defined(XP_EMULATE_BF16)
template <>
struct DataTypeOf<Bf16> {  // the software bf16 of CPU builds that emulate the GPU's precision
  static constexpr DataType value = DataType::BFloat16;
};
#endif

inline std::size_t size_of(DataType type) { return type == DataType::Float32 ? 4 : 2; }

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Typed front: float everywhere, and Real (bf16) activations on GPU and emulated-bf16 builds.
  template <class T>
  void all_reduce_sum(T* data, std::size_t count) {  // in place
    all_reduce(data, count, DataTypeOf<T>::value, ReduceOp::Sum);
  }
  template <class T>
  void all_reduce_max(T* data, std::size_t count) {  // in place
    all_reduce(data, count, DataTypeOf<T>::value, ReduceOp::Max);
  }
  // Blocking point-to-point with a rank of this group (pipeline neighbours).
  template <class T>
  void send(const T* data, std::size_t count, int peer) {
    send_bytes(data, count * sizeof(T), peer);
  }
  template <class T>
  void recv(T* data, std::size_t count, int peer) {
    recv_bytes(data, count * sizeof(T), peer);
  }
  // A send and a receive posted together, so two neighbours that both send before they receive do not
  // wait on each other (Megatron's send_forward_recv_backward and send_backward_recv_forward).
  template <class T>
  void send_recv(const T* send_data, std::size_t send_count, int send_peer, T* recv_data, std::size_t recv_count,
                 int recv_peer) {
    send_recv_bytes(send_data, send_count * sizeof(T), send_peer, recv_data, recv_count * sizeof(T), recv_peer);
  }

  // Every rank's `count` elements into recv (size() · count), in rank order, as raw bytes (no arithmetic:
  // any element type; the bf16 compute copy of the weights under optimizer offload).
  template <class T>
  void all_gather_elements(const T* send, T* recv, std::size_t count) {
    all_gather_bytes(send, recv, count * sizeof(T));
  }

  // fp32 only (gradients, master weights).
  // recv (recv_count) = this rank's slice of Σ send (size() · recv_count).
  virtual void reduce_scatter_sum(const float* send, float* recv, std::size_t recv_count) = 0;
  // recv (size() · send_count) = every rank's send (send_count), in rank order.
  virtual void all_gather(const float* send, float* recv, std::size_t send_count) = 0;

  // What the typed front calls; each backend implements these.
  virtual void all_reduce(void* data, std::size_t count, DataType type, ReduceOp op) = 0;
  virtual void all_gather_bytes(const void* send, void* recv, std::size_t send_bytes) = 0;
  virtual void send_bytes(const void* data, std::size_t bytes, int peer) = 0;
  virtual void recv_bytes(void* data, std::size_t bytes, int peer) = 0;
  virtual void send_recv_bytes(const void* send_data, std::size_t send_bytes, int send_peer, void* recv_data,
                               std::size_t recv_bytes, int recv_peer) = 0;
};

// MPI backend over `comm` (not owned); a group of one rank gets make_self_communicator().
std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm);

// A group of one rank (tp = 1, pp = 1 or dp = 1): all_reduce and broadcast leave the data as it is,
// reduce_scatter and all_gather copy send to recv where they differ — in place, host or device memory,
// never staged (stream-ordered on GPU builds, and waited for) — and there is no peer for send/recv.
std::unique_ptr<Communicator> make_self_communicator();

// Host-side sums used for metrics (MPI on every build).
double all_reduce_sum(MPI_Comm comm, double value);

}  // namespace xp
