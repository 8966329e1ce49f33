#!/usr/bin/env bash
# Installs what building segkit needs beyond Go: OpenBLAS (libopenblas-dev), which every
# convolution's matrix product runs on. Safe to run again: it installs only what is missing.
set -euo pipefail

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
# software; without it that one test skips, saying so, so a failed install is not an error.
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
install_clang

have_openblas() {
  # The linker needs libopenblas.so (the -dev package), not only the runtime library.
  for dir in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
    [ -e "$dir/libopenblas.so" ] && return 0
  done
  return 1
}

if have_openblas; then
  echo "setup: OpenBLAS found."
  exit 0
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
