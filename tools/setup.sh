#!/usr/bin/env bash
# Installs what xp_train needs from Debian's packages, then configures and builds it in build/.
# Idempotent: packages already present are not reinstalled, and the build only recompiles what changed.
#   tools/setup.sh                 # packages + Release build in build/
#   BUILD_DIR=out tools/setup.sh   # another build directory; extra CMake arguments: CMAKE_ARGS="..."
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  openmpi-bin libopenmpi-dev            # MPI: processes and host collectives
  libhdf5-dev hdf5-tools zlib1g-dev     # HDF5: weights and checkpoints, h5ls/h5dump; CRC-32
  libtrilinos-kokkos-dev                # Kokkos 3.4 (Serial backend) for the kernels
  libopenblas-dev                       # host GEMM
  libtomlplusplus-dev                   # input decks
  nlohmann-json3-dev                    # JSON: safetensors headers (header-only)
  libprotobuf-dev protobuf-compiler     # TensorBoard event files (Event messages from src/train/*.proto)
  libgtest-dev googletest procps        # tests (procps: pgrep in the crash and signal tests)
  python3-torch python3-h5py python3-numpy python3-matplotlib  # PyTorch reference test, plots (/usr/bin/python3)
  python3-protobuf                      # the TensorBoard event file test's independent reader
  mmdebstrap                            # the clean root the GPU bundle is proven in (tools/check_gpu_bundle.sh)
  clang-14 libclang-rt-14-dev           # libFuzzer + sanitizers for the parser fuzz targets (tools/fuzz.sh)
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

build_dir=${BUILD_DIR:-build}
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  # shellcheck disable=SC2086
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
fi
cmake --build "$build_dir" -j "$(nproc)"
echo "setup: built $build_dir/xp_train"
