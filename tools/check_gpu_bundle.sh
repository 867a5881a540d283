#!/usr/bin/env bash
# Proves here that the GPU bundle (tools/gpu_bundle.sh; checked as it unpacks from .deps/gpu_carry.tar.xz) runs where Open MPI, HDF5, pkg-config and make are
# missing, as on a bare CUDA image: a minimal Debian root (mmdebstrap --variant=essential + libstdc++6, from
# this machine's apt sources, cached in .deps/clean_root) gets, in a private mount namespace, the repository
# at its own path (read-only), $XP_GPU_ROOT/{src,build} as tools/gpu_run.sh makes them there, and - standing
# in for the image's CUDA - the toolkit's lib64 (libcudart, libcublasLt; libcuda.so.1 from its stubs) and
# the directory of the NCCL the CUDA build linked. Inside, with only env.sh sourced:
#   (a) ldd resolves every carried binary and library;
#   (b) the carried mpirun -np 2 runs an MPI ring built with the carried mpicxx, and xp_train --help,
#       without a single Open MPI warning;
#   (c) an HDF5 file is written and read back through the carried library (built against carried headers);
#   (d) $XP_GPU_ROOT/build/xp_train inputs/gpt2_tiny.in --dry-run --gpu world_size=8 device_memory=80GB
#       prints the same plan as the CPU build here, without a GPU (the dry run starts no device).
# Exit 0: all pass; 1: a check failed; 77: no CUDA toolkit (skipped).
#   tools/check_gpu_bundle.sh   (BUILD_DIR=<repo>/build-cuda, XP_GPU_ROOT=/opt/xp_gpu, XP_DEPS_DIR=<repo>/.deps)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
self=$repo/tools/check_gpu_bundle.sh
die() { echo "check_gpu_bundle: $*" >&2; exit 1; }

# --- inside the clean root (chroot): the checks --------------------------------------------------------
inside() {
  local bundle=$XP_BUNDLE gpu_root=$XP_GPU_ROOT failed=0 log=/tmp/check.log
  check() {  # check NAME COMMAND...: PASS/FAIL with the output of a failure
    local name=$1 start=$SECONDS
    shift
    if "$@" >"$log" 2>&1; then
      echo "PASS  $name ($((SECONDS - start)) s)"
    else
      echo "FAIL  $name"
      sed 's/^/      /' "$log" | head -40
      failed=1
    fi
  }
  absent() {  # nothing of the system's MPI, HDF5 or build tools here, or the checks prove nothing
    local tool found=0
    for tool in mpirun mpiexec orterun h5cc pkg-config make; do
      command -v "$tool" && found=1
    done
    ldconfig -p | grep -E 'lib(mpi|open-pal|pmix|hdf5|hwloc|event)' && found=1
    return $found
  }
  check "no mpirun, h5cc, pkg-config, make, Open MPI or HDF5 in the root" absent

  # shellcheck source=gpu_bundle_env.sh
  source "$bundle/env.sh"
  # What the GPU image provides, at paths the binaries do not name (there: the wheel's NCCL, the driver)
  export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/opt/cuda/toolkit:/opt/cuda/nccl:/opt/cuda/driver
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

  resolves() {  # (a): every ELF file of the bundle
    local file count=0 bad=0
    while IFS= read -r -d '' file; do
      [[ $(head -c4 "$file") == $'\x7fELF' ]] || continue
      count=$((count + 1))
      if ldd "$file" 2>&1 | grep -q 'not found'; then
        echo "$file:"; ldd "$file" 2>&1 | grep 'not found'; bad=1
      fi
    done < <(find "$bundle" -type f -print0)
    echo "$count ELF files checked"
    # ... and MPI and HDF5 come from the bundle, not from anything else on the search path
    ldd "$gpu_root/build/xp_train" | grep -E 'lib(mpi|hdf5_serial)\.so' | grep -v "=> $bundle/runtime/lib/" && bad=1
    [[ $count -gt 100 ]] && ((!bad))
  }
  check "(a) ldd resolves every carried binary and library" resolves

  relocated() {  # Open MPI takes its components and settings from the bundle
    ompi_info --path all | grep -E 'Pkglibdir|Sysconfdir|Pkgdatadir'
    ompi_info --path all | grep -qxE " *Pkglibdir: $bundle/runtime/openmpi/lib/openmpi3" &&
      ompi_info --path all | grep -qxE " *Sysconfdir: $bundle/runtime/openmpi/etc" &&
      ompi_info --parsable --param btl all --level 9 | grep -qx 'mca:btl:base:param:btl:value:self,vader'
  }
  check "Open MPI relocated into the bundle (ompi_info)" relocated

  quiet_ring() {  # (b): the exact output, nothing else: any warning of Open MPI fails the check
    local expected output
    output=$(mpirun -np 2 /opt/xp_check/mpi_ring 2>&1 | sort)
    expected=$(printf 'rank 0 of 2: left neighbour 1, sum of ranks 1\nrank 1 of 2: left neighbour 0, sum of ranks 1')
    echo "$output"
    [[ $output == "$expected" ]]
  }
  check "(b) mpirun -np 2 of an MPI ring, no warnings" quiet_ring

  help_twice() {  # (b): xp_train itself under the carried mpirun
    local output
    output=$(mpirun -np 2 "$gpu_root/build/xp_train" --help 2>&1)
    grep -E -e '^-{20,}' -e 'mca_base|WARNING|not found' <<<"$output" && return 1
    # both ranks print it; their output may interleave mid-line, so count occurrences, not line starts
    [[ $(grep -o 'usage: mpirun -np N xp_train' <<<"$output" | wc -l) == 2 ]] || { echo "$output" | head -20; return 1; }
  }
  check "(b) mpirun -np 2 xp_train --help" help_twice

  hdf5_roundtrip() {  # (c)
    local output
    ldd /opt/xp_check/h5_roundtrip | grep -q "libhdf5_serial.so.103 => $bundle/runtime/lib/" || return 1
    output=$(/opt/xp_check/h5_roundtrip /tmp/roundtrip.h5) || return 1
    echo "$output"
    [[ $output =~ ^read\ back\ ([0-9]+)\ of\ ([0-9]+)\ values\;\ library\ ([0-9.]+),\ headers\ ([0-9.]+)$ ]] &&
      [[ ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" && ${BASH_REMATCH[3]} == "${BASH_REMATCH[4]}" ]]
  }
  check "(c) HDF5 file written and read back" hdf5_roundtrip

  ctest_commands() {  # what the carried CTest files run under $XP_GPU_ROOT is there (mpiexec: the carried one)
    local command bad=0
    while read -r command; do
      [[ -x $command ]] || { echo "missing: $command"; bad=1; }
    done < <(grep -rhoE '^add_test\(\[=\[[^]]+\]=\] "[^"]+"' "$gpu_root/build/" --include=CTestTestfile.cmake |
             sed -E 's/.*"([^"]+)"$/\1/' | grep "^$gpu_root/" | sort -u)
    grep -rhoE '^add_test\(\[=\[[^]]+\]=\] "[^"]+"' "$gpu_root/build/" --include=CTestTestfile.cmake |
      sed -E 's/.*"([^"]+)"$/\1/' | grep -v "^$gpu_root/" | sort -u | sed 's/^/from the machine: /'
    return $bad
  }
  check "CTest files: their commands under $gpu_root exist" ctest_commands

  dry_run() {  # (d): the GPU build's plan equals the CPU build's (--gpu accounting is the same in both)
    cd "$gpu_root/src"
    "$gpu_root/build/xp_train" inputs/gpt2_tiny.in --dry-run --gpu world_size=8 device_memory=80GB >/tmp/dry_run.txt 2>&1 ||
      { cat /tmp/dry_run.txt; return 1; }
    diff /opt/xp_check/dry_run.expected /tmp/dry_run.txt
  }
  check "(d) xp_train --dry-run --gpu without a GPU: the CPU build's plan, byte for byte" dry_run
  return $failed
}

# --- in the private mount namespace: mount what the root sees, then chroot --------------------------------
namespace() {
  local root=$XP_ROOT
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs tmpfs "$root/tmp"
  read_only() { mkdir -p "$root$2" && mount --bind "$1" "$root$2" && mount -o remount,bind,ro "$root$2"; }
  read_only "$repo" "$repo"
  [[ $XP_BUNDLE == "$repo"/* ]] || read_only "$XP_BUNDLE" "$XP_BUNDLE"
  read_only "$XP_CUDA_LIB" /opt/cuda/toolkit
  read_only "$XP_NCCL_LIB" /opt/cuda/nccl
  exec chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 XP_BUNDLE="$XP_BUNDLE" \
    XP_GPU_ROOT="$XP_GPU_ROOT" /bin/bash "$self" --inside
}

case ${1:-} in
  --inside) inside; exit ;;
  --namespace) namespace; exit ;;
  "") ;;
  *) echo "usage: tools/check_gpu_bundle.sh" >&2; exit 2 ;;
esac

# --- here: the bundle, the root, the helpers, the stand-ins ------------------------------------------------
deps=${XP_DEPS_DIR:-$repo/.deps}
build_dir=${BUILD_DIR:-$repo/build-cuda}
gpu_root=${XP_GPU_ROOT:-/opt/xp_gpu}
bundle=$deps/gpu_bundle
root=$deps/clean_root
command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]] || { echo "skipped: no CUDA toolkit (nvcc)"; exit 77; }
((EUID == 0)) || die "needs root (mount namespace and chroot)"
t_start=$SECONDS

rc=0
BUILD_DIR=$build_dir XP_DEPS_DIR=$deps XP_GPU_ROOT=$gpu_root "$repo/tools/gpu_bundle.sh" || rc=$?
((rc == 0)) || exit "$rc"
# What travels is the packed file: check what unpacks from it, not the folder it was packed from
unpacked=$deps/gpu_carry_unpacked
rm -rf "$unpacked" && mkdir -p "$unpacked"
tar -C "$unpacked" -xJf "$deps/gpu_carry.tar.xz" || die "$deps/gpu_carry.tar.xz does not unpack"
bundle=$unpacked/gpu_bundle
t_bundle=$((SECONDS - t_start))

# The clean root: Debian's essential packages and libstdc++6 of this machine's release, from its apt sources
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:?}")
want="mmdebstrap --variant=essential --include=libstdc++6 $suite"
if [[ ! -f $root/.xp_root || $(cat "$root/.xp_root") != "$want" ]]; then
  command -v mmdebstrap >/dev/null || die "no mmdebstrap: run tools/setup.sh"
  sources=$(mktemp)
  # the Debian entries of this machine's deb822 sources (others, e.g. vendor repositories, need other keys)
  awk 'BEGIN { RS = ""; ORS = "\n\n" }
       /(^|\n)Types:([^\n]*[ \t])?deb([ \t\n]|$)/ && /(^|\n)URIs:[^\n]*debian/ && !/(^|\n)Enabled:[ \t]*no/' \
    /etc/apt/sources.list.d/*.sources >"$sources" 2>/dev/null || true
  grep -hE '^[[:space:]]*deb[[:space:]].*debian' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    >>"$sources" 2>/dev/null || true
  [[ -s $sources ]] || die "no Debian deb entry in /etc/apt/sources.list{,.d} to build the clean root from"
  rm -rf "$root"
  mmdebstrap --quiet --mode=root --variant=essential --include=libstdc++6 \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' "$suite" "$root" "$sources" ||
    { rm -f "$sources"; die "mmdebstrap failed"; }
  rm -f "$sources"
  echo "$want" >"$root/.xp_root"
  echo "check_gpu_bundle: clean root made in $root"
fi
t_root=$((SECONDS - t_start - t_bundle))

# The helpers, configured by CMake as a fallback build there is (MPI_HOME, HDF5_ROOT: the bundle's mpicxx,
# headers and libraries, tools/deploy_check/CMakeLists.txt), and the CPU build's plan for (d)
helpers=$root/opt/xp_check
rm -rf "$helpers" && mkdir -p "$helpers"
helper_build=$(mktemp -d)
(
  source "$bundle/env.sh"
  cmake -S "$repo/tools/deploy_check" -B "$helper_build" -DXP_BUNDLE="$bundle" >"$helper_build/configure.log" 2>&1 ||
    { cat "$helper_build/configure.log"; exit 1; }
  grep -- '-- MPI ' "$helper_build/configure.log"
  cmake --build "$helper_build" >"$helper_build/build.log" 2>&1 || { cat "$helper_build/build.log"; exit 1; }
) || die "the helpers do not build against the bundle's MPI and HDF5 alone (MPI_HOME, HDF5_ROOT)"
cp "$helper_build"/{mpi_ring,h5_roundtrip} "$helpers/"
rm -rf "$helper_build"
(cd "$repo" && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 build/xp_train inputs/gpt2_tiny.in \
  --dry-run --gpu world_size=8 device_memory=80GB >"$helpers/dry_run.expected" 2>&1) ||
  die "the CPU build's dry run failed: $(cat "$helpers/dry_run.expected")"

# The CUDA the build linked (toolkit's lib64, NCCL's directory), and libcuda.so.1 from the toolkit's stubs
cache=$build_dir/CMakeCache.txt
cudart=$(sed -n 's/^CUDA_cudart_LIBRARY:[A-Z]*=//p' "$cache")
nccl=$(sed -n 's/^XP_NCCL_LIBRARY:[A-Z]*=//p' "$cache")
[[ -f $cudart && -f $nccl ]] || die "no CUDA_cudart_LIBRARY or XP_NCCL_LIBRARY in $cache"
cuda_lib=$(dirname "$(readlink -f "$cudart")")
[[ -f $cuda_lib/stubs/libcuda.so ]] || die "no stubs/libcuda.so in $cuda_lib"
mkdir -p "$root/opt/cuda/"{toolkit,nccl,driver} "$root$gpu_root"
ln -sfn ../toolkit/stubs/libcuda.so "$root/opt/cuda/driver/libcuda.so.1"
# As tools/gpu_run.sh makes them on the GPU machine
ln -sfn "$repo" "$root$gpu_root/src"
ln -sfn "$bundle/build" "$root$gpu_root/build"

rc=0
XP_ROOT=$root XP_BUNDLE=$bundle XP_GPU_ROOT=$gpu_root XP_CUDA_LIB=$cuda_lib XP_NCCL_LIB=$(dirname "$(readlink -f "$nccl")") \
  unshare --mount --propagation private -- bash "$self" --namespace || rc=$?
echo "check_gpu_bundle: bundle $t_bundle s, clean root $t_root s, checks $((SECONDS - t_start - t_bundle - t_root)) s"
((rc == 0)) || die "the bundle does not deploy cleanly (see FAIL above)"
echo "check_gpu_bundle: the bundle deploys in a clean root"
