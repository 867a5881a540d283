#pragma once
// Row-major GEMM on the GPU through cuBLASLt, with the fused epilogues the linear layer needs.
// Plain host C++ (no Kokkos): every pointer is device memory, every call is asynchronous on `stream`.
//
// The linear layer (rows = B·T, C in features, OC out features, weight (OC,C) row-major):
//   forward          out (rows,OC) = inp (rows,C) · Wᵀ + bias       gemm(false, true,  rows, OC, C, ..., Bias or GeluBias)
//   backward input   dinp (rows,C) = dout (rows,OC) · W              gemm(false, false, rows, C, OC, ..., None or DGelu)
//   backward weight  dW (OC,C)    += doutᵀ (OC,rows) · inp (rows,C)  gemm(true,  false, OC, C, rows, beta = 1, fp32 C,
//                    scratch (OC)  = Σ_rows dout                     ..., BiasGrad); then dbias += scratch (caller)
#include <cuda_runtime.h>

#include <cstddef>

namespace xp::cuda {

enum class DType { F32, BF16 };

// C is the row-major M×N output, op(A)·op(B) the row-major product (M,K)·(K,N), accumulated in fp32.
// gelu(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) as in kernels/gelu.cpp (cuBLASLt's GELU; the check
// tool tests that it is the tanh form).
enum class Epilogue {
  None,      // C = alpha·op(A)·op(B) + beta·C                                    (any alpha, beta)
  Bias,      // C = op(A)·op(B) + bias[j]              bias: N values, one per column of C; alpha = 1, beta = 0
  GeluBias,  // pre = op(A)·op(B) + bias[j]; C = gelu(pre); aux = pre             alpha = 1, beta = 0
  DGelu,     // C = (op(A)·op(B)) ∘ gelu'(aux)          aux: M×N like C (a GeluBias forward's pre)   alpha = 1, beta = 0
  BiasGrad,  // C = op(A)·op(B) + beta·C, and bias_grad[i] = Σ_k op(A)[i,k]      alpha = 1, any beta
             //   bias_grad: M fp32 values, one per ROW of C, the sum over K of op(A) — for the weight gradient
             //   (op(A) = doutᵀ) that is Σ_rows dout, length OC. It is OVERWRITTEN, never accumulated: to
             //   accumulate into dbias, pass a scratch vector and add it to dbias afterwards.
};

// Pointers and conventions of the fused epilogues (unused fields are ignored):
// - bias (Bias, GeluBias): N packed values of bias_type (BF16 with a BF16 C; F32 only where cuBLASLt accepts it).
// - aux (GeluBias output, DGelu input): M×N row-major, element type = c_type, row stride ldaux (elements):
//   ldaux >= N and ldaux % 8 == 0 (a cuBLASLt rule).
// - bias_grad (BiasGrad): M floats, overwritten.
// - bias, aux and bias_grad must be 16-byte aligned (checked). A, B and C need only element alignment:
//   the algorithm is chosen for the alignment the pointers actually have.
struct GemmEpilogue {
  Epilogue kind = Epilogue::None;
  const void* bias = nullptr;
  DType bias_type = DType::BF16;
  void* aux = nullptr;
  int ldaux = 0;
  float* bias_grad = nullptr;
};

// Row-major, like cblas_sgemm(CblasRowMajor, ...): C (M,N) = alpha·op(A) (M,K) · op(B) (K,N) + beta·C, with
// op(X) = Xᵀ when trans_x. lda, ldb, ldc are row strides in elements of the matrices as stored. A and B share
// one type (F32 or BF16); C is F32 or BF16; accumulation and alpha/beta are fp32 (CUBLAS_COMPUTE_32F, no TF32).
// Any misuse, or a type/epilogue combination cuBLASLt does not support, ends the MPI job with a message.
//
// One cuBLASLt handle and one 32 MiB workspace per process, created on first use on the current device; the
// chosen algorithm is cached per (shape, strides, types, transposes, epilogue, pointer alignments). Not
// thread-safe, and calls on different streams must not overlap in time (they share the workspace).
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void* A, DType a_type, int lda,
          const void* B, DType b_type, int ldb, float beta, void* C, DType c_type, int ldc,
          const GemmEpilogue& epilogue, cudaStream_t stream);

// Whether gemm with these arguments (alpha = 1) has a cuBLASLt algorithm; the answer is cached with the plan, so
// asking before each call costs one lookup. Lets a caller fall back (e.g. to a separate kernel) where an epilogue
// and type combination is not supported, instead of gemm ending the job.
bool gemm_supported(bool trans_a, bool trans_b, int M, int N, int K, const void* A, DType a_type, int lda,
                    const void* B, DType b_type, int ldb, float beta, const void* C, DType c_type, int ldc,
                    const GemmEpilogue& epilogue);

// A device vector of at least `count` floats (16-byte aligned) for a BiasGrad epilogue to overwrite, kept for the
// process like the workspace: the caller adds it into its accumulated gradient afterwards, on the same stream.
// Growing it synchronizes the device (once per larger size); gemm_release frees it.
float* bias_grad_scratch(size_t count);

// Frees the handle, the workspace, the bias-gradient scratch and the cached plans (e.g. before cudaDeviceReset); the next gemm re-creates
// them. Synchronizes the device.
void gemm_release();

}  // namespace xp::cuda
