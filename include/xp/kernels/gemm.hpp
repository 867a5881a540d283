#pragma once
// The host matrix multiply: OpenBLAS sgemm (CPU builds; GPU builds use cuBLASLt, kernels/cuda/cublaslt_gemm).
// Row-major: C (M,N) = alpha * op(A) (M,K) · op(B) (K,N) + beta * C.
namespace xp {

enum class Trans { No, Yes };

void gemm(Trans trans_a, Trans trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);

// Threads the host BLAS may use in this rank.
void set_gemm_threads(int threads);

}  // namespace xp
