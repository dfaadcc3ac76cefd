"""Per-step time of the online rules against one forward step and the machine's roofs.

    python -m bpttbench.bench.online_efficiency [--n 64,256] [--T 2000] [--rounds 9]
    python -m bpttbench.bench.online_efficiency --stream      # chunked against one-shot
    python -m bpttbench.bench.online_efficiency --targets --json online_targets.json

One thread (every BLAS held to one with threadpoolctl, as in ``gated_efficiency``),
float64, B = 1, m = p = 1. Each round times, in turn, the roofs (a 512^3
``np.matmul`` GEMM and a 1024^2 GEMV), one forward pass of the leaky cell over
the T steps (``_online.cell_step``: the two products, tanh, readout) and one
call of every rule, so that all see the same load on a shared machine; the
figures are medians over the rounds, on the wall clock and on the process's CPU
clock (which other jobs disturb less).

Each call is timed twice in a row. The second time is the per-step figure: the
steady state of a long run, the call's data in cache. The first ("cold") comes
after the roofs and the other rules have evicted it, and also pays for bringing
the rule's buffers back (UORO at n = 64: ~0.2 ms a call). Both are stored; the
targets are read off the steady state. T is 2000 by default (the rules whose
steps take milliseconds run fewer, ``SHORT``): at T = 200 a call of an O(n^2)
rule at n = 64 lasts ~0.3 ms, and on the reference VM such short calls ran
10 to 15% slower after the roofs than back to back even when warm, UORO more
than the forward step, so the ratios moved with whatever ran before them.

A rule's rate (its exact FLOP count over the median time) is quoted against
both roofs; which one bounds it is printed below the table. The GEMV roof
streams an 8 MiB matrix from L3: a rule whose W_hh and state stay in L2 (the
GEMV-bound rules at n = 64 and 256) runs above it.

``--stream`` times each rule over T steps in one call and streamed in chunks
of 32, 64 and 128 steps (``bpttbench.stream``), interleaved, and prints the
streamed time's excess over the one-shot.

``--targets`` does both, and ``--json PATH`` stores what was measured: the
issue's performance targets (UORO and SnAp-1 within 3x of one forward step;
streaming at most 5% over the one-shot call for chunks of 32 steps or more)
are then read off that file by the report (``bench.online_targets``), not
typed in. The file sits beside the store (``reports/reference/``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import bpttbench
import numpy as np
from bpttbench import _online
from bpttbench._jit import jit
from bpttbench.bench.measure import run_metadata, set_threads
from threadpoolctl import threadpool_info, threadpool_limits

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
GEMM_SIZE, GEMV_SIZE = 512, 1024
RULES = ("uoro", "snap1", "rflo", "kf_rtrl", "r_kf", "snap2", "rtrl")
# Steps per call where T steps would take too long (seconds per step at n = 256).
SHORT = {"snap2": 8, "rtrl": 4}
BOUND = {  # which roof each rule's work meets, printed below the table
    "uoro": "GEMV + GEMM (W_hh h and W_hh s~ in one read; block GEMMs of 6 n r a step)",
    "snap1": "GEMV + GEMM (forward product; block GEMM of 4 n r a step)",
    "rflo": "GEMV + GEMM (forward product; block GEMM of 4 n r a step)",
    "kf_rtrl": "GEMM (W_hh K, n^3)",
    "r_kf": "GEMM (W_hh K, n^2 r)",
    "snap2": "GEMM (W_hh[S_k, S_k] J_k, density^2 n^4)",
    "rtrl": "GEMM (W_hh J, n^4)",
}


@jit
def _forward(xs, ys, W_ih, W_hh, b_h, W_out, b_out, h, h_new, d, c, e, g_W_out, g_b_out):
    loss = 0.0
    for t in range(xs.shape[0]):
        loss += _online.cell_step(
            xs[t], ys[t], W_ih, W_hh, b_h, W_out, b_out, 1.0, h, h_new, d, c, e, g_W_out, g_b_out
        )
        h[:] = h_new
    return loss


def forward(params, xs, ys):
    """T forward steps of the cell (with its readout), from h_0 = 0."""
    B, n, p = xs.shape[1], params.W_hh.shape[0], params.W_out.shape[0]
    buffers = [np.zeros((B, n)) for _ in range(4)]
    buffers += [np.zeros((B, p)), np.zeros_like(params.W_out), np.zeros_like(params.b_out)]
    return _forward(xs, ys, *params, *buffers)


def timed(call) -> dict[str, float]:
    start = {name: clock() for name, clock in CLOCKS.items()}
    call()
    return {name: clock() - start[name] for name, clock in CLOCKS.items()}


def roofs():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(GEMM_SIZE, GEMM_SIZE))
    out = np.empty_like(a)
    v = rng.normal(size=(GEMV_SIZE, GEMV_SIZE))
    x = rng.normal(size=GEMV_SIZE)
    y = np.empty(GEMV_SIZE)
    return {
        "gemm": (lambda: np.matmul(a, a, out=out), 2.0 * GEMM_SIZE**3),
        "gemv": (lambda: np.matmul(v, x, out=y), 2.0 * GEMV_SIZE**2),
    }


def problem(name, n, T):
    size = {"T": T, "B": 1, "n": n, "m": 1, "p": 1}
    return size, bpttbench.ALGORITHMS[name].make_problem(size, np.float64, 0)


def _calls(n: int, args) -> dict:
    """{key: (call, T, size)}: the forward pass and each rule at n (SHORT rules run fewer steps)."""
    size, fwd = problem("uoro", n, args.T)
    calls = {"forward": (lambda fwd=fwd: forward(*fwd), args.T, size)}
    for name in args.rules.split(","):
        T = min(args.T, SHORT.get(name, args.T)) if n > 128 or name == "rtrl" else args.T
        sz, prob = problem(name, n, T)
        spec = bpttbench.ALGORITHMS[name]
        calls[name] = (lambda spec=spec, prob=prob: spec.func(*prob), T, sz)
    return calls


def _rounds(peaks: dict, calls: dict, rounds: int) -> tuple[dict, dict]:
    """(medians {key: {clock: s}}, cold {key: s per step}) over interleaved rounds.

    Each round times the roofs, then each call twice in a row: the first time
    (cold, CPU clock) after the roofs and the other calls, the second with its data
    in cache (the medians, roofs included).
    """
    for call, _, _ in calls.values():
        call()  # compile or load, touch the buffers
    times = {key: {c: [] for c in CLOCKS} for key in (*peaks, *calls)}
    cold = {key: [] for key in calls}
    for _ in range(rounds):
        for key, (call, _) in peaks.items():
            for c, s in timed(call).items():
                times[key][c].append(s)
        for key, (call, _, _) in calls.items():
            cold[key].append(timed(call)["cpu"])
            for c, s in timed(call).items():
                times[key][c].append(s)
    med = {key: {c: float(np.median(v)) for c, v in t.items()} for key, t in times.items()}
    return med, {key: float(np.median(cold[key])) / calls[key][1] for key in calls}


def per_step(args) -> dict:
    """Print the per-step table; return {n: {rule: figures}} (CPU clock, medians)."""
    out: dict = {}
    peaks = roofs()
    for n in (int(v) for v in args.n.split(",")):
        calls = _calls(n, args)
        med, cold_step = _rounds(peaks, calls, args.rounds)
        rate = {roof: {c: fl / med[roof][c] for c in CLOCKS} for roof, (_, fl) in peaks.items()}
        print(
            f"n = {n}: GEMM {rate['gemm']['cpu'] / 1e9:.1f}, GEMV {rate['gemv']['cpu'] / 1e9:.1f}"
            f" GFLOP/s (cpu clock; wall {rate['gemm']['wall'] / 1e9:.1f}, "
            f"{rate['gemv']['wall'] / 1e9:.1f})"
        )
        print("  rule      us/step (cpu  wall  cold)  x forward (cold)  GFLOP/s  %GEMM  %GEMV")
        fwd_step = med["forward"]["cpu"] / args.T
        figures = out[str(n)] = {
            "gemm_gflops": rate["gemm"]["cpu"] / 1e9,
            "gemv_gflops": rate["gemv"]["cpu"] / 1e9,
            "forward_s_per_step": fwd_step,
            "forward_cold_s_per_step": cold_step["forward"],
            "rules": {},
        }
        for key, (_, T, sz) in calls.items():
            step = {c: med[key][c] / T for c in CLOCKS}
            if key == "forward":
                print(
                    f"  {'forward':8s} {step['cpu'] * 1e6:9.2f} {step['wall'] * 1e6:8.2f} "
                    f"{cold_step[key] * 1e6:8.2f}"
                )
                continue
            achieved = bpttbench.ALGORITHMS[key].flop_count(sz) / med[key]["cpu"]
            figures["rules"][key] = {
                "T": T,
                "s_per_step": step["cpu"],
                "x_forward": step["cpu"] / fwd_step,
                "cold_s_per_step": cold_step[key],
                "cold_x_forward": cold_step[key] / cold_step["forward"],
                "gflops": achieved / 1e9,
            }
            print(
                f"  {key:8s} {step['cpu'] * 1e6:9.2f} {step['wall'] * 1e6:8.2f} "
                f"{cold_step[key] * 1e6:8.2f} {step['cpu'] / fwd_step:9.2f} "
                f"{cold_step[key] / cold_step['forward']:7.2f} {achieved / 1e9:8.2f} "
                f"{100 * achieved / rate['gemm']['cpu']:6.1f} "
                f"{100 * achieved / rate['gemv']['cpu']:6.1f}"
            )
        print(flush=True)
    print("bounds: " + "; ".join(f"{k}: {v}" for k, v in BOUND.items()))
    return out


CHUNKS = (32, 64, 128)


def streaming(args) -> dict:
    """Print the streaming table; return {n: {rule: {chunk: streamed / one-shot - 1}}}."""
    out: dict = {}
    chunks = CHUNKS
    for n in (int(v) for v in args.n.split(",")):
        print(f"n = {n}, T = {args.T}: streamed time over one-shot time - 1 (cpu clock, medians)")
        print("  rule     " + "".join(f"  chunks of {c:3d}" for c in chunks))
        for name in args.rules.split(","):
            if name in SHORT and n > 128:
                continue
            _, (params, xs, ys) = problem(name, n, args.T)
            spec = bpttbench.ALGORITHMS[name]
            options = {"seed": 0} if name in ("uoro", "kf_rtrl", "r_kf") else {}

            def streamed(chunk, params=params, xs=xs, ys=ys, name=name, options=options):
                s = bpttbench.stream(name, params, B=1, **options)
                for t in range(0, xs.shape[0], chunk):
                    s.step(xs[t : t + chunk], ys[t : t + chunk])

            calls = {"one": lambda spec=spec, p=(params, xs, ys): spec.func(*p)}
            calls.update({c: (lambda c=c: streamed(c)) for c in chunks})
            for call in calls.values():
                call()
            times = {key: [] for key in calls}
            for _ in range(args.rounds):
                for key, call in calls.items():
                    times[key].append(timed(call)["cpu"])
            one = np.median(times["one"])
            excess = {str(c): float(np.median(times[c]) / one - 1) for c in chunks}
            out.setdefault(str(n), {})[name] = excess
            cells = "".join(f"  {100 * excess[str(c)]:+13.1f}%" for c in chunks)
            print(f"  {name:8s}{cells}", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default=",".join(RULES))
    parser.add_argument("--n", default="64,256")
    parser.add_argument("--T", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--stream", action="store_true", help="chunked against one-shot")
    parser.add_argument("--targets", action="store_true", help="per step and streamed, both")
    parser.add_argument("--json", type=Path, help="store the figures in this JSON file")
    args = parser.parse_args(argv)
    problem("uoro", 2, 1)  # load every BLAS the kernels call before limiting them
    np.dot(np.ones((2, 2)), np.ones((2, 2)))
    import scipy.linalg.cython_blas  # noqa: F401  (Numba's np.dot calls SciPy's BLAS)

    # One Numba thread too: RTRL's slabs and the batch blocks would otherwise run on
    # every core, and the CPU clock would count both (the figures are per thread).
    set_threads(1)
    with threadpool_limits(limits=1):
        threads = {lib["prefix"]: lib["num_threads"] for lib in threadpool_info()}
        assert set(threads.values()) == {1}, threads
        result: dict = {
            "T": args.T,
            "rounds": args.rounds,
            **run_metadata(),
            "clock": "cpu",
            "threads": 1,
            "dtype": "float64",
            "B": 1,
        }
        if args.stream or args.targets:
            result["stream"] = streaming(args)
        if not args.stream or args.targets:
            result["per_step"] = per_step(args)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
