// xp_kernel_bench [name...]: runs the registered kernel microbenchmarks (all, or those named); see
// kernel_bench.hpp. Needs one GPU; Kokkos is initialised so the Kokkos versions run beside the fused ones. A .cpp compiled
// through nvcc_wrapper like the rest of the CUDA build, so it may hold kernels and Kokkos alike.
#include "kernel_bench.hpp"

#include "xp/core/device.hpp"
#include "xp/core/program_stream.hpp"

#include <cuda_bf16.h>

#include <Kokkos_Core.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

#define BENCH_CHECK(call)                                                                                  \
  do {                                                                                                     \
    const cudaError_t rc_ = (call);                                                                        \
    if (rc_ != cudaSuccess) {                                                                              \
      std::fprintf(stderr, "xp_kernel_bench: %s:%d: %s: %s\n", __FILE__, __LINE__, #call,                   \
                   cudaGetErrorString(rc_));                                                               \
      std::exit(1);                                                                                        \
    }                                                                                                      \
  } while (0)

namespace xp::bench {
namespace {

std::map<std::string, void (*)(cudaStream_t)>& registry() {
  static std::map<std::string, void (*)(cudaStream_t)> benches;
  return benches;
}

double copy_rate = 0.0;  // bytes/s of a device-to-device copy on this machine

__global__ void fill_random(void* out, size_t n, bool bf16, float scale, unsigned seed) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n; i += size_t{gridDim.x} * blockDim.x) {
    unsigned x = static_cast<unsigned>(i) * 2654435761u ^ seed;
    x ^= x >> 15;
    x *= 2246822519u;
    x ^= x >> 13;
    const float value = scale * (2.0f * (x & 0xffffff) / float(0xffffff) - 1.0f);
    if (bf16) static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16_rn(value);
    else static_cast<float*>(out)[i] = value;
  }
}

}  // namespace

Registration::Registration(const char* name, void (*run)(cudaStream_t)) { registry()[name] = run; }

double median_us(const std::function<void()>& launch, cudaStream_t stream, int reps, int warmup) {
  for (int i = 0; i < warmup; ++i) launch();
  cudaEvent_t start, stop;
  BENCH_CHECK(cudaEventCreate(&start));
  BENCH_CHECK(cudaEventCreate(&stop));
  std::vector<float> times;
  for (int i = 0; i < reps; ++i) {
    BENCH_CHECK(cudaEventRecord(start, stream));
    launch();
    BENCH_CHECK(cudaEventRecord(stop, stream));
    BENCH_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    BENCH_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  BENCH_CHECK(cudaGetLastError());
  BENCH_CHECK(cudaEventDestroy(start));
  BENCH_CHECK(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return 1e3 * times[times.size() / 2];
}

double copy_bytes_per_s(cudaStream_t stream) {
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  BENCH_CHECK(cudaMalloc(&a, bytes));
  BENCH_CHECK(cudaMalloc(&b, bytes));
  const double us = median_us([&] { BENCH_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream)); },
                              stream, 20, 3);
  BENCH_CHECK(cudaFree(a));
  BENCH_CHECK(cudaFree(b));
  return 2.0 * bytes / (us * 1e-6);
}

void report(const std::string& kernel, const std::string& shape, const std::string& impl, double bytes, double us) {
  const double rate = bytes / (us * 1e-6);
  std::printf("%-22s %-26s %-7s %9.1f us %7.0f GB/s  floor %8.1f us  %5.1f%% of copy\n", kernel.c_str(),
              shape.c_str(), impl.c_str(), us, rate / 1e9, 1e6 * bytes / h200_copy_bytes_per_s,
              copy_rate > 0 ? 100.0 * rate / copy_rate : 0.0);
  std::fflush(stdout);
}

void* device_random(size_t bytes_per_element, size_t n, bool bf16, float scale, unsigned seed) {
  void* p = nullptr;
  BENCH_CHECK(cudaMalloc(&p, bytes_per_element * n));
  fill_random<<<1024, 256>>>(p, n, bf16, scale, seed);
  BENCH_CHECK(cudaGetLastError());
  BENCH_CHECK(cudaDeviceSynchronize());
  return p;
}

void device_free(void* p) { BENCH_CHECK(cudaFree(p)); }

}  // namespace xp::bench

int main(int argc, char** argv) {
  Kokkos::initialize(argc, argv);
  {
    xp::ProgramStream program_stream;  // the Kokkos path and the fused kernels on one stream, as in xp_train
    cudaStream_t stream = static_cast<cudaStream_t>(xp::device_stream());
    xp::bench::copy_rate = xp::bench::copy_bytes_per_s(stream);
    std::printf("device-to-device copy: %.0f GB/s (read + write); floors below at %.1f TB/s\n",
                xp::bench::copy_rate / 1e9, xp::bench::h200_copy_bytes_per_s / 1e12);
    std::vector<std::string> wanted(argv + 1, argv + argc);
    int ran = 0;
    for (const auto& [name, run] : xp::bench::registry()) {
      if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), name) == wanted.end()) continue;
      run(stream);
      ++ran;
    }
    if (ran == 0) std::fprintf(stderr, "xp_kernel_bench: no benchmark matched\n");
  }
  Kokkos::finalize();
  return 0;
}
