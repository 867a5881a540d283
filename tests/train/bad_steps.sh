#!/usr/bin/env bash
# The guard as a user meets it: faults injected through XP_INJECT into `mpiexec -n 2 xp_train`.
#   skip: XP_INJECT=nan_grad@3:1,spike_loss@8 with spike_window=4: the run ends 0; steps 3 and 8 (and no
#         other) are "skipped": true in metrics.jsonl with their reason, and their console lines say so.
#   stop: XP_INJECT=nan_grad@2:1 with on_bad_step=stop: non-zero exit within 60 s, one "xp_train:
#         stopped:" line naming step 2 and rank 1, no crash or MPI_Abort.
#   bad_steps.sh XP_TRAIN MPIEXEC REPO_ROOT WORK_DIR
set -u
xp_train=$1 mpiexec=$2 repo=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
args=("$repo/inputs/gpt2_tiny.in" n_layer=2 n_embd=32 n_head=2 seq_len=16 batch_size=2 eval_every=0
      log_every=1000 threads=1 final_checkpoint=false)
fail() {
  echo "FAIL: $*"
  exit 1
}

XP_INJECT=nan_grad@3:1,spike_loss@8 timeout 60 "$mpiexec" -n 2 "$xp_train" "${args[@]}" steps=10 spike_window=4 \
  "run_dir=$work/skip" >"$work/skip.log" 2>&1 || { cat "$work/skip.log"; fail "the skip run failed"; }
metrics=$work/skip/metrics.jsonl
[[ $(wc -l <"$metrics") -eq 10 ]] || fail "metrics.jsonl has $(wc -l <"$metrics") lines, not 10"
skipped=$(grep -n '"skipped": true' "$metrics" | cut -d: -f1 | tr '\n' ' ')
[[ $skipped == "3 8 " ]] || fail "skipped steps are '$skipped', expected '3 8 '"
sed -n 3p "$metrics" | grep -qF '"grad_norm": null' || fail "step 3's NaN norm is not null: $(sed -n 3p "$metrics")"
sed -n 3p "$metrics" | grep -qF '"reason": "non-finite gradient (first on rank 1)"' || fail "step 3: $(sed -n 3p "$metrics")"
sed -n 8p "$metrics" | grep -qE '"reason": "(gradient norm|loss) spike: ' || fail "step 8: $(sed -n 8p "$metrics")"
grep -qE '^step +3/10 .*SKIPPED: non-finite gradient \(first on rank 1\)' "$work/skip.log" ||
  { cat "$work/skip.log"; fail "no console line for the skipped step 3"; }
grep -qE '^step +8/10 .*SKIPPED: (gradient norm|loss) spike' "$work/skip.log" ||
  { cat "$work/skip.log"; fail "no console line for the skipped step 8"; }
echo "skip: steps 3 and 8 skipped"

XP_INJECT=nan_grad@2:1 timeout 60 "$mpiexec" -n 2 "$xp_train" "${args[@]}" steps=10 on_bad_step=stop \
  "run_dir=$work/stop" >"$work/stop.log" 2>&1
status=$?
(( status != 0 && status != 124 )) || { cat "$work/stop.log"; fail "the stop run exited $status"; }
[[ $(grep -c 'xp_train: stopped:' "$work/stop.log") -eq 1 ]] || { cat "$work/stop.log"; fail "not one stop message"; }
grep -qF 'xp_train: stopped: step 2: non-finite gradient (first on rank 1)' "$work/stop.log" ||
  { cat "$work/stop.log"; fail "the stop message does not name step 2 and rank 1"; }
if grep -qE 'terminate called|Segmentation|MPI_ABORT was invoked' "$work/stop.log"; then
  cat "$work/stop.log"
  fail "the stop run crashed"
fi
[[ $(wc -l <"$work/stop/metrics.jsonl") -eq 2 ]] || fail "the stop run recorded $(wc -l <"$work/stop/metrics.jsonl") steps"
echo "stop: exit $status, $(grep 'xp_train: stopped:' "$work/stop.log")"
echo "ok"
