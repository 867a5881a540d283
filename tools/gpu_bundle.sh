#!/usr/bin/env bash
# Makes the one folder that travels to an offline GPU machine (a bare CUDA image: glibc, libstdc++, the CUDA
# runtime and cuBLASLt, NCCL as a pip wheel, the driver's libcuda; maybe no Open MPI, HDF5, pkg-config or make):
#   .deps/gpu_bundle/
#     build/          pruned copy of the CUDA build (tools/check_cuda_build.sh): its executables, stripped, and
#                     the CTest and gtest discovery files, valid there as $XP_GPU_ROOT/build
#     runtime/lib     every shared library those binaries and the carried Open MPI need beyond that image
#                     (Open MPI, PMIx, hwloc, libevent, HDF5, libsz, libcrypto, ...), from Debian's installed
#                     packages
#     runtime/openmpi mpirun/orted/ompi_info/mpicxx, the MCA components whose dependencies are carried, help
#                     files, wrapper data, MPI headers and etc/openmpi-mca-params.conf (single host: btl self,vader)
#     runtime/pmix    PMIx's components, help files and mca-params.conf
#     runtime/hdf5    HDF5 headers and lib/libhdf5.so, for a fallback build there (HDF5_ROOT)
#     env.sh          `source .deps/gpu_bundle/env.sh`: relocates the carried Open MPI (OPAL_*, PMIX_*), PATH,
#                     LD_LIBRARY_PATH, MPI_HOME and HDF5_ROOT (tools/gpu_bundle_env.sh)
#     cpu_reference/  the fp32 loss curve the GPU's bf16 curve is compared with (metrics.jsonl, args)
#     manifest.txt    git commit, XP_GPU_ROOT, sizes, every file
# and, for a fallback build there, .deps/kokkos-src, googletest, tomlplusplus and nlohmann_json. All five are packed
# into the one file to carry, .deps/gpu_carry.tar.xz (tools/gpu_run.sh unpacks it there); fails when that file
# exceeds 60 MiB. Idempotent: rebuilt from the (incremental) CUDA build each time.
#
#   tools/gpu_bundle.sh        (BUILD_DIR=<repo>/build-cuda, XP_GPU_ROOT=/opt/xp_gpu, XP_DEPS_DIR=<repo>/.deps)
# There: XP_GPU_ROOT/src -> the repository, XP_GPU_ROOT/build -> .deps/gpu_bundle/build (tools/gpu_run.sh).
# tools/check_gpu_bundle.sh proves it in a clean root without Open MPI and HDF5 (ctest gpu_bundle_deploys).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
deps=${XP_DEPS_DIR:-$repo/.deps}
build_dir=${BUILD_DIR:-$repo/build-cuda}
gpu_root=${XP_GPU_ROOT:-/opt/xp_gpu}
bundle=$deps/gpu_bundle
limit_mib=60
ompi_pkglib=/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3
ompi_include=/usr/lib/x86_64-linux-gnu/openmpi/include
pmix_dir=/usr/lib/x86_64-linux-gnu/pmix2
hdf5_include=/usr/include/hdf5/serial
# The executables the GPU run uses; every other file of the build tree but CTest's is left behind.
binaries=(xp_train xp_ckpt xp_prep xp_generate xp_gemm_check xp_attention_check xp_kernel_bench tests/xp_unit_tests tests/xp_mpi_tests
          tests/xp_reference_dump tests/cli/libxp_fake_hdf5_version.so)
# What the GPU image has: glibc, the GCC runtime, CUDA and NCCL (never carried: theirs must be used there).
provided='^(linux-vdso|ld-linux-x86-64|libc|libm|libmvec|libpthread|libdl|librt|libutil|libresolv|libanl|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnccl)\.so'
# MCA components for networks and OpenSHMEM (UCX, libfabric, PSM, verbs, netlink): not needed on one host,
# and their libraries would double the bundle; Open MPI warns about a component it cannot load, so drop them.
dropped_deps='^lib(ucp|ucs|uct|ucm|fabric|psm|psm_infinipath|psm2|ibverbs|rdmacm|efa|oshmem|nl-3|nl-route-3)\.so'
die() { echo "gpu_bundle: $*" >&2; exit 1; }
t_start=$SECONDS

# --- the CUDA build at the fixed path (incremental; builds it the first time) --------------------------
rc=0
BUILD_DIR=$build_dir XP_DEPS_DIR=$deps XP_GPU_ROOT=$gpu_root "$repo/tools/check_cuda_build.sh" >/tmp/gpu_bundle.$$.log 2>&1 || rc=$?
if ((rc)); then
  cat /tmp/gpu_bundle.$$.log; rm -f /tmp/gpu_bundle.$$.log
  ((rc == 77)) && exit 77
  die "the CUDA build failed"
fi
rm -f /tmp/gpu_bundle.$$.log
build_dir=$(cd "$build_dir" && pwd)
echo "gpu_bundle: CUDA build up to date in $((SECONDS - t_start)) s"

# --- the parts outside the bundle: Kokkos source, GoogleTest, toml++, nlohmann-json (a fallback build there)
XP_DEPS_DIR=$deps "$repo/tools/build_kokkos.sh" --fetch-only >/dev/null
"$repo/tools/setup.sh" >/dev/null  # Debian's packages copied below, and build/xp_train for the fp32 curve
rm -rf "$deps/googletest" "$deps/tomlplusplus"
cp -a /usr/src/googletest "$deps/googletest"
cp /usr/share/doc/googletest/copyright "$deps/googletest/debian-copyright"
mkdir -p "$deps/tomlplusplus/include"
cp -a /usr/include/toml++ "$deps/tomlplusplus/include/"
cp /usr/share/doc/libtomlplusplus-dev/copyright "$deps/tomlplusplus/debian-copyright"
rm -rf "$deps/nlohmann_json"
mkdir -p "$deps/nlohmann_json/include"
cp -a /usr/include/nlohmann "$deps/nlohmann_json/include/"
cp /usr/share/doc/nlohmann-json3-dev/copyright "$deps/nlohmann_json/debian-copyright"

stage=$deps/gpu_bundle.new
rm -rf "$stage"
mkdir -p "$stage"/{build,runtime/lib,runtime/openmpi/{bin,lib,etc,share},runtime/pmix/{lib,etc,share},runtime/hdf5/lib}
t_stage=$SECONDS

# --- build/: executables (stripped) and CTest files, paths rewritten where they name this machine -----
for binary in "${binaries[@]}"; do
  [[ -x $build_dir/$binary ]] || die "no $binary in $build_dir"
  mkdir -p "$stage/build/$(dirname "$binary")"
  strip --strip-unneeded -o "$stage/build/$binary" "$build_dir/$binary"
done
# ctest reads CTestTestfile.cmake in every directory; PRE_TEST gtest discovery runs <target>[N]_include.cmake,
# which includes CMake's GoogleTestAddTests.cmake: carried too (the CMake there is another version).
(cd "$build_dir" && find . -name CTestTestfile.cmake -o -name '*\[*\]_include.cmake' | sed 's|^\./||') |
  while read -r file; do
    mkdir -p "$stage/build/$(dirname "$file")"
    cp "$build_dir/$file" "$stage/build/$file"
  done
gtest_script=$(grep -ho '[^" ]*/GoogleTestAddTests.cmake' "$build_dir"/tests/*_include.cmake | sort -u | head -n1)
[[ -f $gtest_script ]] || die "no GoogleTestAddTests.cmake named in $build_dir/tests/*_include.cmake"
mkdir -p "$stage/build/cmake"
cp "$gtest_script" "$stage/build/cmake/"
mpiexec=$(sed -n 's/^MPIEXEC_EXECUTABLE:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
cmake_command=$(sed -n 's/^CMAKE_COMMAND:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
ctest_command=$(dirname "$cmake_command")/ctest
# There, mpiexec is the carried one (through the fixed path, as the build tree itself), and cmake/ctest are the
# ones on PATH. Everything else the CTest files name is under $XP_GPU_ROOT already.
find "$stage/build" -name '*.cmake' -print0 | xargs -0 sed -i \
  -e "s|$gtest_script|$gpu_root/build/cmake/GoogleTestAddTests.cmake|g" \
  -e "s|\"$mpiexec\"|\"$gpu_root/build/../runtime/openmpi/bin/mpiexec\"|g" \
  -e "s|\"$cmake_command\"|\"cmake\"|g" -e "s|\"$ctest_command\"|\"ctest\"|g"
# A carried CTest file must not need a file of the build tree that stays here.
missing=$(grep -rhoE "$gpu_root/build/[^\" ;]+" "$stage/build" --include='*.cmake' | sort -u |
  while read -r path; do
    relative=${path#"$gpu_root/build/"}
    [[ -f $build_dir/$relative && ! -e $stage/build/$relative ]] && echo "$relative"
  done || true)
[[ -z $missing ]] || die "CTest files name build files that are not carried: $missing"

# --- runtime/openmpi and runtime/pmix: Debian's Open MPI 4.1, relocated (OPAL_* and PMIX_* in env.sh) -------
ompi=$stage/runtime/openmpi
cp /usr/bin/orterun "$ompi/bin/mpirun"
cp /usr/bin/orterun "$ompi/bin/mpiexec"
cp /usr/bin/orted /usr/bin/ompi_info "$ompi/bin/"
for wrapper in mpicc mpicxx; do cp /usr/bin/opal_wrapper "$ompi/bin/$wrapper"; done
mkdir -p "$ompi/lib/openmpi3"
for component in "$ompi_pkglib"/mca_*.so; do
  if ! ldd "$component" | awk '{ print $1 }' | grep -qE "$dropped_deps"; then
    cp "$component" "$ompi/lib/openmpi3/"
  fi
done
mkdir -p "$ompi/share/openmpi"
cp /usr/share/openmpi/help-*.txt /usr/share/openmpi/mpicc-wrapper-data.txt /usr/share/openmpi/mpicxx-wrapper-data.txt \
  "$ompi/share/openmpi/"
cat >"$ompi/etc/openmpi-mca-params.conf" <<'EOF'
# xp_train's bundle (tools/gpu_bundle.sh): one host, no network transports carried.
btl = self,vader
pml = ob1
# Containers often forbid the cross-memory attach vader uses for large messages.
btl_vader_single_copy_mechanism = none
# mpirun talks to its own ranks only: loopback, whatever interfaces the machine has.
oob_tcp_if_include = lo
# Ranks start on this host only: no ssh/rsh agent needed (mpirun aborts when it finds none).
plm = isolated
EOF
# MPI headers for mpicxx: the C API and the C++ bindings mpi.h pulls in (no Fortran, OpenSHMEM or internals)
mkdir -p "$ompi/include/openmpi/ompi/mpi"
cp "$ompi_include"/{mpi.h,mpi-ext.h,mpi_portable_platform.h} "$ompi/include/"
cp -a "$ompi_include/openmpi/mpiext" "$ompi/include/openmpi/"
cp -a "$ompi_include/openmpi/ompi/mpi/cxx" "$ompi/include/openmpi/ompi/mpi/"
pmix=$stage/runtime/pmix
cp -a "$pmix_dir/lib/pmix" "$pmix/lib/"
cp -a "$pmix_dir/share/pmix" "$pmix/share/"
# Debian's own file sets mca_base_component_path to its absolute directory: PMIX_PKGLIBDIR instead
echo "# xp_train's bundle (tools/gpu_bundle.sh): PMIx's defaults; components come from PMIX_PKGLIBDIR" \
  >"$pmix/etc/pmix-mca-params.conf"

# --- runtime/lib: the shared libraries all of that needs, beyond the GPU image ----------------------
elf_files() { find "$@" -type f \( -perm -u+x -o -name '*.so*' \) -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print; }
mapfile -t carried < <(elf_files "$stage/build" "$ompi" "$pmix")
# ldd with runtime/lib first, as env.sh has it
closure() { LD_LIBRARY_PATH=$stage/runtime/lib ldd "${carried[@]}" 2>/dev/null; }
closure | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
  while read -r soname path; do
    [[ $soname =~ $provided || $path == "$stage"/* ]] && continue
    [[ -e $stage/runtime/lib/$soname ]] || cp -L "$path" "$stage/runtime/lib/$soname"
  done
unresolved=$(closure | grep 'not found' | sort -u || true)
[[ -z $unresolved ]] || die "libraries not found here either: $unresolved"
strip --strip-unneeded "$stage"/runtime/lib/*.so* "$ompi"/lib/openmpi3/*.so "$pmix"/lib/pmix/*.so
# Link-time names for a fallback build there (mpicxx's -lmpi_cxx -lmpi; FindHDF5's hdf5 under HDF5_ROOT)
(cd "$stage/runtime/lib" && ln -s libmpi.so.40 libmpi.so && ln -s libmpi_cxx.so.40 libmpi_cxx.so)
cp -a "$hdf5_include" "$stage/runtime/hdf5/include"
ln -s ../../lib/libhdf5_serial.so.103 "$stage/runtime/hdf5/lib/libhdf5.so"
cp "$repo/tools/gpu_bundle_env.sh" "$stage/env.sh"

# --- cpu_reference/: the fp32 CPU curve (kept while the CPU build and its arguments are unchanged) --------
reference=$bundle/cpu_reference
if [[ -f $reference/metrics.jsonl && $reference/metrics.jsonl -nt $repo/build/xp_train ]] &&
   cmp -s "$reference/args" "$repo/tests/train/precision_run.args"; then
  cp -a "$reference" "$stage/"
elif [[ -f $deps/cpu_reference/metrics.jsonl && $deps/cpu_reference/metrics.jsonl -nt $repo/build/xp_train ]] &&
     cmp -s "$deps/cpu_reference/args" "$repo/tests/train/precision_run.args"; then
  mv "$deps/cpu_reference" "$stage/cpu_reference"  # where earlier versions of this script put it
else
  mkdir -p "$stage/cpu_reference"
  cp "$repo/tests/train/precision_run.args" "$stage/cpu_reference/args"
  read -ra curve_args <"$repo/tests/train/precision_run.args"
  (cd "$repo" && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 1 build/xp_train \
    "${curve_args[@]}" run_dir="$stage/cpu_reference/run" >/dev/null)
  mv "$stage/cpu_reference/run/metrics.jsonl" "$stage/cpu_reference/metrics.jsonl"
  rm -rf "$stage/cpu_reference/run"
fi
rm -rf "$deps/cpu_reference"

# --- manifest, size limit, swap in ------------------------------------------------------------------
size_of() { du -sb "$@" | awk '{ s += $1 } END { printf "%.1f MiB", s / 1048576 }'; }
{
  echo "xp_train GPU bundle (tools/gpu_bundle.sh), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit       $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "XP_GPU_ROOT  $gpu_root (there: $gpu_root/src -> the repository, $gpu_root/build -> .deps/gpu_bundle/build)"
  echo "built from   $build_dir on $(. /etc/os-release && echo "$PRETTY_NAME"), $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'nvcc ?')"
  for part in build runtime/lib runtime/openmpi runtime/pmix runtime/hdf5 cpu_reference; do
    printf 'size         %-16s %s\n' "$part" "$(size_of "$stage/$part")"
  done
  printf 'size         %-16s %s\n' "(all)" "$(size_of "$stage")"
  echo "files (bytes, path):"
  (cd "$stage" && find . -type f -printf '%s %P\n' -o -type l -printf 'link %P -> %l\n' | sort -k2)
} >"$stage/manifest.txt"
rm -rf "$bundle"
mv "$stage" "$bundle"

grep '^size' "$bundle/manifest.txt" | sed 's/^size */gpu_bundle:   /'

# --- the one file that travels: the bundle and the fallback build's sources, xz-compressed --------------------
# (binaries and libraries shrink about 4x: the carry limit is 64 MiB, and a smaller transfer starts sooner)
t_pack=$SECONDS
carry=$deps/gpu_carry.tar.xz
tar -C "$deps" -cf - gpu_bundle kokkos-src googletest tomlplusplus nlohmann_json | xz -T0 -6 >"$carry.new"
mv "$carry.new" "$carry"
bytes=$(stat -c %s "$carry")
echo "gpu_bundle: $bundle holds $(size_of "$bundle"); with kokkos-src, googletest, tomlplusplus and nlohmann_json packed into"
echo "gpu_bundle: $carry: $(size_of "$carry") (limit $limit_mib MiB), packed in $((SECONDS - t_pack)) s; $((SECONDS - t_start)) s in all"
((bytes <= limit_mib * 1048576)) || die "$carry is $(size_of "$carry"), over $limit_mib MiB: see $bundle/manifest.txt"
