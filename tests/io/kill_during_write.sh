#!/usr/bin/env bash
# Crash safety: `mpiexec -n 2 xp_train` writing a checkpoint every step is SIGKILLed (mpiexec and both
# ranks at once) 8 times at different moments, continuing in one run_dir with resume=latest. After each
# kill the newest step_NNNNNN must be complete, and a run with resume=latest must load exactly it (never
# a .partial directory) and finish one more step. Odd iterations wait for a .partial directory to appear
# before the kill, so some kills land mid-write whatever the machine's speed.
#   kill_during_write.sh XP_TRAIN MPIEXEC REPO_ROOT WORK_DIR
# shellcheck source=tests/io/lib.sh
source "$(dirname "$0")/lib.sh" "$@"  # $xp_train $mpiexec $repo, an empty $work
run_dir=$work/run

# 3.2 M parameters (38 MB checkpoints) on tiny batches: writing takes a large share of every step.
args=("$repo/inputs/gpt2_tiny.in" n_layer=4 n_embd=256 n_head=4 batch_size=1 seq_len=32 eval_every=0
      log_every=1 checkpoint_every=1 keep_last=2 resume=latest "run_dir=$run_dir")
delays=(0.3 0.7 1.1 1.5 1.9 2.3 2.7 3.0)
partials() { find "$run_dir/ckpt" -maxdepth 1 -name '.*.partial' 2>/dev/null | wc -l; }
kill_run_on_exit "$run_dir"

left_partial=0
for i in "${!delays[@]}"; do
  (( SECONDS < 100 )) || fail "over 100 s after $i of ${#delays[@]} iterations"
  launch "$work/killed_$i.log" "$mpiexec" -n 2 "$xp_train" "${args[@]}" steps=100000
  sleep "${delays[i]}"
  how="after ${delays[i]} s"
  if (( i % 2 == 1 )); then
    pids="$launcher $(pgrep -P "$launcher")"  # ready, so the kill follows the .partial within milliseconds
    for _ in $(seq 500); do compgen -G "$run_dir/ckpt/.*.partial" >/dev/null && break; sleep 0.01; done
    kill -KILL $pids 2>/dev/null
    how="$how, then as soon as a .partial appeared"
  fi
  kill_run "$run_dir" 2>/dev/null  # and no "Killed" notice from bash
  launcher=

  partial=$(partials)
  (( partial > 0 )) && left_partial=$((left_partial + 1))
  newest=$(find "$run_dir/ckpt" -maxdepth 1 -name 'step_*' -printf '%f\n' 2>/dev/null | sort | tail -1)
  if [[ -n $newest && ! -f $run_dir/ckpt/$newest/index.h5 ]]; then
    fail "iteration $i: the newest checkpoint $newest has no index.h5"
  fi
  step=0 expected="resume = latest: no checkpoint"
  if [[ -n $newest ]]; then
    step=$((10#${newest#step_}))
    expected="resumed from $run_dir/ckpt/$newest at step $step"
  fi

  # The newest complete checkpoint loads and training goes on from it for one step.
  log=$work/resume_$i.log
  timeout 60 "$mpiexec" -n 2 "$xp_train" "${args[@]}" steps=$((step + 1)) >"$log" 2>&1
  status=$?
  echo "iteration $i: killed $how: newest ${newest:-none}, $partial .partial dir(s); resume exit $status"
  if [[ $status -ne 0 ]] || ! grep -qF "$expected" "$log"; then
    cat "$log"
    fail "iteration $i: resume=latest must exit 0 and log '$expected'"
  fi
  [[ -f $run_dir/ckpt/step_$(printf %06d $((step + 1)))/index.h5 ]] ||
    fail "iteration $i: the resumed run did not write its checkpoint at step $((step + 1))"
done

echo "$left_partial of ${#delays[@]} kills left a .partial directory"
(( left_partial > 0 )) || fail "no kill landed while a checkpoint was being written"
rm -rf "$work/mpi"
echo "ok"
