#!/usr/bin/env bash
# The libFuzzer targets of tests/fuzz (decks, token shards, checkpoint indexes, safetensors, text), built with
# clang, AddressSanitizer and UndefinedBehaviorSanitizer in their own build tree.
#   tools/fuzz.sh build                 # configure + build every target in $FUZZ_BUILD_DIR (default build-fuzz)
#   tools/fuzz.sh run TARGET [SECONDS]  # replay tests/fuzz/regressions/TARGET, then fuzz for SECONDS (default
#                                       # 30; 0: replay the seed corpus only) from tests/fuzz/corpus/TARGET
# Exit status: 0 clean, 1 a finding (its input is kept in $FUZZ_BUILD_DIR/findings/TARGET/: minimise it
# with -minimize_crash=1, fix the bug, add it to tests/fuzz/regressions/TARGET/), 77 no libFuzzer here.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(realpath -m "${FUZZ_BUILD_DIR:-$root/build-fuzz}")
cxx=${FUZZ_CXX:-clang++-14}
cc=${FUZZ_CC:-clang-14}

# libFuzzer ships with clang's runtime (Debian: clang-14 + libclang-rt-14-dev); without it, skip.
have_libfuzzer() {
  command -v "$cxx" >/dev/null || return 1
  local probe
  probe=$(mktemp -d)
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe/p.cpp"
  "$cxx" -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" 2>/dev/null
  local rc=$?
  rm -rf "$probe"
  return $rc
}
if ! have_libfuzzer; then
  echo "fuzz: SKIPPED: $cxx with libFuzzer's runtime (-fsanitize=fuzzer) is missing; tools/setup.sh installs it"
  exit 77
fi

case "${1:-}" in
  build)
    start=$SECONDS
    cmake -S "$root/tests/fuzz" -B "$build_dir" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" >/dev/null
    cmake --build "$build_dir" -j "${FUZZ_JOBS:-2}"
    echo "fuzz: built the targets in $build_dir in $((SECONDS - start)) s"
    ;;
  run)
    target=${2:?usage: tools/fuzz.sh run TARGET [SECONDS]}
    seconds=${3:-30}
    binary=$build_dir/fuzz_$target
    [[ -x $binary ]] || { echo "fuzz: $binary is not built (tools/fuzz.sh build)"; exit 1; }
    # Debian's HDF5 leaks a little on some refusals (tests/fuzz/lsan.supp says which).
    export LSAN_OPTIONS=suppressions=$root/tests/fuzz/lsan.supp:print_suppressions=0
    export UBSAN_OPTIONS=print_stacktrace=1
    findings=$build_dir/findings/$target
    mkdir -p "$findings"
    # libFuzzer's own default exit status for a finding is 77, which ctest would read as a skip.
    flags=(-rss_limit_mb=2048 -timeout=10 -error_exitcode=1 -timeout_exitcode=1 -artifact_prefix="$findings/")
    shopt -s nullglob
    regressions=("$root/tests/fuzz/regressions/$target"/*)
    if ((${#regressions[@]})); then
      "$binary" "${flags[@]}" "${regressions[@]}" 2>&1 | tail -n 30 || { echo "fuzz: $target: a regression input fails"; exit 1; }
      echo "fuzz: $target: ${#regressions[@]} regression input(s) pass"
    fi
    # New inputs go to a working corpus in the build tree, never into the repository's seeds.
    corpus=$build_dir/corpus/$target
    mkdir -p "$corpus"
    seeds=()
    [[ -d $root/tests/fuzz/corpus/$target ]] && seeds=("$root/tests/fuzz/corpus/$target")
    if [[ $target == checkpoint_index ]]; then
      # Real index files: a format-1 one (ctest's fixture io_format_v1, tests/io/make_format_v1.py, writes
      # the checkpoint FUZZ_FORMAT_V1 names), and current-format ones (pp 1 and 2) made now by xp_train
      [[ -f ${FUZZ_FORMAT_V1:-}/index.h5 ]] ||
        { echo "fuzz: FUZZ_FORMAT_V1 (a format-1 checkpoint: tests/io/make_format_v1.py) is needed for the index seeds"; exit 1; }
      cp "$FUZZ_FORMAT_V1/index.h5" "$corpus/format_v1.h5"
      [[ -x ${FUZZ_XP_TRAIN:-} ]] || { echo "fuzz: FUZZ_XP_TRAIN (the CPU build's xp_train) is needed for the index seeds"; exit 1; }
      for pp in 1 2; do
        run_dir=$build_dir/index_seed_pp$pp
        rm -rf "$run_dir"
        "${FUZZ_MPIEXEC:-mpirun}" -np "$pp" "$FUZZ_XP_TRAIN" "$root/inputs/gpt2_tiny.in" n_layer=2 n_embd=32 n_head=2 \
          seq_len=16 batch_size=2 steps=1 eval_every=0 log_every=1 checkpoint_every=1 pp_stages="$pp" tp_size=1 \
          dp_size=1 run_dir="$run_dir" >"$run_dir.log" 2>&1 || { cat "$run_dir.log"; echo "fuzz: no index seed (pp $pp)"; exit 1; }
        cp "$run_dir"/ckpt/step_000001/index.h5 "$corpus/current_pp$pp.h5"
      done
    fi
    if ((seconds == 0)); then
      run_flags=(-runs=0)
    else
      run_flags=(-max_total_time="$seconds" -print_final_stats=1)
    fi
    log=$build_dir/fuzz_$target.log
    if ! "$binary" "${flags[@]}" "${run_flags[@]}" "$corpus" ${seeds[@]+"${seeds[@]}"} >"$log" 2>&1; then
      grep -v '^#[0-9]' "$log" | tail -n 60
      echo "fuzz: $target: FINDING, input kept in $findings/"
      exit 1
    fi
    grep -E '^Done|stat::number_of_executed_units|INITED' "$log" || true
    echo "fuzz: $target: clean, $(grep -oP '^Done \K[0-9]+' "$log" || echo 0) executions in ${seconds} s"
    ;;
  *)
    sed -n '2,9p' "$0"
    exit 2
    ;;
esac
