#!/usr/bin/env bash
# CPU benchmark: xp_train and PyTorch (Debian's python3-torch) on the same GPT-2 configuration, cores
# and batch, one after the other in one invocation. Prints median ms/step and tokens/s of each.
#   tools/bench_cpu.sh [STEPS]          (after tools/setup.sh; uses build/xp_train)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}
threads=2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run_dir=$(mktemp -d)
trap 'rm -rf "$run_dir"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "config: inputs/bench_cpu.in (n_layer 6, n_embd 384, n_head 6, vocab 50257, B=4, T=64), $threads threads, $steps steps"

mpirun --bind-to none -np 1 build/xp_train inputs/bench_cpu.in steps="$steps" threads=$threads run_dir="$run_dir" log_every=1000 >/dev/null
/usr/bin/python3 - "$run_dir/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
ms = statistics.median(r["ms"] for r in rows[3:])  # the first 3 steps are warm-up
print(f"xp_train:  median_ms={ms:.2f} tokens_per_s={4 * 64 / (ms / 1e3):.1f}")
PY
/usr/bin/python3 tools/bench_torch_cpu.py --n_layer 6 --n_embd 384 --n_head 6 --vocab 50257 --B 4 --T 64 \
    --max_seq_len 64 --steps "$steps" --threads $threads | grep '^torch_cpu:'
