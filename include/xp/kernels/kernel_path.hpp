#pragma once
// Which implementation the GPU build's kernel functions run: the fused CUDA kernels
// (src/kernels/cuda/*.cu) or the portable Kokkos ones. Fused is the default; `gpu_kernels = "kokkos"`
// (deck key) selects Kokkos so that one GPU run can measure both side by side. CPU builds always run
// Kokkos. Set once, before the first kernel, by whoever reads the configuration (the trainer, tools).
namespace xp {

enum class KernelPath { Fused, Kokkos };

void set_kernel_path(KernelPath path);
KernelPath kernel_path();

// True where a kernel function should call its fused CUDA version: a CUDA build on the fused path.
inline bool use_fused_kernels() {
#if defined(XP_ENABLE_CUDA)
  return kernel_path() == KernelPath::Fused;
#else
  return false;
#endif
}

}  // namespace xp
