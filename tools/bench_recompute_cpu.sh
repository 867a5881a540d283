#!/usr/bin/env bash
# CPU benchmark of activation recomputation: ms/step of xp_train on the CPU benchmark configuration
# (inputs/bench_cpu.in, as tools/bench_cpu.sh) with recompute = none, selective and full. The modes run
# in interleaved rounds so that load from other processes on the machine falls on all of them alike;
# each round's number is the median of its steps after 3 warm-up steps, each mode's the median of its
# rounds, and its cost the ratio to none in the same rounds.
#   tools/bench_recompute_cpu.sh [STEPS] [ROUNDS]   (after tools/setup.sh; uses build/xp_train)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-12}
rounds=${2:-3}
threads=2
modes=(none selective full)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run_dir=$(mktemp -d)
trap 'rm -rf "$run_dir"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "config: inputs/bench_cpu.in (n_layer 6, n_embd 384, n_head 6, vocab 50257, B=4, T=64), $threads threads, $steps steps, $rounds rounds"

for round in $(seq "$rounds"); do
  for mode in "${modes[@]}"; do
    mpirun --bind-to none -np 1 build/xp_train inputs/bench_cpu.in steps="$steps" threads=$threads \
      run_dir="$run_dir/$mode.$round" log_every=1000 recompute="\"$mode\"" >/dev/null
  done
done
/usr/bin/python3 - "$run_dir" "$rounds" "${modes[@]}" <<'PY'
import json, statistics, sys
run_dir, rounds, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def round_ms(mode, r):
    rows = [json.loads(line) for line in open(f"{run_dir}/{mode}.{r}/metrics.jsonl") if line.strip()]
    return statistics.median(row["ms"] for row in rows[3:])  # the first 3 steps are warm-up
ms = {mode: [round_ms(mode, r) for r in range(1, rounds + 1)] for mode in modes}
for mode in modes:
    cost = statistics.median(m / n for m, n in zip(ms[mode], ms["none"]))
    rounds_text = " ".join(f"{m:.1f}" for m in ms[mode])
    print(f"recompute={mode:9s} median_ms={statistics.median(ms[mode]):.1f} vs_none={100 * (cost - 1):+.1f}% rounds_ms=[{rounds_text}]")
PY
