"""GFLOP/s of the gated RTRL kernels against the same process's 1-thread DGEMM peak.

    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python -m bpttbench.bench.gated_efficiency

Whatever the environment, every BLAS loaded (NumPy's, and SciPy's that the
kernels call) is held to one thread with threadpoolctl once the kernels have
loaded it: a second BLAS thread on a busy machine would distort both rates.
The peak is a 512 x 512 float64 ``np.matmul``; each round times some peak
calls and then one kernel call, so that both see the same load on a shared
machine. Every call is timed on two clocks: wall time, and the process's CPU
time, which a machine shared with other jobs disturbs far less (the kernels
and BLAS run on one thread here, so CPU time is the time they ran). The
kernel's rate is its exact FLOP count (``flops()``) over the median time;
"% of peak" is the ratio of the two medians on the same clock.
"""

from __future__ import annotations

import argparse
import importlib
import time

import numpy as np
from bpttbench import costs
from threadpoolctl import threadpool_info, threadpool_limits

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
PEAK_SIZE = 512
GATES = {"gru": 3, "lstm": 4}


def timed(call) -> dict[str, float]:
    """Seconds one ``call()`` took on each clock."""
    start = {name: clock() for name, clock in CLOCKS.items()}
    call()
    return {name: clock() - start[name] for name, clock in CLOCKS.items()}


def problem(cell, n, m, p, T, B, seed=0):
    """PyTorch's initialisation, U(-1/sqrt(n), 1/sqrt(n)), and normal data, float64."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(n)
    rows = GATES[cell] * n
    shapes = ((rows, m), (rows, n), (rows,), (rows,), (p, n), (p,))
    params = [rng.uniform(-bound, bound, s) for s in shapes]
    return params, rng.normal(size=(T, B, m)), rng.normal(size=(T, B, p))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="gru,lstm")
    parser.add_argument("--n", default="64,96,128")
    parser.add_argument("--m", type=int, default=8)
    parser.add_argument("--p", type=int, default=8)
    parser.add_argument("--T", type=int, default=4)
    parser.add_argument("--B", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--peak-calls", type=int, default=3, help="peak calls per round")
    parser.add_argument("--slab-cols", type=int, default=None)
    args = parser.parse_args(argv)
    cells = args.cells.split(",")
    modules = {cell: importlib.import_module(f"bpttbench.rtrl_{cell}") for cell in cells}
    for cell, module in modules.items():  # load every BLAS the kernels call
        params, xs, ys = problem(cell, 2, 2, 2, 1, 1)
        getattr(module, f"rtrl_{cell}")(*params, xs, ys)
    with threadpool_limits(limits=1):
        threads = {lib["prefix"]: lib["num_threads"] for lib in threadpool_info()}
        assert set(threads.values()) == {1}, threads
        measure(args, modules)


def measure(args, modules):
    a = np.random.default_rng(1).normal(size=(PEAK_SIZE, PEAK_SIZE))
    a @ a
    peak_flops = 2.0 * PEAK_SIZE**3
    print(f"T={args.T} B={args.B} m={args.m} p={args.p}; {args.rounds} rounds; medians")
    print("cell   n  K  slabs | wall: GFLOP/s  peak  % | cpu: GFLOP/s  peak  %")
    for cell, module in modules.items():
        kernel = getattr(module, f"rtrl_{cell}")
        for n in (int(v) for v in args.n.split(",")):
            params, xs, ys = problem(cell, n, args.m, args.p, args.T, args.B)
            size = {"T": args.T, "B": args.B, "n": n, "m": args.m, "p": args.p}
            work = costs.total(module.flops(size))

            def call(kernel=kernel, params=params, xs=xs, ys=ys):
                return kernel(*params, xs, ys, slab_cols=args.slab_cols)

            call()  # compile or load from the cache, touch the buffers once
            peak = {c: [] for c in CLOCKS}
            run = {c: [] for c in CLOCKS}
            for _ in range(args.rounds):
                for _ in range(args.peak_calls):
                    for c, s in timed(lambda: a @ a).items():
                        peak[c].append(s)
                for c, s in timed(call).items():
                    run[c].append(s)
            line = [
                f"{cell:5s} {n:4d} {module.blocks_per_gemm(n, args.m, args.slab_cols):2d} "
                f"{module.slab_count(n, args.m, args.slab_cols):5d}"
            ]
            for c in CLOCKS:
                rate = work / np.median(run[c]) / 1e9
                top = peak_flops / np.median(peak[c]) / 1e9
                line.append(f"{rate:13.1f} {top:5.1f} {100 * rate / top:3.0f}")
            print(" |".join(line), flush=True)


if __name__ == "__main__":
    main()
