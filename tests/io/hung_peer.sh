#!/usr/bin/env bash
# A peer that hangs (SIGSTOP: nothing exits, so the launcher sees nothing) while rank 0 is asked to stop
# (SIGTERM, as Slurm or Open MPI's launcher send): the step cannot end, so rank 0's watchdog
# (train/stop_signal.hpp) ends it within its grace period (10 s for steps this short) with a message
# naming it, and the launcher ends the rest: within 30 s, non-zero, no process left.
#   hung_peer.sh XP_TRAIN MPIEXEC REPO_ROOT WORK_DIR
set -u
xp_train=$1 mpiexec=$2 repo=$3 work=$4
hung=$work/run
rm -rf "$work" && mkdir -p "$work/mpi"
export OMPI_MCA_orte_tmpdir_base=$work/mpi OMPI_MCA_btl_vader_backing_directory=$work/mpi
args=("$repo/inputs/gpt2_tiny.in" n_layer=2 n_embd=32 n_head=2 seq_len=16 batch_size=1 eval_every=0
      log_every=1000 threads=1 checkpoint_every=0 final_checkpoint=false)
launcher=
fail() {
  echo "FAIL: $*"
  exit 1
}
trap '[[ -n $launcher ]] && kill -KILL $launcher $(pgrep -f -- "run_dir=$hung( |\$)") 2>/dev/null' EXIT
"$mpiexec" -n 2 "$xp_train" "${args[@]}" steps=100000 "run_dir=$hung" >"$work/run.log" 2>&1 &
launcher=$!
# Training has begun once metrics.jsonl has lines (no checkpoint is written: a write is not watched).
for _ in $(seq 600); do (( $(cat "$hung/metrics.jsonl" 2>/dev/null | wc -l) >= 3 )) && break; sleep 0.1; done
declare -A pid_of
for candidate in $(pgrep -f -- "run_dir=$hung( |\$)"); do
  rank=$(tr '\0' '\n' <"/proc/$candidate/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
  [[ -n $rank ]] && pid_of[$rank]=$candidate
done
[[ -n ${pid_of[0]:-} && -n ${pid_of[1]:-} ]] || fail "ranks of the hung run not found"
kill -STOP "${pid_of[1]}"
start=$(date +%s.%N)
kill -TERM "${pid_of[0]}"
for _ in $(seq 300); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$launcher" 2>/dev/null; then
  kill -KILL "${pid_of[1]}" "${pid_of[0]}" 2>/dev/null
  cat "$work/run.log"
  fail "rank 0 still runs 30 s after SIGTERM with rank 1 stopped"
fi
wait "$launcher"
status=$?
launcher=
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "rank 1 stopped, rank 0 sent SIGTERM: the job ended after $elapsed s with exit status $status"
grep -F "xp_train: rank 0: a stop signal came, but the step in progress has not ended" "$work/run.log" ||
  { cat "$work/run.log"; fail "rank 0 did not say why it ended"; }
(( status != 0 )) || fail "the hung job exited 0"
left=$(pgrep -af -- "run_dir=$hung( |\$)")
[[ -z $left ]] || { kill -KILL "${pid_of[1]}" 2>/dev/null; fail "processes left after the launcher exited: $left"; }
rm -rf "$work/mpi"
echo "ok"
