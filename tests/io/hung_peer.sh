#!/usr/bin/env bash
# A peer that hangs (SIGSTOP: nothing exits, so the launcher sees nothing) while rank 0 is asked to stop
# (SIGTERM, as Slurm or Open MPI's launcher send): the step cannot end, so rank 0's watchdog
# (train/stop_signal.hpp) ends it within its grace period (10 s for steps this short) with a message
# naming it, and the launcher ends the rest: within 30 s, non-zero, no process left.
#   hung_peer.sh XP_TRAIN MPIEXEC REPO_ROOT WORK_DIR
# shellcheck source=tests/io/lib.sh
source "$(dirname "$0")/lib.sh" "$@"  # $xp_train $mpiexec $repo, an empty $work
hung=$work/run
args=("$repo/inputs/gpt2_tiny.in" n_layer=2 n_embd=32 n_head=2 seq_len=16 batch_size=1 eval_every=0
      log_every=1000 threads=1 checkpoint_every=0 final_checkpoint=false)
kill_run_on_exit "$hung"
launch "$work/run.log" "$mpiexec" -n 2 "$xp_train" "${args[@]}" steps=100000 "run_dir=$hung"
# Training has begun once metrics.jsonl has lines (no checkpoint is written: a write is not watched).
for _ in $(seq 600); do (( $(cat "$hung/metrics.jsonl" 2>/dev/null | wc -l) >= 3 )) && break; sleep 0.1; done
rank0=$(rank_pid "$hung" 0) || fail "rank 0 of the hung run not found"
rank1=$(rank_pid "$hung" 1) || fail "rank 1 of the hung run not found"
kill -STOP "$rank1"
start=$(date +%s.%N)
kill -TERM "$rank0"
if ! await_launcher 30; then
  cat "$work/run.log"
  fail "rank 0 still runs 30 s after SIGTERM with rank 1 stopped"  # the trap kills both
fi
elapsed=$(seconds_since "$start")
echo "rank 1 stopped, rank 0 sent SIGTERM: the job ended after $elapsed s with exit status $status"
grep -F "xp_train: rank 0: a stop signal came, but the step in progress has not ended" "$work/run.log" ||
  { cat "$work/run.log"; fail "rank 0 did not say why it ended"; }
(( status != 0 )) || fail "the hung job exited 0"
left=$(run_processes "$hung")
[[ -z $left ]] || { kill -KILL "$rank1" 2>/dev/null; fail "processes left after the launcher exited: $left"; }
rm -rf "$work/mpi"
echo "ok"
