#!/usr/bin/env bash
# Peak host memory (VmHWM of the one rank) of a run while it trains, through its final checkpoint, and
# through a resume from that checkpoint: a measurement, not a test. The defaults are the checkpoint
# issue's run made smaller for a 2-core machine (12 layers, width 1024, B=2, T=256, synthetic tokens).
#   tools/measure_checkpoint_rss.sh [XP_TRAIN] [key=value ...]      (default build/xp_train)
# Prints one line per phase: training peak, peak through the final save, peak through a resume (the
# resume run's high-water mark when it reports "resumed from", before its first step), and each
# against the training peak.
set -euo pipefail
cd "$(dirname "$0")/.."
xp_train=build/xp_train
if [[ $# -gt 0 && $1 != *=* ]]; then xp_train=$1; shift; fi
work=$(mktemp -d "${TMPDIR:-/tmp}/xp_ckpt_rss.XXXXXX")
trap 'rm -rf "$work"' EXIT
steps=2
args=(inputs/gpt2.in n_layer=12 n_embd=1024 n_head=16 seq_len=256 batch_size=2 grad_accum_steps=1
      eval_every=0 train_data="" val_data="" threads=2 run_dir="$work/run" "$@")

hwm_kib() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null || true; }

# run LOG MARK_COMMAND ARGS...: runs xp_train, samples VmHWM; prints "<hwm at mark> <last hwm>" (KiB).
run() {
  local log=$1 mark=$2
  shift 2
  "$xp_train" "$@" >"$log" 2>&1 &
  local pid=$! at_mark="" last=0 value
  while kill -0 "$pid" 2>/dev/null; do
    value=$(hwm_kib "$pid")
    [[ -n $value ]] && last=$value
    if [[ -z $at_mark ]] && eval "$mark"; then at_mark=$last; fi
    sleep 0.05
  done
  wait "$pid" || { echo "measure_checkpoint_rss: xp_train failed, see its log:" >&2; cat "$log" >&2; exit 1; }
  echo "${at_mark:-0} $last"
}
gib() { awk -v k="$1" 'BEGIN { printf "%.2f GiB", k / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }'; }

# The training peak is the high-water mark once the last step's record is written; what comes after
# it is the final checkpoint.
read -r train save < <(run "$work/train.log" \
    "[[ \$(grep -c '\"step\"' '$work/run/metrics.jsonl' 2>/dev/null) -ge $steps ]]" "${args[@]}" steps=$steps)
read -r resume _ < <(run "$work/resume.log" "grep -q 'resumed from' '$work/resume.log'" \
    "${args[@]}" steps=$((steps + 1)) resume=latest)
echo "binary                $xp_train"
echo "training peak         $(gib "$train")"
echo "peak through the save $(gib "$save") ($(ratio "$save" "$train") vs training)"
echo "peak through a resume $(gib "$resume") ($(ratio "$resume" "$train") vs training; before its first step)"
