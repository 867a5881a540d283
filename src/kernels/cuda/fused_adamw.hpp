#pragma once
// The fused multi-tensor AdamW kernel (CUDA builds; behind adamw_update / adamw_update_segments when
// use_fused_kernels()). Its arithmetic and decomposition, and its memory floor, are in adamw_math.hpp.
#include <cuda_runtime.h>

#include "kernels/cuda/adamw_math.hpp"

namespace xp::cuda {

// One launch over all a.n values (device arrays), asynchronous on `stream`. 16-byte loads and stores where
// params, m, v, grads are 16-byte and compute 8-byte aligned, one element per load otherwise.
void fused_adamw(const adamw::Arguments& a, cudaStream_t stream);

}  // namespace xp::cuda
