#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh, with onnxruntime for the ONNX
# export tests, Open MPI for the data-parallel ones, clang for the PTX check, chromium for the
# web page's browser test, the arm64 cross toolchain and qemu-user), then runs every test, and the numeric packages again on the other
# kernels this CPU runs: AVX2 (CPUs without AVX-512) and the portable ones (OpenBLAS and Go:
# other CPUs), and, cross-built for linux/arm64, under qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --onnxruntime --mpi --clang --arm64 --chromium
go vet ./...
# Every go test runs with -json through scripts/testreport, which shows what plain go test shows
# (verdicts, failures; everything with -v) and collects the skipped tests with their reasons,
# listed at the end however the script ends (its exit status kept): a check skipped for want
# of a tool would otherwise pass unseen.
work=$(mktemp -d)
skips=$work/skips
: >"$skips"
go build -o "$work/testreport" ./scripts/testreport
show=()
for arg in "$@"; do
  case "$arg" in -v | -v=true | -test.v | -test.v=true) show=(-v) ;; esac
done
summary() {
  local rc=$?
  echo
  if [ -s "$skips" ]; then
    echo "test: skipped ($(wc -l <"$skips")):"
    sed 's/^/  /' "$skips"
  else
    echo "test: nothing skipped."
  fi
  rm -rf "$work"
  exit "$rc"
}
trap summary EXIT
# gotest LABEL ARGS...: go test -json ARGS, shown plainly; skips recorded under LABEL.
gotest() {
  local label=$1
  shift
  go test -json "$@" | "$work/testreport" -skips "$skips" -label "$label" "${show[@]}"
}
# skipped MESSAGE: a whole pass this script leaves out, said now and listed at the end.
skipped() {
  echo "test: $1"
  echo "$1" >>"$skips"
}
gotest "./..." ./... "$@"
# The device executor (the GPU code path: build tag device, out of the default engine until a
# backend runs end to end) on the simulated device, and the CUDA loader's own tests.
go vet -tags device ./nn ./dynopool ./internal/device/... ./internal/cuda
gotest "tags device" -tags device ./nn ./dynopool ./internal/device/... ./internal/cuda "$@"
# Data-parallel training under mpirun (build tag mpi, Open MPI): the binding and segtrain with
# two ranks on this machine (--oversubscribe --bind-to none; --allow-run-as-root as root).
go vet -tags mpi ./internal/mpi/... ./parallel ./cmd/segtrain
gotest "tags mpi" -tags mpi ./internal/mpi ./cmd/segtrain -run 'TestCollectives|TestDup|TestWaitDoesNotSpin|TestTimeout|TestSegtrainMPI' "$@"
# The numeric packages again on every other path this CPU runs (the first pass ran its best):
# AVX2 where it has AVX-512, portable (OpenBLAS and Go) where it has either. The kernels read
# SEGKIT_ISA while the tests run, so go test keys its cache on it; -count=1 runs each afresh anyway.
others=()
if grep -qw avx512f /proc/cpuinfo; then others+=(avx2); fi
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then others+=(portable); fi
for isa in "${others[@]}"; do
  SEGKIT_ISA=$isa gotest "SEGKIT_ISA=$isa" -count=1 ./internal/kernels ./nn ./hrnet ./dynopool ./weights "$@"
  # N ranks with SyncBN as one process (each path's own batch-norm arithmetic)
  SEGKIT_ISA=$isa gotest "SEGKIT_ISA=$isa" -count=1 ./segmentation/train -run TestRanksEqualOneProcess "$@"
done
# linux/arm64 (Apple Silicon, Graviton: the portable kernels, Go + OpenBLAS): the kernel and
# engine packages cross-built with Debian's aarch64 gcc against arm64 OpenBLAS and run under
# qemu-user (about 3 minutes, most of it hrnet's PyTorch goldens: -short checks two of the
# golden sets there, all five variants). qemu-aarch64 runs them with
# the arm64 C library of the host's multiarch packages (/lib/ld-linux-aarch64.so.1, which
# libopenblas0:arm64 installs with its libc.so.6), not with -L /usr/aarch64-linux-gnu: that
# loader is the cross package's glibc build, and with it the multiarch libc.so.6 that OpenBLAS
# pulls in (another Debian revision) loops forever in the first pthread_create.
if [ "$(uname -m)" = aarch64 ]; then
  skipped "arm64 cross pass skipped: this machine is arm64 (the tests above ran natively)."
elif ! command -v qemu-aarch64 >/dev/null 2>&1; then
  skipped "arm64 cross pass skipped: qemu-aarch64 is missing (scripts/setup.sh --arm64 installs qemu-user)."
elif ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || [ ! -e /usr/lib/aarch64-linux-gnu/libopenblas.so ] || [ ! -e /lib/ld-linux-aarch64.so.1 ]; then
  skipped "arm64 cross pass skipped: the cross toolchain is missing (aarch64-linux-gnu-gcc, libopenblas-dev:arm64; scripts/setup.sh --arm64 installs them)."
else
  env -u QEMU_LD_PREFIX CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
    go test -json -count=1 -short -exec qemu-aarch64 ./internal/kernels ./nn ./hrnet "$@" |
    "$work/testreport" -skips "$skips" -label arm64 "${show[@]}"
fi
