#!/usr/bin/env bash
# Acceptance of issue 15: one sweep measured twice, once by a local sweep and once
# through a LocalCluster of WORKERS worker processes, into two stores; prints both
# wall times and whether the fitted exponents agree (same verdicts, and each slope
# within the other's confidence interval).
#
#   bash reports/cluster/run.sh                                  # the quick preset
#   SWEEP="--algorithms bptt --axes T" bash reports/cluster/run.sh   # a short check
#
# Run it on a quiet machine: both runs time cells, and the comparison is only as
# good as the timings. On 2 cores the quick preset takes about 5 minutes locally
# and about 3 through 2 workers, so about 8 to 10 minutes in all. The two workers
# of a 2-core machine share its caches and memory bandwidth (the cluster sweep
# says so when it starts): large cells run slower beside each other than alone.
# The local run goes first and fills Numba's on-disk cache, which the workers
# then load; run the script twice if the first local run compiled much.
#
# Environment (defaults in brackets):
#   OUT      where the stores and logs go [reports/cluster]
#   PRESET   the preset to sweep [quick]
#   SWEEP    more sweep options, e.g. "--algorithms bptt --axes T" []
#   WORKERS  worker processes of the LocalCluster [2]
#   PYTHON   the interpreter with bpttbench and dask[distributed] [python3]
#   KEEP     1: resume into existing stores instead of starting afresh [0]
# Exit status: 0 when both sweeps succeeded and every fitted exponent agrees; 1
# when some disagree; the failing step's status otherwise.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT="${OUT:-reports/cluster}"
PRESET="${PRESET:-quick}"
SWEEP="${SWEEP:-}"
WORKERS="${WORKERS:-2}"
PYTHON="${PYTHON:-python3}"
KEEP="${KEEP:-0}"
mkdir -p "$OUT"
read -r -a extra <<<"$SWEEP"

bb() { "$PYTHON" -m bpttbench.bench.cli "$@"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }

if [[ "$KEEP" != 1 ]]; then
    rm -f "$OUT/local.sqlite" "$OUT/cluster.sqlite"
fi
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)," \
    "$(nproc) usable cores; load: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"

echo "== local sweep: --preset $PRESET ${SWEEP} (log: $OUT/local.log)"
t0=$(now)
bb sweep --preset "$PRESET" "${extra[@]}" --db "$OUT/local.sqlite" >"$OUT/local.log" 2>&1 ||
    { tail -n 20 "$OUT/local.log"; exit 3; }
local_s=$(since "$t0")
tail -n 1 "$OUT/local.log"

echo "== cluster sweep: --local-cluster $WORKERS (log: $OUT/cluster.log)"
t0=$(now)
bb sweep --preset "$PRESET" "${extra[@]}" --db "$OUT/cluster.sqlite" \
    --local-cluster "$WORKERS" >"$OUT/cluster.log" 2>&1 ||
    { tail -n 20 "$OUT/cluster.log"; exit 4; }
cluster_s=$(since "$t0")
tail -n 1 "$OUT/cluster.log"

echo "== wall time: local ${local_s} s, cluster of $WORKERS workers ${cluster_s} s" \
    "(speed-up $(awk -v a="$local_s" -v b="$cluster_s" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }'))"
echo "== fitted exponents, local against cluster"
"$PYTHON" -m bpttbench.bench.cluster.agree "$OUT/local.sqlite" "$OUT/cluster.sqlite"
