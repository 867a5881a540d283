#!/usr/bin/env bash
# Compile-check of the NCCL communicator backend without a GPU: configures build-nccl/ with
# -DXP_ENABLE_NCCL=ON -DXP_BUILD_TESTS=OFF and builds the xp_core library (CUDA toolkit + NCCL needed,
# a device is not). Fails on a configure or compile error, and on any warning in the NCCL backend.
#   tools/check_nccl_build.sh            (NCCL_HOME=<prefix> if NCCL is not beside the CUDA toolkit)
#   BUILD_DIR=dir OBJECT_ONLY=1 tools/check_nccl_build.sh   (the backend's object only: the ctest check)
# Exits 77 (skipped) when no CUDA toolkit is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build-nccl}
if ! command -v nvcc >/dev/null && [[ ! -x /usr/local/cuda/bin/nvcc ]]; then
  echo "skipped: no CUDA toolkit (nvcc) on this machine"
  exit 77
fi
mkdir -p "$build_dir"
configure_log="$build_dir/check_nccl_configure.log"
build_log="$build_dir/check_nccl_build.log"

echo "configure: $build_dir with -DXP_ENABLE_NCCL=ON -DXP_BUILD_TESTS=OFF${NCCL_HOME:+ (NCCL_HOME=$NCCL_HOME)}"
if ! cmake -S . -B "$build_dir" -DXP_ENABLE_NCCL=ON -DXP_BUILD_TESTS=OFF >"$configure_log" 2>&1; then
  cat "$configure_log"
  echo "FAILED: configure (log: $configure_log)"
  exit 1
fi
grep -E '^-- (Found CUDAToolkit|NCCL)' "$configure_log" || true

# The backend's own object first, so its result is clear even when another file of xp_core breaks.
object=src/parallel/nccl_comm.cpp.o
[ -f "$build_dir/build.ninja" ] && object=CMakeFiles/xp_core.dir/$object
echo "build: $object"
rm -f "$build_dir/CMakeFiles/xp_core.dir/src/parallel/nccl_comm.cpp.o"  # recompile: its warnings land in this log
if ! cmake --build "$build_dir" --target "$object" >"$build_log" 2>&1; then
  cat "$build_log"
  echo "FAILED: the NCCL backend does not compile (log: $build_log)"
  exit 1
fi
if grep -E 'warning' "$build_log"; then
  echo "FAILED: warnings in the NCCL backend (log: $build_log)"
  exit 1
fi

if [[ ${OBJECT_ONLY:-0} == 1 ]]; then
  echo "OK: the NCCL backend compiles without warnings"
  exit 0
fi
echo "build: xp_core"
if ! cmake --build "$build_dir" --target xp_core -j "$(nproc)" >>"$build_log" 2>&1; then
  grep -E -A6 ': error' "$build_log" || tail -40 "$build_log"
  echo "FAILED: xp_core does not build with XP_ENABLE_NCCL=ON; the NCCL backend itself compiled (log: $build_log)"
  exit 1
fi
echo "ok: xp_core builds with the NCCL backend, no warnings in it (logs in $build_dir/)"
