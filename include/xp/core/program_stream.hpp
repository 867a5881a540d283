#pragma once
// The program's one CUDA stream (STYLE rule 12: the handle lives in this RAII object). Kokkos' kernels
// (through exec_space(), xp/core/types.hpp), cuBLASLt, the fused CUDA kernels and NCCL all run on it, so
// they are ordered without any host synchronisation between them, and a step could be captured into a
// CUDA graph (Kokkos 3.4's default instance uses the legacy null stream, which graphs cannot capture).
// The stream is non-blocking: work on the legacy stream (Kokkos' deep_copy without an instance) does
// not order with it implicitly; those deep_copy calls fence the whole device before and after instead.
// On CPU builds the object holds nothing and exec_space() stays the default instance.

namespace xp {

class ProgramStream {
 public:
  // After Kokkos::initialize: creates the stream and the Kokkos instance on it, which exec_space() and
  // device_stream() return from now on. One at a time.
  ProgramStream();
  // Before Kokkos::finalize: waits for the stream, releases the instance, destroys the stream.
  ~ProgramStream();
  ProgramStream(const ProgramStream&) = delete;
  ProgramStream& operator=(const ProgramStream&) = delete;

 private:
  void* stream_ = nullptr;  // cudaStream_t on CUDA builds
};

}  // namespace xp
