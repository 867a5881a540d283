#!/usr/bin/env bash
# GPU benchmark: xp_train (one rank, one GPU, inputs/bench_gpu_*.in) and PyTorch eager and
# torch.compile (tools/bench_torch_gpu.py) on the same GPT-2 configurations, one after the other.
# Prints a Markdown table of median tokens/s over the last 10 of 30 steps, xp_train's MFU and peak
# GPU memory, and xp_train's speed relative to the faster PyTorch mode.
#   tools/bench_gpu.sh [BUILD_DIR]                   (default build; a CUDA build of xp_train)
# Environment:
#   BENCH_MODELS="124m 350m"  subset of 124m 350m 1.5b (default: all three)
#   OUT_FILE=path             also write the table there
#   BENCH_STEPS=30            steps per run;  BENCH_DIR=runs/bench_gpu  logs and metrics
#   PYTHON=python3            the Python with PyTorch;  XP_TRAIN_ARGS="key=value ..."  extra deck overrides
# A run that fails (out of memory, ...) shows "failed" in its cell; its log stays in BENCH_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
models=${BENCH_MODELS:-124m 350m 1.5b}
steps=${BENCH_STEPS:-30}
logs=${BENCH_DIR:-runs/bench_gpu}
python=${PYTHON:-python3}
read -ra xp_args <<<"${XP_TRAIN_ARGS:-}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
declare -A batch=([124m]=32 [350m]=16 [1.5b]=8) deck=([124m]=124m [350m]=350m [1.5b]=1p5b)
for m in $models; do
  [[ -n ${batch[$m]:-} ]] || { echo "bench_gpu.sh: unknown model '$m' (known: 124m 350m 1.5b)" >&2; exit 2; }
done
[[ -x $build/xp_train ]] || { echo "bench_gpu.sh: no $build/xp_train (build it first)" >&2; exit 2; }
mkdir -p "$logs"
rm -f "$logs"/*.ok

# Runs "$@" with its output in $logs/$name.log; $logs/$name.ok marks success.
run() {
  local name=$1; shift
  echo "bench_gpu.sh: $name ..." >&2
  if "$@" >"$logs/$name.log" 2>&1; then
    touch "$logs/$name.ok"
  else
    echo "bench_gpu.sh: $name failed (exit $?), see $logs/$name.log:" >&2
    grep -m 2 -i -e error -e 'out of memory' "$logs/$name.log" >&2 || tail -n 3 "$logs/$name.log" >&2
  fi
}

for m in $models; do
  rm -rf "$logs/xp_$m"
  # final_checkpoint=false: a benchmark needs no checkpoint (18 GB and minutes at 1.5B)
  run "xp_$m" mpirun --bind-to none -np 1 "$build/xp_train" "inputs/bench_gpu_${deck[$m]}.in" \
      run_dir="$logs/xp_$m" steps="$steps" final_checkpoint=false ${xp_args[@]+"${xp_args[@]}"}
  for mode in eager compile; do
    run "torch_${m}_$mode" "$python" tools/bench_torch_gpu.py --model "$m" --batch "${batch[$m]}" --seq 1024 \
        --steps "$steps" --mode "$mode"
  done
done

configs=$(for m in $models; do printf '%s:%s ' "$m" "${batch[$m]}"; done)
"$python" - "$logs" "$configs" >"$logs/table.md" <<'PY'
import json, os, statistics, subprocess, sys
logs, configs = sys.argv[1], [c.split(":") for c in sys.argv[2].split()]
ok = lambda name: os.path.exists(f"{logs}/{name}.ok")

def xp(m):  # median tok/s and MFU of the last 10 steps, peak GiB over the run (None: not written)
    try:
        rows = [json.loads(l) for l in open(f"{logs}/xp_{m}/metrics.jsonl") if l.strip()] if ok(f"xp_{m}") else []
    except (OSError, ValueError):
        rows = []
    if not rows:
        return None
    last = rows[max(1, len(rows) - 10):] if len(rows) > 1 else rows  # step 1 pays the start-up
    peaks = [r["peak_memory_gib"] for r in rows if "peak_memory_gib" in r]
    return (statistics.median(r["tokens_per_s"] for r in last), statistics.median(r["mfu"] for r in last),
            max(peaks) if peaks else None)

def torch_run(m, mode):
    name = f"torch_{m}_{mode}"
    if not ok(name):
        return None
    lines = [l for l in open(f"{logs}/{name}.log") if l.startswith("{")]
    return json.loads(lines[-1]) if lines else None

def gpu():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, check=True).stdout.splitlines()[0]
    except Exception:
        return "unknown GPU"

tok = lambda v: f"{v:,.0f}"
print(f"GPT-2, T=1024, bf16, AdamW; median of the last 10 steps; {gpu()}; PyTorch from tools/bench_torch_gpu.py\n")
print("| model | batch | xp_train tok/s | MFU | peak GiB | PyTorch eager tok/s | PyTorch compile tok/s | xp_train / best PyTorch |")
print("|---|---|---|---|---|---|---|---|")
for m, b in configs:
    x, runs = xp(m), [torch_run(m, mode) for mode in ("eager", "compile")]
    best = max((r["tokens_per_s"] for r in runs if r), default=None)
    cells = [tok(x[0]), f"{100 * x[1]:.1f}%", "n/a" if x[2] is None else f"{x[2]:.1f}"] if x else ["failed"] * 3
    cells += [tok(r["tokens_per_s"]) if r else "failed" for r in runs]
    cells.append(f"{x[0] / best:.2f}×" if x and best else "n/a")
    print(f"| {m} | {b} | " + " | ".join(cells) + " |")
PY
cat "$logs/table.md"
if [[ -n ${OUT_FILE:-} ]]; then cp "$logs/table.md" "$OUT_FILE"; fi
