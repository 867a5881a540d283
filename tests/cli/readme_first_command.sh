#!/usr/bin/env bash
# The README's demo command, exactly as a newcomer types it after tools/setup.sh, in an environment
# with no Open MPI variables (as root in a container: no OMPI_ALLOW_RUN_AS_ROOT, no mpirun). Only
# `build/` becomes this build's directory, and keys are appended to keep the run short and out of
# the source tree.
# usage: readme_first_command.sh README BUILD_DIR WORK_DIR
set -euo pipefail
readme=$1 build_dir=$2 work=$3
repo=$(cd "$(dirname "$readme")" && pwd)

# The first indented line after the demo heading: "tools/setup.sh && <command>".
line=$(awk '/^## Set up and run the demo/ {found = 1; next} found && /^    / {print; exit}' "$readme")
[[ $line == *"tools/setup.sh && "* ]] || { echo "FAIL: no 'tools/setup.sh && ...' line under the demo heading"; exit 1; }
command=${line#*tools/setup.sh && }
echo "README's first command: $command"
[[ $command != *mpirun* && $command != *OMPI_* ]] || { echo "FAIL: the first command needs a launcher or variables"; exit 1; }
[[ $command == build/* ]] || { echo "FAIL: the first command does not start with build/"; exit 1; }

rm -rf "$work" && mkdir -p "$work"
cd "$repo"
# env -i: nothing from ctest's environment (which allows root for the mpirun tests) reaches the run.
read -ra words <<<"${build_dir}/${command#build/}"
status=0
env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$work" \
  timeout 120 "${words[@]}" steps=3 eval_every=0 run_dir="$work/run" >"$work/out.txt" 2>&1 || status=$?
cat "$work/out.txt"
[[ $status == 0 ]] || { echo "FAIL: exit status $status"; exit 1; }
grep -q '^step  *3/3 ' "$work/out.txt" || { echo "FAIL: no step 3/3 line"; exit 1; }
grep -q 'dp=1 tp=1 pp=1' "$work/out.txt" || { echo "FAIL: not one rank"; exit 1; }
[[ -s $work/run/metrics.jsonl && $(wc -l <"$work/run/metrics.jsonl") -ge 3 ]] || { echo "FAIL: no metrics.jsonl"; exit 1; }
echo "PASS: the README's first command trains without mpirun or Open MPI variables"
