#!/usr/bin/env bash
# Load check of segpredict serve (not a test): starts the server on 127.0.0.1 with a 1 MiB body
# limit, runs scripts/serveload (N clients, a bounded number of requests, good images
# interleaved with bad inputs), prints its numbers and the server's peak RSS, then stops the
# server with SIGTERM (a graceful shutdown).
#
#   scripts/serve_load.sh                      # the checkpoint: $CHECKPOINT, else runs/latest, else a quick demo run
#   CLIENTS=8 REQUESTS=400 SIZE=500x375 scripts/serve_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${CLIENTS:-4}
requests=${REQUESTS:-200}
size=${SIZE:-320x240}
batch=${BATCH:-4}
port=${PORT:-18089}
work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/segpredict" ./cmd/segpredict
go build -o "$work/serveload" ./scripts/serveload
checkpoint=${CHECKPOINT:-}
if [ -z "$checkpoint" ] && [ -e runs/latest/best.safetensors ]; then
  checkpoint=runs/latest/best.safetensors
fi
if [ -z "$checkpoint" ]; then
  echo "serve_load: no checkpoint: training a short demo run (w18_small_v1, DynOPool) for it..."
  go build -o "$work/segtrain" ./cmd/segtrain
  "$work/segtrain" --model w18_small_v1 --resize dynopool --crop 96 --batch 4 --iters 20 \
    --eval-every 20 --ckpt-every 20 --out "$work/runs" --name load >/dev/null
  checkpoint=$work/runs/load/best.safetensors
fi

"$work/segpredict" serve --checkpoint "$checkpoint" --addr "127.0.0.1:$port" --batch "$batch" \
  --max-body $((1 << 20)) >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
echo "serve_load: $(nproc) cores, checkpoint $checkpoint, batch $batch"
rc=0
"$work/serveload" -url "http://127.0.0.1:$port" -clients "$clients" -requests "$requests" -size "$size" \
  -max-body $((1 << 20)) || rc=$?
echo "serve_load: server peak RSS $(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status")"
curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^segkit_batch_size_(sum|count)' | sed 's/^/serve_load: /'
kill -TERM "$server"
wait "$server" || rc=$?
server=""
exit $rc
