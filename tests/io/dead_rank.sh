#!/usr/bin/env bash
# A rank that dies: one rank of an 8-rank job (a tiny model, ranks oversubscribed) is SIGKILLed after
# its second checkpoint. The whole job must end within 30 s, non-zero, with a message naming the dead
# rank and no xp_train process left running (spinning in a collective with the dead rank). Then the
# newest complete checkpoint resumes bit-exact: it equals a straight run's checkpoint of that step, and
# two more steps from it equal the straight run's two more steps (xp_ckpt diff: 0 on every tensor).
#   dead_rank.sh XP_TRAIN MPIEXEC REPO_ROOT WORK_DIR XP_CKPT
# shellcheck source=tests/io/lib.sh
source "$(dirname "$0")/lib.sh" "$@"  # $xp_train $mpiexec $repo, an empty $work
xp_ckpt=$5 run_dir=$work/run reference=$work/reference victim=3

# A constant learning rate, so the schedule does not depend on `steps`: the killed run (steps=100000),
# its resumption and the straight reference (both to the newest checkpoint + 2) train the same steps.
args=("$repo/inputs/gpt2_tiny.in" n_layer=2 n_embd=32 n_head=2 seq_len=16 batch_size=1 eval_every=0
      log_every=1000 threads=1 warmup_steps=0 lr=1e-3 min_lr=1e-3 checkpoint_every=2 keep_last=0)
kill_run_on_exit "$run_dir"

launch "$work/killed.log" "$mpiexec" -n 8 "$xp_train" "${args[@]}" steps=100000 "run_dir=$run_dir"
for _ in $(seq 600); do [[ -f $run_dir/ckpt/step_000004/index.h5 ]] && break; sleep 0.1; done
[[ -f $run_dir/ckpt/step_000004/index.h5 ]] || { cat "$work/killed.log"; fail "no checkpoint at step 4 after 60 s"; }

pid=$(rank_pid "$run_dir" "$victim") || fail "no process of rank $victim found"
start=$(date +%s.%N)
kill -KILL "$pid"
# Wait at most 30 s for the launcher; then it is a failure and the trap kills what is left.
if ! await_launcher 30; then
  cat "$work/killed.log"
  fail "the job still runs 30 s after rank $victim was killed: $(run_processes "$run_dir")"
fi
elapsed=$(seconds_since "$start")
left=$(run_processes "$run_dir")
echo "rank $victim (pid $pid) killed: the job ended after $elapsed s with exit status $status"
[[ -z $left ]] || fail "processes still running after the launcher exited: $left"
(( status != 0 )) || fail "the killed job exited 0"
grep -qE "rank $victim\b.*(exited on signal 9|Killed)" "$work/killed.log" ||
  { cat "$work/killed.log"; fail "no message names rank $victim as killed"; }
grep -E "rank $victim\b" "$work/killed.log"

# The newest complete checkpoint (a .partial one is ignored by resume=latest).
newest=$(find "$run_dir/ckpt" -maxdepth 1 -name 'step_*' -printf '%f\n' | sort | tail -1)
[[ -f $run_dir/ckpt/$newest/index.h5 ]] || fail "the newest checkpoint $newest has no index.h5"
step=$((10#${newest#step_}))
after=$(printf 'step_%06d' $((step + 2)))
echo "newest complete checkpoint: $newest"

timeout 120 "$mpiexec" -n 8 "$xp_train" "${args[@]}" steps=$((step + 2)) resume=latest "run_dir=$run_dir" \
  >"$work/resumed.log" 2>&1 || { cat "$work/resumed.log"; fail "the resumed run failed"; }
grep -qF "resumed from $run_dir/ckpt/$newest at step $step" "$work/resumed.log" ||
  { cat "$work/resumed.log"; fail "the resumed run did not start from $newest"; }
timeout 120 "$mpiexec" -n 8 "$xp_train" "${args[@]}" steps=$((step + 2)) "run_dir=$reference" \
  >"$work/reference.log" 2>&1 || { cat "$work/reference.log"; fail "the reference run failed"; }

exact() {  # xp_ckpt diff A B reports a largest difference of 0 (absolute and relative) over all tensors
  local report
  report=$("$xp_ckpt" diff "$1" "$2") || fail "xp_ckpt diff $1 $2 failed"
  tail -n 1 <<<"$report"
  tail -n 1 <<<"$report" | grep -qE ': abs 0\.000e\+00 .*, rel 0\.000e\+00 ' || fail "$1 and $2 differ"
}
exact "$run_dir/ckpt/$newest" "$reference/ckpt/$newest"
exact "$run_dir/ckpt/$after" "$reference/ckpt/$after"
# And the comparison can fail: two steps apart, the states differ.
report=$("$xp_ckpt" diff "$reference/ckpt/$newest" "$reference/ckpt/$after")
tail -n 1 <<<"$report" | grep -qE ': abs 0\.000e\+00 ' && fail "steps $step and $((step + 2)) look identical"

rm -rf "$work/mpi"
echo "ok"
