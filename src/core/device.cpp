#include "xp/core/device.hpp"

#include <cstring>
#include <string>

#include "xp/core/error.hpp"

#if defined(XP_ENABLE_CUDA)
#include <Kokkos_Core.hpp>
#include <cuda_runtime.h>

#include "xp/core/cuda_check.hpp"
#include "xp/core/runtime.hpp"
#include "xp/core/types.hpp"
#endif

namespace xp {

#if defined(XP_ENABLE_CUDA)

int select_device(MPI_Comm world) {
  const int local_rank = rank_on_this_host(world);
  int devices = 0;
  const cudaError_t rc = cudaGetDeviceCount(&devices);
  if (rc != cudaSuccess || devices == 0) {
    cudaGetLastError();  // clear it: the error is reported here, once
    throw InputError(std::string("this is a GPU build of xp_train and no GPU is visible (") +
                     (rc != cudaSuccess ? cudaGetErrorString(rc) : "no CUDA device") +
                     "); without one it can only do --help and --dry-run");
  }
  const int device = local_rank % devices;
  XP_CUDA_CHECK(cudaSetDevice(device));
  return device;
}

void* device_stream() { return static_cast<void*>(exec_space().cuda_stream()); }

bool is_device_pointer(const void* pointer) {
  cudaPointerAttributes attributes;
  if (cudaPointerGetAttributes(&attributes, pointer) != cudaSuccess) {
    cudaGetLastError();  // an unregistered host pointer is an answer, not an error
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice;
}

void copy_to_host(void* host, const void* device, std::size_t bytes) {
  auto stream = static_cast<cudaStream_t>(device_stream());
  XP_CUDA_CHECK(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream));
  XP_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void copy_to_device(void* device, const void* host, std::size_t bytes) {
  auto stream = static_cast<cudaStream_t>(device_stream());
  XP_CUDA_CHECK(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream));
  XP_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void copy_memory(void* to, const void* from, std::size_t bytes) {
  auto stream = static_cast<cudaStream_t>(device_stream());
  XP_CUDA_CHECK(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDefault, stream));  // unified addressing
  XP_CUDA_CHECK(cudaStreamSynchronize(stream));
}

std::size_t device_memory_used() {
  std::size_t free = 0, total = 0;
  XP_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return total - free;
}

double detect_gpu_memory(int ranks_on_host) {
  std::size_t free = 0, total = 0;
  XP_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  int devices = 1;
  XP_CUDA_CHECK(cudaGetDeviceCount(&devices));
  const int sharing = (ranks_on_host + devices - 1) / devices;
  return double(total) / (sharing > 0 ? sharing : 1);
}

#else

int select_device(MPI_Comm) { return -1; }
void* device_stream() { return nullptr; }
bool is_device_pointer(const void*) { return false; }
void copy_to_host(void* host, const void* device, std::size_t bytes) { std::memcpy(host, device, bytes); }
void copy_to_device(void* device, const void* host, std::size_t bytes) { std::memcpy(device, host, bytes); }
void copy_memory(void* to, const void* from, std::size_t bytes) { std::memcpy(to, from, bytes); }
std::size_t device_memory_used() { return 0; }
double detect_gpu_memory(int) { return 0.0; }

#endif

}  // namespace xp
