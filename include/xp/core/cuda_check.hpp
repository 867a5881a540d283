#pragma once
// XP_CUDA_CHECK for host code of CUDA builds: names the rank, file, line, call and CUDA's message,
// then ends the whole job (core/error.hpp).
#include <string>

#include <cuda_runtime_api.h>

#include "xp/core/error.hpp"

#define XP_CUDA_CHECK(call)                                                                             \
  do {                                                                                                  \
    cudaError_t xp_cuda_rc_ = (call);                                                                   \
    if (xp_cuda_rc_ != cudaSuccess)                                                                     \
      ::xp::fatal(__FILE__, __LINE__,                                                                   \
                  std::string(#call) + ": " + cudaGetErrorName(xp_cuda_rc_) + ": " + cudaGetErrorString(xp_cuda_rc_)); \
  } while (0)
