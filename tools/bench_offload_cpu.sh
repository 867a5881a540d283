#!/usr/bin/env bash
# Optimizer offload's cost on the CPU benchmark configuration (inputs/bench_cpu.in, as tools/bench_cpu.sh):
# ms/step with the AdamW state beside the model (optimizer_offload = false) and in the offloaded host
# buffers (true: gradients staged in 64 MiB chunks, AdamW on the rank's threads, weights copied back).
# The two runs alternate REPEATS times so a shared machine's load hits both alike; prints the median of
# each run's steady steps, the median over runs, and the ratio.
#   tools/bench_offload_cpu.sh [STEPS] [REPEATS]     (after tools/setup.sh; uses build/xp_train)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-12}
repeats=${2:-3}
threads=2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run_dir=$(mktemp -d)
trap 'rm -rf "$run_dir"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "config: inputs/bench_cpu.in (n_layer 6, n_embd 384, n_head 6, vocab 50257, B=4, T=64), $threads threads, $steps steps, $repeats alternating runs each"
for repeat in $(seq "$repeats"); do
  for offload in false true; do
    mpirun --bind-to none -np 1 build/xp_train inputs/bench_cpu.in steps="$steps" threads=$threads \
        optimizer_offload=$offload run_dir="$run_dir/$offload-$repeat" log_every=1000 >/dev/null
  done
done
/usr/bin/python3 - "$run_dir" "$repeats" <<'PY'
import json, statistics, sys
root, repeats = sys.argv[1], int(sys.argv[2])
def run_median(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    return statistics.median(r["ms"] for r in rows[3:])  # the first 3 steps are warm-up
result = {}
for offload in ("false", "true"):
    runs = [run_median(f"{root}/{offload}-{r}/metrics.jsonl") for r in range(1, repeats + 1)]
    result[offload] = statistics.median(runs)
    print(f"optimizer_offload={offload}: median_ms={result[offload]:.1f} (runs: {', '.join(f'{m:.1f}' for m in runs)})")
print(f"offload/no offload: {result['true'] / result['false']:.3f}")
PY
