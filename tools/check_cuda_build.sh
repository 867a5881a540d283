#!/usr/bin/env bash
# Compile-check of the GPU build where there is no GPU (CI): Kokkos 3.4 with CUDA from Debian's trilinos
# source (tools/build_kokkos.sh, cached in .deps/), then xp_train, its tools and its tests with
# -DXP_ENABLE_CUDA=ON (cuBLASLt, NCCL, the fused CUDA kernels). toml++ is used header-only, as on a
# machine without Debian's packages. Fails on any configure or compile error; exits 77 (skipped) when
# there is no CUDA toolkit.
#   tools/check_cuda_build.sh                       (BUILD_DIR=build-cuda, XP_DEPS_DIR=.deps by default)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
deps=${XP_DEPS_DIR:-$repo/.deps}
build_dir=${BUILD_DIR:-$repo/build-cuda}
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [[ ! -x $nvcc ]]; then
  echo "skipped: no CUDA toolkit (nvcc) on this machine"
  exit 77
fi
export PATH=$(dirname "$nvcc"):$PATH
prefix=$deps/kokkos-cuda
"$repo/tools/build_kokkos.sh" --backend cuda --prefix "$prefix"

start=$SECONDS
mkdir -p "$build_dir"
configure_log=$build_dir/check_configure.log build_log=$build_dir/check_build.log
cmake -S "$repo" -B "$build_dir" -DXP_ENABLE_CUDA=ON -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CUDA_COMPILER="$nvcc" \
  -DXP_TOMLPP_HEADER_ONLY=ON -DXP_TOMLPP_INCLUDE_DIR=/usr/include >"$configure_log" 2>&1 ||
  { cat "$configure_log"; echo "FAILED: configure of the CUDA build"; exit 1; }
if ! cmake --build "$build_dir" -j"$(nproc)" >"$build_log" 2>&1; then
  grep -E -B2 -A6 "error" "$build_log" | head -150
  echo "FAILED: CUDA build (log: $build_log)"
  exit 1
fi
grep -E "warning" "$build_log" | sort -u | head -40 || true
echo "CUDA build of xp_train compiled in $((SECONDS - start)) s: $(ls "$build_dir"/xp_train "$build_dir"/tests/xp_unit_tests)"
