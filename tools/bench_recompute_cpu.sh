#!/usr/bin/env bash
# CPU benchmark of activation recomputation: xp_train on the CPU benchmark configuration
# (inputs/bench_cpu.in, as tools/bench_cpu.sh) with recompute = none, selective and full.
#   wall  ms/step as bench_cpu.sh measures it (two BLAS threads; median of the steps after 3 warm-up steps)
#   cpu   CPU ms/step of one thread: (CPU time of a run of 3+STEPS steps − of a run of 3) / STEPS, so
#         set-up and warm-up cancel; unlike wall time it hardly moves when other processes share the cores
# The modes run in interleaved rounds so that changing load falls on all of them alike; a mode's number
# is the median over rounds, its cost the median of its ratio to none within each round.
#   tools/bench_recompute_cpu.sh [STEPS] [ROUNDS] [key=value ...]   (after tools/setup.sh; uses build/xp_train)
# key=value overrides the deck, e.g. vocab_size=256 for a run the blocks dominate, as in large models
# (at the benchmark's vocabulary the LM head is about half of the step's GEMMs).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10}
rounds=${2:-3}
overrides=("${@:3}")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run_dir=$(mktemp -d)
trap 'rm -rf "$run_dir"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "config: inputs/bench_cpu.in (n_layer 6, n_embd 384, n_head 6, vocab 50257, B=4, T=64)${overrides:+ with ${overrides[*]}}, $steps steps, $rounds rounds"
/usr/bin/python3 - "$run_dir" "$steps" "$rounds" "${overrides[@]}" <<'PY'
import json, os, statistics, subprocess, sys, time
run_dir, steps, rounds, overrides = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
modes, warmup = ["none", "selective", "full"], 3

def run(mode, n, threads, name):
    """CPU seconds of the run (mpirun and every process it waited for) and its metrics rows."""
    before = os.times()
    subprocess.run(["mpirun", "--bind-to", "none", "-np", "1", "build/xp_train", "inputs/bench_cpu.in",
                    f"steps={n}", f"threads={threads}", f"run_dir={run_dir}/{name}", "log_every=1000",
                    f'recompute="{mode}"', *overrides], check=True, stdout=subprocess.DEVNULL)
    after = os.times()
    rows = [json.loads(line) for line in open(f"{run_dir}/{name}/metrics.jsonl") if line.strip()]
    return (after.children_user - before.children_user) + (after.children_system - before.children_system), rows

wall = {m: [] for m in modes}
cpu = {m: [] for m in modes}
for r in range(rounds):
    for mode in modes:
        _, rows = run(mode, warmup + steps, 2, f"wall_{mode}_{r}")
        wall[mode].append(statistics.median(row["ms"] for row in rows[warmup:]))
        short, _ = run(mode, warmup, 1, f"short_{mode}_{r}")
        long, _ = run(mode, warmup + steps, 1, f"long_{mode}_{r}")
        cpu[mode].append(1e3 * (long - short) / steps)

def line(name, values, mode):
    cost = statistics.median(v / n for v, n in zip(values[mode], values["none"]))
    each = " ".join(f"{v:.0f}" for v in values[mode])
    return f"{name} {statistics.median(values[mode]):7.1f} ms/step {100 * (cost - 1):+6.1f}% [{each}]"

for mode in modes:
    print(f"recompute={mode:9s}  {line('wall', wall, mode)}   {line('cpu', cpu, mode)}")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
