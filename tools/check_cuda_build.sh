#!/usr/bin/env bash
# Compile-check of the GPU build where there is no GPU (CI): Kokkos 3.4 with CUDA from Debian's trilinos
# source (tools/build_kokkos.sh, cached in .deps/kokkos-cuda), then xp_train, its tools, the kernel checks
# and the tests with -DXP_ENABLE_CUDA=ON (cuBLASLt, NCCL, the fused CUDA kernels). toml++ is used
# header-only, as on a machine without Debian's packages. Fails on any configure or compile error; exits 77
# (skipped) when there is no CUDA toolkit.
#
# The build is configured through a fixed absolute path, so that its CTest files stay valid on the GPU
# machine, where tools/gpu_run.sh points the same links at the carried copy (tools/gpu_bundle.sh):
#   $XP_GPU_ROOT/src   -> this repository
#   $XP_GPU_ROOT/build -> $BUILD_DIR
#   cmake -S $XP_GPU_ROOT/src -B $XP_GPU_ROOT/build ...
#
#   tools/check_cuda_build.sh      (BUILD_DIR=<repo>/build-cuda, XP_DEPS_DIR=<repo>/.deps, XP_GPU_ROOT=/opt/xp_gpu)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
deps=${XP_DEPS_DIR:-$repo/.deps}
build_dir=${BUILD_DIR:-$repo/build-cuda}
gpu_root=${XP_GPU_ROOT:-/opt/xp_gpu}
die() { echo "check_cuda_build: $*" >&2; exit 1; }

nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [[ ! -x $nvcc ]]; then
  echo "skipped: no CUDA toolkit (nvcc) on this machine"
  exit 77
fi
PATH=$(dirname "$nvcc"):$PATH
export PATH

# The fixed path: links, not copies, so that the build tree's absolute paths name $XP_GPU_ROOT only.
[[ $gpu_root == /* ]] || die "XP_GPU_ROOT must be an absolute path (got '$gpu_root')"
mkdir -p "$build_dir" && build_dir=$(cd "$build_dir" && pwd)
if ! mkdir -p "$gpu_root" 2>/dev/null || [[ ! -w $gpu_root ]]; then
  die "cannot create or write $gpu_root (the GPU build's fixed path): run as a user who can, or set XP_GPU_ROOT to a writable absolute path (the same one on the GPU machine)"
fi
for link in src build; do
  [[ -e $gpu_root/$link && ! -L $gpu_root/$link ]] && die "$gpu_root/$link exists and is not a symlink: move it away"
done
# The build tree's Makefiles name $XP_GPU_ROOT/build, so the link decides which tree a build writes: one at a time.
exec 9>"$gpu_root/.lock"
flock 9
[[ $(readlink "$gpu_root/build" 2>/dev/null) == "$build_dir" ]] ||
  echo "check_cuda_build: $gpu_root/build -> $build_dir (was: $(readlink "$gpu_root/build" 2>/dev/null || echo none))"
ln -sfn "$repo" "$gpu_root/src"
ln -sfn "$build_dir" "$gpu_root/build"

prefix=$deps/kokkos-cuda
"$repo/tools/build_kokkos.sh" --backend cuda --prefix "$prefix"

start=$SECONDS
# A tree configured from another source path (e.g. before the fixed path) cannot be reconfigured in place.
cache=$build_dir/CMakeCache.txt
if [[ -f $cache ]] && ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$gpu_root/src" "$cache"; then
  echo "check_cuda_build: $build_dir was configured from another source path: configuring it afresh"
  rm -rf "$cache" "$build_dir/CMakeFiles"
fi
configure_log=$build_dir/check_configure.log build_log=$build_dir/check_build.log
cmake -S "$gpu_root/src" -B "$gpu_root/build" -DXP_ENABLE_CUDA=ON -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CUDA_COMPILER="$nvcc" \
  -DXP_TOMLPP_HEADER_ONLY=ON -DXP_TOMLPP_INCLUDE_DIR=/usr/include >"$configure_log" 2>&1 ||
  { cat "$configure_log"; echo "FAILED: configure of the CUDA build"; exit 1; }
if ! cmake --build "$gpu_root/build" -j"$(nproc)" >"$build_log" 2>&1; then
  grep -E -B2 -A6 "error" "$build_log" | head -150
  echo "FAILED: CUDA build (log: $build_log)"
  exit 1
fi
grep -E "warning" "$build_log" | sort -u | head -40 || true
for binary in xp_train xp_ckpt xp_prep xp_gemm_check xp_attention_check xp_kernel_bench tests/xp_unit_tests tests/xp_mpi_tests; do
  [[ -x $build_dir/$binary ]] || die "the CUDA build made no $binary"
done
echo "CUDA build of xp_train compiled in $((SECONDS - start)) s in $build_dir (as $gpu_root/build)"
