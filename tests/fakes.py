"""A synthetic algorithm registry with known exponents, for the harness's own tests.

``make_registry()`` returns specs shaped like ``bpttbench.ALGORITHMS`` entries
whose "kernels" are cheap NumPy calls: ``fake_rnn`` allocates a (T, n, B)
buffer (memory exponent 1 in T and n) and its FLOP model is ``2 T n^2 B`` plus
a lower-order ``c T n B`` term, so the fit window along n is known in closed
form; ``fake_mlp`` does the same for depth and width; ``fake_online`` holds
an (n, n, B) state whatever T is, so its memory exponent in T is 0. ``fail_after`` makes a
spec raise ``KeyboardInterrupt`` from the k-th problem on, to simulate a
killed sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from bpttbench.costs import AlgorithmSpec, Exponent, Term
from bpttbench.registry import MLP_SIZES, RNN_SIZES

LOWER = 40.0  # coefficient of the lower-order T n B term of fake_rnn's FLOP model


@dataclass(frozen=True)
class FakeSpec(AlgorithmSpec):
    """A spec that says what its make_problem allocates (the budget guard reads it)."""

    problem_arrays: Callable | None = None


def _rnn_arrays(s):
    return [s["T"] * s["n"] * s["B"]]


def _mlp_arrays(s):
    return [s["depth"] * s["width"] * s["B"]]


def _rnn_flops(s):
    T, n, B = s["T"], s["n"], s["B"]
    return [
        Term(2.0 * T * n * n * B, {"T": 1, "n": 2, "B": 1}),
        Term(LOWER * T * n * B, {"T": 1, "n": 1, "B": 1}),
    ]


def _rnn_memory(s, itemsize):
    T, n, B = s["T"], s["n"], s["B"]
    return [Term(float(T * n * B * itemsize), {"T": 1, "n": 1, "B": 1})]


def _mlp_flops(s):
    L, w, B = s["depth"], s["width"], s["B"]
    return [Term(2.0 * L * w * w * B, {"depth": 1, "width": 2, "B": 1})]


def _mlp_memory(s, itemsize):
    L, w, B = s["depth"], s["width"], s["B"]
    return [Term(float(L * w * B * itemsize), {"depth": 1, "width": 1, "B": 1})]


def _online_flops(s):
    T, n, B = s["T"], s["n"], s["B"]
    return [Term(2.0 * T * n * n * B, {"T": 1, "n": 2, "B": 1})]


def _online_memory(s, itemsize):
    n, B = s["n"], s["B"]
    return [Term(float(n * n * B * itemsize), {"n": 2, "B": 1})]


def _online_func(buf):
    n, B = buf.shape[1], buf.shape[2]
    state = np.ones((n, n, B), dtype=buf.dtype)  # held whatever T is: memory flat in T
    return float(state.sum() + buf.sum()), state


def _rnn_func(buf):
    out = np.empty_like(buf)
    np.tanh(buf, out=out)
    return float(out.sum()), out


def make_registry(fail_after: int | None = None, counter: list | None = None) -> dict:
    """Fake registry; with ``fail_after=k`` the (k+1)-th make_problem raises KeyboardInterrupt."""
    calls = counter if counter is not None else [0]

    def make_rnn(size, dtype, seed):
        calls[0] += 1
        if fail_after is not None and calls[0] > fail_after:
            raise KeyboardInterrupt
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((size["T"], size["n"], size["B"])).astype(dtype),)

    def make_mlp(size, dtype, seed):
        calls[0] += 1
        if fail_after is not None and calls[0] > fail_after:
            raise KeyboardInterrupt
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((size["depth"], size["width"], size["B"])).astype(dtype),)

    src = "synthetic"
    rnn = FakeSpec(
        name="fake_rnn",
        title="Fake RNN",
        family="rnn",
        func=_rnn_func,
        make_problem=make_rnn,
        flops=_rnn_flops,
        memory=_rnn_memory,
        exponents={
            ("T", "time"): Exponent(1, src),
            ("n", "time"): Exponent(2, src),
            ("T", "memory"): Exponent(1, src),
            ("n", "memory"): Exponent(1, src),
            ("T", "flops"): Exponent(1, src),
            ("n", "flops"): Exponent(2, src),
        },
        axis_vars={"T": ("T",), "n": ("n",), "B": ("B",)},
        sizes=RNN_SIZES,
        problem_arrays=_rnn_arrays,
    )
    mlp = FakeSpec(
        name="fake_mlp",
        title="Fake MLP",
        family="mlp",
        func=_rnn_func,
        make_problem=make_mlp,
        flops=_mlp_flops,
        memory=_mlp_memory,
        exponents={
            ("depth", "time"): Exponent(1, src),
            ("width", "time"): Exponent(2, src),
            ("depth", "memory"): Exponent(1, src),
        },
        axis_vars={"depth": ("depth",), "width": ("width",), "B": ("B",)},
        sizes=MLP_SIZES,
        problem_arrays=_mlp_arrays,
    )
    online = FakeSpec(
        name="fake_online", title="Fake online", family="rnn", func=_online_func,
        make_problem=make_rnn, flops=_online_flops, memory=_online_memory,
        exponents={
            ("T", "time"): Exponent(1, src), ("n", "time"): Exponent(2, src),
            ("T", "memory"): Exponent(0, src), ("n", "memory"): Exponent(2, src),
        },
        axis_vars={"T": ("T",), "n": ("n",), "B": ("B",)}, sizes=RNN_SIZES,
        problem_arrays=_rnn_arrays,
    )  # fmt: skip
    return {"fake_rnn": rnn, "fake_mlp": mlp, "fake_online": online}


# --- stores and processes for the store's own tests -----------------------------------

FAST = {"min_time": 1e-3, "round_time": 1e-4, "min_rounds": 2}


def tiny_grid(visits: int = 1, values=(4, 8, 16, 32)) -> dict:
    """A grid of the fake registry: fake_rnn along T and fake_mlp along width."""
    return {
        "settings": {**FAST, "visits": visits},
        "sweep": [
            {"algorithm": "fake_rnn", "axis": "T", "values": list(values), "fixed": {"n": 8}},
            {"algorithm": "fake_mlp", "axis": "width", "geometric": [4, 32, 4]},
        ],
    }


def make_store(path, visits: int = 2) -> None:
    """A store holding one finished sweep of :func:`tiny_grid` (8 cells, their visits)."""
    from bpttbench.bench import sweep

    reg = make_registry()
    plan = sweep.parse_grid(tiny_grid(visits), reg, "test")
    sweep.run_sweep(plan, path, reg, measure_peak=False, progress=False)


def assert_consistent(path, registry=None) -> int:
    """Check a store as a reader would trust it; return the number of measured cells.

    SQLite's integrity check passes; no cell is stored twice; every measured cell has the visits
    it counts, numbered 1..visits, and its statistics are those of those visits.
    """
    import json

    from bpttbench.bench import store
    from bpttbench.bench.measure import combine

    registry = registry or make_registry()
    conn = store.open_readonly(path)  # as the harness reads: a killed write's journal rolls back
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = [k for (k,) in conn.execute("SELECT cell_key FROM cells")]
        assert len(keys) == len(set(keys)), "a cell is stored twice"
        cur = conn.execute("SELECT * FROM cells WHERE status = 'ok'")
        names = [d[0] for d in cur.description]
        cells = [dict(zip(names, row, strict=True)) for row in cur]
        for cell in cells:
            rows = conn.execute(
                "SELECT visit, samples, first_call_s, calls_per_round, disturbed_rounds, "
                "peak_bytes FROM visits WHERE cell_key = ? ORDER BY visit",
                (cell["cell_key"],),
            ).fetchall()
            assert [r[0] for r in rows] == list(range(1, cell["visits"] + 1)), cell["cell_key"]
            visits = [
                {"samples": json.loads(r[1]), "first_call_s": r[2], "calls_per_round": r[3],
                 "disturbed_rounds": r[4], "peak_bytes": r[5]}
                for r in rows
            ]  # fmt: skip
            spec = registry[cell["algorithm"]]
            size = {v: cell[v] for v in spec.sizes}
            want = combine(visits, spec, size, cell["dtype"])
            for col in ("median_s", "q25_s", "q75_s", "rounds", "first_call_s"):
                assert cell[col] == want[col], (cell["cell_key"], col, cell[col], want[col])
        return len(cells)
    finally:
        conn.close()


def create_store_worker(paths, barrier, results) -> None:
    """Open each new store at the same moment as a sibling process; report failures."""
    from bpttbench.bench import store

    failures = []
    for path in paths:
        barrier.wait()
        try:
            store.connect(path).close()
        except Exception as exc:  # the test counts every failure, BenchError included
            failures.append(f"{type(exc).__name__}: {exc}")
    results.put(failures)


def sweep_worker(path, visits, barrier, results) -> None:
    """Sweep :func:`tiny_grid` into ``path`` at the same moment as a sibling process."""
    from bpttbench.bench import BenchError, sweep

    reg = make_registry()
    plan = sweep.parse_grid(tiny_grid(visits), reg, "test")
    barrier.wait()
    try:
        summary = sweep.run_sweep(plan, path, reg, measure_peak=False, progress=False)
    except BenchError as exc:
        results.put(("refused", str(exc)))
    else:
        results.put(("swept", summary.measured))
