#!/usr/bin/env bash
# Optimizer offload's cost on the CPU benchmark configuration (inputs/bench_cpu.in, as tools/bench_cpu.sh):
# ms/step with the AdamW state beside the model (optimizer_offload = false) and in the offloaded host
# buffers (true: AdamW on the rank's threads, weights copied back), the gradients either staged in 64 MiB
# chunks after the backward (offload_overlap = false) or copied as each block's backward ends into a host
# copy of them (offload_overlap = true, the default at dp = 1).
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
  for setting in false after during; do
    case $setting in
      false) keys="optimizer_offload=false" ;;
      after) keys="optimizer_offload=true offload_overlap=false" ;;
      during) keys="optimizer_offload=true offload_overlap=true" ;;
    esac
    # shellcheck disable=SC2086  # $keys: several overrides
    mpirun --bind-to none -np 1 build/xp_train inputs/bench_cpu.in steps="$steps" threads=$threads \
        $keys run_dir="$run_dir/$setting-$repeat" log_every=1000 >/dev/null
  done
done
/usr/bin/python3 - "$run_dir" "$repeats" <<'PY'
import json, statistics, sys
root, repeats = sys.argv[1], int(sys.argv[2])
def run_median(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    return statistics.median(r["ms"] for r in rows[3:])  # the first 3 steps are warm-up
result = {}
names = {"false": "optimizer_offload=false", "after": "optimizer_offload=true offload_overlap=false",
         "during": "optimizer_offload=true offload_overlap=true"}
for setting, name in names.items():
    runs = [run_median(f"{root}/{setting}-{r}/metrics.jsonl") for r in range(1, repeats + 1)]
    result[setting] = statistics.median(runs)
    print(f"{name}: median_ms={result[setting]:.1f} (runs: {', '.join(f'{m:.1f}' for m in runs)})")
print(f"offload/no offload: {result['after'] / result['false']:.3f} (copies after the backward), "
      f"{result['during'] / result['false']:.3f} (copies during it)")
PY
