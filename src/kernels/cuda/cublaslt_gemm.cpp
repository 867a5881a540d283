#include "cublaslt_gemm.hpp"

#include <cublasLt.h>
// Only MPI's C API is used; its deprecated C++ bindings warn under -Wextra when included with -I (not -isystem).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include "xp/core/cuda_check.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <unordered_map>

// Row-major onto column-major. A row-major X (r×c, stride ld) is, byte for byte, the column-major Xᵀ (c×r, same
// ld). So the row-major C = op(A)·op(B) is the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt's "A" is our B, its "B"
// is our A, and it computes its D as m×n = N×M with k = K, ldd = ldc. Consequences for the epilogues, read from
// the cublasLtEpilogue_t / cublasLtMatmulDescAttributes_t documentation (cublasLt.h, CUDA 13.0):
// - EPILOGUE_BIAS: "bias vector length must match matrix D rows ... broadcast to all columns". D's rows are the m
//   = N columns of our C, so the bias is one value per column of the row-major C — the layer's bias (OC).
// - GELU_AUX_BIAS / DGELU: the aux matrix has D's shape (m×n column-major, "leading dimension in elements ...
//   divisible by 8 and no less than the number of rows in the output matrix" = N), i.e. row-major M×N with row
//   stride ldaux ≥ N, exactly like C; its element type defaults to D's (EPILOGUE_AUX_DATA_TYPE unset).
// - BGRADB: "bias gradient based on the input matrix B. The bias size corresponds to the number of columns of the
//   matrix D. The reduction happens over the GEMM's k dimension." cuBLASLt's B is our op(A) read as K×M, D has
//   n = M columns: bias_grad[i] = Σ_k op(A)[i,k], one value per ROW of our C. For the weight gradient dW (OC,C) =
//   doutᵀ·inp that is Σ_rows dout[·,o] = dbias. ("Stores ... in the auxiliary output": written, not added.)
//   BGRADA would instead reduce our op(B) over k (one value per column of C), which the layer never needs.
//   The bias-gradient element type is the output's (Ctype), here fp32; BIAS_DATA_TYPE states it explicitly.
// - Heuristics "depend on [the bias/aux pointer] value to determine expected pointer alignment", and assume
//   256-byte aligned A/B/C/D unless told less (MATMUL_PREF_MIN_ALIGNMENT_*): so the real alignments go into the
//   preference and into the cache key, and an algorithm is never reused for less aligned pointers.

namespace xp::cuda {
namespace {

std::string cublas_status_text(cublasStatus_t status) {
  return std::string(cublasLtGetStatusName(status)) + " (" + cublasLtGetStatusString(status) + ")";
}

#define LT_CUBLAS_CHECK(call)                                                                        \
  do {                                                                                               \
    cublasStatus_t lt_cublas_rc_ = (call);                                                           \
    if (lt_cublas_rc_ != CUBLAS_STATUS_SUCCESS)                                                      \
      ::xp::fatal(__FILE__, __LINE__, std::string(#call) + " failed: " + cublas_status_text(lt_cublas_rc_)); \
  } while (0)

#define LT_REQUIRE(cond, what)                                                      \
  do {                                                                              \
    if (!(cond)) ::xp::fatal(__FILE__, __LINE__, "xp::cuda::gemm: " + std::string(what));  \
  } while (0)

constexpr size_t workspace_bytes = size_t{32} << 20;  // what NVIDIA recommends for Hopper

cudaDataType_t cuda_type(DType type) { return type == DType::F32 ? CUDA_R_32F : CUDA_R_16BF; }
size_t element_bytes(DType type) { return type == DType::F32 ? 4 : 2; }
const char* type_name(DType type) { return type == DType::F32 ? "f32" : "bf16"; }

const char* epilogue_name(Epilogue kind) {
  switch (kind) {
    case Epilogue::None: return "None";
    case Epilogue::Bias: return "Bias";
    case Epilogue::GeluBias: return "GeluBias";
    case Epilogue::DGelu: return "DGelu";
    case Epilogue::BiasGrad: return "BiasGrad";
  }
  return "?";
}

cublasLtEpilogue_t lt_epilogue(Epilogue kind) {
  switch (kind) {
    case Epilogue::None: return CUBLASLT_EPILOGUE_DEFAULT;
    case Epilogue::Bias: return CUBLASLT_EPILOGUE_BIAS;
    case Epilogue::GeluBias: return CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    case Epilogue::DGelu: return CUBLASLT_EPILOGUE_DGELU;
    case Epilogue::BiasGrad: return CUBLASLT_EPILOGUE_BGRADB;  // see the top of this file
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

// The largest power of two, up to 256, that divides the address.
uint32_t alignment(const void* pointer) {
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  uint32_t bytes = 1;
  while (bytes < 256 && (address & bytes) == 0) bytes <<= 1;
  return bytes;
}

struct PlanKey {
  bool trans_a, trans_b;
  int M, N, K, lda, ldb, ldc, ldaux;
  DType a_type, c_type, bias_type;
  Epilogue kind;
  uint32_t align_a, align_b, align_c, align_vector;  // align_vector: bias, aux or bias_grad

  auto tie() const {
    return std::tie(trans_a, trans_b, M, N, K, lda, ldb, ldc, ldaux, a_type, c_type, bias_type, kind, align_a,
                    align_b, align_c, align_vector);
  }
  bool operator==(const PlanKey& other) const { return tie() == other.tie(); }
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& key) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t value) { h = (h ^ value) * 1099511628211ull; };
    mix(uint64_t(key.trans_a) | uint64_t(key.trans_b) << 1 | uint64_t(key.a_type) << 2 | uint64_t(key.c_type) << 3 |
        uint64_t(key.bias_type) << 4 | uint64_t(key.kind) << 5);
    for (int v : {key.M, key.N, key.K, key.lda, key.ldb, key.ldc, key.ldaux}) mix(uint32_t(v));
    mix(uint64_t(key.align_a) | uint64_t(key.align_b) << 16 | uint64_t(key.align_c) << 32 |
        uint64_t(key.align_vector) << 48);
    return size_t(h);
  }
};

// Descriptors of one problem, in cuBLASLt's (swapped) naming: layout_a describes our B, layout_b our A.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t layout_a = nullptr, layout_b = nullptr, layout_c = nullptr;  // layout_c is also D's
  cublasLtMatmulAlgo_t algo{};
  bool supported = false;  // false: cuBLASLt offered no algorithm (kept, so the question is asked once)
};

struct State {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::unordered_map<PlanKey, Plan, PlanKeyHash> plans;
  float* scratch = nullptr;  // bias_grad_scratch's vector
  size_t scratch_count = 0;
};

// Process lifetime on purpose (no destructor): freeing after the CUDA context is gone would fail. gemm_release().
State& state() {
  static State instance;
  return instance;
}

std::string describe(const PlanKey& key) {
  char text[320];
  std::snprintf(text, sizeof text,
                "trans_a=%d trans_b=%d M=%d N=%d K=%d lda=%d ldb=%d ldc=%d, A/B %s, C %s, epilogue %s (bias %s, "
                "ldaux %d), alignment A %u B %u C %u vector %u bytes",
                key.trans_a, key.trans_b, key.M, key.N, key.K, key.lda, key.ldb, key.ldc, type_name(key.a_type),
                type_name(key.c_type), epilogue_name(key.kind), type_name(key.bias_type), key.ldaux, key.align_a,
                key.align_b, key.align_c, key.align_vector);
  return text;
}

template <typename T>
void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const T& value) {
  LT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof value));
}

// The per-call pointers of the epilogue (the descriptor is cached; the pointers change from call to call).
void bind_epilogue_pointers(cublasLtMatmulDesc_t desc, const GemmEpilogue& epilogue) {
  switch (epilogue.kind) {
    case Epilogue::None: break;
    case Epilogue::Bias: set_desc(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, epilogue.bias); break;
    case Epilogue::GeluBias:
      set_desc(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, epilogue.bias);
      set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, epilogue.aux);
      break;
    case Epilogue::DGelu: set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, epilogue.aux); break;
    case Epilogue::BiasGrad: set_desc(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, epilogue.bias_grad); break;
  }
}

Plan make_plan(const PlanKey& key, const GemmEpilogue& epilogue) {
  State& s = state();
  Plan plan;
  LT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_lt_a = key.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's A is our B
  const cublasOperation_t op_lt_b = key.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's B is our A
  set_desc(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, op_lt_a);
  set_desc(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, op_lt_b);
  set_desc(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, lt_epilogue(key.kind));
  if (key.kind == Epilogue::Bias || key.kind == Epilogue::GeluBias)
    set_desc(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, int32_t(cuda_type(key.bias_type)));
  if (key.kind == Epilogue::BiasGrad) set_desc(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, int32_t(CUDA_R_32F));
  if (key.kind == Epilogue::GeluBias || key.kind == Epilogue::DGelu)
    set_desc(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, int64_t(key.ldaux));
  bind_epilogue_pointers(plan.desc, epilogue);  // the heuristic reads their alignment

  // Column-major views of the row-major operands as stored (rows and columns swap, the stride stays).
  const uint64_t b_rows = key.trans_b ? key.N : key.K, b_cols = key.trans_b ? key.K : key.N;
  const uint64_t a_rows = key.trans_a ? key.K : key.M, a_cols = key.trans_a ? key.M : key.K;
  LT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.layout_a, cuda_type(key.a_type), b_cols, b_rows, key.ldb));
  LT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.layout_b, cuda_type(key.a_type), a_cols, a_rows, key.lda));
  LT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.layout_c, cuda_type(key.c_type), uint64_t(key.N),
                                             uint64_t(key.M), key.ldc));

  cublasLtMatmulPreference_t preference = nullptr;
  LT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  LT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                       &workspace_bytes, sizeof workspace_bytes));
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_b},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_c}};
  for (const auto& [attribute, bytes] : alignments)
    LT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &bytes, sizeof bytes));

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(s.handle, plan.desc, plan.layout_a, plan.layout_b,
                                                               plan.layout_c, plan.layout_c, preference, 1, &result,
                                                               &found);
  LT_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(preference));
  plan.supported = status == CUBLAS_STATUS_SUCCESS && found > 0;
  if (plan.supported) plan.algo = result.algo;
  else if (status != CUBLAS_STATUS_SUCCESS && status != CUBLAS_STATUS_NOT_SUPPORTED)
    ::xp::fatal(__FILE__, __LINE__,
                "cublasLtMatmulAlgoGetHeuristic (" + describe(key) + "): " + cublas_status_text(status));
  return plan;
}

void validate(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void* A, DType a_type, int lda,
              const void* B, DType b_type, int ldb, float beta, const void* C, DType c_type, int ldc,
              const GemmEpilogue& e) {
  LT_REQUIRE(M >= 0 && N >= 0 && K >= 1, "needs M, N >= 0 and K >= 1; got M=" + std::to_string(M) +
                                             " N=" + std::to_string(N) + " K=" + std::to_string(K));
  LT_REQUIRE(A && B && C, "A, B and C must be device pointers, not null");
  LT_REQUIRE(a_type == b_type, std::string("A and B must share one type; got A ") + type_name(a_type) + ", B " +
                                   type_name(b_type));
  const int a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  LT_REQUIRE(lda >= a_cols && lda >= 1, "lda=" + std::to_string(lda) + " < " + std::to_string(a_cols) +
                                            " columns of A as stored");
  LT_REQUIRE(ldb >= b_cols && ldb >= 1, "ldb=" + std::to_string(ldb) + " < " + std::to_string(b_cols) +
                                            " columns of B as stored");
  LT_REQUIRE(ldc >= N && ldc >= 1, "ldc=" + std::to_string(ldc) + " < N=" + std::to_string(N));
  LT_REQUIRE(alignment(A) >= element_bytes(a_type) && alignment(B) >= element_bytes(b_type) &&
                 alignment(C) >= element_bytes(c_type),
             "A, B and C must be aligned to their element size");

  const std::string kind = std::string("epilogue ") + epilogue_name(e.kind) + ": ";
  if (e.kind != Epilogue::None)
    LT_REQUIRE(alpha == 1.0f, kind + "needs alpha = 1 (got " + std::to_string(alpha) + ")");
  if (e.kind == Epilogue::Bias || e.kind == Epilogue::GeluBias || e.kind == Epilogue::DGelu)
    LT_REQUIRE(beta == 0.0f, kind + "needs beta = 0 (got " + std::to_string(beta) + ")");
  if (e.kind == Epilogue::Bias || e.kind == Epilogue::GeluBias)
    LT_REQUIRE(e.bias && alignment(e.bias) >= 16, kind + "needs a 16-byte aligned bias pointer");
  if (e.kind == Epilogue::GeluBias || e.kind == Epilogue::DGelu) {
    LT_REQUIRE(e.aux && alignment(e.aux) >= 16, kind + "needs a 16-byte aligned aux pointer");
    LT_REQUIRE(e.ldaux >= N && e.ldaux % 8 == 0,
               kind + "needs ldaux >= N=" + std::to_string(N) + " and divisible by 8 (got " +
                   std::to_string(e.ldaux) + ")");
  }
  if (e.kind == Epilogue::BiasGrad)
    LT_REQUIRE(e.bias_grad && alignment(e.bias_grad) >= 16, kind + "needs a 16-byte aligned bias_grad pointer");
}


// The cached plan for these arguments (made on first use), with the epilogue's pointers bound. Without an
// algorithm: the job ends with the problem's description when `required`, else the plan says unsupported.
const Plan& find_plan(bool trans_a, bool trans_b, int M, int N, int K, const void* A, DType a_type, int lda,
                      const void* B, int ldb, const void* C, DType c_type, int ldc, const GemmEpilogue& epilogue,
                      bool required) {
  State& s = state();
  if (!s.handle) LT_CUBLAS_CHECK(cublasLtCreate(&s.handle));
  if (!s.workspace) XP_CUDA_CHECK(cudaMalloc(&s.workspace, workspace_bytes));

  const bool has_bias = epilogue.kind == Epilogue::Bias || epilogue.kind == Epilogue::GeluBias;
  const bool has_aux = epilogue.kind == Epilogue::GeluBias || epilogue.kind == Epilogue::DGelu;
  uint32_t align_vector = 256;
  if (has_bias) align_vector = alignment(epilogue.bias);
  if (has_aux && alignment(epilogue.aux) < align_vector) align_vector = alignment(epilogue.aux);
  if (epilogue.kind == Epilogue::BiasGrad) align_vector = alignment(epilogue.bias_grad);
  const PlanKey key{trans_a,
                    trans_b,
                    M,
                    N,
                    K,
                    lda,
                    ldb,
                    ldc,
                    has_aux ? epilogue.ldaux : 0,
                    a_type,
                    c_type,
                    has_bias ? epilogue.bias_type : DType::F32,
                    epilogue.kind,
                    alignment(A),
                    alignment(B),
                    alignment(C),
                    align_vector};

  auto found = s.plans.find(key);
  if (found == s.plans.end()) {
    found = s.plans.emplace(key, make_plan(key, epilogue)).first;
  } else if (found->second.supported) {
    bind_epilogue_pointers(found->second.desc, epilogue);
  }
  if (required && !found->second.supported)
    ::xp::fatal(__FILE__, __LINE__, "cuBLASLt supports no algorithm for this gemm (" + describe(key) + ")");
  return found->second;
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void* A, DType a_type, int lda,
          const void* B, DType b_type, int ldb, float beta, void* C, DType c_type, int ldc,
          const GemmEpilogue& epilogue, cudaStream_t stream) {
  validate(trans_a, trans_b, M, N, K, alpha, A, a_type, lda, B, b_type, ldb, beta, C, c_type, ldc, epilogue);
  if (M == 0 || N == 0) return;
  const Plan& plan = find_plan(trans_a, trans_b, M, N, K, A, a_type, lda, B, ldb, C, c_type, ldc, epilogue, true);
  State& s = state();
  // Swapped operands: cuBLASLt's A is our B, its B our A; C is read (beta) and written (D) in place.
  LT_CUBLAS_CHECK(cublasLtMatmul(s.handle, plan.desc, &alpha, B, plan.layout_a, A, plan.layout_b, &beta, C,
                                 plan.layout_c, C, plan.layout_c, &plan.algo, s.workspace, workspace_bytes, stream));
}

bool gemm_supported(bool trans_a, bool trans_b, int M, int N, int K, const void* A, DType a_type, int lda,
                    const void* B, DType b_type, int ldb, float beta, const void* C, DType c_type, int ldc,
                    const GemmEpilogue& epilogue) {
  validate(trans_a, trans_b, M, N, K, 1.0f, A, a_type, lda, B, b_type, ldb, beta, C, c_type, ldc, epilogue);
  if (M == 0 || N == 0) return true;
  return find_plan(trans_a, trans_b, M, N, K, A, a_type, lda, B, ldb, C, c_type, ldc, epilogue, false).supported;
}

float* bias_grad_scratch(size_t count) {
  State& s = state();
  if (count > s.scratch_count) {
    if (s.scratch) {
      XP_CUDA_CHECK(cudaDeviceSynchronize());  // an earlier gemm or add may still use the old vector
      XP_CUDA_CHECK(cudaFree(s.scratch));
    }
    XP_CUDA_CHECK(cudaMalloc(&s.scratch, count * sizeof(float)));  // 256-byte aligned
    s.scratch_count = count;
  }
  return s.scratch;
}

void gemm_release() {
  State& s = state();
  if (!s.handle && !s.workspace && !s.scratch && s.plans.empty()) return;
  XP_CUDA_CHECK(cudaDeviceSynchronize());  // no gemm may still use the workspace
  for (auto& [key, plan] : s.plans) {  // unsupported plans hold their descriptors too
    LT_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(plan.layout_c));
    LT_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(plan.layout_b));
    LT_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(plan.layout_a));
    LT_CUBLAS_CHECK(cublasLtMatmulDescDestroy(plan.desc));
  }
  s.plans.clear();
  if (s.scratch) XP_CUDA_CHECK(cudaFree(s.scratch));
  s.scratch = nullptr;
  s.scratch_count = 0;
  if (s.workspace) XP_CUDA_CHECK(cudaFree(s.workspace));
  s.workspace = nullptr;
  if (s.handle) LT_CUBLAS_CHECK(cublasLtDestroy(s.handle));
  s.handle = nullptr;
}

}  // namespace xp::cuda
