#!/usr/bin/env bash
# Preemption: a 2-rank xp_train run that gets SIGUSR1 or SIGTERM finishes its step, writes a complete
# checkpoint at the last step it logged, leaves no .partial directory and exits 0.
#   signal_checkpoint.sh XP_TRAIN MPIEXEC REPO_ROOT WORK_DIR
#
# How the signal arrives matters. Slurm's --signal=USR1@T and its SIGTERM at the time limit or on
# preemption go straight to every task srun started; the two cases tested here are the same:
#   - SIGUSR1 to mpiexec: Open MPI 4.1 forwards SIGUSR1/SIGUSR2 to the ranks ("Forwarding signal 10").
#   - SIGTERM to the xp_train ranks themselves, as slurmstepd delivers it.
# SIGTERM to mpiexec is not a clean path: Open MPI 4.1 aborts the job — it sends the ranks SIGCONT at
# once, SIGTERM 1 s later and SIGKILL 1 s after that (odls_base_sigkill_timeout), and exits 1 whatever
# the ranks did. A step plus a checkpoint that fit in that second survive; a larger model is killed
# mid-write (kill_during_write.sh shows the previous checkpoint survives that).
set -u
xp_train=$1 mpiexec=$2 repo=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
launcher=
fail() {
  echo "FAIL: $*"
  exit 1
}
trap '[[ -n $launcher ]] && kill -KILL $(pgrep -P "$launcher") "$launcher" 2>/dev/null' EXIT

# signal_run NAME SIGNAL TARGET: start a long run, send SIGNAL to TARGET (mpiexec or ranks) once
# metrics.jsonl has 3 steps, then check how it ended.
signal_run() {
  local name=$1 signal=$2 target=$3 run_dir=$work/$1 log=$work/$1.log status=
  "$mpiexec" -n 2 "$xp_train" "$repo/inputs/gpt2_tiny.in" steps=100000 log_every=1 eval_every=0 \
      "run_dir=$run_dir" >"$log" 2>&1 &
  launcher=$!
  for _ in $(seq 600); do
    [[ -f $run_dir/metrics.jsonl && $(wc -l <"$run_dir/metrics.jsonl") -ge 3 ]] && break
    kill -0 "$launcher" 2>/dev/null || break
    sleep 0.1
  done
  [[ -f $run_dir/metrics.jsonl ]] || { cat "$log"; fail "$name: no metrics.jsonl after 60 s"; }
  if [[ $target == mpiexec ]]; then kill "-$signal" "$launcher"
  else kill "-$signal" $(pgrep -P "$launcher"); fi

  for _ in $(seq 600); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$launcher" 2>/dev/null; then cat "$log"; fail "$name: still running 60 s after SIG$signal"; fi
  wait "$launcher"
  status=$?
  launcher=

  local last ckpt
  last=$(tail -1 "$run_dir/metrics.jsonl" | grep -oE '"step": *[0-9]+' | grep -oE '[0-9]+$')
  ckpt=$run_dir/ckpt/step_$(printf %06d "$last")
  local problems=()
  [[ $status -eq 0 ]] || problems+=("exit status $status, not 0")
  grep -q "xp_train: signal $(kill -l "$signal") received" "$log" ||
    problems+=("the console does not say SIG$signal was received")
  [[ -f $ckpt/index.h5 ]] || problems+=("no complete checkpoint $ckpt at the last logged step $last")
  [[ -z $(find "$run_dir/ckpt" -name '*.partial') ]] || problems+=("a .partial directory is left")
  if [[ ${#problems[@]} -gt 0 ]]; then
    cat "$log"
    ls -a "$run_dir/ckpt"
    fail "$name: $(printf '%s; ' "${problems[@]}")"
  fi
  echo "$name: SIG$signal to $target: exit 0, checkpoint at step $last"
}

signal_run usr1_to_mpiexec USR1 mpiexec
signal_run term_to_ranks TERM ranks
echo "ok"
