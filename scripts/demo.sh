#!/usr/bin/env bash
# The main job: installs what is missing (scripts/setup.sh), builds the tools into bin/ and
# runs segtrain (the demo training; arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
go build -o bin/ ./cmd/...
exec bin/segtrain "$@"
