#!/usr/bin/env bash
# The GPU build's precision on the CPU: builds xp_train with -DXP_EMULATE_BF16=ON (bf16 activations and
# compute weights in software, fp32 master weights, gradients and optimizer), runs its kernel, model and
# MPI tests (bf16 tolerances against the same float64 references), then trains the GPU check's 100-step
# run in bf16 and compares its loss curve with the fp32 build's (FP32_XP_TRAIN), within 2% per step.
#   FP32_XP_TRAIN=build/xp_train BUILD_DIR=build-bf16 tools/check_bf16_build.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$repo/build-bf16}
fp32_xp_train=${FP32_XP_TRAIN:-$repo/build/xp_train}
python=${PYTHON:-/usr/bin/python3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

mkdir -p "$build_dir"
cmake -S "$repo" -B "$build_dir" -DXP_EMULATE_BF16=ON >"$build_dir/check_configure.log" 2>&1 ||
  { cat "$build_dir/check_configure.log"; exit 1; }
if ! cmake --build "$build_dir" -j"$(nproc)" >"$build_dir/check_build.log" 2>&1; then
  grep -E -B2 -A6 "error" "$build_dir/check_build.log" | head -100
  exit 1
fi
ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)" -L "unit|mpi" | tail -15

# The run tools/gpu_bundle.sh records for the GPU check, in fp32 and in emulated bf16.
cd "$repo"
read -r -a args <tests/train/precision_run.args
for build in fp32 bf16; do
  binary=$fp32_xp_train
  [[ $build == bf16 ]] && binary=$build_dir/xp_train
  rm -rf "$build_dir/curve_$build"
  mpirun -np 1 "$binary" "${args[@]}" run_dir="$build_dir/curve_$build" >/dev/null
done
"$python" tests/train/compare_loss_curves.py "$build_dir/curve_fp32/metrics.jsonl" \
  "$build_dir/curve_bf16/metrics.jsonl" --tolerance 0.02
