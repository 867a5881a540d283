#include "xp/core/program_stream.hpp"

#include <memory>

#include "xp/core/error.hpp"
#include "xp/core/types.hpp"

#if defined(XP_ENABLE_CUDA)
#include <cuda_runtime.h>

#include "xp/core/cuda_check.hpp"
#endif

namespace xp {
namespace {

// The instance on the program stream while a ProgramStream lives; empty otherwise (CPU builds, and tools
// that start Kokkos without one), when exec_space() is the default instance.
std::unique_ptr<ExecSpace>& program_instance() {
  static std::unique_ptr<ExecSpace> instance;
  return instance;
}

}  // namespace

ExecSpace exec_space() {
  const std::unique_ptr<ExecSpace>& instance = program_instance();
  return instance ? *instance : ExecSpace();
}

#if defined(XP_ENABLE_CUDA)

ProgramStream::ProgramStream() {
  XP_REQUIRE(!program_instance(), "ProgramStream: the program already has its stream");
  cudaStream_t stream = nullptr;
  XP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  stream_ = stream;
  // Kokkos::Cuda(cudaStream_t) (Kokkos 3.4 and 4.x) uses the stream without owning it: it is ours to destroy.
  program_instance() = std::make_unique<ExecSpace>(stream);
}

ProgramStream::~ProgramStream() {
  program_instance()->fence();
  program_instance().reset();  // the last copy of the instance: Kokkos frees its scratch here
  cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

#else

ProgramStream::ProgramStream() {}
ProgramStream::~ProgramStream() {}

#endif

}  // namespace xp
