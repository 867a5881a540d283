#!/usr/bin/env bash
# shellcheck disable=SC2317  # the steps and their helpers are called indirectly ("step_$name")
# The GPU machine's one command (issue 10): proves the GPU path in at most 9 minutes, most valuable first.
# On the GPU machine, from the root of the carried tree, with the one carried file .deps/gpu_carry.tar.xz (made
# here by tools/gpu_bundle.sh: .deps/gpu_bundle, plus .deps/kokkos-src .deps/googletest .deps/tomlplusplus for the
# fallback build; unpacked here when newer than what is unpacked):
#
#   bash tools/gpu_run.sh            run every step that has not passed yet (OUT=dir for the results)
#   bash tools/gpu_run.sh --plan     the steps and their time limits; --fresh forgets earlier passes
#
# Each step runs under its own limit (and the 540 s budget: a step that cannot get half its limit is
# skipped). After every step $OUT holds at most 5 files, so a kill still returns what was done:
#   summary.txt  one line per step: PASS/FAIL/SKIP, seconds, key numbers     env.txt   the probe
#   metrics.txt  "name value" per number (tokens/s, MFU, errors, TFLOP/s)    logs.tar.gz  every log
# State (markers of passed steps, logs, run dirs) lives in gpu_run/ (GPU_RUN_STATE): a second run on
# the same warm machine skips what passed. Knobs: GPU_RUN_BUDGET (540), GPU_RUN_ONLY="step ...",
# XP_DEPS_DIR, XP_GPU_BUNDLE, XP_GPU_ROOT, PYTHON (python3 with torch), GPU_RUN_TORCH_BENCH. Exit 1 if a
# step failed. Here (no GPU) tests/tools/test_gpu_run.sh runs it against a stub bundle.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 2
budget=${GPU_RUN_BUDGET:-540}
state=${GPU_RUN_STATE:-$repo/gpu_run}
deps=${XP_DEPS_DIR:-$repo/.deps}  # the bundle, and kokkos-src, googletest, tomlplusplus for a fallback build
bundle=${XP_GPU_BUNDLE:-$deps/gpu_bundle}
out=${OUT:-$state/out}
torch_bench=${GPU_RUN_TORCH_BENCH:-$repo/tools/bench_torch_gpu.py}
peak_tflops=989.4  # H100/H200 SXM dense bf16 (datasheet); the measured bf16 GEMM ceiling is ~790
bench_steps=20

# name  limit(s)  kind  what. reserved: the sum stays <= the budget; fallback: only when the carried
# binaries do not resolve; spare: only from what the steps before left.
plan_table="
setup               15 reserved unpack the carried file, XP_GPU_ROOT links, bundle env.sh, Open MPI settings, CUDA and NCCL library paths
probe               30 reserved env.txt: GPU, driver, clocks, tools, libraries, ldd of the carried binaries
build_kokkos       120 fallback Kokkos 3.4 + CUDA from .deps/kokkos-src (only when carried binaries do not resolve)
build_xp           240 fallback xp_train, unit tests, kernel checks with Ninja in XP_GPU_ROOT/build-local (likewise)
loss_curve          40 reserved bf16 GPU loss curve, 100 steps, against the fp32 CPU curve (within 2%)
xp_124m             50 reserved xp_train GPT-2 124M B=32 T=1024, 20 steps: tokens/s, MFU, peak memory
torch_eager_124m    35 reserved PyTorch eager, same configuration
torch_compile_124m 120 reserved torch.compile, same configuration (compile time included)
gemm_check          25 reserved cuBLASLt GEMMs against float64: errors, TFLOP/s, GB/s
attention_check     25 reserved fused attention fwd/bwd against float64: errors, TFLOP/s, GB/s
unit_tests          55 reserved kernel unit tests on the GPU (ctest -L unit, else the binary directly)
layout_dp2          25 reserved 2 ranks dp=2 on the one GPU (MPI backend): losses against the 1-rank run
layout_tp2          25 reserved 2 ranks tp=2 likewise
xp_350m             35 reserved xp_train GPT-2 350M B=16: tokens/s, MFU, peak memory
xp_1p5b             55 reserved xp_train GPT-2 1.5B B=8: tokens/s, MFU, peak memory
kernel_bench        40 spare    fused CUDA kernels beside their Kokkos versions: GB/s against each one's floor (xp_kernel_bench)
xp_124m_kokkos      50 spare    xp_124m again with gpu_kernels=kokkos: what the fused kernels gain end to end
torch_compile_350m 100 spare    torch.compile at 350M B=16
memcheck            40 spare    compute-sanitizer memcheck on xp_attention_check --no-bench
racecheck           60 spare    compute-sanitizer racecheck on xp_attention_check --no-bench
ceilings            30 spare    this machine's copy GB/s and bf16 GEMM TFLOP/s (PyTorch), the ceilings of the above
"
plan_steps=$(awk 'NF {print $1}' <<<"$plan_table")
limit_of() { awk -v n="$1" '$1 == n {print $2}' <<<"$plan_table"; }

print_plan() {
  printf '%-19s %5s  %-8s %s\n' step limit kind what
  awk 'NF {what = $0; sub(/^[^ ]+ +[0-9]+ +[a-z]+ +/, "", what); printf "%-19s %5d  %-8s %s\n", $1, $2, $3, what}' \
    <<<"$plan_table"
  awk -v b="$budget" 'NF {s[$3] += $2} END {
    printf "reserved total %d s of the %d s budget (each step is also cut to what the budget has left)\n", s["reserved"], b
    printf "fallback total %d s, only when the carried binaries do not resolve: later steps then get what is left\n", s["fallback"]
    printf "spare total %d s, only from time the steps before left; a step starts only with half its limit left\n", s["spare"] }' \
    <<<"$plan_table"
}

fresh=0
case ${1:-} in
  --plan) print_plan; exit 0 ;;
  --fresh) fresh=1 ;;
  "") ;;
  *) sed -n '3,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

now() { date +%s; }
t0=$(now)
deadline=$((t0 + budget))
logs=$state/logs runs=$state/runs marks=$state/passed
((fresh)) && rm -rf "$marks"
mkdir -p "$logs" "$runs" "$marks" "$out"
run_no=$(($(cat "$state/run_count" 2>/dev/null || echo 0) + 1))
echo "$run_no" >"$state/run_count"
results=$state/results.txt   # "run|step|status|secs|limit|note", one line per step end, across runs
touch "$results" "$state/metrics.txt"
running="" gpu_root="" carried_dir="" carried_why="" xp_bin="" carried_ok=0 final_ckpt_key=0 py=python3 nvcc="" cuda_home="" nccl_home=""
# The bundle's libraries (Debian's zlib, curl, OpenSSL, ...) reach only what runs through lim/xpenv:
# the machine's own tools and its python keep the machine's libraries.
clean_path=$PATH clean_ld=${LD_LIBRARY_PATH:-} xp_path=$PATH xp_ld=${LD_LIBRARY_PATH:-}

# --- helpers used inside steps (each step runs in a subshell: an error there never stops the script) ----
note() { [[ -z ${*// /} ]] || printf '%s; ' "$*" >>"$STEP_NOTE"; }  # key numbers for the summary line
metric() { echo "$1 $2" >>"$state/metrics.txt"; }           # machine-readable numbers
xpenv() { env PATH="$xp_path" LD_LIBRARY_PATH="$xp_ld" "$@"; }
lim() {  # lim CMD...: CMD (in xpenv) under the time the step has left less LIM_RESERVE s, at most LIM_CAP s
  local left=$((STEP_DEADLINE - $(now) - ${LIM_RESERVE:-0}))
  [[ -n ${LIM_CAP:-} ]] && ((LIM_CAP < left)) && left=$LIM_CAP
  ((left > 0)) || { echo "gpu_run: no time left for: $*" >&2; return 124; }
  echo "+ [${left} s] $*" >&2
  timeout -k 3 "$left" env PATH="$xp_path" LD_LIBRARY_PATH="$xp_ld" "$@" </dev/null  # 124: timed out
}
pylim() { lim env PATH="$clean_path" LD_LIBRARY_PATH="$clean_ld" "$py" "$@"; }  # python with its own libraries
have() { PATH=$xp_path command -v "$1" >/dev/null 2>&1; }
need_xp() { [[ -n $xp_bin && -x $xp_bin/xp_train ]] || { note "no usable xp_train (carried or built)"; return 77; }; }
xp_run() {  # xp_run RANKS ARGS...: xp_train through mpirun, or a singleton for one rank without mpirun
  local ranks=$1; shift
  if have mpirun; then lim mpirun --bind-to none -np "$ranks" "$xp_bin/xp_train" "$@"
  elif ((ranks == 1)); then lim "$xp_bin/xp_train" "$@"
  else note "no mpirun for $ranks ranks"; return 77; fi
}
find_bin() { find -L "$xp_bin" -maxdepth 3 -type f -name "$1" -perm -u+x 2>/dev/null | head -n1; }
unresolved() { xpenv ldd "$1" 2>&1 | grep -c 'not found'; }

# --- 0. setup (in this shell: it sets the environment every step uses) --------------------------------
step_setup() {
  local recorded home
  unpack_carry
  recorded=$(sed -nE 's/^[[:space:]]*(XP_GPU_ROOT|xp_gpu_root)[[:space:]]*[:= ][[:space:]]*"?([^" ]+)"?.*/\2/p' \
             "$bundle/manifest.txt" 2>/dev/null | head -n1)
  gpu_root=${XP_GPU_ROOT:-${recorded:-/opt/xp_gpu}}
  if ! { mkdir -p "$gpu_root" && ln -sfn "$repo" "$gpu_root/src"; }; then note "cannot link $gpu_root/src"; fi
  if [[ -e $gpu_root/build && ! -L $gpu_root/build ]]; then note "$gpu_root/build is a real directory: left as it is"
  elif [[ -d $bundle/build ]]; then ln -sfn "$bundle/build" "$gpu_root/build"; fi
  py=${PYTHON:-$(command -v python3 || echo python3)}
  nvcc=$(command -v nvcc || true)
  for home in "${CUDA_HOME:-}" "${CUDA_PATH:-}"; do
    [[ -z $nvcc && -n $home && -x $home/bin/nvcc ]] && nvcc=$home/bin/nvcc
  done
  cuda_home=""; [[ -n $nvcc ]] && cuda_home=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
  nccl_home=$(timeout 10 "$py" -c 'import nvidia.nccl as m, os; print(os.path.abspath(list(m.__path__)[0]))' 2>/dev/null)
  [[ -n $nccl_home ]] || nccl_home=$(compgen -G "/opt/torch/.venv/lib/python3*/site-packages/nvidia/nccl" | head -n1)
  import_env_sh
  # Open MPI as root, more ranks than cores; the bundle's mca-params.conf holds the rest (btl, pml, plm)
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
  # Open MPI 4's rsh launcher aborts even a local launch when neither ssh nor rsh exists (open-mpi/ompi#12386)
  if ! have ssh && ! have rsh; then export OMPI_MCA_plm_rsh_agent=${OMPI_MCA_plm_rsh_agent:-sh}; fi
  library_paths
  export TORCHINDUCTOR_CACHE_DIR=$state/inductor PYTHONUNBUFFERED=1
  choose_bin
  ((carried_ok)) || note "carried binaries not used: $carried_why"
  note "XP_GPU_ROOT $gpu_root; binaries ${xp_bin:-none (fallback build next)}; nvcc ${nvcc:-missing}; NCCL ${nccl_home:-missing}"
}
unpack_carry() {  # .deps/gpu_carry.tar.xz -> .deps/ (tar's xz, else Python's tarfile), once per carried file
  local carry=$deps/gpu_carry.tar.xz stamp=$deps/.gpu_carry_unpacked
  [[ -f $carry ]] || return 0
  [[ -f $stamp && $(cat "$stamp") == "$(stat -c '%s %Y' "$carry")" ]] && return 0
  rm -rf "$bundle"
  if ! { tar -C "$deps" -xJf "$carry" 2>/dev/null ||
         timeout 60 python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$carry" "$deps"; }; then
    note "cannot unpack $carry"; return 0
  fi
  stat -c '%s %Y' "$carry" >"$stamp"
  note "unpacked $carry"
}
import_env_sh() {  # env.sh's exported variables, sourced in a subshell: its set -e, cd or exit cannot hit us
  local kv name value dump=$state/env_sh.dump
  [[ -f $bundle/env.sh ]] || { note "no $bundle/env.sh"; return; }
  # shellcheck source=/dev/null
  (set +u; source "$bundle/env.sh" >&2 && env -0) >"$dump" || { note "sourcing env.sh failed"; return; }
  : >"$state/env_sh.set"
  while IFS= read -r -d '' kv; do
    name=${kv%%=*} value=${kv#*=}
    [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ && $name != @(_|PWD|OLDPWD|SHLVL|SHELLOPTS|BASHOPTS) ]] || continue
    [[ ${!name:-} == "$value" ]] && continue
    echo "$kv" >>"$state/env_sh.set"  # what env.sh changed, for env.txt
    case $name in
      PATH) xp_path=$value ;;
      LD_LIBRARY_PATH) xp_ld=$value ;;
      *) export "${kv?}" ;;
    esac
  done <"$dump"
}
library_paths() {  # CUDA's and NCCL's libraries for the binaries: next to nvcc, else from the pip wheels
  local dirs=() d so site
  [[ -n $cuda_home ]] && export CUDA_HOME=$cuda_home && xp_path=$cuda_home/bin:$xp_path &&
    dirs+=("$cuda_home/lib64" "$cuda_home/lib" "$cuda_home/targets/x86_64-linux/lib")
  [[ -n $nccl_home ]] && export NCCL_HOME=$nccl_home && dirs+=("$nccl_home/lib")
  dirs+=(/usr/local/nvidia/lib64)
  site=${nccl_home:+$(dirname "$(dirname "$nccl_home")")}
  for so in libcudart.so.13 libcublasLt.so.13 libnccl.so.2; do
    for d in "${dirs[@]}"; do [[ -e $d/$so ]] && continue 2; done
    ldconfig -p 2>/dev/null | grep -q "$so" && continue
    d=$(compgen -G "$site/nvidia/*/lib/$so" | head -n1)
    [[ -n $d ]] && dirs+=("$(dirname "$d")")
  done
  for d in "${dirs[@]}"; do
    [[ -d $d ]] && xp_ld=${xp_ld:+$xp_ld:}$d
  done
}
choose_bin() {  # the carried build when its binaries resolve and start, else a finished fallback build
  local carried=$gpu_root/build f help=""
  [[ -d $carried ]] || carried=$bundle/build
  carried_dir=$carried xp_bin="" carried_ok=0 final_ckpt_key=0 carried_why="no $carried/xp_train"
  if [[ -x $carried/xp_train ]]; then
    carried_ok=1 carried_why=""
    for f in "$carried/xp_train" "$carried/tests/xp_unit_tests"; do
      [[ -e $f ]] && (($(unresolved "$f") > 0)) && carried_ok=0 carried_why+="${f#"$carried"/}: $(unresolved "$f") not found "
    done
    # it must start too (glibc, libstdc++ versions): --help returns before MPI, Kokkos or the GPU start
    if ! help=$(timeout 10 env PATH="$xp_path" LD_LIBRARY_PATH="$xp_ld" "$carried/xp_train" --help 2>&1); then
      carried_ok=0 carried_why+="xp_train --help: $(head -n1 <<<"$help" | cut -c1-120)"
    fi
  fi
  if ((carried_ok)); then xp_bin=$carried
  elif [[ -x $gpu_root/build-local/xp_train ]]; then
    xp_bin=$gpu_root/build-local
    help=$(timeout 10 env PATH="$xp_path" LD_LIBRARY_PATH="$xp_ld" "$xp_bin/xp_train" --help 2>&1)
  fi
  [[ $help == *final_checkpoint* ]] && final_ckpt_key=1  # older binaries always write the final checkpoint
}

# shellcheck source=tools/gpu_run_steps.sh
source "$repo/tools/gpu_run_steps.sh"

# --- the runner -------------------------------------------------------------------------------------
write_summary() {
  local tmp=$state/summary.tmp gpu
  gpu=$(sed -n 's/^gpu: //p' "$state/env.txt" 2>/dev/null | head -n1)
  {
    echo "xp_train gpu_run.sh, run $run_no, $(date -u '+%F %T') UTC, commit $(commit), used $(($(now) - t0)) of $budget s"
    echo "GPU: ${gpu:-not probed yet}; MFU against $peak_tflops TFLOP/s (H100/H200 SXM dense bf16, datasheet)"
    printf '%-19s %-6s %5s %5s %3s  %s\n' step result secs limit run "key numbers"
    awk -F'|' -v order="$plan_steps" 'BEGIN { n = split(order, o, "\n") }
      { line[$2] = $0 } END { for (i = 1; i <= n; i++) if (o[i] in line) {
        split(line[o[i]], f, "|"); printf "%-19s %-6s %5s %5s %3s  %s\n", f[2], f[3], f[4], f[5], f[1], f[6] } }' \
      "$results"
    [[ -n $running ]] && echo "$running"
  } >"$tmp"
  cp "$tmp" "$out/summary.txt"
}
commit() { git -C "$repo" rev-parse --short HEAD 2>/dev/null || sed -n 's/^commit[:= ]*//p' "$bundle/manifest.txt" 2>/dev/null | head -n1; }
refresh_out() {  # $OUT: summary.txt env.txt metrics.txt logs.tar.gz, whatever happens next
  mkdir -p "$out"
  write_summary
  [[ -f $state/env.txt ]] && cp "$state/env.txt" "$out/env.txt"
  cp "$state/metrics.txt" "$out/metrics.txt"
  local files=()
  mapfile -t files < <(cd "$state" && find logs runs -maxdepth 2 -type f \( -name '*.log' -o -name '*.jsonl' \
                       -o -name '*.toml' \) -size -8M; ls env.txt results.txt env_sh.set 2>/dev/null)
  (cd "$state" && tar -czf logs.tar.gz "${files[@]}") && cp "$state/logs.tar.gz" "$out/"
}
record() {  # record STEP STATUS SECS LIMIT NOTE
  local text=${5//|//}
  echo "$run_no|$1|$2|$3|$4|${text%; }" >>"$results"
  printf 'gpu_run: [%4d s] %-19s %-4s %4s s  %s\n' "$(($(now) - t0))" "$1" "$2" "$3" "${text%; }"
}
failure_hint() {  # the line of a failed step's log most likely to say why: xp_train's own, an exception, an error
  local hint
  hint=$(grep -v '^+ ' "$STEP_LOG" | grep -m1 -E '^xp_train: (error|rank [0-9]+:)|what\(\):|: error:|[Ee]rror[:( ]|ERROR|FAILED|insufficient|not found|[Ss]egmentation|Abort' ||
         grep -v '^+ ' "$STEP_LOG" | grep . | tail -n1)
  [[ -n $hint ]] && echo "log: ${hint:0:200}"
}
failed=0
run_step() {  # run_step NAME: markers, budget, limit, log, summary
  local name=$1 limit left t start rc secs status text
  limit=$(limit_of "$name")
  if [[ -n ${GPU_RUN_ONLY:-} && " $GPU_RUN_ONLY " != *" $name "* && $name != setup ]]; then return; fi
  if [[ -f $marks/$name && $name != setup ]]; then
    printf 'gpu_run: %-19s passed in an earlier run: %s\n' "$name" "$(cut -d'|' -f6 "$marks/$name")"
    return
  fi
  left=$((deadline - $(now)))
  if ((left < (limit + 1) / 2)); then
    record "$name" SKIP 0 "$limit" "budget: ${left} s left, the step needs $(((limit + 1) / 2)) of its $limit s"
    refresh_out; return
  fi
  t=$((left < limit ? left : limit))
  running="RUNNING $name (limit $t s, started at +$(($(now) - t0)) s)"
  refresh_out
  export STEP_NOTE=$state/note.$name STEP_LOG=$logs/$name.log
  : >"$STEP_NOTE"
  start=$(now)
  export STEP_DEADLINE=$((start + t))
  if [[ $name == setup ]]; then step_setup >"$STEP_LOG" 2>&1; rc=$?
  else ("step_$name") >"$STEP_LOG" 2>&1 </dev/null; rc=$?; fi
  secs=$(($(now) - start)) text=$(tr '\n' ' ' <"$STEP_NOTE")
  case $rc in
    0) status=PASS ;;
    77) status=SKIP ;;
    *) status=FAIL; failed=1
       if ((rc == 124 || secs >= t - 1)); then text="timeout after $t s; $text"; else text+="$(failure_hint)"; fi ;;
  esac
  if (($(stat -c %s "$STEP_LOG") > 4194304)); then  # keep the tarball small: head and tail of huge logs
    { head -c 1048576 "$STEP_LOG"; echo; echo "... (truncated by gpu_run.sh) ..."; tail -c 2097152 "$STEP_LOG"; } >"$STEP_LOG.cut"
    mv "$STEP_LOG.cut" "$STEP_LOG"
  fi
  running=""
  record "$name" "$status" "$secs" "$t" "$text"
  [[ $status == PASS && $name != setup ]] && tail -n1 "$results" >"$marks/$name"
  refresh_out
}

echo "gpu_run: run $run_no, budget $budget s, state $state, results in $out"
for s in $plan_steps; do
  case $s in
    build_kokkos|build_xp)  # the fallback: only while the carried binaries do not resolve
      if ((carried_ok)); then continue; fi
      run_step "$s"; [[ $s == build_xp ]] && choose_bin ;;
    *) run_step "$s" ;;
  esac
done
# the clocks and temperature after the load, beside the idle ones of the probe
[[ -f $state/env.txt ]] && timeout 10 env PATH="$xp_path" nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw \
  --format=csv 2>&1 | sed "s/^/after run $run_no: /" >>"$state/env.txt" && refresh_out
echo "---"
cat "$out/summary.txt"
exit "$failed"
