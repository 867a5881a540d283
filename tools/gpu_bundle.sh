#!/usr/bin/env bash
# Prepares ${XP_DEPS_DIR:-<repo>/.deps}/ so that the working tree can go to an offline GPU machine (no package
# registry there; CUDA, MPI, NCCL, HDF5 and CMake installed, OpenBLAS / toml++ / GoogleTest maybe not):
#   .deps/kokkos-src      Kokkos 3.4.01 from Debian's trilinos, patched for CUDA 13 and sm_90 (tools/build_kokkos.sh)
#   .deps/googletest      GoogleTest source (Debian's googletest, /usr/src/googletest)
#   .deps/tomlplusplus    toml++ headers (Debian's libtomlplusplus-dev), used header-only
#   .deps/cpu_reference   the fp32 loss curve of the GPU check's 100-step run, by build/xp_train (the CPU
#                         build, which tools/setup.sh makes first), and its command-line arguments
# Runs tools/setup.sh (packages, build/xp_train) first, then prints the size of .deps (it must stay under 60 MiB to travel
# with the tree). Idempotent. Nothing in .deps is tracked by git.
#
#   tools/gpu_bundle.sh
# On the GPU machine, offline, carrying .deps/kokkos-src .deps/googletest .deps/tomlplusplus
# .deps/cpu_reference:
#   tools/gpu_check.sh [--bench]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
deps=${XP_DEPS_DIR:-$repo/.deps}
limit_mib=60
mkdir -p "$deps"

# Kokkos: fetched, reduced to what a build needs (no tests, examples, docs, benchmarks) and patched
XP_DEPS_DIR=$deps "$repo/tools/build_kokkos.sh" --fetch-only

# GoogleTest and toml++ come from Debian's packages, and the fp32 reference run below needs build/xp_train:
# tools/setup.sh installs and builds both (idempotent).
"$repo/tools/setup.sh" >/dev/null

# GoogleTest: the whole source tree as Debian ships it (builds with plain CMake, installs GTestConfig.cmake)
rm -rf "$deps/googletest"
cp -a /usr/src/googletest "$deps/googletest"
cp /usr/share/doc/googletest/copyright "$deps/googletest/debian-copyright"

# toml++: its headers, used header-only there (XP_TOMLPP_HEADER_ONLY; Debian's library is not on that machine)
rm -rf "$deps/tomlplusplus"
mkdir -p "$deps/tomlplusplus/include"
cp -a /usr/include/toml++ "$deps/tomlplusplus/include/"
cp /usr/share/doc/libtomlplusplus-dev/copyright "$deps/tomlplusplus/debian-copyright"

# The fp32 CPU loss curve that tools/gpu_check.sh compares the GPU's bf16 curve with
# (tests/train/precision_run.args: the demo model with head size 64, the fused attention's; one rank).
rm -rf "$deps/cpu_reference"
mkdir -p "$deps/cpu_reference"
cp "$repo/tests/train/precision_run.args" "$deps/cpu_reference/args"
(cd "$repo" && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 1 build/xp_train \
  $(cat tests/train/precision_run.args) run_dir="$deps/cpu_reference/run" >/dev/null)
mv "$deps/cpu_reference/run/metrics.jsonl" "$deps/cpu_reference/metrics.jsonl"
rm -rf "$deps/cpu_reference/run"

carried=("$deps/kokkos-src" "$deps/googletest" "$deps/tomlplusplus" "$deps/cpu_reference")
du -sh "${carried[@]}" | sed 's/^/gpu_bundle:   /'
bytes=$(du -scb "${carried[@]}" | tail -1 | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "gpu_bundle: the four folders to carry hold $mib MiB"
if ((bytes > limit_mib * 1048576)); then
  echo "gpu_bundle: more than $limit_mib MiB: remove build trees or installs from $deps" >&2
  exit 1
fi
