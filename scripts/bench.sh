#!/usr/bin/env bash
# Side-by-side speed table: `segtrain bench` against the PyTorch reference's bench.py, same machine,
# same run. PyTorch's fixed model is the baseline for both of our modes (its DynOPool sampler is
# written for clarity, not speed). Usage:
#   scripts/bench.sh [MODEL[:CROP:BATCH]...]
# Default cases: w18_small_v2:512:2 w48:512:2 w18_small_v1:176:8 (a bare MODEL takes CROP and
# BATCH, default 512 and 2; batch 1 times inference alone). ITERS=3 timed steps per run; REPEAT=1 rounds, each running PyTorch
# and our two modes back to back (on a busy machine, take REPEAT=3 or more: the table then shows
# medians of the times and of each round's ratios). ISA=avx2 or portable runs our kernels of that
# path (SEGKIT_ISA) and caps PyTorch's oneDNN at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2), to measure on an
# AVX-512 machine what CPUs without it get. Needs Debian's PyTorch (apt-get install python3-torch
# python3-numpy) and the PyTorch reference in tools/reference (or REFERENCE=dir).
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-3} BATCH=${BATCH:-2} CROP=${CROP:-512} REPEAT=${REPEAT:-1} ISA=${ISA:-}
REFERENCE=${REFERENCE:-tools/reference}
PY=${PYTHON:-/usr/bin/python3}
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(w18_small_v2:512:2 w48:512:2 w18_small_v1:176:8)

if [ ! -f "$REFERENCE/bench.py" ] || ! "$PY" -c 'import torch' 2>/dev/null; then
	echo "scripts/bench.sh: needs $REFERENCE/bench.py and PyTorch for $PY" >&2
	echo "  (apt-get install -y --no-install-recommends python3-torch python3-numpy)" >&2
	exit 1
fi
scripts/setup.sh >/dev/null
go build -o bin/ ./cmd/segtrain

ours_env=() ref_env=()
case "$ISA" in
"") ;;
avx512) ours_env=(SEGKIT_ISA=avx512) ;;
avx2 | portable) ours_env=(SEGKIT_ISA="$ISA") ref_env=(ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2) ;;
*) echo "scripts/bench.sh: ISA must be avx512, avx2 or portable" >&2 && exit 2 ;;
esac
ref_isa=$([ ${#ref_env[@]} -gt 0 ] && echo "AVX2" || echo "best")

field() { "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }
# median prints the median of its arguments; ratio a b prints a/b. A missing value (None: no
# training at batch 1) stays missing, printed as —.
median() { "$PY" -c 'import statistics,sys; v=sys.argv[1:]; print("None" if "None" in v else "%g" % statistics.median(map(float, v)))' "$@"; }
ratio() { "$PY" -c 'import sys; a,b=sys.argv[1:3]; print("None" if "None" in (a,b) else "%.3f" % (float(a) / float(b)))' "$1" "$2"; }
fmt() { "$PY" -c 'import sys; print("—" if sys.argv[1]=="None" else "%.0f" % float(sys.argv[1]))' "$1"; }
fmt2() { "$PY" -c 'import sys; print("—" if sys.argv[1]=="None" else "%.2f" % float(sys.argv[1]))' "$1"; }

echo "| model | crop × batch | resize | kernels (ours / PyTorch) | train ms (ours / PyTorch) | ratio | inference ms | ratio | peak RSS MB | ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in "${cases[@]}"; do
	IFS=: read -r m crop batch <<<"$c"
	crop=${crop:-$CROP} batch=${batch:-$BATCH}
	declare -A T=() I=() S=() RT=() RI=() RS=()
	rt=() ri=() rr=() kernels=
	for ((round = 0; round < REPEAT; round++)); do
		ref=$(env "${ref_env[@]}" "$PY" "$REFERENCE/bench.py" --config "$m" --resize fixed --batch "$batch" --crop "$crop" --iters "$ITERS")
		rt+=("$(field train_ms_per_step <<<"$ref")") ri+=("$(field infer_ms_per_batch <<<"$ref")") rr+=("$(field peak_rss_mb <<<"$ref")")
		for r in fixed dynopool; do
			ours=$(env "${ours_env[@]}" bin/segtrain bench --model "$m" --resize "$r" --batch "$batch" --crop "$crop" --iters "$ITERS" --json)
			t=$(field train_step_ms <<<"$ours") i=$(field infer_ms <<<"$ours") s=$(field peak_rss_mb <<<"$ours")
			kernels=$(field kernels <<<"$ours")
			T[$r]+=" $t" I[$r]+=" $i" S[$r]+=" $s"
			RT[$r]+=" $(ratio "$t" "${rt[-1]}")" RI[$r]+=" $(ratio "$i" "${ri[-1]}")" RS[$r]+=" $(ratio "$s" "${rr[-1]}")"
		done
	done
	for r in fixed dynopool; do
		# shellcheck disable=SC2086 # word splitting of the lists is intended
		echo "| $m | ${crop}² × $batch | $r | $kernels / $ref_isa | $(fmt "$(median ${T[$r]})") / $(fmt "$(median "${rt[@]}")") | $(fmt2 "$(median ${RT[$r]})") | $(fmt "$(median ${I[$r]})") / $(fmt "$(median "${ri[@]}")") | $(fmt2 "$(median ${RI[$r]})") | $(fmt "$(median ${S[$r]})") / $(fmt "$(median "${rr[@]}")") | $(fmt2 "$(median ${RS[$r]})") |"
	done
	unset T I S RT RI RS
done
