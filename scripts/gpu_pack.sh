#!/usr/bin/env bash
# Builds here what scripts/gpu_check.sh runs on a GPU machine that has no Go and no network:
# the test binaries of the device packages and the OpenBLAS libraries they link, gzipped into
# .gpu/ (ignored by git; under 64 MiB, what a device call carries).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.gpu
rm -rf "$out" && mkdir -p "$out/bin" "$out/lib" "$out/src"
for pkg in internal/cuda internal/devkernels internal/device/sim nn; do
  go test -c -o "$out/bin/$(echo "$pkg" | tr / _).test" "./$pkg"
done
# The shared libraries the binaries need beyond glibc (OpenBLAS and its Fortran runtime).
ldd "$out"/bin/*.test | awk '/=> \// {print $3}' | sort -u | grep -E 'openblas|gfortran|quadmath|blas|lapack' |
  while read -r lib; do cp -L "$lib" "$out/lib/"; done
cp internal/cuda/decl.h scripts/gpu/abi_check.c scripts/gpu/torch_baseline.py "$out/src/"
# The commit the binaries were built from (+dirty: with uncommitted changes).
echo "$(git rev-parse HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo +dirty)" > "$out/COMMIT"
gzip -9 "$out"/bin/*.test "$out"/lib/*
size=$(du -sm "$out" | cut -f1)
echo "gpu_pack: $out is ${size} MiB ($(ls "$out"/bin | wc -l) test binaries, $(ls "$out"/lib | wc -l) libraries) at $(cut -c1-12 "$out/COMMIT")"
if [ "$size" -ge 64 ]; then
  echo "gpu_pack: $out is over the 64 MiB a device call carries" >&2
  exit 1
fi
