// Checks xp::cuda::gemm (src/kernels/cuda/cublaslt_gemm.cpp) on a GPU against a float64 host reference for every
// epilogue and type combination the linear layer uses, then times the layer's bf16 gemms. Exit 0: all PASS; 1: a
// FAIL; 77: no GPU. Build and run from the repository root:
//   g++ -std=c++17 -O2 -Isrc/kernels/cuda -Iinclude -I/usr/local/cuda/include $(mpicxx --showme:compile) tools/cublaslt_gemm_check.cpp src/kernels/cuda/cublaslt_gemm.cpp src/core/error.cpp -o /tmp/cublaslt_gemm_check $(mpicxx --showme:link) -L/usr/local/cuda/lib64 -lcublasLt -lcudart && /tmp/cublaslt_gemm_check
#include "cublaslt_gemm.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

using xp::cuda::DType;
using xp::cuda::Epilogue;
using xp::cuda::GemmEpilogue;

namespace {

#define CHECK_CUDA(call)                                                                               \
  do {                                                                                                 \
    cudaError_t check_rc_ = (call);                                                                    \
    if (check_rc_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(check_rc_)); \
      std::exit(1);                                                                                    \
    }                                                                                                  \
  } while (0)

uint16_t to_bf16(float value) {  // round to nearest even
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

float from_bf16(uint16_t half) {
  const uint32_t bits = uint32_t(half) << 16;
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

constexpr double gelu_scale = 0.7978845608028654;  // sqrt(2 / pi)
double gelu_tanh(double x) { return 0.5 * x * (1.0 + std::tanh(gelu_scale * (x + 0.044715 * x * x * x))); }
double gelu_erf(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_grad(double x) {
  const double t = std::tanh(gelu_scale * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * gelu_scale * (1.0 + 3.0 * 0.044715 * x * x);
}

// Host values of a matrix (already rounded to bf16 when its device copy is bf16) and the device copy.
struct Tensor {
  std::vector<float> host;
  DType type = DType::BF16;
  void* device = nullptr;

  Tensor(size_t n, DType t) : host(n, 0.0f), type(t) { CHECK_CUDA(cudaMalloc(&device, std::max<size_t>(bytes(), 1))); }
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  ~Tensor() { cudaFree(device); }

  size_t bytes() const { return host.size() * (type == DType::F32 ? 4 : 2); }
  void fill(std::mt19937& rng, float low, float high) {
    std::uniform_real_distribution<float> dist(low, high);
    for (float& v : host) v = type == DType::BF16 ? from_bf16(to_bf16(dist(rng))) : dist(rng);
    upload();
  }
  void upload() {
    if (type == DType::F32) {
      CHECK_CUDA(cudaMemcpy(device, host.data(), bytes(), cudaMemcpyHostToDevice));
    } else {
      std::vector<uint16_t> half(host.size());
      for (size_t i = 0; i < host.size(); ++i) half[i] = to_bf16(host[i]);
      CHECK_CUDA(cudaMemcpy(device, half.data(), bytes(), cudaMemcpyHostToDevice));
    }
  }
  std::vector<float> download() const {
    CHECK_CUDA(cudaDeviceSynchronize());
    std::vector<float> out(host.size());
    if (type == DType::F32) {
      CHECK_CUDA(cudaMemcpy(out.data(), device, bytes(), cudaMemcpyDeviceToHost));
    } else {
      std::vector<uint16_t> half(host.size());
      CHECK_CUDA(cudaMemcpy(half.data(), device, bytes(), cudaMemcpyDeviceToHost));
      for (size_t i = 0; i < half.size(); ++i) out[i] = from_bf16(half[i]);
    }
    return out;
  }
};

// Row-major (rows,cols) → (cols,rows), widened to double.
std::vector<double> transposed(const std::vector<float>& x, int rows, int cols) {
  std::vector<double> t(x.size());
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) t[size_t(c) * rows + r] = x[size_t(r) * cols + c];
  return t;
}
std::vector<double> widened(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

// C (M,N) = A (M,K) · B (K,N), row-major float64, rows split over the host's threads.
std::vector<double> reference_matmul(const std::vector<double>& a, const std::vector<double>& b, int M, int N, int K) {
  std::vector<double> c(size_t(M) * N, 0.0);
  auto rows = [&](int begin, int end) {
    for (int i = begin; i < end; ++i) {
      double* ci = &c[size_t(i) * N];
      for (int k = 0; k < K; ++k) {
        const double aik = a[size_t(i) * K + k];
        const double* bk = &b[size_t(k) * N];
        for (int j = 0; j < N; ++j) ci[j] += aik * bk[j];
      }
    }
  };
  const int threads = std::max(1, std::min<int>(std::thread::hardware_concurrency(), M));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(rows, int(int64_t(M) * t / threads), int(int64_t(M) * (t + 1) / threads));
  for (auto& worker : pool) worker.join();
  return c;
}

// max |got - ref| / max |ref|
double relative_error(const std::vector<float>& got, const std::vector<double>& ref) {
  double max_diff = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(double(got[i]) - ref[i]));
    max_ref = std::max(max_ref, std::abs(ref[i]));
  }
  return max_ref > 0.0 ? max_diff / max_ref : max_diff;
}

int failures = 0, cases = 0;
double max_error = 0.0;  // over every case, for the machine-readable summary line

// "forward Bias bf16 (N,C,OC)=(64,48,80)" -> "forward_Bias_bf16_N_C_OC_64_48_80": one token for METRIC lines
std::string slug(const std::string& name) {
  std::string out;
  for (const char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c))) out += c;
    else if (!out.empty() && out.back() != '_') out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

void report(const std::string& name, double error, double tolerance) {
  const bool pass = error <= tolerance;  // false for NaN
  if (!pass) ++failures;
  ++cases;
  max_error = std::isnan(error) ? INFINITY : std::max(max_error, error);
  std::printf("%s  %-58s rel err %.2e  (tol %.0e)\n", pass ? "PASS" : "FAIL", name.c_str(), error, tolerance);
  std::fflush(stdout);
}

constexpr double bf16_tol = 1e-2, f32_tol = 1e-4;

// The linear layer's operands at one shape: rows = B·T, C in, OC out features, all bf16.
struct LayerInputs {
  int rows, C, OC;
  std::string shape;
  Tensor inp, weight, bias, dout, pre_in;

  LayerInputs(int rows_, int C_, int OC_, std::mt19937& rng)
      : rows(rows_), C(C_), OC(OC_), inp(size_t(rows) * C, DType::BF16), weight(size_t(OC) * C, DType::BF16),
        bias(OC, DType::BF16), dout(size_t(rows) * OC, DType::BF16), pre_in(size_t(rows) * C, DType::BF16) {
    shape = "(N,C,OC)=(" + std::to_string(rows) + "," + std::to_string(C) + "," + std::to_string(OC) + ")";
    const float w_range = std::sqrt(3.0f / C);  // pre-activations of order 1: GELU's curved part gets used
    inp.fill(rng, -1, 1);
    weight.fill(rng, -w_range, w_range);
    bias.fill(rng, -1, 1);
    dout.fill(rng, -1, 1);
    pre_in.fill(rng, -3, 3);  // a GELU pre-activation feeding the DGelu backward
  }
};

// out (rows,OC) = inp · Wᵀ [+ bias [then GELU]], bf16.
void check_forward(const LayerInputs& x) {
  const int rows = x.rows, C = x.C, OC = x.OC;
  const auto forward = reference_matmul(widened(x.inp.host), transposed(x.weight.host, OC, C), rows, OC, C);
  {  // no bias (e.g. the LM head)
    Tensor out(size_t(rows) * OC, DType::BF16);
    xp::cuda::gemm(false, true, rows, OC, C, 1.0f, x.inp.device, DType::BF16, C, x.weight.device, DType::BF16, C,
                   0.0f, out.device, DType::BF16, OC, GemmEpilogue{}, nullptr);
    report("forward None bf16 " + x.shape, relative_error(out.download(), forward), bf16_tol);
  }
  std::vector<double> pre(forward.size());
  for (size_t i = 0; i < pre.size(); ++i) pre[i] = forward[i] + x.bias.host[i % OC];
  {
    Tensor out(size_t(rows) * OC, DType::BF16);
    GemmEpilogue epilogue;
    epilogue.kind = Epilogue::Bias;
    epilogue.bias = x.bias.device;
    xp::cuda::gemm(false, true, rows, OC, C, 1.0f, x.inp.device, DType::BF16, C, x.weight.device, DType::BF16, C,
                   0.0f, out.device, DType::BF16, OC, epilogue, nullptr);
    report("forward Bias bf16 " + x.shape, relative_error(out.download(), pre), bf16_tol);
  }
  {  // MLP up-projection: bias + GELU, pre-activation kept in aux
    Tensor out(size_t(rows) * OC, DType::BF16), aux(size_t(rows) * OC, DType::BF16);
    GemmEpilogue epilogue;
    epilogue.kind = Epilogue::GeluBias;
    epilogue.bias = x.bias.device;
    epilogue.aux = aux.device;
    epilogue.ldaux = OC;
    xp::cuda::gemm(false, true, rows, OC, C, 1.0f, x.inp.device, DType::BF16, C, x.weight.device, DType::BF16, C,
                   0.0f, out.device, DType::BF16, OC, epilogue, nullptr);
    std::vector<double> activated(pre.size());
    for (size_t i = 0; i < pre.size(); ++i) activated[i] = gelu_tanh(pre[i]);
    report("forward GeluBias bf16 out " + x.shape, relative_error(out.download(), activated), bf16_tol);
    report("forward GeluBias bf16 aux (pre-activation) " + x.shape, relative_error(aux.download(), pre), bf16_tol);
  }
}

// dinp (rows,C) = dout · W [∘ gelu'(pre_in)], bf16.
void check_backward_input(const LayerInputs& x) {
  const int rows = x.rows, C = x.C, OC = x.OC;
  const auto backward_input = reference_matmul(widened(x.dout.host), widened(x.weight.host), rows, C, OC);
  {
    Tensor dinp(size_t(rows) * C, DType::BF16);
    xp::cuda::gemm(false, false, rows, C, OC, 1.0f, x.dout.device, DType::BF16, OC, x.weight.device, DType::BF16, C,
                   0.0f, dinp.device, DType::BF16, C, GemmEpilogue{}, nullptr);
    report("backward-input None bf16 " + x.shape, relative_error(dinp.download(), backward_input), bf16_tol);
  }
  {  // through the GELU that produced this layer's input
    Tensor dinp(size_t(rows) * C, DType::BF16);
    GemmEpilogue epilogue;
    epilogue.kind = Epilogue::DGelu;
    epilogue.aux = x.pre_in.device;
    epilogue.ldaux = C;
    xp::cuda::gemm(false, false, rows, C, OC, 1.0f, x.dout.device, DType::BF16, OC, x.weight.device, DType::BF16, C,
                   0.0f, dinp.device, DType::BF16, C, epilogue, nullptr);
    std::vector<double> expected(backward_input.size());
    for (size_t i = 0; i < expected.size(); ++i) expected[i] = backward_input[i] * gelu_tanh_grad(x.pre_in.host[i]);
    report("backward-input DGelu bf16 " + x.shape, relative_error(dinp.download(), expected), bf16_tol);
  }
}

// fp32 dW (OC,C) += doutᵀ · inp (beta = 1), and with BiasGrad dbias (OC) = Σ_rows dout.
void check_backward_weight(const LayerInputs& x, bool with_bias_grad, std::mt19937& rng) {
  const int rows = x.rows, C = x.C, OC = x.OC;
  const auto backward_weight = reference_matmul(transposed(x.dout.host, rows, OC), widened(x.inp.host), OC, C, rows);
  Tensor dweight(size_t(OC) * C, DType::F32), bias_grad(OC, DType::F32);
  dweight.fill(rng, -1, 1);  // earlier micro-batches' gradient: beta = 1 must keep it
  std::fill(bias_grad.host.begin(), bias_grad.host.end(), 1000.0f);  // must be overwritten, not added to
  bias_grad.upload();
  GemmEpilogue epilogue;
  if (with_bias_grad) {
    epilogue.kind = Epilogue::BiasGrad;
    epilogue.bias_grad = static_cast<float*>(bias_grad.device);
  }
  xp::cuda::gemm(true, false, OC, C, rows, 1.0f, x.dout.device, DType::BF16, OC, x.inp.device, DType::BF16, C, 1.0f,
                 dweight.device, DType::F32, C, epilogue, nullptr);
  std::vector<double> expected(backward_weight.size());
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = dweight.host[i] + backward_weight[i];
  const std::string name = with_bias_grad ? "backward-weight BiasGrad f32 += " : "backward-weight None f32 += ";
  report(name + "dW " + x.shape, relative_error(dweight.download(), expected), f32_tol);
  if (with_bias_grad) {
    std::vector<double> column_sums(OC, 0.0);
    for (int r = 0; r < rows; ++r)
      for (int o = 0; o < OC; ++o) column_sums[o] += x.dout.host[size_t(r) * OC + o];
    report("backward-weight BiasGrad f32 = dbias (overwrite) " + x.shape,
           relative_error(bias_grad.download(), column_sums), f32_tol);
  }
}

// The bias gradient as matmul_bwd takes it (src/kernels/matmul_epilogues.hpp): BGRADB into bias_grad_scratch, at
// the real K (rows = B·T = 32768, the sum that loses most to fp32), at widths that are no multiple of 8, and twice
// with the same inputs — the same bits both times (the layer's gradients are deterministic). Where cuBLASLt has no
// algorithm (gemm_supported false) matmul_bwd falls back to column_sums_add: reported, not failed.
void check_bias_grad_as_the_layer_uses_it(std::mt19937& rng) {
  const int shapes[][3] = {{32768, 64, 768}, {4096, 40, 2304}, {1000, 24, 77}, {33, 8, 3}};  // (N, C, OC)
  for (const auto& shape : shapes) {
    const int rows = shape[0], C = shape[1], OC = shape[2];
    const std::string name = "(N,C,OC)=(" + std::to_string(rows) + "," + std::to_string(C) + "," +
                             std::to_string(OC) + ")";
    Tensor dout(size_t(rows) * OC, DType::BF16), inp(size_t(rows) * C, DType::BF16), dweight(size_t(OC) * C, DType::F32);
    dout.fill(rng, -1, 1);
    inp.fill(rng, -1, 1);
    dweight.fill(rng, -1, 1);
    GemmEpilogue epilogue;
    epilogue.kind = Epilogue::BiasGrad;
    epilogue.bias_grad = xp::cuda::bias_grad_scratch(size_t(OC));
    if (!xp::cuda::gemm_supported(true, false, OC, C, rows, dout.device, DType::BF16, OC, inp.device, DType::BF16, C,
                                  1.0f, dweight.device, DType::F32, C, epilogue)) {
      std::printf("SKIP  %-58s no cuBLASLt algorithm: matmul_bwd uses column_sums_add\n",
                  ("BiasGrad via scratch " + name).c_str());
      continue;
    }
    std::vector<std::vector<float>> sums, weights;
    for (int run = 0; run < 2; ++run) {
      dweight.upload();  // the same accumulated gradient before each run
      xp::cuda::gemm(true, false, OC, C, rows, 1.0f, dout.device, DType::BF16, OC, inp.device, DType::BF16, C, 1.0f,
                     dweight.device, DType::F32, C, epilogue, nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
      std::vector<float> sum(OC);
      CHECK_CUDA(cudaMemcpy(sum.data(), epilogue.bias_grad, sizeof(float) * OC, cudaMemcpyDeviceToHost));
      sums.push_back(sum);
      weights.push_back(dweight.download());
    }
    std::vector<double> column_sums(OC, 0.0);
    for (int r = 0; r < rows; ++r)
      for (int o = 0; o < OC; ++o) column_sums[o] += dout.host[size_t(r) * OC + o];
    report("BiasGrad via scratch dbias " + name, relative_error(sums[0], column_sums), f32_tol);
    const auto product = reference_matmul(transposed(dout.host, rows, OC), widened(inp.host), OC, C, rows);
    std::vector<double> expected(product.size());
    for (size_t i = 0; i < expected.size(); ++i) expected[i] = dweight.host[i] + product[i];
    report("BiasGrad via scratch dW += " + name, relative_error(weights[0], expected), f32_tol);
    const bool same = std::memcmp(sums[0].data(), sums[1].data(), sizeof(float) * OC) == 0 &&
                      std::memcmp(weights[0].data(), weights[1].data(), sizeof(float) * weights[0].size()) == 0;
    report("BiasGrad twice: the same bits " + name, same ? 0.0 : 1.0, 0.0);
  }
}

// All-fp32 gemm with both operands transposed, alpha and beta: the mapping beyond the layer's three cases.
void check_f32_transposed(std::mt19937& rng) {
  const int M = 37, N = 53, K = 29;
  Tensor a(size_t(K) * M, DType::F32), b(size_t(N) * K, DType::F32), c(size_t(M) * N, DType::F32);
  a.fill(rng, -1, 1);
  b.fill(rng, -1, 1);
  c.fill(rng, -1, 1);
  const auto product = reference_matmul(transposed(a.host, K, M), transposed(b.host, N, K), M, N, K);
  xp::cuda::gemm(true, true, M, N, K, 0.5f, a.device, DType::F32, M, b.device, DType::F32, K, 0.25f, c.device,
                 DType::F32, N, GemmEpilogue{}, nullptr);
  std::vector<double> expected(product.size());
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = 0.5 * product[i] + 0.25 * c.host[i];
  report("f32 None trans_a trans_b alpha=0.5 beta=0.25 (37,53,29)", relative_error(c.download(), expected), f32_tol);
}

// Which GELU does cuBLASLt apply? fp32 C = gelu(x·1 + 0) over x in [-6, 6], compared with the tanh form (the host
// kernel's) and the erf form; they differ by at most 4.7e-4, so this passes only if the result is the closer one.
void check_gelu_form() {
  const int M = 1201, N = 8, K = 8;
  Tensor a(size_t(M) * K, DType::F32), b(size_t(K) * N, DType::F32), bias(N, DType::F32);
  Tensor out(size_t(M) * N, DType::F32), aux(size_t(M) * N, DType::F32);
  for (int i = 0; i < M; ++i) a.host[size_t(i) * K] = -6.0f + 12.0f * i / (M - 1);
  for (int j = 0; j < N; ++j) b.host[j] = 1.0f;
  a.upload();
  b.upload();
  bias.upload();
  GemmEpilogue epilogue;
  epilogue.kind = Epilogue::GeluBias;
  epilogue.bias = bias.device;
  epilogue.bias_type = DType::F32;
  epilogue.aux = aux.device;
  epilogue.ldaux = N;
  xp::cuda::gemm(false, false, M, N, K, 1.0f, a.device, DType::F32, K, b.device, DType::F32, N, 0.0f, out.device,
                 DType::F32, N, epilogue, nullptr);
  const auto got = out.download();
  double square_tanh = 0, square_erf = 0, max_tanh = 0;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      const double x = a.host[size_t(i) * K], y = got[size_t(i) * N + j];
      square_tanh += (y - gelu_tanh(x)) * (y - gelu_tanh(x));
      square_erf += (y - gelu_erf(x)) * (y - gelu_erf(x));
      max_tanh = std::max(max_tanh, std::abs(y - gelu_tanh(x)));
    }
  const double rms_tanh = std::sqrt(square_tanh / (M * N)), rms_erf = std::sqrt(square_erf / (M * N));
  const bool pass = rms_tanh < rms_erf && max_tanh <= 1e-3;
  if (!pass) ++failures;
  ++cases;
  std::printf("%s  %-58s rms vs tanh %.2e, vs erf %.2e, max vs tanh %.2e\n", pass ? "PASS" : "FAIL",
              "GELU is the tanh form (f32 GeluBias, x in [-6,6])", rms_tanh, rms_erf, max_tanh);
  std::fflush(stdout);
}

// bf16 throughput of the layer's gemms at GPT-2 124M's MLP size; only the BiasGrad one with bias_grad_only.
// GB/s counts the fewest bytes each gemm must move (every operand read once, the output written once, read too
// when beta = 1; bias and aux as the epilogue uses them): against ~4.3 TB/s it says how memory-bound it is.
void time_layer(std::mt19937& rng, bool bias_grad_only) {
  const int rows = 32768, C = 768, OC = 3072;
  const double flops = 2.0 * rows * C * OC;
  auto random_bf16 = [&rng](size_t n, DType type) {
    auto t = std::make_unique<Tensor>(n, type);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    const size_t distinct = std::min<size_t>(n, 1 << 20);  // tiled: cheap to make, still not constant
    for (size_t i = 0; i < distinct; ++i) t->host[i] = dist(rng);
    for (size_t i = distinct; i < n; ++i) t->host[i] = t->host[i % distinct];
    t->upload();
    return t;
  };
  auto inp = random_bf16(size_t(rows) * C, DType::BF16), weight = random_bf16(size_t(OC) * C, DType::BF16);
  auto bias = random_bf16(OC, DType::BF16), dout = random_bf16(size_t(rows) * OC, DType::BF16);
  auto out = random_bf16(size_t(rows) * OC, DType::BF16), aux = random_bf16(size_t(rows) * OC, DType::BF16);
  auto dinp = random_bf16(size_t(rows) * C, DType::BF16), dweight = random_bf16(size_t(OC) * C, DType::F32);
  auto bias_grad = random_bf16(OC, DType::F32);

  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  auto time = [&](const char* name, double bytes, auto&& call) {
    for (int i = 0; i < 3; ++i) call();  // plan + heuristic, clocks up
    const int iterations = 20;
    CHECK_CUDA(cudaEventRecord(start, stream));
    for (int i = 0; i < iterations; ++i) call();
    CHECK_CUDA(cudaEventRecord(stop, stream));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
    const double seconds = ms * 1e-3 / iterations;
    std::printf("TIME  %-58s %8.3f ms  %6.1f TFLOP/s  %7.1f GB/s\n", name, seconds * 1e3, flops / seconds * 1e-12,
                bytes / seconds * 1e-9);
    std::printf("METRIC gemm %s ms=%.4f tflops=%.2f gbps=%.1f\n", slug(name).c_str(), seconds * 1e3,
                flops / seconds * 1e-12, bytes / seconds * 1e-9);
    std::fflush(stdout);
  };
  if (!bias_grad_only)
    std::printf("timing (N,C,OC)=(%d,%d,%d), %.1f GFLOP per gemm, mean of 20:\n", rows, C, OC, flops * 1e-9);
  // bf16 operands and outputs; the weight gradient is fp32, read and written (beta = 1)
  const double in_bytes = 2.0 * rows * C, weight_bytes = 2.0 * OC * C, out_bytes = 2.0 * rows * OC;
  const double dweight_bytes = 2 * 4.0 * OC * C;
  GemmEpilogue none, with_bias, gelu, bias_grad_epilogue;
  with_bias.kind = Epilogue::Bias;
  with_bias.bias = bias->device;
  gelu.kind = Epilogue::GeluBias;
  gelu.bias = bias->device;
  gelu.aux = aux->device;
  gelu.ldaux = OC;
  bias_grad_epilogue.kind = Epilogue::BiasGrad;
  bias_grad_epilogue.bias_grad = static_cast<float*>(bias_grad->device);
  if (bias_grad_only) {
    time("backward-weight bf16 -> f32 += BiasGrad", out_bytes + in_bytes + dweight_bytes + 4.0 * OC, [&] {
      xp::cuda::gemm(true, false, OC, C, rows, 1.0f, dout->device, DType::BF16, OC, inp->device, DType::BF16, C,
                     1.0f, dweight->device, DType::F32, C, bias_grad_epilogue, stream);
    });
  } else {
    for (const auto* e : {&none, &with_bias, &gelu}) {
      const std::string name = std::string("forward bf16 ") +
                               (e == &none ? "None" : e == &with_bias ? "Bias" : "GeluBias (aux written)");
      const double epilogue_bytes = e == &none ? 0.0 : e == &with_bias ? 2.0 * OC : 2.0 * OC + out_bytes;  // aux
      time(name.c_str(), in_bytes + weight_bytes + out_bytes + epilogue_bytes, [&] {
        xp::cuda::gemm(false, true, rows, OC, C, 1.0f, inp->device, DType::BF16, C, weight->device, DType::BF16, C,
                       0.0f, out->device, DType::BF16, OC, *e, stream);
      });
    }
    time("backward-input bf16 None", out_bytes + weight_bytes + in_bytes, [&] {
      xp::cuda::gemm(false, false, rows, C, OC, 1.0f, dout->device, DType::BF16, OC, weight->device, DType::BF16, C,
                     0.0f, dinp->device, DType::BF16, C, none, stream);
    });
    // The MLP down-projection (C_in = 3072, OC = 768): its input came out of the GELU. Buffers reused.
    GemmEpilogue dgelu;
    dgelu.kind = Epilogue::DGelu;
    dgelu.aux = aux->device;
    dgelu.ldaux = OC;
    time("backward-input bf16 DGelu (MLP down-projection, C_in=3072)", in_bytes + weight_bytes + 2 * out_bytes, [&] {
      xp::cuda::gemm(false, false, rows, OC, C, 1.0f, inp->device, DType::BF16, C, weight->device, DType::BF16, OC,
                     0.0f, out->device, DType::BF16, OC, dgelu, stream);
    });
    time("backward-weight bf16 -> f32 += None", out_bytes + in_bytes + dweight_bytes, [&] {
      xp::cuda::gemm(true, false, OC, C, rows, 1.0f, dout->device, DType::BF16, OC, inp->device, DType::BF16, C,
                     1.0f, dweight->device, DType::F32, C, none, stream);
    });
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  CHECK_CUDA(cudaStreamDestroy(stream));
}

// Not used by the layer (its bias is bf16): whether the bias_type option works with a bf16 output.
void check_f32_bias_with_bf16_output(std::mt19937& rng) {  const int rows = 64, C = 48, OC = 80;
  Tensor inp(size_t(rows) * C, DType::BF16), weight(size_t(OC) * C, DType::BF16), bias(OC, DType::F32);
  Tensor out(size_t(rows) * OC, DType::BF16);
  inp.fill(rng, -1, 1);
  weight.fill(rng, -1, 1);
  bias.fill(rng, -1, 1);
  GemmEpilogue epilogue;
  epilogue.kind = Epilogue::Bias;
  epilogue.bias = bias.device;
  epilogue.bias_type = DType::F32;
  xp::cuda::gemm(false, true, rows, OC, C, 1.0f, inp.device, DType::BF16, C, weight.device, DType::BF16, C, 0.0f,
                 out.device, DType::BF16, OC, epilogue, nullptr);
  auto expected = reference_matmul(widened(inp.host), transposed(weight.host, OC, C), rows, OC, C);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] += bias.host[i % OC];
  report("forward Bias bf16 out, f32 bias (64,48,80)", relative_error(out.download(), expected), bf16_tol);
}

}  // namespace

int main() {
  int devices = 0;
  const cudaError_t rc = cudaGetDeviceCount(&devices);
  if (rc != cudaSuccess || devices == 0) {
    std::printf("skipped: no CUDA device (%s)\n", rc != cudaSuccess ? cudaGetErrorString(rc) : "count is 0");
    return 77;
  }
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("device 0: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);

  std::mt19937 rng(1234);
  const int shapes[][3] = {{64, 48, 80}, {1000, 768, 2304}, {7, 64, 3072}};  // (N, C, OC)
  for (const auto& shape : shapes) {
    const LayerInputs inputs(shape[0], shape[1], shape[2], rng);
    check_forward(inputs);
    check_backward_input(inputs);
    check_backward_weight(inputs, false, rng);
  }
  check_f32_transposed(rng);
  time_layer(rng, false);

  // Combinations cuBLASLt might reject (gemm then ends the program with its message): last, so that everything
  // above is reported either way.
  // what the summary reads if one of them ends the program
  std::printf("METRIC gemm main cases=%d failed=%d max_rel_err=%.3e\n", cases, failures, max_error);
  std::printf("next: BiasGrad (BGRADB, bf16 in, fp32 out), fp32 GELU, fp32 bias with bf16 out\n");
  std::fflush(stdout);
  check_bias_grad_as_the_layer_uses_it(rng);  // first: it reports an unsupported BiasGrad instead of ending
  for (const auto& shape : shapes) check_backward_weight(LayerInputs(shape[0], shape[1], shape[2], rng), true, rng);
  time_layer(rng, true);
  check_gelu_form();
  check_f32_bias_with_bf16_output(rng);
  xp::cuda::gemm_release();

  std::printf(failures ? "FAILED: %d case(s)\n" : "all cases PASS\n", failures);
  std::printf("METRIC gemm all cases=%d failed=%d max_rel_err=%.3e\n", cases, failures, max_error);
  return failures ? 1 : 0;
}
