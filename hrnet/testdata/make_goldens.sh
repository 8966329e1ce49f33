#!/usr/bin/env bash
# Remakes the HRNet golden sets of TestMatchesPyTorch with the PyTorch reference
# (tools/reference/hrnet_golden.py; Debian's python3-torch): seed, batch, height, width in each
# directory's name, all five variants. 10–20 minutes a set on 2 cores, most of it the tie
# envelope's flips of the non-integer-alpha variants.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../tools/reference"
for set in "0 2 64 64" "1 3 40 48" "2 1 72 56" "3 2 48 80" "4 3 56 40"; do
  read -r seed n h w <<<"$set"
  out="$here/tiny_s${seed}_${n}x${h}x${w}"
  mkdir -p "$out"
  /usr/bin/python3 -u hrnet_golden.py "$out" "$seed" "$n" "$h" "$w"
done
