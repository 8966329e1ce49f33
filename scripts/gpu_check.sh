#!/usr/bin/env bash
# The GPU check: run on a machine with an NVIDIA GPU, its driver, CUDA 13 libraries (PyTorch's
# pip wheels), PyTorch and timm, but no Go and no network, from a checkout that carries .gpu/
# (scripts/gpu_pack.sh, built elsewhere). About 5 minutes. Logs go to ${OUT:-gpu_out}.
#   1. probe: GPU, driver, glibc, where libcuda / NVRTC / cuDNN are, cuDNN's version
#   2. ABI: our decl.h against NVIDIA's headers (_Static_assert), where gcc and the headers are
#   3. the carried tests: the CUDA start-up (driver, NVRTC compile of our kernels, cuDNN), the
#      single-source bodies, the simulated-device steps; once under compute-sanitizer if present
#   4. PyTorch's W48 512x512 training step (the target), batch 8/16, fp32/TF32
# segkit's own GPU step is not timed: its CUDA backend is incomplete (internal/cuda says so).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_out}
mkdir -p "$out"
log() { echo "gpu_check: $*" | tee -a "$out/summary.txt"; }

# 1. probe
if ! command -v nvidia-smi >/dev/null 2>&1 && ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
  log "no NVIDIA driver here (no nvidia-smi, no libcuda.so.1): nothing to check on this machine"
  # GPU_CHECK_DRY=1 goes on anyway, to try the script's other steps where no GPU is.
  [ "${GPU_CHECK_DRY:-}" = 1 ] || exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$out/gpu.txt" | sed 's/^/gpu_check: gpu: /'
log "glibc $(ldd --version 2>&1 | head -1 | awk '{print $NF}')"
py=$(command -v python3 || command -v python || true)
site=""
if [ -n "$py" ]; then
  site=$("$py" -c 'import site,sys; print(":".join(site.getsitepackages()+[site.getusersitepackages()]))' 2>/dev/null || true)
fi
libdirs=""
IFS=: read -ra sps <<< "$site"
for sp in "${sps[@]}"; do
  for d in "$sp"/nvidia/*/lib; do [ -d "$d" ] && libdirs="$libdirs:$d"; done
done
export SEGKIT_CUDA_LIBS="${SEGKIT_CUDA_LIBS:-}${libdirs}"
for lib in libcuda.so.1 libnvrtc.so.13 libcudnn.so.9 libcublas.so.13; do
  where=$( (ldconfig -p 2>/dev/null | awk -v l="$lib" '$1==l {print $NF; exit}'); IFS=:; for d in $SEGKIT_CUDA_LIBS /usr/local/nvidia/lib64 /usr/local/cuda/lib64; do [ -e "$d/$lib" ] && echo "$d/$lib"; done | head -1)
  log "$lib: ${where:-not found}"
done
cudnn_h=""
for d in ${sps[@]+"${sps[@]}"}; do
  for h in "$d"/nvidia/cudnn/include/cudnn_version.h; do [ -f "$h" ] && cudnn_h=$h; done
done
[ -z "$cudnn_h" ] && [ -f /usr/local/cuda/include/cudnn_version.h ] && cudnn_h=/usr/local/cuda/include/cudnn_version.h
if [ -n "$cudnn_h" ]; then
  log "cuDNN $(awk '/#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{printf "%s.", $3}' "$cudnn_h" | sed 's/\.$//') ($cudnn_h)"
fi

# 2. ABI conformance
incs=""
for d in /usr/local/cuda/include ${sps[@]+"${sps[@]/%//nvidia/cu13/include}"} ${sps[@]+"${sps[@]/%//nvidia/cuda_runtime/include}"} \
         ${sps[@]+"${sps[@]/%//nvidia/cuda_nvrtc/include}"} ${sps[@]+"${sps[@]/%//nvidia/cudnn/include}"}; do
  [ -d "$d" ] && incs="$incs -I$d"
done
have_h() { local d; for d in $incs; do [ -f "${d#-I}/$1" ] && return 0; done; return 1; }
if ! have_h cuda.h || ! have_h nvrtc.h || ! have_h cudnn.h; then
  log "ABI: not checked (cuda.h, nvrtc.h and cudnn.h not all found in:${incs:- no include directory})"
elif command -v gcc >/dev/null 2>&1; then
  if gcc -std=c11 -fsyntax-only $incs -I.gpu/src .gpu/src/abi_check.c > "$out/abi.txt" 2>&1; then
    log "ABI: decl.h agrees with NVIDIA's headers"
  else
    log "ABI: FAILED (see $out/abi.txt): $(head -3 "$out/abi.txt" | tr '\n' ' ')"
  fi
else
  log "ABI: not checked (no gcc)"
fi

# 3. the carried tests
if [ ! -d .gpu/bin ]; then
  log ".gpu/ is missing: run scripts/gpu_pack.sh where Go is and carry .gpu"
  exit 1
fi
work=$(mktemp -d)
for f in .gpu/bin/*.gz .gpu/lib/*.gz; do gunzip -c "$f" > "$work/$(basename "${f%.gz}")"; done
chmod +x "$work"/*.test
export LD_LIBRARY_PATH="$work${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
status=0
run() { # name binary args...
  local name=$1; shift
  if timeout 120 "$@" -test.v > "$out/$name.txt" 2>&1; then
    log "$name: ok ($(grep -c '^--- PASS' "$out/$name.txt") passed, $(grep -c '^--- SKIP' "$out/$name.txt") skipped)"
  else
    status=1
    log "$name: FAILED (see $out/$name.txt): $(grep -m3 -E '^\s+\S+_test.go|FAIL' "$out/$name.txt" | tr '\n' ' ')"
  fi
}
run cuda "$work/internal_cuda.test"
grep -h 'started and our' "$out/cuda.txt" | sed 's/^ */gpu_check: /' | tee -a "$out/summary.txt"
run devkernels "$work/internal_devkernels.test"
run sim "$work/internal_device_sim.test"
run nn_device "$work/nn.test" -test.run 'SimDevice'
if command -v compute-sanitizer >/dev/null 2>&1; then
  timeout 120 compute-sanitizer --tool memcheck "$work/internal_cuda.test" -test.run RealGPU > "$out/sanitizer.txt" 2>&1 &&
    log "compute-sanitizer: $(grep -m1 'ERROR SUMMARY' "$out/sanitizer.txt")" || log "compute-sanitizer: FAILED (see $out/sanitizer.txt)"
fi

# 4. the PyTorch target
if [ -n "$py" ] && "$py" -c 'import torch, timm; assert torch.cuda.is_available()' 2>/dev/null; then
  timeout 240 "$py" .gpu/src/torch_baseline.py 2>&1 | tee "$out/torch.txt" | sed 's/^/gpu_check: /' | tee -a "$out/summary.txt" >/dev/null
  cat "$out/torch.txt"
else
  log "PyTorch baseline: not run (python3 with torch+CUDA and timm not found)"
fi
log "segkit GPU step: not timed (the CUDA backend is incomplete); commit $(cat .gpu/COMMIT)"
rm -rf "$work"
exit $status
