#pragma once
// NCCL backend of the Communicator interface (comm.hpp): device buffers, one GPU per rank; part of GPU
// builds (XP_ENABLE_CUDA). ParallelGrid uses it for every group of two or more ranks when
// nccl_usable(world), after Runtime::start_device has given each rank its GPU, on the stream the rank
// shares with Kokkos and cuBLASLt (device_stream()); otherwise it uses the MPI backend, which stages
// device buffers on the host. A group of one rank gets neither (make_self_communicator, comm.hpp).
//
// Semantics that differ from the MPI backend:
// - Every pointer is device memory of this rank's GPU.
// - Every operation is only enqueued on `stream`: "done" means done in stream order. Kernels that
//   later use the buffer on the same stream see the result; the host, or another stream, must
//   synchronise with `stream` first (e.g. exec_space().fence() before reading a result on the host, and
//   before freeing or refilling a send buffer from outside the stream).
// - send/recv are stream-ordered and block the GPU stream until the peer posts the matching call with
//   the same count; so a pipeline schedule that is deadlock-free with MPI's blocking send/recv (every
//   send met by its recv in the same order on both sides) is deadlock-free here, and calls may follow
//   one another without the host waiting. Neighbours that both send before they receive must use
//   send_recv (one NCCL group); with two plain sends they hang here even for small messages, where MPI
//   might have buffered them.
// - Communicators of several groups (dp, tp, pp) on one stream must see their operations in the same
//   relative order on every rank, as with MPI; creating and destroying them too (both are collective).
// - Counts are 64-bit end to end: NCCL takes size_t counts, so nothing is chunked.
#include <cstddef>
#include <memory>
#include <string>

#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include "xp/core/cuda_check.hpp"
#include "xp/core/error.hpp"
#include "xp/parallel/comm.hpp"

namespace xp {

// NCCL communicator over the ranks of `comm` (not owned; used only during construction to share the
// ncclUniqueId). Collective over `comm`; the rank's device must already be selected. Operations are
// enqueued on `stream`, the one stream this rank shares with Kokkos and cuBLASLt.
std::unique_ptr<Communicator> make_nccl_communicator(MPI_Comm comm, cudaStream_t stream);

// True on every rank when every host has at least as many visible GPUs as ranks, false on every rank
// otherwise (NCCL refuses two ranks on one GPU; callers then use the MPI backend). Collective.
bool nccl_usable(MPI_Comm world);

// "rank, file:line: call: NCCL's message" (with NCCL's last detailed error where it has one).
[[noreturn]] void nccl_fatal(const char* file, int line, const char* call, ncclResult_t result);

}  // namespace xp

#define XP_NCCL_CHECK(call)                                                      \
  do {                                                                           \
    ncclResult_t xp_nccl_rc_ = (call);                                           \
    if (xp_nccl_rc_ != ncclSuccess) ::xp::nccl_fatal(__FILE__, __LINE__, #call, xp_nccl_rc_); \
  } while (0)
