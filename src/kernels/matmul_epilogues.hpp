#pragma once
// Which of the linear layer's steps the GPU build runs inside its cuBLASLt GEMMs (src/kernels/matmul.cpp) and
// which as separate kernels: plain functions of pointers and sizes, so that the choice is tested without a GPU
// (tests/kernels/test_matmul_epilogues.cpp).
#include <cstdint>

namespace xp::matmul_epilogues {

// cuBLASLt's bias and aux epilogues need 16-byte aligned vectors and an aux leading dimension divisible
// by 8. GPT-2's tensors always qualify; small or finely tensor-split test models may not, and then the
// epilogue runs as a separate Kokkos pass instead.
inline bool ready(const void* vector, int leading_dimension) {
  return reinterpret_cast<std::uintptr_t>(vector) % 16 == 0 && leading_dimension % 8 == 0;
}

// How matmul_bwd makes dbias (OC) += Σ_rows dout (N,OC):
// - Epilogue: the weight-gradient GEMM dW (OC,C) += doutᵀ·inp also writes Σ_rows dout (its BGRADB epilogue:
//   dout is cuBLASLt's B there, summed over the GEMM's k = N) into an fp32 scratch vector, and one pass adds
//   the scratch into dbias. The epilogue overwrites its output, and dbias accumulates over micro-batches and
//   recompute, hence the scratch; dbias itself may have any alignment. Deterministic: a fixed cuBLASLt
//   algorithm, then an element-wise add. Only on the fused path (gpu_kernels = "fused"); the caller still asks
//   cuBLASLt whether it has an algorithm for the shape, and falls back to ColumnSums where it has none.
// - ColumnSums: column_sums_add after the GEMM (the Kokkos path, the CPU build, and any fallback).
enum class BiasGradPath { None, Epilogue, ColumnSums };

inline BiasGradPath bias_grad_path(const float* dbias, bool fused_kernels, int N, int OC) {
  if (!dbias || OC <= 0) return BiasGradPath::None;
  return fused_kernels && N >= 1 ? BiasGradPath::Epilogue : BiasGradPath::ColumnSums;
}

}  // namespace xp::matmul_epilogues
