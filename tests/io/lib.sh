# shellcheck shell=bash disable=SC2034  # its variables are the sourcing script's
# Sourced by the io tests that start `mpiexec ... xp_train` in the background and then kill, stop or signal
# parts of it (dead_rank.sh, hung_peer.sh, kill_during_write.sh), with the script's arguments:
#   source lib.sh XP_TRAIN MPIEXEC REPO_ROOT WORK_DIR [...]
# sets $xp_train $mpiexec $repo $work and empties WORK_DIR (fresh_work_dir). A run's processes are found by
# the run_dir=RUN on their command lines; $launcher is the pid of the background mpiexec ("" when none).
launcher=
status=  # the exit status await_launcher read

fail() {
  echo "FAIL: $*"
  exit 1
}

# An empty WORK_DIR that keeps Open MPI's session files and shared-memory segments, which a killed job
# leaves behind, in WORK_DIR/mpi.
fresh_work_dir() {
  rm -rf "$1" && mkdir -p "$1/mpi"
  export OMPI_MCA_orte_tmpdir_base=$1/mpi OMPI_MCA_btl_vader_backing_directory=$1/mpi
}

# The pids (run_pids) or "pid command line" lines (run_processes) of run RUN's processes; none: status 1.
run_pids() { pgrep -f -- "run_dir=$1( |\$)"; }
run_processes() { pgrep -af -- "run_dir=$1( |\$)"; }

# launch LOG COMMAND...: COMMAND in the background, its output in LOG, its pid in $launcher.
launch() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  launcher=$!
}

# The pid of world rank RANK of run RUN (Open MPI gives each rank its number in the environment).
rank_pid() {
  local candidate
  for candidate in $(run_pids "$1"); do
    if tr '\0' '\n' <"/proc/$candidate/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# await_launcher SECONDS: waits that long at most for $launcher to end; then sets $status to its exit
# status and clears $launcher. Status 1 (and $launcher left set) while it still runs.
await_launcher() {
  local _
  for _ in $(seq $(($1 * 10))); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$launcher" 2>/dev/null && return 1
  wait "$launcher"
  status=$?
  launcher=
}

# SIGKILL $launcher, its children and every process of run RUN; fails if any is still alive after 5 s.
kill_run() {
  local pids _
  pids="$launcher ${launcher:+$(pgrep -P "$launcher")} $(run_pids "$1")"
  kill -KILL $pids 2>/dev/null
  [[ -n $launcher ]] && wait "$launcher" 2>/dev/null
  for _ in $(seq 50); do run_pids "$1" >/dev/null || return 0; sleep 0.1; done
  fail "processes of the killed run are still alive: $(run_processes "$1")"
}

# Whatever ends the script (a failure midway), nothing of run RUN is left running.
kill_run_on_exit() {
  # shellcheck disable=SC2064  # RUN is fixed now; $launcher is read when the trap runs
  trap "[[ -n \$launcher ]] && kill_run '$1' >/dev/null 2>&1" EXIT
}

# Seconds since START (date +%s.%N), to one decimal.
seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

set -u
xp_train=$1 mpiexec=$2 repo=$3 work=$4
fresh_work_dir "$work"
