#!/usr/bin/env bash
# Everything the GPU path needs checked, in one command on an offline GPU machine (CUDA 13, Open MPI,
# serial HDF5, CMake, PyTorch; no package registry). Prepare the bundle here first (tools/gpu_bundle.sh
# fills .deps/: Kokkos source, GoogleTest, toml++ headers, the fp32 CPU reference loss curve), carry
# .deps/kokkos-src .deps/googletest .deps/tomlplusplus .deps/cpu_reference along (about 10 MiB), then on
# the GPU machine, from the repository root:
#
#   tools/gpu_check.sh [--bench] [--out DIR]
#
#  1. builds Kokkos 3.4 with CUDA (sm_90) from .deps/kokkos-src and xp_train with -DXP_ENABLE_CUDA=ON;
#  2. checks the cuBLASLt GEMMs and the fused attention against float64 references (tools/*_check);
#  3. runs the test suite on the GPU (every kernel against its float64 reference at bf16 tolerance,
#     the MPI tests and multi-rank layouts on one GPU through the host-staged MPI backend);
#  4. trains the tiny reference model 100 steps in bf16 on the GPU and compares the loss curve with the
#     fp32 CPU curve from the bundle (within 2%);
#  5. with --bench, tools/bench_gpu.sh: xp_train against PyTorch eager and torch.compile.
# Re-running it reuses the Kokkos install and the build (one device call is limited to 10 minutes).
# Logs and a summary go to --out (default $OUT when set, else gpu_check/); exit 1 when any step fails.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
deps=${XP_DEPS_DIR:-$repo/.deps}
out=${OUT:-$repo/gpu_check}
bench=0
while (($#)); do
  case $1 in
    --bench) bench=1; shift ;;
    --out) out=${2:?}; shift 2 ;;
    *) echo "usage: tools/gpu_check.sh [--bench] [--out DIR]" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
summary=$out/summary.txt
: >"$summary"
failed=0
step() {  # step NAME COMMAND...: runs it with its output in $out/NAME.log, records PASS/FAIL
  local name=$1 start=$SECONDS
  shift
  if "$@" >"$out/$name.log" 2>&1; then
    echo "PASS  $name ($((SECONDS - start)) s)" | tee -a "$summary"
  else
    echo "FAIL  $name ($((SECONDS - start)) s): tail of $out/$name.log" | tee -a "$summary"
    tail -25 "$out/$name.log"
    failed=1
  fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$summary"
jobs=$(nproc)
kokkos=$repo/build-gpu-kokkos  # kept between calls on a warm machine, like build-gpu/
build=$repo/build-gpu
step kokkos tools/build_kokkos.sh --backend cuda --prefix "$kokkos" --source "$deps/kokkos-src" --jobs "$jobs"
step configure cmake -S . -B "$build" -DXP_ENABLE_CUDA=ON -DCMAKE_PREFIX_PATH="$kokkos" \
  -DXP_TOMLPP_HEADER_ONLY=ON \
  -DXP_TOMLPP_INCLUDE_DIR="$deps/tomlplusplus/include" -DXP_GTEST_SOURCE_DIR="$deps/googletest"
step build cmake --build "$build" -j"$jobs"

mpi_compile=$(mpicxx --showme:compile) mpi_link=$(mpicxx --showme:link)
step gemm_check bash -c "g++ -std=c++17 -O2 -Isrc/kernels/cuda -Iinclude -I/usr/local/cuda/include $mpi_compile \
  tools/cublaslt_gemm_check.cpp src/kernels/cuda/cublaslt_gemm.cpp src/core/error.cpp -o /tmp/xp_gemm_check $mpi_link \
  -L/usr/local/cuda/lib64 -lcublasLt -lcudart && /tmp/xp_gemm_check"
step attention_check bash -c "nvcc -std=c++17 -O3 -arch=sm_90 -Iinclude tools/flash_attention_check.cu \
  src/kernels/cuda/flash_attention_fwd.cu src/kernels/cuda/flash_attention_bwd.cu src/core/error.cpp -o /tmp/xp_attention_check $mpi_compile $mpi_link && /tmp/xp_attention_check"
step ctest ctest --test-dir "$build" --output-on-failure -j4 -LE "build|bf16"

# bf16 on the GPU against the fp32 CPU curve of the same deck, seed and data (made by tools/gpu_bundle.sh).
curve_args=$(cat "$deps/cpu_reference/args")
step loss_curve bash -c "rm -rf /tmp/xp_gpu_curve && mpirun -np 1 $build/xp_train $curve_args \
  run_dir=/tmp/xp_gpu_curve && python3 tests/train/compare_loss_curves.py $deps/cpu_reference/metrics.jsonl \
  /tmp/xp_gpu_curve/metrics.jsonl --tolerance 0.02"
cp /tmp/xp_gpu_curve/metrics.jsonl "$out/gpu_curve.jsonl" 2>/dev/null

if ((bench)); then
  step bench env OUT_FILE="$out/bench.md" tools/bench_gpu.sh "$build"
fi
echo "---"
cat "$summary"
exit $failed
