#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), then runs every test, and the
# numeric packages again on the portable kernels (OpenBLAS and Go) that CPUs without AVX-512 run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
go vet ./...
go test ./... "$@"
SEGKIT_AVX512=off go test ./internal/kernels ./nn ./hrnet ./dynopool "$@"
