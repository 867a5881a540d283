#!/usr/bin/env bash
# Concurrency without a GPU: Debian's Kokkos runs every kernel serially, so races and thread-dependent sums
# only show on a GPU. This builds Kokkos 3.4 with the OpenMP backend from Debian's trilinos source
# (tools/build_kokkos.sh, cached in .deps/kokkos-openmp), then xp_train's kernel and MPI tests against it,
# and runs them at 4 threads; then it checks determinism: the reduced kernels (tests/kernels/
# test_deterministic_sums.cpp, through their digests) and 3 steps of a whole model (its final weights and
# AdamW moments by xp_ckpt diff, its loss and norm lines) give the same bits in two runs at 4 threads and in
# one at 1 thread. Only the targets it runs are built.
#   tools/check_openmp_build.sh        (BUILD_DIR=<repo>/build-openmp, XP_DEPS_DIR=<repo>/.deps)
# OMP_WAIT_POLICY=passive: waiting threads sleep, or 8 MPI ranks × 4 threads spinning starve 2 cores.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
deps=${XP_DEPS_DIR:-$repo/.deps}
build_dir=${BUILD_DIR:-$repo/build-openmp}
threads=${XP_OPENMP_THREADS:-4}
die() { echo "check_openmp_build: $*" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_WAIT_POLICY=passive OMP_PROC_BIND=false
start=$SECONDS
phase_start=$SECONDS
phase() {
  echo "check_openmp_build: $1 took $((SECONDS - phase_start)) s"
  phase_start=$SECONDS
}

prefix=$deps/kokkos-openmp
"$repo/tools/build_kokkos.sh" --backend host --openmp --prefix "$prefix" | tail -1
phase "Kokkos (OpenMP)"

mkdir -p "$build_dir"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" \
  >"$build_dir/check_configure.log" 2>&1 || { cat "$build_dir/check_configure.log"; die "configure failed"; }
grep -q 'KOKKOS_ENABLE_OPENMP' "$prefix"/include/KokkosCore_config.h || die "$prefix has no OpenMP backend"
if ! cmake --build "$build_dir" -j"$(nproc)" --target xp_unit_tests xp_mpi_tests xp_train xp_ckpt \
  >"$build_dir/check_build.log" 2>&1; then
  grep -E -B2 -A6 "error" "$build_dir/check_build.log" | head -100
  die "build failed (log: $build_dir/check_build.log)"
fi
phase "build"

# The kernel tests (every suite of tests/kernels) in one process at $threads threads.
suites=$(grep -ho '^TEST\(_F\)\?([A-Za-z0-9_]*' "$repo"/tests/kernels/test_*.cpp | sed 's/.*(//' | sort -u)
filter=$(printf '%s.*:' $suites)
kernels_log=$build_dir/kernels_$threads.log
OMP_NUM_THREADS=$threads "$build_dir/tests/xp_unit_tests" --gtest_filter="${filter%:}" >"$kernels_log" 2>&1 ||
  { tail -60 "$kernels_log"; die "kernel tests failed at $threads threads"; }
grep -E '^\[  PASSED  \]' "$kernels_log"
phase "kernel tests at $threads threads"

# The reduced kernels' digests: a second run at $threads threads and one at 1 thread print the same.
digests() { grep '^digest ' "$1" || die "no digests in $1"; }
for run in "${threads}b" 1; do
  OMP_NUM_THREADS=${run%b} "$build_dir/tests/xp_unit_tests" --gtest_filter='DeterministicSums.*' \
    >"$build_dir/kernels_$run.log" 2>&1 || { tail -40 "$build_dir/kernels_$run.log"; die "DeterministicSums failed"; }
  diff <(digests "$kernels_log") <(digests "$build_dir/kernels_$run.log") ||
    die "reduced kernels differ between $threads threads and run '$run' (above)"
done
echo "check_openmp_build: the reduced kernels' $(digests "$kernels_log" | wc -l) digests are identical in two runs at $threads threads and at 1 thread"

# A whole model, 3 steps at 8 × 64 = 512 rows on one rank (one BLAS thread: only Kokkos' threads change).
model=(n_layer=2 n_head=4 n_embd=64 seq_len=64 batch_size=8 steps=3 warmup_steps=1 threads=1 log_every=1
       eval_every=0 final_checkpoint=true)
for run in a b 1; do
  omp=$threads
  [[ $run == 1 ]] && omp=1
  rm -rf "$build_dir/model_$run"
  OMP_NUM_THREADS=$omp "$build_dir/xp_train" "$repo/inputs/gpt2_tiny.in" "${model[@]}" run_dir="$build_dir/model_$run" \
    >"$build_dir/model_$run.log" 2>&1 || { tail -20 "$build_dir/model_$run.log"; die "xp_train failed (run $run)"; }
done
steps() { sed -E 's/.*("step": [0-9]+, "loss": [^,]*).*("grad_norm": [^,]*).*/\1 \2/' "$1/metrics.jsonl"; }
checkpoint() { compgen -G "$1/ckpt/step_*" | sort | tail -1; }
for run in b 1; do
  diff <(steps "$build_dir/model_a") <(steps "$build_dir/model_$run") || die "losses differ: model_a vs model_$run"
  a=$(checkpoint "$build_dir/model_a") other=$(checkpoint "$build_dir/model_$run")
  [[ -n $a && -n $other ]] || die "no final checkpoint in $build_dir/model_{a,$run}"
  "$build_dir/xp_ckpt" diff "$a" "$other" >"$build_dir/model_diff_$run.txt"
  grep -q '^max over [1-9][0-9]* tensors: abs 0.000e+00 (-), rel 0.000e+00 (-)$' "$build_dir/model_diff_$run.txt" ||
    { cat "$build_dir/model_diff_$run.txt"; die "weights after 3 steps differ: model_a vs model_$run"; }
done
echo "check_openmp_build: 3 steps of the model give bitwise the same weights and moments in two runs at $threads threads and at 1 thread"
steps "$build_dir/model_a"
phase "determinism"

# The MPI tests at $threads threads per rank (up to 8 ranks on this machine's cores, passively waiting).
mpi_log=$build_dir/mpi_tests.log
OMP_NUM_THREADS=$threads ctest --test-dir "$build_dir" -L mpi -j"$(nproc)" --output-on-failure >"$mpi_log" 2>&1 ||
  { grep -E -A40 'Failed|\*\*\*' "$mpi_log" | head -150; die "MPI tests failed at $threads threads (log: $mpi_log)"; }
grep -E 'tests passed|Total Test time' "$mpi_log"
phase "MPI tests at $threads threads"
echo "check_openmp_build: passed in $((SECONDS - start)) s"
