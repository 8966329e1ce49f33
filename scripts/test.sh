#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh, with onnxruntime for the ONNX
# export tests, Open MPI for the data-parallel ones, clang for the PTX check), then runs every test, and the numeric packages again on the other kernels this
# CPU runs: AVX2 (CPUs without AVX-512) and the portable ones (OpenBLAS and Go: other CPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --onnxruntime --mpi --clang
go vet ./...
go test ./... "$@"
# Data-parallel training under mpirun (build tag mpi, Open MPI): the binding and segtrain with
# two ranks on this machine (--oversubscribe --bind-to none; --allow-run-as-root as root).
go vet -tags mpi ./internal/mpi/... ./dist ./cmd/segtrain
go test -tags mpi ./internal/mpi ./cmd/segtrain -run 'TestCollectives|TestDup|TestWaitDoesNotSpin|TestTimeout|TestSegtrainMPI' "$@"
# The numeric packages again on every other path this CPU runs (the first pass ran its best):
# AVX2 where it has AVX-512, portable (OpenBLAS and Go) where it has either. The kernels read
# SEGKIT_ISA while the tests run, so go test keys its cache on it; -count=1 runs each afresh anyway.
others=()
if grep -qw avx512f /proc/cpuinfo; then others+=(avx2); fi
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then others+=(portable); fi
for isa in "${others[@]}"; do
  SEGKIT_ISA=$isa go test -count=1 ./internal/kernels ./nn ./hrnet ./dynopool ./weights "$@"
done
