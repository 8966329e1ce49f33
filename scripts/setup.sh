#!/usr/bin/env bash
# Installs what building segkit needs beyond Go: OpenBLAS (libopenblas-dev), which every
# convolution's matrix product runs on. With --onnxruntime (scripts/test.sh passes it) also
# onnxruntime's CPU library, which the ONNX export tests run exported models in (nothing else
# needs it). With --mpi also Open MPI (libopenmpi-dev, openmpi-bin), which data-parallel
# training (go build -tags mpi) and its tests need; with --clang, clang (the CUDA kernels' PTX
# check); with --arm64, what cross-builds segkit for linux/arm64 and runs its tests under
# qemu-user (Debian's aarch64 gcc, arm64 OpenBLAS, qemu-user); with --chromium, Debian's
# chromium (the web page's browser test, serve/browser_test.go). The demo needs none of these.
# Safe to run again: it installs only what is missing.
set -euo pipefail

with_onnxruntime=false
with_mpi=false
with_clang=false
with_arm64=false
with_chromium=false
for arg in "$@"; do
  case "$arg" in
    --onnxruntime) with_onnxruntime=true ;;
    --mpi) with_mpi=true ;;
    --clang) with_clang=true ;;
    --arm64) with_arm64=true ;;
    --chromium) with_chromium=true ;;
    *) echo "setup: unknown argument $arg (--onnxruntime: also fetch onnxruntime for the export tests; --mpi: also Open MPI; --clang: also clang for the PTX check; --arm64: also the arm64 cross toolchain, arm64 OpenBLAS and qemu-user; --chromium: also chromium for the web page's browser test)" >&2; exit 2 ;;
  esac
done

need_go="1.26"
if ! command -v go >/dev/null 2>&1; then
  echo "setup: Go $need_go or newer is required (https://go.dev/dl/); 'go' is not on PATH." >&2
  exit 1
fi
have_go=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]; then
  echo "setup: Go $need_go or newer is required, found $have_go." >&2
  exit 1
fi

# clang compiles the CUDA kernels to PTX in the tests (internal/devkernels), with no NVIDIA
# software; without it that one test skips, saying so (it fails under CI=true), so a failed
# install is not an error here.
install_clang() {
  local c
  for c in clang-19 clang-15 clang; do
    if command -v "$c" >/dev/null 2>&1; then
      echo "setup: $c found (CUDA kernels to PTX)."
      return 0
    fi
  done
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: clang is missing and this machine has no apt-get: the CUDA PTX check will skip." >&2
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: installing clang needs root: the CUDA PTX check will skip." >&2; return 0; }
    sudo="sudo"
  fi
  echo "setup: installing clang-15 with apt-get (compiles the CUDA kernels to PTX in the tests)..."
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends clang-15; }; then
    echo "setup: could not install clang-15: the CUDA PTX check will skip." >&2
  fi
}

# chromium runs the web page of segpredict serve in the browser test (headless, driven over
# the DevTools protocol); without it that test skips, saying so (it fails under CI=true).
install_chromium() {
  local c
  for c in chromium chromium-browser google-chrome; do
    if command -v "$c" >/dev/null 2>&1; then
      echo "setup: $c found (the web page's browser test)."
      return 0
    fi
  done
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: chromium is missing and this machine has no apt-get: the browser test will skip." >&2
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: installing chromium needs root: the browser test will skip." >&2; return 0; }
    sudo="sudo"
  fi
  echo "setup: installing chromium with apt-get (the web page's browser test)..."
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium; }; then
    echo "setup: could not install chromium: the browser test will skip." >&2
  fi
}

have_openblas() {
  # The linker needs libopenblas.so (the -dev package), not only the runtime library.
  for dir in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
    [ -e "$dir/libopenblas.so" ] && return 0
  done
  return 1
}

install_openblas() {
  if have_openblas; then
    echo "setup: OpenBLAS found."
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: OpenBLAS (libopenblas.so) is missing and this machine has no apt-get." >&2
    echo "       Install your system's OpenBLAS development package (e.g. 'dnf install openblas-devel'," >&2
    echo "       'brew install openblas'), then run this again." >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "setup: installing libopenblas-dev needs root; run as root or install sudo." >&2
      exit 1
    fi
    sudo="sudo"
  fi
  echo "setup: installing libopenblas-dev with apt-get (OpenBLAS, for matrix products)..."
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends libopenblas-dev
  have_openblas || { echo "setup: libopenblas-dev installed but libopenblas.so was not found." >&2; exit 1; }
  echo "setup: OpenBLAS installed."
}

# onnxruntime's CPU library (libonnxruntime.so.1) comes from the npm package onnxruntime-node,
# whose tarball holds it: 'npm pack' downloads the tarball without running the package's install
# script (which fetches GPU builds from elsewhere). The export tests look for it in the user's
# cache (SEGKIT_ONNXRUNTIME_LIB names another) and skip, saying why, when it is missing (outside CI).
ort_version=1.30.0
install_onnxruntime() {
  local dir="${XDG_CACHE_HOME:-$HOME/.cache}/segkit/onnxruntime-$ort_version"
  local lib="$dir/libonnxruntime.so.1" arch sum
  if [ -f "$lib" ]; then
    echo "setup: onnxruntime $ort_version found ($lib)."
    return 0
  fi
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) arch=x64 sum=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23 ;;
    Linux-aarch64) arch=arm64 sum=1f549d46250b005580b597f4164984aaf75b3bcb9f3aeb07c7f8a8fe60b23c76 ;;
    *) echo "setup: no onnxruntime library for $(uname -sm) here: the ONNX runtime tests will skip." >&2; return 0 ;;
  esac
  if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm is missing, so onnxruntime is not fetched: the ONNX runtime tests will skip" >&2
    echo "       (install Node.js and npm, or set SEGKIT_ONNXRUNTIME_LIB to a libonnxruntime.so $ort_version)." >&2
    return 0
  fi
  echo "setup: fetching onnxruntime $ort_version's CPU library (npm pack onnxruntime-node, 113 MB, once)..."
  local tmp
  tmp=$(mktemp -d)
  local member="package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
  if ! (cd "$tmp" && npm pack --silent "onnxruntime-node@$ort_version" >/dev/null && tar -xzf "onnxruntime-node-$ort_version.tgz" "$member"); then
    rm -rf "$tmp"
    echo "setup: could not fetch onnxruntime-node@$ort_version with npm: the ONNX runtime tests will skip." >&2
    return 0
  fi
  if [ "$(sha256sum "$tmp/$member" | cut -d' ' -f1)" != "$sum" ]; then
    rm -rf "$tmp"
    echo "setup: onnxruntime-node@$ort_version's libonnxruntime.so.1 is not the expected file (sha256): not installed." >&2
    return 1
  fi
  mkdir -p "$dir"
  mv "$tmp/$member" "$lib.tmp" && mv "$lib.tmp" "$lib"
  rm -rf "$tmp"
  echo "setup: onnxruntime $ort_version installed ($lib)."
}

# Open MPI for data-parallel training (build tag mpi) and its tests: Debian's, found by pkg-config.
install_openmpi() {
  if pkg-config --exists ompi 2>/dev/null && command -v mpirun >/dev/null 2>&1; then
    echo "setup: Open MPI found."
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || { echo "setup: Open MPI is missing and this machine has no apt-get: install your system's Open MPI (with mpi.h and mpirun)." >&2; return 1; }
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: installing Open MPI needs root; run as root or install sudo." >&2; return 1; }
    sudo="sudo"
  fi
  echo "setup: installing libopenmpi-dev and openmpi-bin with apt-get (Open MPI, for data-parallel training)..."
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends libopenmpi-dev openmpi-bin pkg-config
  echo "setup: Open MPI installed."
}

# The linux/arm64 cross-build and its tests under qemu-user (scripts/test.sh): Debian's aarch64
# gcc, OpenBLAS for arm64 (multiarch: libopenblas-dev:arm64, which brings the arm64 C library,
# /lib/ld-linux-aarch64.so.1, that qemu-aarch64 runs the binaries with) and qemu-user. Without
# them those tests skip, saying so, so a failed install is not an error.
have_arm64() {
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1 &&
    [ -e /usr/lib/aarch64-linux-gnu/libopenblas.so ] && [ -e /lib/ld-linux-aarch64.so.1 ]
}
install_arm64() {
  if [ "$(uname -m)" = aarch64 ]; then
    echo "setup: this machine is arm64: the tests run natively, no cross toolchain needed."
    return 0
  fi
  if have_arm64; then
    echo "setup: arm64 cross toolchain, arm64 OpenBLAS and qemu-user found."
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
    echo "setup: the arm64 cross toolchain is missing and this machine has no apt-get: the arm64 tests will skip." >&2
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: installing the arm64 cross toolchain needs root: the arm64 tests will skip." >&2; return 0; }
    sudo="sudo"
  fi
  echo "setup: installing gcc-aarch64-linux-gnu, libopenblas-dev:arm64 and qemu-user with apt-get (arm64 cross-build and its tests)..."
  if ! { { [ "$(dpkg --print-architecture)" = arm64 ] || dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64; } &&
    $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross libopenblas-dev:arm64 qemu-user; }; then
    echo "setup: could not install the arm64 cross toolchain: the arm64 tests will skip." >&2
  fi
}

install_openblas
if $with_arm64; then
  install_arm64
fi
if $with_clang; then
  install_clang
fi
if $with_chromium; then
  install_chromium
fi
if $with_mpi; then
  install_openmpi
fi
if $with_onnxruntime; then
  install_onnxruntime
fi
