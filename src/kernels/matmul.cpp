#include "xp/kernels/matmul.hpp"

#include "kernels/matmul_epilogues.hpp"
#include "xp/core/types.hpp"
#include "xp/kernels/elementwise.hpp"
#include "xp/kernels/gelu.hpp"
#include "xp/kernels/kernel_path.hpp"

#if defined(XP_ENABLE_CUDA)
#include <cstdint>

#include "kernels/cuda/cublaslt_gemm.hpp"
#include "xp/core/device.hpp"
#else
#include <type_traits>

#include "xp/kernels/gemm.hpp"
#endif

namespace xp {

#if defined(XP_ENABLE_CUDA)

namespace {

using cuda::DType;
using cuda::Epilogue;
using cuda::GemmEpilogue;

cudaStream_t stream() { return static_cast<cudaStream_t>(device_stream()); }

using matmul_epilogues::BiasGradPath;
using matmul_epilogues::bias_grad_path;

// out (N,OC) = inp (N,C) · weight (OC,C)ᵀ with `epilogue`, all bf16.
void forward_gemm(Real* out, const Real* inp, const Real* weight, int N, int C, int OC, const GemmEpilogue& epilogue) {
  cuda::gemm(false, true, N, OC, C, 1.0f, inp, DType::BF16, C, weight, DType::BF16, C, 0.0f, out, DType::BF16, OC,
             epilogue, stream());
}

}  // namespace

void matmul_fwd(Real* out, const Real* inp, const Real* weight, const Real* bias, int N, int C, int OC) {
  GemmEpilogue epilogue;
  const bool fused = bias && matmul_epilogues::ready(bias, OC);
  if (fused) {
    epilogue.kind = Epilogue::Bias;
    epilogue.bias = bias;
    epilogue.bias_type = DType::BF16;
  }
  forward_gemm(out, inp, weight, N, C, OC, epilogue);
  if (bias && !fused) bias_add(out, bias, N, OC);  // operands cuBLASLt's bias epilogue does not take
}

void matmul_gelu_fwd(Real* out, Real* pre, const Real* inp, const Real* weight, const Real* bias, int N, int C,
                     int OC) {
  if (!matmul_epilogues::ready(bias, OC) || !matmul_epilogues::ready(pre, OC)) {
    matmul_fwd(pre, inp, weight, bias, N, C, OC);
    gelu_fwd(out, pre, int64_t{N} * OC);
    return;
  }
  GemmEpilogue epilogue;
  epilogue.kind = Epilogue::GeluBias;
  epilogue.bias = bias;
  epilogue.bias_type = DType::BF16;
  epilogue.aux = pre;
  epilogue.ldaux = OC;
  forward_gemm(out, inp, weight, N, C, OC, epilogue);
}

void matmul_bwd(Real* dinp, float* dweight, float* dbias, const Real* dout, const Real* inp, const Real* weight,
                int N, int C, int OC, const Real* gelu_pre) {
  GemmEpilogue input_epilogue;
  const bool fused_gelu = gelu_pre && matmul_epilogues::ready(gelu_pre, C);
  if (fused_gelu) {
    input_epilogue.kind = Epilogue::DGelu;
    input_epilogue.aux = const_cast<Real*>(gelu_pre);
    input_epilogue.ldaux = C;
  }
  cuda::gemm(false, false, N, C, OC, 1.0f, dout, DType::BF16, OC, weight, DType::BF16, C, 0.0f, dinp, DType::BF16, C,
             input_epilogue, stream());
  if (gelu_pre && !fused_gelu) gelu_bwd(dinp, gelu_pre, dinp, int64_t{N} * C);
  // The weight gradient, and with it the bias gradient where cuBLASLt's BGRADB epilogue can (matmul_epilogues.hpp).
  GemmEpilogue weight_epilogue;
  BiasGradPath path = bias_grad_path(dbias, use_fused_kernels(), N, OC);
  if (path == BiasGradPath::Epilogue) {
    weight_epilogue.kind = Epilogue::BiasGrad;
    weight_epilogue.bias_grad = cuda::bias_grad_scratch(OC);
    if (!cuda::gemm_supported(true, false, OC, C, N, dout, DType::BF16, OC, inp, DType::BF16, C, 1.0f, dweight,
                              DType::F32, C, weight_epilogue)) {
      weight_epilogue = GemmEpilogue{};
      path = BiasGradPath::ColumnSums;
    }
  }
  cuda::gemm(true, false, OC, C, N, 1.0f, dout, DType::BF16, OC, inp, DType::BF16, C, 1.0f, dweight, DType::F32, C,
             weight_epilogue, stream());
  if (path == BiasGradPath::Epilogue) {
    const float* sums = weight_epilogue.bias_grad;
    Kokkos::parallel_for("xp::matmul_bias_grad_add", Range(0, OC), KOKKOS_LAMBDA(int64_t o) { dbias[o] += sums[o]; });
  } else if (path == BiasGradPath::ColumnSums) {
    column_sums_add(dbias, dout, N, OC);
  }
}

#else

namespace {

// sgemm works on fp32. Where Real is float the Real buffers are used as they are (no copies); with
// emulated bf16 the operands are widened into fp32 scratch and each output is rounded to Real once,
// as a bf16 GEMM with fp32 accumulation does on the GPU.
template <class T>
const float* fp32_operand(const T* x, int64_t n, FloatBuffer& scratch) {
  if constexpr (std::is_same_v<T, float>) {
    return x;
  } else {
    scratch = FloatBuffer(Kokkos::view_alloc(Kokkos::WithoutInitializing, "xp::matmul_fp32_operand"), n);
    float* wide = scratch.data();
    Kokkos::parallel_for("xp::matmul_widen", Range(0, n), KOKKOS_LAMBDA(int64_t i) { wide[i] = to_float(x[i]); });
    return wide;
  }
}

// Where sgemm writes the Real output `out` (n): out itself, or fp32 scratch that store_output rounds into out.
template <class T>
float* fp32_output(T* out, int64_t n, FloatBuffer& scratch) {
  if constexpr (std::is_same_v<T, float>) {
    return out;
  } else {
    scratch = FloatBuffer(Kokkos::view_alloc(Kokkos::WithoutInitializing, "xp::matmul_fp32_output"), n);
    return scratch.data();
  }
}

template <class T>
void store_output(T* out, const float* result, int64_t n) {
  if constexpr (!std::is_same_v<T, float>) convert_to_real(out, result, n);
}

}  // namespace

void matmul_fwd(Real* out, const Real* inp, const Real* weight, const Real* bias, int N, int C, int OC) {
  const int64_t size = int64_t{N} * OC;
  FloatBuffer inp_fp32, weight_fp32, out_fp32;
  float* result = fp32_output(out, size, out_fp32);
  float beta = 0.0f;
  if (bias) {
    // Start from the bias so the gemm adds onto it: one pass over out instead of two.
    Kokkos::parallel_for("xp::matmul_fwd_bias", Range(0, size),
                         KOKKOS_LAMBDA(int64_t i) { result[i] = to_float(bias[i % OC]); });
    beta = 1.0f;
  }
  gemm(Trans::No, Trans::Yes, N, OC, C, 1.0f, fp32_operand(inp, int64_t{N} * C, inp_fp32), C,
       fp32_operand(weight, int64_t{OC} * C, weight_fp32), C, beta, result, OC);
  store_output(out, result, size);
}

void matmul_gelu_fwd(Real* out, Real* pre, const Real* inp, const Real* weight, const Real* bias, int N, int C,
                     int OC) {
  matmul_fwd(pre, inp, weight, bias, N, C, OC);
  gelu_fwd(out, pre, int64_t{N} * OC);
}

void matmul_bwd(Real* dinp, float* dweight, float* dbias, const Real* dout, const Real* inp, const Real* weight,
                int N, int C, int OC, const Real* gelu_pre) {
  FloatBuffer dout_fp32, weight_fp32, inp_fp32, dinp_fp32;
  const float* dout_wide = fp32_operand(dout, int64_t{N} * OC, dout_fp32);  // used by both gemms
  float* dinp_result = fp32_output(dinp, int64_t{N} * C, dinp_fp32);
  gemm(Trans::No, Trans::No, N, C, OC, 1.0f, dout_wide, OC, fp32_operand(weight, int64_t{OC} * C, weight_fp32), C,
       0.0f, dinp_result, C);
  store_output(dinp, dinp_result, int64_t{N} * C);
  if (gelu_pre) gelu_bwd(dinp, gelu_pre, dinp, int64_t{N} * C);
  // The weight gradient accumulates in fp32 straight into dweight.
  gemm(Trans::Yes, Trans::No, OC, C, N, 1.0f, dout_wide, OC, fp32_operand(inp, int64_t{N} * C, inp_fp32), C, 1.0f,
       dweight, C);
  if (dbias) column_sums_add(dbias, dout, N, OC);
}

#endif

}  // namespace xp
