#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), then runs every test, and the
# numeric packages again on the portable kernels (OpenBLAS and Go) that CPUs without AVX-512 run,
# where this CPU has AVX-512 (elsewhere the first pass already ran them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
go vet ./...
go test ./... "$@"
# The numeric packages again on the portable kernels when the first pass ran the AVX-512 ones.
# The kernels read SEGKIT_AVX512 while the tests run, so go test keys its cache on it; -count=1
# runs this pass afresh anyway.
if grep -qw avx512f /proc/cpuinfo; then
  SEGKIT_AVX512=off go test -count=1 ./internal/kernels ./nn ./hrnet ./dynopool ./weights "$@"
fi
