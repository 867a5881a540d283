#!/usr/bin/env bash
# Prepares ${XP_DEPS_DIR:-<repo>/.deps}/ so that the working tree can go to an offline GPU machine (no package
# registry there; CUDA, MPI, NCCL, HDF5 and CMake installed, OpenBLAS / toml++ / GoogleTest maybe not):
#   .deps/kokkos-src      Kokkos 3.4.01 from Debian's trilinos, patched for CUDA 13 and sm_90 (tools/build_kokkos.sh)
#   .deps/googletest      GoogleTest source (Debian's googletest, /usr/src/googletest)
#   .deps/tomlplusplus    toml++ headers (Debian's libtomlplusplus-dev) + a header-only tomlplusplus.pc
#   .deps/cpu_reference   the fp32 loss curve of the GPU check's 100-step run, by build/xp_train (the CPU
#                         build; tools/setup.sh first), and its command-line arguments
# Installs the two Debian packages if missing, then prints the size of .deps (it must stay under 60 MiB to travel
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

missing=()
for package in googletest libtomlplusplus-dev; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "gpu_bundle: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# GoogleTest: the whole source tree as Debian ships it (builds with plain CMake, installs GTestConfig.cmake)
rm -rf "$deps/googletest"
cp -a /usr/src/googletest "$deps/googletest"
cp /usr/share/doc/googletest/copyright "$deps/googletest/debian-copyright"

# toml++: header-only use (Debian's own .pc links its shared library, which the GPU machine will not have)
rm -rf "$deps/tomlplusplus"
mkdir -p "$deps/tomlplusplus/include" "$deps/tomlplusplus/lib/pkgconfig"
cp -a /usr/include/toml++ "$deps/tomlplusplus/include/"
cp /usr/share/doc/libtomlplusplus-dev/copyright "$deps/tomlplusplus/debian-copyright"
version=$(dpkg-query -W -f='${Version}' libtomlplusplus-dev | sed 's/[+-].*//')
cat > "$deps/tomlplusplus/lib/pkgconfig/tomlplusplus.pc" <<EOF
prefix=\${pcfiledir}/../..
includedir=\${prefix}/include

Name: tomlplusplus
Description: TOML config file parser and serializer for C++ (header-only, from Debian's libtomlplusplus-dev)
Version: $version
Cflags: -I\${includedir} -DTOML_HEADER_ONLY=1
EOF

# The fp32 CPU loss curve that tools/gpu_check.sh compares the GPU's bf16 curve with: the demo model
# with head size 64 (the fused attention's), one rank, 100 steps, synthetic data.
args="$repo/inputs/gpt2_tiny.in n_head=2 steps=100 eval_every=0 log_every=100 tp_size=1 pp_stages=1 dp_size=1"
rm -rf "$deps/cpu_reference"
mkdir -p "$deps/cpu_reference"
echo "inputs/gpt2_tiny.in n_head=2 steps=100 eval_every=0 log_every=100 tp_size=1 pp_stages=1 dp_size=1" \
  >"$deps/cpu_reference/args"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 1 "$repo/build/xp_train" $args \
  run_dir="$deps/cpu_reference/run" >/dev/null
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
