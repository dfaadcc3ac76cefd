#!/usr/bin/env bash
# Peers on a GPU against bpttbench on the CPU (issue 14): the whole run for a lent
# GPU machine, in under 8 minutes.
#
#   OUT=reports/gpu bash reports/gpu/run.sh        # from anywhere in the repository
#
# Expects CUDA builds of torch (and JAX) and bpttbench's dependencies (numba,
# numpy, scipy, pandas, matplotlib, threadpoolctl) preinstalled; needs no network.
# Steps, each under a timeout:
#   1. install bpttbench from this checkout, without dependencies;
#   2. print the GPUs (nvidia-smi -L), the CPU model and core count, the versions;
#   3. `bpttbench peers --device cuda --dtype float64 float32 --grid gpu` into
#      $OUT/gpu.sqlite, and beside it the same grid with the peers on the CPU
#      (--device cpu), one process per dtype, into $OUT/cpu-<dtype>.sqlite; every
#      process with one thread, so each bpttbench time is one core's. One after the
#      other they would take ~9 minutes (the CPU peers ~6: PyTorch at n = 1024 and
#      JAX's RTRL at n = 64 take seconds a call); side by side ~4, on 3 of 16 cores;
#   4. merge the CPU rows into $OUT/gpu.sqlite, print a summary with the crossovers,
#      and write the report ($OUT/report.md, $OUT/charts/, with the crossover chart).
#
# Environment (defaults in brackets):
#   OUT           where results go [reports/gpu]
#   PYTHON        the interpreter with torch and JAX [python3]
#   GRID          the grid options [--grid gpu]; a tiny grid tests this script on a
#                 machine without a GPU, e.g. GRID="--grid quick --n 3 --T 6"
#   DTYPES        [float64 float32]
#   ALLOW_NO_GPU  1: carry on when the CUDA step finds no GPU (it exits 1 then) [0]
#   INSTALL       0: skip step 1 (bpttbench already installed) [1]
# Exit status: 0 when every step succeeded; otherwise the first failure's, after the
# steps that can still run (the merge, the summary, the report) have run.

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT="${OUT:-reports/gpu}"
PYTHON="${PYTHON:-python3}"
GRID="${GRID:---grid gpu}"
DTYPES="${DTYPES:-float64 float32}"
ALLOW_NO_GPU="${ALLOW_NO_GPU:-0}"
INSTALL="${INSTALL:-1}"
mkdir -p "$OUT"
status=0
cpu_pids=()
trap 'for pid in "${cpu_pids[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT

say() { printf '\n== %s (%ss since start)\n' "$*" "$SECONDS"; }
# timeout for each step: TERM at the limit, KILL 10 s later.
bb() { local limit=$1; shift; timeout --kill-after=10 "$limit" "$PYTHON" -m bpttbench.bench.cli "$@"; }

if [[ "$INSTALL" == 1 ]]; then
    say "install bpttbench from $(pwd), no dependencies, no network"
    timeout 60 "$PYTHON" -m pip install -q --no-deps --no-build-isolation --no-index -e .
fi

say "machine"
if command -v nvidia-smi >/dev/null; then
    timeout 20 nvidia-smi -L || echo "nvidia-smi -L failed"
else
    echo "nvidia-smi: not found"
fi
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
echo "CPU: ${cpu_model:-unknown}, $(nproc) usable cores ($(nproc --all) in all)"
timeout 60 "$PYTHON" - <<'EOF' || status=$?
import importlib

for name in ("bpttbench", "numba", "numpy", "torch", "jax", "jaxlib"):
    try:
        mod = importlib.import_module(name)
        print(f"{name} {getattr(mod, '__version__', '?')} ({mod.__file__})")
    except Exception as exc:
        print(f"{name}: not importable ({type(exc).__name__}: {exc})")
try:
    import torch

    cuda = torch.cuda.is_available()
    print(f"torch: CUDA {torch.version.cuda}, available {cuda}", end="")
    print(f", {torch.cuda.get_device_name(0)}" if cuda else "")
except Exception:
    pass
try:
    import jax

    print(f"jax devices: {jax.devices()}")
except Exception as exc:
    print(f"jax devices: {type(exc).__name__}: {exc}")
EOF

read -r -a grid <<<"$GRID"
read -r -a dtypes <<<"$DTYPES"

for dt in "${dtypes[@]}"; do
    say "peers on the CPU in $dt, in the background (log: $OUT/cpu-$dt.log)"
    rm -f "$OUT/cpu-$dt.sqlite"
    # The GPU stays out of these processes: JAX would otherwise take 75% of its memory.
    CUDA_VISIBLE_DEVICES="" JAX_PLATFORMS=cpu timeout --kill-after=10 360 \
        "$PYTHON" -m bpttbench.bench.cli peers --device cpu --dtype "$dt" "${grid[@]}" \
        --threads 1 --db "$OUT/cpu-$dt.sqlite" >"$OUT/cpu-$dt.log" 2>&1 &
    cpu_pids+=("$!")
done

say "peers on the GPU (log: $OUT/gpu.log)"
gpu_status=0
bb 330 peers --device cuda --dtype "${dtypes[@]}" "${grid[@]}" --threads 1 \
    --db "$OUT/gpu.sqlite" 2>&1 | tee "$OUT/gpu.log" || gpu_status=$?
if [[ "$gpu_status" == 1 && "$ALLOW_NO_GPU" == 1 ]]; then
    echo "(no GPU here: carrying on, ALLOW_NO_GPU=1)"
elif [[ "$gpu_status" != 0 ]]; then
    echo "the GPU step failed with status $gpu_status"
    [[ "$status" == 0 ]] && status=$gpu_status
fi

for i in "${!dtypes[@]}"; do
    dt=${dtypes[$i]}
    say "waiting for the CPU peers in $dt"
    cpu_status=0
    wait "${cpu_pids[$i]}" || cpu_status=$?
    sed -n '/^tool  /,$p' "$OUT/cpu-$dt.log"  # its table
    if [[ "$cpu_status" != 0 ]]; then
        echo "the CPU step in $dt failed with status $cpu_status (124: timed out; its rows so far are kept)"
        [[ "$status" == 0 ]] && status=$cpu_status
    fi
done
cpu_pids=()

say "merge and summary"
for dt in "${dtypes[@]}"; do
    if [[ -f "$OUT/cpu-$dt.sqlite" ]]; then
        timeout 60 "$PYTHON" -m bpttbench.bench.peers.gpu merge "$OUT/cpu-$dt.sqlite" \
            "$OUT/gpu.sqlite" && rm -f "$OUT/cpu-$dt.sqlite" || status=$?
    fi
done
if [[ -f "$OUT/gpu.sqlite" ]]; then
    timeout 60 "$PYTHON" -m bpttbench.bench.peers.gpu summary "$OUT/gpu.sqlite" || status=$?
    say "report"
    bb 60 report --db "$OUT/gpu.sqlite" --out "$OUT" || status=$?
fi

say "done, status $status"
exit "$status"
