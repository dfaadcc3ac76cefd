#!/usr/bin/env bash
# Acceptance of issue 15: one sweep measured twice, once by a local sweep and once
# through a LocalCluster of WORKERS worker processes, into two stores; prints both
# wall times and, fit by fit and per metric, whether the fitted exponents agree
# (bpttbench.bench.cluster.agree: the criterion is printed with the result).
#
#   bash reports/cluster/run.sh                                  # the quick preset
#   SWEEP="--algorithms bptt --axes T" bash reports/cluster/run.sh   # a short check
#
# Run it on a quiet machine: both runs time cells, and the comparison is only as
# good as the timings. On 2 cores the quick preset takes about 3 to 3.5 minutes
# locally and about 2 through 2 workers, about 6 minutes in all. The local run
# goes first and fills Numba's on-disk cache, which the workers then load; run
# the script twice if the first local run compiled much.
#
# Memory and FLOPs are deterministic: every such fit must agree (a worker measures
# the same peak bytes as a local sweep). Time is not: when the workers, one
# thread each, outnumber half the machine's physical cores, they share its
# caches and memory bandwidth, cells that outgrow the caches run slower beside
# each other than alone, and the time exponents bend. The script then says so,
# prints every time fit and what disagrees, and leaves time out of its exit
# status; otherwise time fits must be at least consistent (intervals overlap).
# WORKERS=1 is the control: one worker shares nothing with a second, so its time
# fits must then be consistent with the local run's.
#
# The last lines (also written to $OUT/summary.txt) are the figures to quote:
# machine, wall times, speed-up, and the agreement counts by metric.
#
# Environment (defaults in brackets):
#   OUT      where the stores, logs and summary go [reports/cluster]
#   PRESET   the preset to sweep [quick]
#   SWEEP    more sweep options, e.g. "--algorithms bptt --axes T" []
#   WORKERS  worker processes of the LocalCluster [2]
#   PYTHON   the interpreter with bpttbench and dask[distributed] [python3]
#   KEEP     1: resume into existing stores instead of starting afresh [0]
# Exit status: 0 when both sweeps succeeded and the fits agree as above; 1 when
# some do not; the failing step's status otherwise.

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
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)"
cores=$(nproc)
# Physical cores: distinct (socket, core) pairs; the usable CPU count where lscpu cannot say.
physical=$(lscpu -p=socket,core 2>/dev/null | grep -v '^#' | sort -u | wc -l || true)
[[ "${physical:-0}" -gt 0 && "$physical" -le "$cores" ]] || physical=$cores
load0="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
echo "CPU: $cpu, $cores usable CPUs ($physical physical cores); load: $load0"

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
load1="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"

# Each worker runs one timed cell at a time on one thread: WORKERS threads at once.
time_args=()
shared=""
if ((2 * WORKERS > physical)); then
    shared="$WORKERS workers shared $physical physical cores, their caches and memory bandwidth"
    time_args=(--time-reported-only "$shared")
    echo "note: $shared: cells that outgrow the caches run slower beside each other" \
        "than alone, so time fits may bend; they are reported, not required to agree"
fi

echo "== fitted exponents, local against cluster"
set +e
"$PYTHON" -m bpttbench.bench.cluster.agree "${time_args[@]}" \
    "$OUT/local.sqlite" "$OUT/cluster.sqlite" >"$OUT/agree.txt"
status=$?
set -e
cat "$OUT/agree.txt"
((status <= 1)) || exit "$status"

speedup=$(awk -v a="$local_s" -v b="$cluster_s" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }')
{
    echo "== summary: preset $PRESET${SWEEP:+ ($SWEEP)}, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo "machine: $cpu, $cores usable CPUs ($physical physical cores);" \
        "load at start $load0, at end $load1"
    echo "wall time: local ${local_s} s, LocalCluster of $WORKERS workers ${cluster_s} s" \
        "(speed-up ${speedup}x)"
    [[ -z "$shared" ]] || echo "note: $shared: time fits are reported, not required to agree"
    grep '^== ' "$OUT/agree.txt" | sed 's/^== /fitted exponents, /'
    if ((status == 0)); then echo "acceptance: passed"; else echo "acceptance: FAILED"; fi
} | tee "$OUT/summary.txt"
exit "$status"
