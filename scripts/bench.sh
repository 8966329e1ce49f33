#!/usr/bin/env bash
# Side-by-side speed table: `segtrain bench` against the PyTorch reference's bench.py, same machine,
# same run. PyTorch's fixed model is the baseline for both of our modes (its DynOPool sampler is
# written for clarity, not speed). Usage:
#   scripts/bench.sh [MODEL...]        (default: w18_small_v2 w48; ITERS=3 BATCH=2 CROP=512)
# Needs Debian's PyTorch (apt-get install python3-torch python3-numpy) and ../shared/reference
# (or REFERENCE=dir).
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-3} BATCH=${BATCH:-2} CROP=${CROP:-512}
REFERENCE=${REFERENCE:-../shared/reference}
PY=${PYTHON:-/usr/bin/python3}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(w18_small_v2 w48)

if [ ! -f "$REFERENCE/bench.py" ] || ! "$PY" -c 'import torch' 2>/dev/null; then
	echo "scripts/bench.sh: needs $REFERENCE/bench.py and PyTorch for $PY" >&2
	echo "  (apt-get install -y --no-install-recommends python3-torch python3-numpy)" >&2
	exit 1
fi
scripts/setup.sh >/dev/null
go build -o bin/ ./cmd/segtrain

field() { "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }
ratio() { "$PY" -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$1" "$2"; }

echo "| model | resize | train ms (ours / PyTorch) | ratio | inference ms | ratio | peak RSS MB | ratio |"
echo "|---|---|---|---|---|---|---|---|"
for m in "${models[@]}"; do
	ref=$("$PY" "$REFERENCE/bench.py" --config "$m" --resize fixed --batch "$BATCH" --crop "$CROP" --iters "$ITERS")
	rt=$(field train_ms_per_step <<<"$ref") ri=$(field infer_ms_per_batch <<<"$ref") rr=$(field peak_rss_mb <<<"$ref")
	for r in fixed dynopool; do
		ours=$(bin/segtrain bench --model "$m" --resize "$r" --batch "$BATCH" --crop "$CROP" --iters "$ITERS" --json)
		t=$(field train_step_ms <<<"$ours") i=$(field infer_ms <<<"$ours") s=$(field peak_rss_mb <<<"$ours")
		echo "| $m | $r | $t / $rt | $(ratio "$t" "$rt") | $i / $ri | $(ratio "$i" "$ri") | $s / $rr | $(ratio "$s" "$rr") |"
	done
done
