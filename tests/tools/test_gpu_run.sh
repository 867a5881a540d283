#!/usr/bin/env bash
# tools/gpu_run.sh without a GPU: its plan fits the 540 s budget, and a run against a stub bundle (stub
# xp_train, unit-test binary, GEMM check, nvidia-smi, mpirun, PyTorch benchmark) writes summary.txt with the
# right verdicts and numbers and at most 8 files into $OUT; a second run skips what passed; a hang is cut
# by its limit and the steps that no longer fit are skipped; carried binaries that do not start lead to
# the fallback build.
#   test_gpu_run.sh REPO WORK_DIR PYTHON
set -uo pipefail
repo=$1 work=$2 real_python=$3
fails=0
check() {  # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok    $1"; else echo "FAIL  $1"; fails=$((fails + 1)); fi
}
has() { grep -qE -- "$2" "$1" || { echo "      no /$2/ in $1:"; sed 's/^/      | /' "$1"; return 1; }; }

# --- the plan ------------------------------------------------------------------------------------
plan=$(bash "$repo/tools/gpu_run.sh" --plan) || { echo "FAIL --plan exited $?"; exit 1; }
rows=$(awk '$3 ~ /^(reserved|fallback|spare)$/ && $2 ~ /^[0-9]+$/' <<<"$plan")
reserved=$(awk '$3 == "reserved" {s += $2} END {print s + 0}' <<<"$rows")
fallback=$(awk '$3 == "fallback" || $1 == "setup" || $1 == "probe" {s += $2} END {print s + 0}' <<<"$rows")
order=$(awk '{printf "%s ", $1}' <<<"$rows")
check "reserved limits add up to <= 540 s ($reserved)" test "$reserved" -le 540 -a "$reserved" -gt 0
check "setup + probe + fallback build fit the budget ($fallback)" test "$fallback" -le 540
check "every step has a positive limit" test -z "$(awk '$2 <= 0' <<<"$rows")"
check "steps in the order of value" \
  test "$order" = "setup probe build_kokkos build_xp loss_curve xp_124m torch_eager_124m torch_compile_124m gemm_check attention_check unit_tests layout_dp2 layout_tp2 xp_350m xp_1p5b kernel_bench xp_124m_kokkos torch_compile_350m memcheck racecheck ceilings "

# --- a stub bundle -------------------------------------------------------------------------------
rm -rf "$work" && mkdir -p "$work"/{bin,bundle/build/tests,bundle/cpu_reference}
stub() { cat >"$1"; chmod +x "$1"; }
stub "$work/bin/python" <<EOF
#!/bin/sh
exec "$real_python" -S "\$@"
EOF
stub "$work/bin/nvidia-smi" <<'EOF'
#!/bin/sh
case "$*" in *--query-gpu*) echo "NVIDIA H200 (stub), 143771 MiB, 580.00, 345 MHz, 1980 MHz";; *) echo "stub nvidia-smi";; esac
EOF
stub "$work/bin/mpirun" <<'EOF'
#!/bin/bash
while [[ $1 == -* ]]; do case $1 in -np|-n|--bind-to) shift 2 ;; *) shift ;; esac; done
exec "$@"
EOF
# shellcheck disable=SC2016  # expanded when gpu_run.sh sources it
echo 'export PATH=$STUB_BIN:$PATH GPU_RUN_TEST_ENV_SH=1' >"$work/bundle/env.sh"
echo "XP_GPU_ROOT=$work/root" >"$work/bundle/manifest.txt"
echo "inputs/gpt2_tiny.in steps=100 dp_size=1" >"$work/bundle/cpu_reference/args"
for s in $(seq 1 100); do
  echo "{\"step\": $s, \"loss\": $(awk -v s="$s" 'BEGIN { printf "%.5f", 5.5 - s / 50 }'), \"ms\": 1}"
done >"$work/bundle/cpu_reference/metrics.jsonl"
# xp_train: the reference curve 0.2% higher, or 20 benchmark steps whose first 10 are slower
stub "$work/bundle/build/xp_train" <<'EOF'
#!/bin/bash
[[ $1 == --help ]] && { echo "final_checkpoint = true|false"; exit "${STUB_BROKEN:-0}"; }
echo "$*" >>"$STUB_CALLS"
for a; do [[ $a == run_dir=* ]] && dir=${a#run_dir=}; done
mkdir -p "$dir"
echo "xp_train: dp=1 tp=1 pp=1, 1 BLAS thread(s)/rank"
if [[ $* == *bench_gpu* ]]; then
  for s in $(seq 1 20); do
    tok=$((s <= 10 ? 100000 : 500000))
    echo "{\"step\": $s, \"loss\": 10, \"ms\": 65.5, \"tokens_per_s\": $tok, \"mfu\": 0.25, \"peak_memory_gib\": 14.5}"
  done >"$dir/metrics.jsonl"
else
  dp=1 tp=1
  [[ $* == *dp_size=2* ]] && dp=2
  [[ $* == *tp_size=2* ]] && tp=2
  awk -v dp=$dp -v tp=$tp '{ match($0, /"loss": [0-9.]+/); v = substr($0, RSTART + 8, RLENGTH - 8)
         sub(/"loss": [0-9.]+/, sprintf("\"loss\": %.6f", v * 1.002)); sub(/}$/, ", \"dp\": " dp ", \"tp\": " tp "}"); print }' \
    "$STUB_REF" >"$dir/metrics.jsonl"
fi
EOF
# GoogleTest binary: A.one passes, A.two kills the process, A.three fails
stub "$work/bundle/build/tests/xp_unit_tests" <<'EOF'
#!/bin/bash
echo "$*" >>"$STUB_CALLS.unit"
[[ $* != *A.one* ]] && { echo "[ RUN      ] A.one"; echo "[       OK ] A.one (0 ms)"; }
if [[ $* != *A.two* ]]; then echo "[ RUN      ] A.two"; kill -ABRT $$; fi
echo "[ RUN      ] A.three"; echo "[  FAILED  ] A.three (1 ms)"
echo "[==========] 2 tests from 1 test suite ran. (1 ms total)"
exit 1
EOF
stub "$work/bundle/build/xp_gemm_check" <<'EOF'
#!/bin/sh
[ -n "${STUB_HANG:-}" ] && sleep 60
echo "PASS  forward None bf16 rel err 1e-3"
echo "METRIC gemm forward_bf16_None ms=0.25 tflops=612.5 gbps=905.1"
echo "METRIC gemm all cases=30 failed=0 max_rel_err=3.1e-03"
EOF
stub "$work/torch_bench.py" <<'EOF'
import json, sys
a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
print(json.dumps({"mode": a["--mode"], "tokens_per_s": 400000.0, "step_ms": 81.9, "mfu": 0.2,
                  "peak_tflops": float(a["--peak_tflops"]), "peak_memory_gib": 20.1, "first_step_s": 30.2}))
EOF

run() {  # run NAME [VAR=value ...]: one gpu_run.sh with an empty $OUT
  local name=$1; shift
  rm -rf "$work/out_$name" && mkdir -p "$work/out_$name"
  env -u XP_GPU_ROOT "$@" OUT="$work/out_$name" XP_DEPS_DIR="$work/deps" GPU_RUN_STATE="$work/state" \
      XP_GPU_BUNDLE="$work/bundle" PYTHON="$work/bin/python" GPU_RUN_TORCH_BENCH="$work/torch_bench.py" STUB_BIN="$work/bin" STUB_CALLS="$work/calls" \
      STUB_REF="$work/bundle/cpu_reference/metrics.jsonl" PATH="$work/bin:$PATH" \
      bash "$repo/tools/gpu_run.sh" >"$work/console_$name.txt" 2>&1
}
row() { grep -E "^$1 +$2 " "$work/out_$3/summary.txt" >/dev/null || { echo "      no '$1 $2' row:"; sed 's/^/      | /' "$work/out_$3/summary.txt"; return 1; }; }
count_files() { test "$(find "$1" -type f | wc -l)" -le 8; }

run first; rc=$?
s=$work/out_first/summary.txt
check "first run exits 1 (a step failed): $rc" test "$rc" -eq 1
check "\$OUT holds at most 8 files" count_files "$work/out_first"
check "summary, env, metrics and logs in \$OUT" test -s "$s" -a -s "$work/out_first/env.txt" -a \
  -s "$work/out_first/metrics.txt" -a -s "$work/out_first/logs.tar.gz"
check "the logs tarball holds the step logs" bash -c "tar -tzf '$work/out_first/logs.tar.gz' | grep -q logs/loss_curve.log"
check "probe PASS with the GPU's name" row probe PASS first
check "env.txt has the GPU" has "$work/out_first/env.txt" 'gpu: NVIDIA H200 \(stub\)'
check "env.txt has ldd of each carried binary" has "$work/out_first/env.txt" 'tests/xp_unit_tests: 0 not found'
check "env.sh was imported" has "$work/out_first/env.txt" 'set by env.sh: .*GPU_RUN_TEST_ENV_SH'
check "no fallback build when the carried binaries resolve" bash -c "! grep -q '^build_' '$s'"
check "loss curve PASS within 2%" row loss_curve PASS first
check "loss curve reports its difference" has "$s" 'loss_curve .*max rel loss diff 2\.[0-9e-]+ at step'
check "124M PASS with the median of the last 10 steps" has "$work/out_first/metrics.txt" '^xp_124m.tokens_per_s 500000$'
check "benchmarks run without the final checkpoint, MFU against 989.4" \
  bash -c "grep bench_gpu_124m '$work/calls' | grep -q 'final_checkpoint=false' && grep -q 'peak_tflops=989.4' '$work/calls'"
check "torch.compile at 124M PASS beside xp_train" has "$s" 'torch_compile_124m +PASS .*400,000 tok/s.*xp_train/this 1.25x'
check "GEMM check PASS with TFLOP/s and GB/s" has "$s" 'gemm_check +PASS .*30 cases, 0 failed.*612 TFLOP/s 905 GB/s'
check "attention check SKIP (not in the bundle)" row attention_check SKIP first
check "unit tests FAIL naming the failed and the crashed test" has "$s" 'unit_tests +FAIL .*1 passed, 1 failed, 1 crashed.*A.three.*A.two'
check "2-rank layouts PASS against the 1-rank run" bash -c "grep -qE '^layout_dp2 +PASS' '$s' && grep -qE '^layout_tp2 +PASS' '$s'"
check "sanitizers SKIP without the attention check" row memcheck SKIP first
check "kernel microbenchmarks SKIP (not in the bundle)" row kernel_bench SKIP first
check "124M runs again on the Kokkos kernels" bash -c "grep bench_gpu_124m '$work/calls' | grep -q 'gpu_kernels=kokkos'"
check "a short table printed last" bash -c "tail -n 1 '$work/console_first.txt' | grep -qE '^ceilings '"

calls=$(wc -l <"$work/calls") unit_calls=$(wc -l <"$work/calls.unit")
run second; rc=$?
check "second run: steps that passed are not run again" test "$(wc -l <"$work/calls")" -eq "$calls"
check "second run: the failed unit tests run again" test "$(wc -l <"$work/calls.unit")" -gt "$unit_calls"
check "second run: summary keeps the first run's passes" has "$work/out_second/summary.txt" '^loss_curve +PASS .* 1  max rel'
check "second run: \$OUT holds at most 8 files" count_files "$work/out_second"

rm -rf "$work/state"
start=$SECONDS
run hang STUB_HANG=1 GPU_RUN_BUDGET=20 GPU_RUN_ONLY="gemm_check xp_1p5b"; rc=$?
check "a hang ends at the budget ($((SECONDS - start)) s)" test $((SECONDS - start)) -lt 40
check "the hung step FAILs with a timeout" has "$work/out_hang/summary.txt" '^gemm_check +FAIL .*timeout after'
check "steps that no longer fit are SKIPped for the budget" has "$work/out_hang/summary.txt" '^xp_1p5b +SKIP .*budget'
check "a hang still leaves summary and logs" test -s "$work/out_hang/logs.tar.gz"

rm -rf "$work/state"
run fallback STUB_BROKEN=1; rc=$?
check "carried binaries that do not start: the fallback build is tried" has "$work/out_fallback/summary.txt" '^build_kokkos +FAIL .*kokkos-src'
check "without a built xp_train its steps SKIP" has "$work/out_fallback/summary.txt" '^loss_curve +SKIP .*no usable xp_train'
check "the PyTorch steps still run" row torch_eager_124m PASS fallback

((fails)) && { echo "$fails check(s) failed; consoles in $work"; exit 1; }
echo "all checks passed"
