#pragma once
// Microbenchmarks of the GPU build's memory-bound kernels (tools/kernel_bench/*.cpp, one file per kernel,
// run by tools/gpu_run.sh's kernel_bench step as `xp_kernel_bench [name...]`). Each prints, per shape and
// per implementation (fused CUDA, Kokkos), the time, the achieved GB/s of the bytes the kernel must move,
// its floor (those bytes ÷ 4.3 TB/s, the H200's measured copy bandwidth) and the fraction of this
// machine's device-to-device copy bandwidth, measured first. Goal of the fused kernels: ≥ 70 %.
#include <cuda_runtime.h>

#include <functional>
#include <string>

namespace xp::bench {

constexpr double h200_copy_bytes_per_s = 4.3e12;  // measured copy bandwidth the kernels' floors are stated in

// Median time in microseconds of `launch` (which enqueues one kernel call on `stream`), over `reps`
// calls after `warmup`, timed with CUDA events.
double median_us(const std::function<void()>& launch, cudaStream_t stream, int reps = 50, int warmup = 5);

// This device's copy bandwidth: bytes read + written per second by cudaMemcpyAsync device → device.
double copy_bytes_per_s(cudaStream_t stream);

// One line: kernel, shape, implementation, µs, GB/s of `bytes`, floor µs, % of the copy bandwidth.
void report(const std::string& kernel, const std::string& shape, const std::string& impl, double bytes, double us);

// A device buffer of n elements of T filled with reproducible values in [-scale, scale] (bf16 or float).
void* device_random(size_t bytes_per_element, size_t n, bool bf16, float scale, unsigned seed);
void device_free(void* p);

// Each kernel_bench/*.cpp registers its benchmark: `static Registration r("classifier", run);`
struct Registration {
  Registration(const char* name, void (*run)(cudaStream_t stream));
};

}  // namespace xp::bench
