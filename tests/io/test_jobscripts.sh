#!/usr/bin/env bash
# The Slurm scripts in jobscripts/: their syntax and #SBATCH directives, then the CPU script (and the GPU
# script's command line, on CPU) run here under a fake Slurm: `srun` is mpiexec, `scontrol` records its
# arguments. A run that finishes must not requeue; one stopped by SIGUSR1 must requeue, and running the
# script again (what the requeued job does) must resume from its checkpoint and finish.
#   test_jobscripts.sh XP_TRAIN MPIEXEC REPO_ROOT WORK_DIR
set -u
xp_train=$1 mpiexec=$2 repo=$3 work=$4
cpu=$repo/jobscripts/xp_train_cpu.sbatch gpu=$repo/jobscripts/xp_train_gpu.sbatch
multinode=$repo/jobscripts/xp_train_multinode.sbatch
rm -rf "$work" && mkdir -p "$work/bin"
problems=()
need() {  # need FILE REGEX WHAT
  grep -qE -- "$2" "$1" || problems+=("$(basename "$1"): $3 (no line matches '$2')")
}

# 1. Syntax and directives.
for script in "$cpu" "$gpu" "$multinode"; do
  bash -n "$script" || problems+=("$(basename "$script"): bash -n fails")
  [[ $script == "$multinode" ]] || need "$script" '^#SBATCH --ntasks=[0-9]+' "--ntasks"
  need "$script" '^#SBATCH --time=' "--time"
  need "$script" '^#SBATCH --signal=(B:)?USR1@[0-9]+' "--signal=USR1@seconds"
  need "$script" '^#SBATCH --requeue' "--requeue"
  need "$script" '^#SBATCH --open-mode=append' "--open-mode=append"
  need "$script" '^[^#]*srun .*resume=latest' "srun ... resume=latest"
  need "$script" '^[^#]*scontrol requeue' "scontrol requeue"
done
need "$gpu" '^#SBATCH --(gpus-per-task=1|gres=gpu:8|gpus=8)' "a GPU per task"
need "$gpu" '^#SBATCH --ntasks=8' "8 tasks"
need "$multinode" '^#SBATCH --nodes=[0-9]+' "--nodes"
need "$multinode" '^#SBATCH --ntasks-per-node=8' "8 tasks per node"
need "$multinode" '^#SBATCH --gpus-per-task=1' "a GPU per task"
need "$multinode" '^#SBATCH --distribution=block' "block placement (tp groups inside nodes)"
need "$multinode" '^[^#]*srun .*--distribution=block' "srun --distribution=block"

# 2. A fake Slurm first on PATH.
cat >"$work/bin/srun" <<EOF
#!/usr/bin/env bash
while [[ \$1 == -* ]]; do shift; done  # srun's own options
exec "$mpiexec" -n "\$SLURM_NTASKS" "\$@"
EOF
cat >"$work/bin/scontrol" <<EOF
#!/usr/bin/env bash
echo "\$*" >>"$work/scontrol.log"
EOF
chmod +x "$work/bin/srun" "$work/bin/scontrol"
export PATH=$work/bin:$PATH SLURM_JOB_ID=4242 SLURM_NTASKS=2 SLURM_JOB_NAME=xp_test SLURM_CPUS_PER_TASK=1
export XP_TRAIN=$xp_train
cd "$repo" || exit 1
requeues() { grep -c "^requeue 4242$" "$work/scontrol.log" 2>/dev/null; }

# 3. A run that finishes: checkpoint at its last step, no requeue.
if ! timeout 120 bash "$cpu" inputs/gpt2_tiny.in steps=6 eval_every=0 run_dir="$work/finished" \
    >"$work/finished.log" 2>&1; then
  problems+=("the CPU script failed on a 6-step run (see $work/finished.log)")
fi
[[ -f $work/finished/ckpt/step_000006/index.h5 ]] || problems+=("the 6-step run left no checkpoint at step 6")
[[ $(requeues) -eq 0 ]] || problems+=("scontrol requeue was called after a run that finished")

# 4. The GPU script's command line, on this CPU build with 2 tasks.
if ! timeout 120 bash "$gpu" inputs/gpt2_tiny.in steps=2 eval_every=0 run_dir="$work/gpu" >"$work/gpu.log" 2>&1 ||
   [[ ! -f $work/gpu/ckpt/step_000002/index.h5 ]]; then
  problems+=("the GPU script's run (CPU build, 2 tasks) failed or left no checkpoint (see $work/gpu.log)")
fi

# 4b. The multi-node script's command line, on this CPU build with 2 tasks on this one "node" and
# tp_size=2: one node passes the rank-map check.
if ! timeout 120 bash "$multinode" inputs/gpt2_tiny.in steps=2 eval_every=0 tp_size=2 run_dir="$work/multinode" \
    >"$work/multinode.log" 2>&1 || [[ ! -f $work/multinode/ckpt/step_000002/index.h5 ]]; then
  problems+=("the multi-node script's run (CPU build, 2 tasks, tp_size=2) failed or left no checkpoint (see $work/multinode.log)")
fi

# 5. SIGUSR1 to the tasks (as --signal=USR1@T does) before the last step: the script requeues the job.
run_dir=$work/preempted
timeout 120 bash "$cpu" inputs/gpt2_tiny.in steps=40 eval_every=0 run_dir="$run_dir" >"$work/preempted.log" 2>&1 &
script=$!
for _ in $(seq 600); do
  [[ -f $run_dir/metrics.jsonl && $(wc -l <"$run_dir/metrics.jsonl") -ge 3 ]] && break
  sleep 0.1
done
launcher=$(pgrep -P "$(pgrep -P "$script")")  # timeout -> bash -> srun (exec'd mpiexec)
ranks=$(pgrep -P "$launcher")
[[ -n $ranks ]] && kill -USR1 $ranks
wait "$script" || problems+=("the CPU script failed after SIGUSR1 (see $work/preempted.log)")
[[ $(requeues) -eq 1 ]] || problems+=("SIGUSR1 before the last step did not call 'scontrol requeue 4242' once")

# 6. The requeued job runs the script again: it resumes and finishes, without another requeue.
if ! timeout 120 bash "$cpu" inputs/gpt2_tiny.in steps=40 eval_every=0 run_dir="$run_dir" >"$work/requeued.log" 2>&1 ||
   ! grep -q "resumed from $run_dir/ckpt/step_" "$work/requeued.log" ||
   [[ ! -f $run_dir/ckpt/step_000040/index.h5 ]]; then
  problems+=("the requeued run did not resume and finish at step 40 (see $work/requeued.log)")
fi
[[ $(requeues) -le 1 ]] || problems+=("scontrol requeue was called again after the requeued run finished")

if [[ ${#problems[@]} -gt 0 ]]; then
  printf 'FAIL: %s\n' "${problems[@]}"
  exit 1
fi
echo "ok: directives present; multi-node script ran; finished run not requeued; SIGUSR1 run requeued; requeued run resumed and finished"
