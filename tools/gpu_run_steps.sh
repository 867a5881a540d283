# shellcheck shell=bash disable=SC2154  # the variables come from tools/gpu_run.sh
# The steps of tools/gpu_run.sh (sourced by it; not run on its own). Each step_NAME runs in a subshell
# with its output in gpu_run/logs/NAME.log and returns 0 (PASS), 77 (SKIP) or anything else (FAIL);
# `note` adds its key numbers to the summary line, `metric` to metrics.txt, `lim` runs a command
# under the time the step has left. Variables from step_setup: xp_bin, py, nvcc, cuda_home, nccl_home.

# report KIND ARGS...: NOTE/METRIC lines from a run's output, turned into note/metric calls.
#   xp NAME METRICS.jsonl | torch NAME LOG [XP_NAME] | check NAME LOG | compare NAME OUTPUT
ingest() {  # NOTE and METRIC lines on stdin become note and metric calls
  local line key value
  while IFS= read -r line; do
    case $line in
      "NOTE "*) note "${line#NOTE }" ;;
      "METRIC "*) read -r key value <<<"${line#METRIC }"; metric "$key" "$value" ;;
    esac
  done
}
report() {
  ingest < <(timeout 30 "$py" - "$@" "$state/metrics.txt" <<'PY'
import json, re, statistics, sys
kind, name, path, *rest = sys.argv[1:]
known = {}
for l in open(rest[-1]):
    k, _, v = l.strip().partition(" ")
    known[k] = v
def metric(key, value):
    print(f"METRIC {name}.{key} {value}")
def tail_rows(rows):  # the last 10 steps, never the first (allocation, compilation)
    return rows[max(1, len(rows) - 10):] or rows
if kind == "xp":
    try:
        rows = [json.loads(l) for l in open(path) if l.strip()]
    except (OSError, ValueError) as e:
        sys.exit(print(f"NOTE no metrics ({e.__class__.__name__})"))
    if not rows:
        sys.exit(print("NOTE no steps in metrics.jsonl"))
    last = tail_rows(rows)
    tok, mfu = statistics.median(r["tokens_per_s"] for r in last), statistics.median(r["mfu"] for r in last)
    ms = statistics.median(r["ms"] for r in last)
    peak = max((r.get("peak_memory_gib", -1) for r in rows), default=-1)
    print(f"NOTE {tok:,.0f} tok/s, MFU {100 * mfu:.1f}%, peak {peak:.2f} GiB, {ms:.1f} ms/step "
          f"(median of steps {last[0]['step']}-{last[-1]['step']}), loss {rows[0]['loss']:.3f} -> {rows[-1]['loss']:.3f}")
    metric("tokens_per_s", f"{tok:.0f}"), metric("mfu", f"{mfu:.4f}"), metric("step_ms", f"{ms:.2f}")
    metric("peak_memory_gib", f"{peak:.3f}")
elif kind == "torch":
    lines = [l for l in open(path, errors="replace") if l.startswith("{")]
    if not lines:
        sys.exit(print("NOTE no result line from bench_torch_gpu.py"))
    r = json.loads(lines[-1])
    ratio = ""
    if rest[:-1] and f"{rest[0]}.tokens_per_s" in known:
        ratio = f", xp_train/this {float(known[rest[0] + '.tokens_per_s']) / r['tokens_per_s']:.2f}x"
    print(f"NOTE {r['tokens_per_s']:,.0f} tok/s, MFU {100 * r['mfu']:.1f}% of {r.get('peak_tflops', '?')} TFLOP/s, "
          f"peak {r.get('peak_memory_gib')} GiB, {r['step_ms']:.1f} ms/step, first step {r.get('first_step_s', '?')} s"
          f", torch {r.get('torch')}{ratio}")
    for key in ("tokens_per_s", "mfu", "step_ms", "peak_memory_gib", "first_step_s"):
        if r.get(key) is not None:
            metric(key, r[key])
elif kind == "check":  # "METRIC <check> <case> key=value ..." lines of the kernel checks
    cases = []
    for l in open(path, errors="replace"):
        m = re.match(r"METRIC \S+ (\S+) (.*)", l)
        if m:
            values = dict(kv.split("=", 1) for kv in m.group(2).split())
            for k, v in values.items():
                metric(f"{m.group(1)}.{k}", v)
            cases.append((m.group(1), values))
    totals = [v for c, v in cases if "cases" in v][-1:]  # "all" at the end; "main" if the check died after it
    text = [f"{t.get('cases')} cases, {t.get('failed')} failed, max rel err {t.get('max_rel_err')}" for t in totals]
    timed = [(c, v) for c, v in cases if "tflops" in v][:4]
    text += [f"{c} {float(v['tflops']):.0f} TFLOP/s {float(v.get('gbps', 'nan')):.0f} GB/s" for c, v in timed]
    print("NOTE " + ("; ".join(text) if text else "no METRIC lines in the output"))
elif kind == "compare":  # tests/train/compare_loss_curves.py's line
    m = re.search(r"max relative loss difference (\S+) at step (\d+)", path)
    if m:
        print(f"NOTE max rel loss diff {m.group(1)} at step {m.group(2)}")
        metric("max_rel_loss_diff", m.group(1))
    else:
        print(f"NOTE {path.strip()[-160:]}")
PY
  )
}

step_probe() {
  local env=$state/env.txt t f n total=0 gpu bins=() fields
  {
    echo "# gpu_run.sh probe, run $run_no, $(date -u '+%F %T') UTC, commit $(commit)"
    fields=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.limit
    gpu=$(LIM_CAP=15 lim nvidia-smi --query-gpu=$fields --format=csv,noheader 2>/dev/null | head -n1)
    [[ $gpu == NVIDIA* ]] || fields=name,memory.total,driver_version  # a driver without some of the fields
    [[ $gpu == NVIDIA* ]] || gpu=$(LIM_CAP=15 lim nvidia-smi --query-gpu=$fields --format=csv,noheader | head -n1)
    echo "gpu: ${gpu:-none (nvidia-smi failed or is missing)}"
    echo "($fields)"
    LIM_CAP=15 lim nvidia-smi
    echo "## host"
    uname -a; grep -m1 PRETTY_NAME /etc/os-release; ldd --version | head -n1
    echo "cores $(nproc), $(grep MemTotal /proc/meminfo)"
    echo "## tools"
    for t in mpirun mpiexec mpicxx h5cc pkg-config make ninja cmake ctest nvcc ncu gcc g++ perl; do
      if have "$t"; then echo "$t: $(PATH=$xp_path command -v "$t") ($(timeout 5 env PATH="$xp_path" LD_LIBRARY_PATH="$xp_ld" "$t" --version 2>&1 | grep -m1 .))"
      else echo "$t: missing"; fi
    done
    echo "compute-sanitizer: $(sanitizer || echo missing)"
    echo "ssh or rsh: $(PATH=$xp_path command -v ssh rsh | tr '\n' ' ')(OMPI_MCA_plm_rsh_agent=${OMPI_MCA_plm_rsh_agent:-unset})"
    echo "## libraries"
    echo "CUDA_HOME=${cuda_home:-none} NCCL_HOME=${nccl_home:-none}"
    [[ -n $nccl_home ]] && ls -l "$nccl_home/lib"
    ldconfig -p | grep -E 'libnccl|libcublasLt|libcudart|libcuda\.so|libhdf5|libmpi\.so'
    [[ -n $cuda_home ]] && find -L "$cuda_home" -maxdepth 4 -name 'libcublasLt.so*' | head -n3
    echo "## environment after env.sh"
    echo "XP_GPU_ROOT=$gpu_root: src -> $(readlink "$gpu_root/src"), build -> $(readlink "$gpu_root/build")"
    echo "binaries: ${xp_bin:-none}; carried resolve: $carried_ok; final_checkpoint key: $final_ckpt_key"
    echo "set by env.sh: $(cut -d= -f1 "$state/env_sh.set" 2>/dev/null | tr '\n' ' ')"
    echo "xp_train's PATH=$xp_path"
    echo "xp_train's LD_LIBRARY_PATH=$xp_ld"
    env | grep -E '^(OPAL_PREFIX|OMPI_|HDF5|MPI_HOME|CUDA_HOME|NCCL_HOME|XP_)' | sort
    [[ -f $bundle/manifest.txt ]] && head -n 30 "$bundle/manifest.txt"
    have mpirun && LIM_CAP=20 lim mpirun -np 2 hostname | sed 's/^/mpirun -np 2 hostname: /'
    echo "## ldd of the carried binaries (in $carried_dir)"
    for f in xp_train xp_ckpt xp_prep xp_generate tests/xp_unit_tests tests/xp_mpi_tests tests/xp_reference_dump; do
      bins+=("$carried_dir/$f")
    done
    mapfile -t -O "${#bins[@]}" bins < <(find -L "$carried_dir" -maxdepth 2 -type f -name 'xp_*_check' 2>/dev/null)
    for f in "${bins[@]}"; do
      if [[ ! -e $f ]]; then echo "$f: absent"; continue; fi
      n=$(unresolved "$f") total=$((total + n))
      echo "$f: $n not found"
      xpenv ldd "$f" 2>&1 | grep -E 'not found|mpi|hdf5|nccl|cublas|cudart|libcuda|kokkos|stdc\+\+' | sed 's/^/    /'
    done
    echo "unresolved libraries in all: $total"
    echo "## python"
    pylim -c 'import sys; print("python:", sys.executable, sys.version.split()[0])
import torch; print("torch:", torch.__version__, "cuda", torch.version.cuda, flush=True)
print("torch device:", torch.cuda.is_available() and torch.cuda.get_device_name(0), "nccl", torch.cuda.nccl.version())'
  } >"$env" 2>&1
  total=$(sed -n 's/^unresolved libraries in all: //p' "$env")
  gpu=$(sed -n 's/^gpu: //p' "$env")
  note "$gpu"
  note "carried binaries: ${total:-?} unresolved libraries, $( ((carried_ok)) && echo used || echo "not used: $carried_why")"
  note "mpirun $(have mpirun && echo present || echo missing); $(grep -m1 '^torch: ' "$env" | cut -d' ' -f1-4 || echo "torch: not importable")"
  metric probe.unresolved_libraries "${total:-unknown}"
  [[ $gpu == NVIDIA* ]]
}

step_build_kokkos() {
  [[ -n $nvcc ]] || { note "no nvcc"; return 1; }
  [[ -f $deps/kokkos-src/CMakeLists.txt ]] || { note "no $deps/kokkos-src"; return 1; }
  lim env XP_DEPS_DIR="$deps" "$repo/tools/build_kokkos.sh" --backend cuda --source "$deps/kokkos-src" --prefix "$state/kokkos-cuda" \
    --jobs "$(nproc)" || { note "build_kokkos.sh failed: $(grep -m1 -E 'error|Error' "$STEP_LOG" | cut -c1-160)"; return 1; }
}

step_build_xp() {
  local b=$gpu_root/build-local t gen=() extra=() nccl_lib built=()
  compgen -G "$state/kokkos-cuda/lib*/cmake/Kokkos/KokkosConfig.cmake" >/dev/null || { note "no Kokkos install"; return 1; }
  have ninja && gen=(-G Ninja)
  read -ra extra <<<"${XP_BUNDLE_CMAKE_ARGS:-}"  # more CMake arguments, if env.sh or the caller has any
  [[ -n ${MPI_HOME:-} ]] && extra+=(-DMPI_HOME="$MPI_HOME")     # env.sh: the carried Open MPI and its mpicxx
  [[ -n ${HDF5_ROOT:-} ]] && extra+=(-DHDF5_ROOT="$HDF5_ROOT")  # env.sh: the carried HDF5 headers and library
  nccl_lib=$(compgen -G "$nccl_home/lib/libnccl.so*" | head -n1)
  [[ -n $nccl_lib ]] && extra+=(-DXP_NCCL_LIBRARY="$nccl_lib" -DXP_NCCL_INCLUDE_DIR="$nccl_home/include")
  lim cmake "${gen[@]}" -S "$gpu_root/src" -B "$b" -DXP_ENABLE_CUDA=ON -DCMAKE_PREFIX_PATH="$state/kokkos-cuda" \
    -DCMAKE_CUDA_COMPILER="$nvcc" -DXP_TOMLPP_HEADER_ONLY=ON -DXP_TOMLPP_INCLUDE_DIR="$deps/tomlplusplus/include" \
    -DXP_NLOHMANN_JSON_INCLUDE_DIR="$deps/nlohmann_json/include" \
    -DXP_GTEST_SOURCE_DIR="$deps/googletest" "${extra[@]}" ||
    { note "configure failed: $(grep -m1 -A2 'CMake Error' "$STEP_LOG" | tr '\n' ' ' | cut -c1-200)"; return 1; }
  for t in xp_train xp_gemm_check xp_attention_check xp_unit_tests; do  # most valuable first
    lim cmake --build "$b" -j"$(nproc)" --target "$t" && built+=("$t")
  done
  note "built: ${built[*]:-nothing}"
  [[ -x $b/xp_train ]]
}

step_loss_curve() {
  local ref=$bundle/cpu_reference args=() rc result
  need_xp || return 77
  [[ -f $ref/metrics.jsonl && -f $ref/args ]] || { note "no cpu_reference in $bundle"; return 77; }
  read -ra args <"$ref/args"
  rm -rf "$runs/curve"
  LIM_RESERVE=5 xp_run 1 "${args[@]}" run_dir="$runs/curve"; rc=$?  # 5 s left to compare what it logged
  ((rc)) && note "xp_train exit $rc"
  [[ -d $runs/curve/ckpt ]] && note "final checkpoint written"
  [[ -s $runs/curve/metrics.jsonl ]] || { note "no metrics.jsonl"; return 1; }
  result=$(pylim "$repo/tests/train/compare_loss_curves.py" \
           "$ref/metrics.jsonl" "$runs/curve/metrics.jsonl" --tolerance 0.02) || rc=1
  echo "$result"
  report compare loss_curve "$result"
  return "$rc"
}

xp_model() {  # xp_model NAME DECK [KEY=VALUE...]: one rank, bench_steps steps, no final checkpoint
  local dir=$runs/$1 args=() rc
  need_xp || return 77
  args=("inputs/bench_gpu_$2.in" run_dir="$dir" steps="$bench_steps" peak_tflops="$peak_tflops" "${@:3}")
  ((final_ckpt_key)) && args+=(final_checkpoint=false)
  rm -rf "$dir"
  xp_run 1 "${args[@]}"; rc=$?
  rm -rf "$dir/ckpt"  # written without the key, or on the SIGTERM of a timeout: up to 18 GB at 1.5B
  ((rc)) && note "xp_train exit $rc"
  report xp "$1" "$dir/metrics.jsonl"
  [[ -s $dir/metrics.jsonl ]] || rc=1
  return "$rc"
}
step_xp_124m() { xp_model xp_124m 124m; }
step_xp_350m() { xp_model xp_350m 350m; }
step_xp_1p5b() { xp_model xp_1p5b 1p5b; }
step_xp_124m_kokkos() { xp_model xp_124m_kokkos 124m gpu_kernels=kokkos; }

torch_model() {  # torch_model NAME MODEL BATCH MODE STEPS [XP_NAME]
  local rc
  [[ -f $torch_bench ]] || { note "no $torch_bench"; return 77; }
  pylim "$torch_bench" --model "$2" --batch "$3" --seq 1024 \
    --steps "$5" --mode "$4" --peak_tflops "$peak_tflops"; rc=$?
  report torch "$1" "$STEP_LOG" ${6:+"$6"}
  return "$rc"
}
step_torch_eager_124m() { torch_model torch_eager_124m 124m 32 eager "$bench_steps" xp_124m; }
step_torch_compile_124m() { torch_model torch_compile_124m 124m 32 compile "$bench_steps" xp_124m; }
step_torch_compile_350m() { torch_model torch_compile_350m 350m 16 compile 15 xp_350m; }

kernel_check() {  # kernel_check NAME BINARY [ARGS]: exit 77 of a check means it saw no GPU
  local exe rc
  exe=$(find_bin "$2")
  [[ -n $exe ]] || { note "no $2 under ${xp_bin:-the build}"; return 77; }
  lim "$exe" "${@:3}"; rc=$?
  ((rc == 77)) && note "the check saw no CUDA device"
  report check "$1" "$STEP_LOG"
  return "$rc"
}
step_gemm_check() { kernel_check gemm_check xp_gemm_check; }
step_attention_check() { kernel_check attention_check xp_attention_check; }
step_kernel_bench() { kernel_check kernel_bench xp_kernel_bench; }

step_unit_tests() {
  local exe=$xp_bin/tests/xp_unit_tests listing n rc
  need_xp || return 77
  [[ -x $exe ]] || { note "no tests/xp_unit_tests"; return 77; }
  if have ctest; then
    listing=$(LIM_CAP=30 lim ctest --test-dir "$xp_bin" -N -L unit 2>&1)
    n=$(sed -n 's/^Total Tests: //p' <<<"$listing")
    tail -n 15 <<<"$listing"
    if ((${n:-0} > 0)); then
      lim ctest --test-dir "$xp_bin" -L unit -j8 --timeout 60 --output-on-failure; rc=$?
      note "ctest: $(grep -m1 -E 'tests passed' "$STEP_LOG" ||
                     echo "$(grep -cE 'Test +#[0-9]+: .* Passed' "$STEP_LOG") of $n passed before it ended")"
      note "$(sed -n '/The following tests FAILED/,$p' "$STEP_LOG" | grep -oE '[A-Za-z0-9_]+\.[A-Za-z0-9_/.]+' |
              head -n 6 | tr '\n' ' ')"
      return "$rc"
    fi
    echo "ctest lists no unit tests (discovery paths of another machine?): running the binary directly"
  fi
  gtest_direct "$exe"
}
gtest_direct() {  # runs a GoogleTest binary, restarting it past any test that kills the process
  local exe=$1 attempt excluded="" crashed=() passed failed part last rc=0
  for attempt in 1 2 3 4 5 6; do
    part=$logs/unit_tests.part$attempt
    lim "$exe" --gtest_filter="*${excluded:+-${excluded#:}}" >"$part" 2>&1; rc=$?
    cat "$part"
    ((rc == 124)) && break
    grep -qE '^\[==========\] [0-9]+ tests? from .* ran' "$part" && break
    last=$(grep -oE '^\[ RUN      \] \S+' "$part" | tail -n1 | awk '{print $NF}')
    [[ -z $last ]] && break
    crashed+=("$last")
    excluded+=$(grep -oE '^\[ +(RUN|OK|FAILED) +\] [A-Za-z0-9_/.]+' "$part" | awk '{print $NF}' | sort -u |
                awk '{printf ":%s", $0}')
  done
  passed=$(cat "$logs"/unit_tests.part* | grep -oE '^\[       OK \] \S+' | sort -u | wc -l)
  failed=$(cat "$logs"/unit_tests.part* | grep -oE '^\[  FAILED  \] \S+ \([0-9]+ ms\)' | awk '{print $4}' | sort -u)
  rm -f "$logs"/unit_tests.part*
  note "binary directly: $passed passed, $(wc -w <<<"$failed") failed, ${#crashed[@]} crashed the process"
  ((passed == 0 && ${#crashed[@]} == 0)) && note "it exited $rc before any test ran"
  [[ -n $failed ]] && note "failed: $(head -n 6 <<<"$failed" | tr '\n' ' ')"
  ((${#crashed[@]})) && note "crashed: ${crashed[*]}"
  [[ $rc != 124 && -z $failed && ${#crashed[@]} -eq 0 && $passed -gt 0 ]]
}

layout() {  # layout NAME KEY=N OVERRIDES...: 2 ranks on the one GPU against the 1-rank GPU curve; KEY=N: dp=2
  local ref=$runs/curve/metrics.jsonl args=() rc result layout_line
  need_xp || return 77
  have mpirun || { note "no mpirun"; return 77; }
  [[ -f $bundle/cpu_reference/args ]] || { note "no cpu_reference/args"; return 77; }
  [[ -s $ref ]] || ref=$bundle/cpu_reference/metrics.jsonl
  read -ra args <"$bundle/cpu_reference/args"
  rm -rf "${runs:?}/$1"
  LIM_RESERVE=5 xp_run 2 "${args[@]}" "${@:3}" run_dir="$runs/$1"; rc=$?
  ((rc)) && note "xp_train exit $rc"
  layout_line=$(grep -m1 -oE 'dp=[0-9]+ tp=[0-9]+ pp=[0-9]+( \(NCCL\))?' "$STEP_LOG")  # grid.cpp names NCCL only
  [[ -n $layout_line ]] && note "${layout_line/ (NCCL)/}, $([[ $layout_line == *NCCL* ]] && echo NCCL || echo MPI) backend"
  [[ -s $runs/$1/metrics.jsonl ]] || { note "no metrics.jsonl"; return 1; }
  grep -qE "\"${2%=*}\": ${2#*=}[,}]" "$runs/$1/metrics.jsonl" || { note "metrics.jsonl does not say $2"; rc=1; }
  result=$(pylim "$repo/tests/train/compare_loss_curves.py" \
           "$ref" "$runs/$1/metrics.jsonl" --tolerance 0.03) || rc=1  # tests' bf16 layout tolerance
  echo "$result"
  report compare "$1" "$result"
  if [[ $ref == "$runs"/* ]]; then note "against the 1-rank GPU run"; else note "against the fp32 CPU curve"; fi
  return "$rc"
}
step_layout_dp2() { layout layout_dp2 dp=2 dp_size=2 batch_size=4; }  # the same global batch of 8
step_layout_tp2() { layout layout_tp2 tp=2 tp_size=2; }

sanitizer() { PATH=$xp_path command -v compute-sanitizer || compgen -G "$cuda_home/compute-sanitizer/compute-sanitizer"; }
sanitize() {  # sanitize TOOL: compute-sanitizer on the attention check's correctness cases
  local exe san rc
  exe=$(find_bin xp_attention_check)
  [[ -n $exe ]] || { note "no xp_attention_check"; return 77; }
  san=$(sanitizer) || { note "no compute-sanitizer"; return 77; }
  lim "$san" --tool "$1" --print-limit 20 --error-exitcode 3 "$exe" --no-bench; rc=$?
  note "$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$STEP_LOG" | tail -n 2 | sed 's/^=* *//' | tr '\n' ' ')"
  metric "$1.errors" "$(grep -oE 'ERROR SUMMARY: [0-9]+' "$STEP_LOG" | tail -n1 | grep -oE '[0-9]+$' || echo unknown)"
  return "$rc"
}
step_memcheck() { sanitize memcheck; }
step_racecheck() { sanitize racecheck; }

step_ceilings() {  # this machine's ceilings for the numbers above (METHOD.md): device copy and a large bf16 GEMM
  local rc
  pylim -c '
import torch
def ms(f, n=10):
    for _ in range(3): f()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n): f()
    stop.record(); stop.synchronize()
    return start.elapsed_time(stop) / n
x = torch.randint(0, 255, (4 << 30,), dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
copy = 2 * x.numel() / ms(lambda: y.copy_(x)) / 1e6
del x, y
a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
gemm = 2 * 8192 ** 3 / ms(lambda: a @ b) / 1e9
print(f"NOTE device copy {copy:.0f} GB/s (read + write), bf16 GEMM 8192^3 {gemm:.0f} TFLOP/s on random data")
print(f"METRIC ceilings.copy_gbps {copy:.0f}"); print(f"METRIC ceilings.bf16_gemm_tflops {gemm:.0f}")' >"$logs/ceilings.out"
  rc=$?
  cat "$logs/ceilings.out"
  ingest <"$logs/ceilings.out"
  return "$rc"
}
