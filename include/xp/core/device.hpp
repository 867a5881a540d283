#pragma once
// The rank's GPU, where the build has one (XP_ENABLE_CUDA), seen from host code that must not include
// CUDA headers: device choice before Kokkos starts, the one stream, pointer kinds, copies and memory.
// On CPU builds every function is the trivial answer (no device, host pointers, memcpy).
#include <cstddef>

#include <mpi.h>

namespace xp {

#if defined(XP_ENABLE_CUDA)
constexpr bool device_build = true;
#else
constexpr bool device_build = false;
#endif

// The GPU this rank uses: its index among the ranks of its host, modulo the visible GPUs (several
// ranks share a GPU when there are more ranks than GPUs). -1 on CPU builds. Collective over `world`;
// throws InputError when this rank sees no GPU.
int select_device(MPI_Comm world);

// The stream that Kokkos, cuBLASLt, the fused CUDA kernels and NCCL share (a cudaStream_t): exec_space()'s,
// the program stream once Runtime::start_device has made it (xp/core/program_stream.hpp).
void* device_stream();

// Whether `pointer` is device memory (host buffers may reach the host-staged MPI backend too).
bool is_device_pointer(const void* pointer);

// Stream-ordered copies between host and device memory; both wait for the copy to finish.
void copy_to_host(void* host, const void* device, std::size_t bytes);
void copy_to_device(void* device, const void* host, std::size_t bytes);

// A copy between any two buffers of this process, host or device memory (stream-ordered on GPU builds);
// waits for it to finish.
void copy_memory(void* to, const void* from, std::size_t bytes);

// Bytes of device memory in use now (the whole GPU, as nvidia-smi shows it); 0 on CPU builds.
std::size_t device_memory_used();

// This rank's share of its GPU's memory in bytes (the GPU's total divided among the ranks that share
// it, `ranks_on_host` spread over the visible GPUs); 0 on CPU builds.
double detect_gpu_memory(int ranks_on_host);

}  // namespace xp
