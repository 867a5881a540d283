#!/usr/bin/env bash
# Builds and installs Kokkos 3.4.01 (the copy inside Debian's trilinos source package) for xp_train,
# with the CUDA backend (+ Serial host space) or host-only (Serial, optionally OpenMP).
#
#   tools/build_kokkos.sh --backend cuda --prefix /opt/kokkos-cuda          # H100 (sm_90) by default
#   tools/build_kokkos.sh --backend host --prefix /opt/kokkos-host [--openmp]
#   tools/build_kokkos.sh --fetch-only                                      # source only (tools/gpu_bundle.sh)
#   cmake -S . -B build-cuda -DCMAKE_PREFIX_PATH=/opt/kokkos-cuda \
#         -DCMAKE_CXX_COMPILER=/opt/kokkos-cuda/bin/nvcc_wrapper            # then build xp_train against it
#
# Your own Kokkos 4.x install (CUDA or not) needs none of this: pass it to xp_train's configure instead,
#   cmake -S . -B build-cuda -DCMAKE_PREFIX_PATH=/path/to/kokkos-4 -DCMAKE_CXX_COMPILER=/path/to/kokkos-4/bin/nvcc_wrapper
#
# Options:
#   --backend cuda|host  what to build (required unless --fetch-only)
#   --prefix DIR         install prefix (required unless --fetch-only)
#   --source DIR         an existing Kokkos 3.4 source tree (patched in place) instead of Debian's trilinos;
#                        default ${XP_DEPS_DIR:-<repo>/.deps}/kokkos-src, fetched there if missing
#   --arch NAME          Kokkos GPU arch for --backend cuda (default HOPPER90 = sm_90, added by the patches
#                        below; AMPERE80, AMPERE86, TURING75 ... also work)
#   --openmp             host backend: also enable the OpenMP execution space
#   --jobs N             parallel compile jobs (default: nproc)
#   --build-dir DIR      build tree (default <deps>/build-kokkos-<backend>; removed after install unless --keep-build)
#   --keep-build         keep the build tree
#   --fetch-only         fetch, extract and patch the source, then stop
#   --force              rebuild even if --prefix already holds this configuration
#
# Fetching (needs apt-get and a Debian mirror; no git, no network besides apt): adds a deb-src sources
# file mirroring the Debian entries of the deb ones if no deb-src entry exists, apt-get update,
# `apt-get source --download-only trilinos`, extracts only packages/kokkos (without its tests,
# examples, docs, benchmarks) and deletes the 166 MB tarball. Idempotent: an extracted source is reused
# (the patches are re-applied only where missing), and a prefix that already holds the same configuration
# built by this same script is left as it is (`--force` rebuilds).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
deps=${XP_DEPS_DIR:-$repo/.deps}

backend="" prefix="" source_dir="" arch="HOPPER90" openmp=OFF jobs=$(nproc) build_dir="" keep_build=0 fetch_only=0 force=0
die() { echo "build_kokkos: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }
while (($#)); do
  case $1 in
    --backend) backend=${2:?}; shift 2 ;;
    --prefix) prefix=${2:?}; shift 2 ;;
    --source) source_dir=${2:?}; shift 2 ;;
    --arch) arch=${2:?}; shift 2 ;;
    --openmp) openmp=ON; shift ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --build-dir) build_dir=${2:?}; shift 2 ;;
    --keep-build) keep_build=1; shift ;;
    --fetch-only) fetch_only=1; shift ;;
    --force) force=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "build_kokkos: unknown argument '$1'" >&2; usage ;;
  esac
done
if ((!fetch_only)); then
  [[ $backend == cuda || $backend == host ]] || die "--backend cuda|host is required"
  [[ -n $prefix ]] || die "--prefix DIR is required"
  mkdir -p "$prefix" && prefix=$(cd "$prefix" && pwd)
fi

t_start=$SECONDS
phase_start=$SECONDS
phase() {  # phase NAME: prints the time since the previous phase ended
  echo "build_kokkos: $1 took $((SECONDS - phase_start)) s"
  phase_start=$SECONDS
}
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"

# --- fetch: Debian's trilinos source -> packages/kokkos ---------------------------------------------
ensure_deb_src() {
  local entries=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
  if grep -qsE '^[[:space:]]*(deb-src[[:space:]]|Types:.*\bdeb-src\b)' "${entries[@]}"; then
    return
  fi
  local out=/etc/apt/sources.list.d/xp_train-deb-src.sources text=""
  # deb822 stanzas of the Debian/Ubuntu archives, with Types: deb-src (third-party repos may lack sources)
  text+=$(awk 'BEGIN { RS = ""; ORS = "\n\n" }
               /(^|\n)Types:([^\n]*[ \t])?deb([ \t\n]|$)/ && /(^|\n)URIs:[^\n]*(debian|ubuntu)/ && !/(^|\n)Enabled:[ \t]*no/ {
                 sub(/(^|\n)Types:[^\n]*/, "\nTypes: deb-src"); sub(/^\n/, ""); print }' \
               /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  # one-line entries, converted to deb822
  text+=$(sed -nE 's/^[[:space:]]*deb[[:space:]]+(\[([^]]*)\][[:space:]]+)?([^[:space:]]*(debian|ubuntu)[^[:space:]]*)[[:space:]]+([^[:space:]]+)[[:space:]]+(.*)$/Types: deb-src\nURIs: \3\nSuites: \5\nComponents: \6\n/p' \
               /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  [[ -n $text ]] || die "no Debian deb entry in /etc/apt/sources.list{,.d} to mirror as deb-src"
  echo "build_kokkos: adding $out (deb-src for the Debian archives)"
  printf '%s\n' "$text" | $sudo tee "$out" >/dev/null
  $sudo apt-get update -q
}

fetch_kokkos() {
  local dest=$1 dl="$deps/download"
  mkdir -p "$deps" "$dl"
  command -v apt-get >/dev/null || die "no apt-get: pass --source DIR with a Kokkos 3.4 source tree"
  ensure_deb_src
  apt-cache showsrc trilinos 2>/dev/null | grep -q '^Package:' || $sudo apt-get update -q
  if ! compgen -G "$dl/trilinos_*.orig.tar.*" >/dev/null; then
    echo "build_kokkos: downloading Debian's trilinos source (166 MB) into $dl"
    # _apt cannot write into a root-only dir; allow it so that apt does not warn about an unsandboxed download
    chmod 777 "$dl" 2>/dev/null || true
    (cd "$dl" && apt-get source --download-only -q trilinos)
  fi
  phase "download"
  local tarball
  tarball=$(compgen -G "$dl/trilinos_*.orig.tar.*" | head -n1)
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
  # only packages/kokkos (~6 MB of the 1 GB tree); tests, examples, docs and benchmarks are not built
  tar -xf "$tarball" -C "$dest.tmp" --strip-components=3 --wildcards --no-wildcards-match-slash \
    --exclude='*/unit_test' --exclude='*/unit_tests' --exclude='*/perf_test' \
    --exclude='*/performance_tests' --exclude='*/kokkos/benchmarks' --exclude='*/kokkos/doc' \
    --exclude='*/kokkos/tpls/gtest' --exclude='*/kokkos/example/*/*' \
    '*/packages/kokkos'
  [[ -f $dest.tmp/CMakeLists.txt && -x $dest.tmp/bin/nvcc_wrapper ]] || die "no packages/kokkos in $tarball"
  mv "$dest.tmp" "$dest"
  rm -rf "$dl"
  phase "extract"
}

# --- patch: what Kokkos 3.4.01 needs with CUDA 13 / nvcc 13 and an H100 ------------------------------
# patch FILE MARKER PERL-EXPR: applies the substitution unless MARKER is already in FILE, then checks it is
patch_once() {
  local file=$1 marker=$2 expr=$3
  grep -qF -- "$marker" "$file" && return
  perl -0pi -e "$expr" "$file"
  grep -qF -- "$marker" "$file" || die "patch '$marker' did not apply to $file"
}

patch_kokkos() {
  local s=$1
  if ! grep -q 'set(Kokkos_VERSION_MAJOR 3)' "$s/CMakeLists.txt" || ! grep -q 'set(Kokkos_VERSION_MINOR 4)' "$s/CMakeLists.txt"; then
    echo "build_kokkos: $s is not Kokkos 3.4; building it unpatched" >&2
    return
  fi

  # nvcc 13 dropped sm_35 (supports sm_75+): nvcc_wrapper's default arch (used when no -arch is given, e.g. CMake's checks)
  perl -pi -e 's/^default_arch="sm_\d+"/default_arch="\${NVCC_WRAPPER_DEFAULT_ARCH:-sm_90}"/' "$s/bin/nvcc_wrapper"
  grep -q '^default_arch="${NVCC_WRAPPER_DEFAULT_ARCH:-sm_90}"' "$s/bin/nvcc_wrapper" || die "nvcc_wrapper default_arch patch failed"
  # nvcc_wrapper runs plain `nvcc`: fall back to /usr/local/cuda when nvcc is not on PATH
  patch_once "$s/bin/nvcc_wrapper" 'xp_train: nvcc fallback' \
    's|\nnvcc_compiler=nvcc\n|\nnvcc_compiler=nvcc\ncommand -v nvcc >/dev/null 2>&1 \|\| nvcc_compiler=/usr/local/cuda/bin/nvcc  # xp_train: nvcc fallback\n|'

  # CUDA 13's __half has no implicit conversion from half_t (its operator is explicit): cast explicitly
  perl -pi -e 's/return (__half2(?:float|short_rz|ushort_rz|int_rz|uint_rz|ll_rz|ull_rz))\(val\);/return $1(static_cast<__half>(val));/' \
    "$s/core/src/Cuda/Kokkos_Cuda_Half.hpp"
  # ... and __half2double does not exist (never did in cuda_fp16.h): go through float
  perl -pi -e 's/return __half2double\(val\);/return static_cast<double>(__half2float(static_cast<__half>(val)));/' \
    "$s/core/src/Cuda/Kokkos_Cuda_Half.hpp"
  ! grep -qE 'return __half2[a-z_]*\(val\);' "$s/core/src/Cuda/Kokkos_Cuda_Half.hpp" || die "Kokkos_Cuda_Half.hpp patch failed"
  # CUDA >= 11.1 branch: half_t's bool conversions declared, never defined ("used but never defined" in every TU)
  patch_once "$s/core/src/Cuda/Kokkos_Cuda_Half.hpp" 'xp_train: bool conversions' \
    's/(\n#else  \/\/ CUDA 11.1 versions follow\n)/$1\n\/\/ xp_train: bool conversions (declared above; only the CUDA < 11.1 branch defined them)\nKOKKOS_INLINE_FUNCTION\nhalf_t cast_to_half(bool val) { return __float2half(static_cast<float>(val)); }\ntemplate <class T>\nKOKKOS_INLINE_FUNCTION std::enable_if_t<std::is_same<T, bool>::value, T>\ncast_from_half(half_t val) {\n  return __half2float(static_cast<__half>(val)) != 0.0f;\n}\n/'

  # CUDA 13: cudaMemPrefetchAsync(ptr, bytes, cudaMemLocation, flags, stream) replaced the device-int overload
  patch_once "$s/core/src/Cuda/Kokkos_CudaSpace.cpp" 'xp_train: CUDA 13 prefetch' \
    's/(\n *)CUDA_SAFE_CALL\(cudaMemPrefetchAsync\(ptr, bytes, space\.cuda_device\(\),\s*space\.cuda_stream\(\)\)\);/$1\/\/ xp_train: CUDA 13 prefetch takes a cudaMemLocation and flags\n#if CUDA_VERSION >= 13000$1CUDA_SAFE_CALL(cudaMemPrefetchAsync($1    ptr, bytes, cudaMemLocation{cudaMemLocationTypeDevice, space.cuda_device()}, 0,$1    space.cuda_stream()));\n#else$1CUDA_SAFE_CALL(cudaMemPrefetchAsync(ptr, bytes, space.cuda_device(), space.cuda_stream()));\n#endif/'

  # Kokkos 3.4 knows no Hopper: add Kokkos_ARCH_HOPPER90 (-arch=sm_90, as in Kokkos 4), an Ampere-class arch otherwise
  patch_once "$s/cmake/kokkos_arch.cmake" 'KOKKOS_ARCH_OPTION(HOPPER90' \
    's/(KOKKOS_ARCH_OPTION\(AMPERE86[^\n]*\n)/$1KOKKOS_ARCH_OPTION(HOPPER90        GPU  "NVIDIA Hopper generation CC 9.0")\n/'
  patch_once "$s/cmake/kokkos_arch.cmake" 'CHECK_CUDA_ARCH(HOPPER90' \
    's/(CHECK_CUDA_ARCH\(AMPERE86 +sm_86\)\n)/$1CHECK_CUDA_ARCH(HOPPER90  sm_90)\n/'
  patch_once "$s/cmake/kokkos_arch.cmake" 'KOKKOS_ARCH_HOPPER90)' \
    's/IF \(KOKKOS_ARCH_AMPERE80 OR KOKKOS_ARCH_AMPERE86\)/IF (KOKKOS_ARCH_AMPERE80 OR KOKKOS_ARCH_AMPERE86 OR KOKKOS_ARCH_HOPPER90)/'
  patch_once "$s/cmake/KokkosCore_config.h.in" 'KOKKOS_ARCH_HOPPER90' \
    's/(#cmakedefine KOKKOS_ARCH_AMPERE86\n)/$1#cmakedefine KOKKOS_ARCH_HOPPER90\n/'
  patch_once "$s/cmake/compile_tests/cuda_compute_capability.cc" 'Kokkos_ARCH_HOPPER90' \
    's/(\n( *)case 86:[^\n]*\n)/$1$2case 90: std::cout << "Set -DKokkos_ARCH_HOPPER90=ON ." << std::endl; break;\n/'
  # Cuda::initialize aborts unless the compiled major CC equals the device's; newer devices JIT the PTX: only warn
  patch_once "$s/core/src/Cuda/Kokkos_Cuda_Instance.cpp" 'xp_train: newer device' \
    's/if \(compiled_major != cudaProp\.major \|\| compiled_minor > cudaProp\.minor\) \{/\/\/ xp_train: newer devices JIT the embedded PTX, so only a newer compiled arch is fatal\n    if (compiled_major > cudaProp.major ||\n        (compiled_major == cudaProp.major && compiled_minor > cudaProp.minor)) {/'

  # The installed KokkosConfig.cmake re-created CUDA::cudart with its include dirs joined by a newline
  # (CUDA 13 has two: include and include/cccl), i.e. one bogus path: let find_dependency(CUDAToolkit) make them
  patch_once "$s/cmake/kokkos_functions.cmake" 'xp_train: CUDA:: targets' \
    's/(MACRO\(kokkos_export_imported_tpl NAME\).*?\n)( *)ELSE\(\)\n/$1$2ELSEIF("\${NAME}" MATCHES "^CUDA::")  # xp_train: CUDA:: targets come from FindCUDAToolkit\n$2  KOKKOS_APPEND_CONFIG_LINE("IF(NOT TARGET \${NAME})")\n$2  KOKKOS_APPEND_CONFIG_LINE("  FIND_DEPENDENCY(CUDAToolkit)")\n$2  KOKKOS_APPEND_CONFIG_LINE("ENDIF()")\n$2ELSE()\n/s'
}

if [[ -z $source_dir ]]; then
  source_dir="$deps/kokkos-src"
  [[ -f $source_dir/CMakeLists.txt ]] || fetch_kokkos "$source_dir"
fi
[[ -f $source_dir/CMakeLists.txt ]] || die "no Kokkos source in $source_dir"
source_dir=$(cd "$source_dir" && pwd)
patch_kokkos "$source_dir"
phase "patch"
if ((fetch_only)); then
  echo "build_kokkos: patched Kokkos source in $source_dir"
  exit 0
fi

# --- configure, build, install -----------------------------------------------------------------------
stamp="$prefix/.xp_train-kokkos"
want="backend=$backend arch=$arch openmp=$openmp source=$source_dir script=$(sha256sum < "$0" | cut -c1-16)"
[[ $backend == host ]] && want=${want/arch=$arch /}
if ((!force)) && [[ -f $stamp && $(cat "$stamp") == "$want" ]] && compgen -G "$prefix/lib*/cmake/Kokkos/KokkosConfig.cmake" >/dev/null; then
  echo "build_kokkos: $prefix already holds this build ($want); --force rebuilds it"
  exit 0
fi
rm -f "$stamp"
build_dir=${build_dir:-$deps/build-kokkos-$backend}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[[ -f $build_dir/CMakeCache.txt ]] || rm -rf "$build_dir"
common=(
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_CXX_STANDARD=17
  -DKokkos_ENABLE_SERIAL=ON -DKokkos_ENABLE_TESTS=OFF -DKokkos_ENABLE_EXAMPLES=OFF
)
if [[ $backend == cuda ]]; then
  if ! command -v nvcc >/dev/null; then
    [[ -x /usr/local/cuda/bin/nvcc ]] || die "nvcc not found (put CUDA's bin on PATH)"
    export PATH=/usr/local/cuda/bin:$PATH
  fi
  cmake -S "$source_dir" -B "$build_dir" "${generator[@]}" "${common[@]}" \
    -DCMAKE_CXX_COMPILER="$source_dir/bin/nvcc_wrapper" \
    -DKokkos_ENABLE_CUDA=ON -DKokkos_ENABLE_CUDA_LAMBDA=ON -DKokkos_ARCH_"$arch"=ON
else
  cmake -S "$source_dir" -B "$build_dir" "${generator[@]}" "${common[@]}" \
    -DCMAKE_CXX_COMPILER="${CXX:-g++}" -DKokkos_ENABLE_OPENMP="$openmp"
fi
phase "configure"
cmake --build "$build_dir" -j "$jobs"
phase "build"
cmake --install "$build_dir" >/dev/null
config_dir=$(dirname "$(find "$prefix" -path '*/cmake/Kokkos/KokkosConfigCommon.cmake' | head -n1)")
if [[ $backend == cuda ]]; then
  # The installed config names the source tree's nvcc_wrapper as Kokkos' compiler: point it at the installed one
  rel=$(realpath --relative-to="$config_dir" "$prefix/bin/nvcc_wrapper")
  sed -i "s|^SET(Kokkos_CXX_COMPILER \".*\")|SET(Kokkos_CXX_COMPILER \"\${CMAKE_CURRENT_LIST_DIR}/$rel\")|" \
    "$config_dir/KokkosConfigCommon.cmake"
fi
((keep_build)) || rm -rf "$build_dir"
echo "$want" > "$stamp"
phase "install"
use="-DCMAKE_PREFIX_PATH=$prefix"
[[ $backend == cuda ]] && use+=" -DCMAKE_CXX_COMPILER=$prefix/bin/nvcc_wrapper"
echo "build_kokkos: Kokkos ($backend) installed in $prefix ($config_dir/KokkosConfig.cmake) in $((SECONDS - t_start)) s; use $use"
