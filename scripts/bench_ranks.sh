#!/usr/bin/env bash
# The scale-out benchmark of README's scale-out section: the same global batch trained by one
# process on THREADS threads and by mpirun -np RANKS ranks on THREADS/RANKS threads each; prints
# the median step time of each and their ratio (ranks / one process; ≤ 1.15 is the goal).
# Usage: scripts/bench_ranks.sh [MODEL] [CROP] [BATCH]   (default w18_small_v2 512 4)
# ITERS=8 steps (the first 2 are not timed), RANKS=2, THREADS=$(nproc), REPEAT=1 interleaved rounds.
# Needs Open MPI (scripts/setup.sh --mpi). Run it on a quiet machine: every step is timed.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-w18_small_v2} crop=${2:-512} batch=${3:-4}
ITERS=${ITERS:-8} RANKS=${RANKS:-2} THREADS=${THREADS:-$(nproc)} REPEAT=${REPEAT:-1}
command -v mpirun >/dev/null || { echo "scripts/bench_ranks.sh: needs mpirun (scripts/setup.sh --mpi)" >&2; exit 1; }
go build -tags mpi -o bin/segtrain-mpi ./cmd/segtrain
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
args=(--model "$model" --crop "$crop" --batch "$batch" --iters "$ITERS" --log-every 1 --eval-every 1000000
	--ckpt-every 1000000 --no-bar --out "$out")
# step_ms prints the median time per step of a run's train.jsonl (images/s of each logged step,
# the first two left out as warm-up).
step_ms() {
	python3 - "$1/train.jsonl" "$batch" <<'EOF'
import json, statistics, sys
ips = [e["images_per_s"] for e in map(json.loads, open(sys.argv[1])) if e.get("images_per_s") and e["iter"] > 2]
print("%.0f" % (1000 * int(sys.argv[2]) / statistics.median(ips)))
EOF
}
mpi=(mpirun -np "$RANKS" --oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
one=() many=()
for ((r = 0; r < REPEAT; r++)); do
	bin/segtrain-mpi "${args[@]}" --threads "$THREADS" --name "one$r" >/dev/null
	one+=("$(step_ms "$out/one$r")")
	"${mpi[@]}" bin/segtrain-mpi "${args[@]}" --threads $((THREADS / RANKS)) --name "many$r" >/dev/null
	many+=("$(step_ms "$out/many$r")")
done
python3 - "$model" "$crop" "$batch" "$RANKS" "$THREADS" "${#one[@]}" "${one[@]}" "${many[@]}" <<'EOF'
import statistics, sys
model, crop, batch, ranks, threads, n = sys.argv[1:7]
n = int(n)
one, many = [float(v) for v in sys.argv[7:7 + n]], [float(v) for v in sys.argv[7 + n:]]
a, b = statistics.median(one), statistics.median(many)
print(f"{model} {crop}² batch {batch}: 1 process × {threads} threads {a:.0f} ms/step, "
      f"{ranks} ranks × {int(threads) // int(ranks)} threads {b:.0f} ms/step, ratio {b / a:.2f}")
EOF
