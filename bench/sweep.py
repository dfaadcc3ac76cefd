"""The sweep loop: measure every cell of a plan that the results store does not hold yet.

Each cell is timed in ``plan.visits`` visits, made in as many passes over the
cells, each pass in its own shuffled order: a slow spell of the machine
(another program on the sibling core, say) then falls on one visit of a cell,
not on all of it, and the median over all rounds stays clean. Cells of all
sweeps are shuffled together (seeded), so slow drifts of the machine spread
over every axis instead of bending one slope. Every visit is stored as it is
made; the cell row is written with its last visit, from the visits as stored.

Before a cell's first visit the budget guard (``bench.budget``) checks its
predicted memory and time; a cell over budget is skipped with a printed line
and recorded as ``skipped`` with the reason.

A sweep holds the store's writer lease while it runs (``bench.lease``): a second
sweep on the same store is refused, and a killed sweep's lease is taken over
when the same command is run again, which resumes it.

The rest of the harness lives beside this module: planning in ``bench.grid``,
the guard in ``bench.budget``, the progress line in ``bench.progress``. The
planning names this module used to define (``parse_grid``, ``preset_plan``,
``restrict``, ...) are imported here, so ``sweep.parse_grid`` keeps working.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bpttbench.bench import store
from bpttbench.bench.budget import (  # noqa: F401 - re-exported for callers of sweep
    budget_check,
    cell_bytes,
    parse_bytes,
    predict_call_seconds,
    predicted_cell_seconds,
    reference,
)
from bpttbench.bench.fmt import nbytes as fmt_bytes  # noqa: F401
from bpttbench.bench.fmt import seconds as fmt_seconds  # noqa: F401
from bpttbench.bench.grid import (  # noqa: F401 - re-exported for callers of sweep
    DTYPES,
    MIN_FIT_POINTS,
    PRESET_SETTINGS,
    AxisSweep,
    Cell,
    Plan,
    apply_settings,
    cell_size,
    describe,
    geometric,
    load_grid_file,
    parse_fixed,
    parse_grid,
    parse_points,
    preset_grid,
    preset_names,
    preset_plan,
    restrict,
    size_vars,
    spec_axes,
    to_toml,
)
from bpttbench.bench.measure import TimingSettings, available_memory
from bpttbench.bench.progress import Progress


@dataclass
class SweepSummary:
    run_id: int
    total: int
    resumed: int = 0
    measured: int = 0
    skipped: int = 0
    errors: int = 0
    seconds: float = 0.0


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class _Run:
    """One sweep under way: what it measures, where it writes, and what is left."""

    plan: Plan
    registry: Mapping
    conn: store.StoreConnection
    run_id: int
    threads: tuple[int, int]  # (Numba, BLAS) in effect
    machine: str
    gemm: float | None
    max_memory: float
    per_visit: TimingSettings
    bar: Progress | None = None
    summary: SweepSummary | None = None
    made: dict[str, dict[int, dict]] = field(default_factory=dict)  # visits by cell key
    refs: list[dict] = field(default_factory=list)  # measured points for the time guard
    dropped: set[str] = field(default_factory=set)  # skipped or failed: no further visits
    fresh: set[str] = field(default_factory=set)  # remeasured: old visits go at the first write

    def key(self, c: Cell) -> str:
        return store.cell_key(c.algorithm, c.axis, c.size, c.dtype, *self.threads, self.machine)

    def row(self, cell: Cell) -> dict:
        """The columns of a cell row that say what was measured."""
        return {
            "cell_key": self.key(cell),
            "run_id": self.run_id,
            "algorithm": cell.algorithm,
            "axis": cell.axis,
            "size": cell.value,
            **{v: cell.size.get(v) for v in self.conn.sizes},
            "dtype": cell.dtype,
            "numba_threads": self.threads[0],
            "blas_threads": self.threads[1],
            "machine": self.machine,
        }


def run_sweep(
    plan: Plan,
    db_path: str | Path = "bpttbench.sqlite",
    registry: Mapping | None = None,
    threads: int | None = 1,
    max_memory: float | None = None,
    remeasure: bool = False,
    progress: bool = True,
    stream: TextIO | None = None,
    measure_peak: bool = True,
    argv: Sequence[str] | None = None,
) -> SweepSummary:
    """Measure every cell of ``plan`` not already in the store (module docstring).

    Cells finished earlier (same key: sizes, dtype, threads, machine) are
    skipped unless ``remeasure``; visits made by an interrupted sweep count. An
    interrupt (Ctrl-C) propagates after the visits finished so far are saved;
    rerunning the same command resumes.
    """
    if registry is None:
        import bpttbench

        registry = bpttbench.ALGORITHMS
    t_start = time.perf_counter()
    if max_memory is None:
        max_memory = available_memory() / 2
    conn = store.connect(db_path, registry)
    try:
        store.acquire_lease(conn)
        try:
            run = _begin(plan, conn, registry, threads, max_memory, measure_peak, argv)
            passes = _plan_passes(run, remeasure, progress, stream, db_path)
            for p, todo in enumerate(passes, 1):
                for cell in todo:
                    _visit(run, cell, p)
            run.bar.close()
            store.finish_run(conn, run.run_id, now())
        finally:
            store.release_lease(conn)
    finally:
        conn.close()
    run.summary.seconds = time.perf_counter() - t_start
    return run.summary


def _begin(plan, conn, registry, threads, max_memory, measure_peak, argv) -> _Run:
    """Pin the threads, time the machine's peaks, and write the run row."""
    from bpttbench.bench.measure import machine_peak, run_metadata, set_threads, visit_settings

    numba_threads, blas_threads = set_threads(threads)
    meta = run_metadata()
    gemm = gemv = None
    if measure_peak:
        single = numba_threads == 1 and blas_threads == 1
        gemm, gemv = machine_peak(plan.dtype, check_cpu=single)
    run_id = store.begin_run(
        conn,
        {
            "started": now(),
            **meta,
            "numba_threads": numba_threads,
            "blas_threads": blas_threads,
            "preset": plan.name,
            "gemm_gflops": gemm,
            "gemv_gflops": gemv,
            "argv": json.dumps(list(argv) if argv is not None else sys.argv[1:]),
        },
    )
    return _Run(
        plan=plan,
        registry=registry,
        conn=conn,
        run_id=run_id,
        threads=(numba_threads, blas_threads),
        machine=meta["machine"],
        gemm=gemm,
        max_memory=max_memory,
        per_visit=visit_settings(plan.timing, plan.visits),
    )


def _plan_passes(run: _Run, remeasure: bool, progress: bool, stream, db_path) -> list[list]:
    """What is left to do, pass by pass; the stored visits and cells it starts from."""
    cells = run.plan.cells(run.registry)
    done = set() if remeasure else store.finished_keys(run.conn)
    pending = {run.key(c): c for c in cells if run.key(c) not in done}
    run.made = {} if remeasure else store.load_visits(run.conn, set(pending))
    run.fresh = set(pending) if remeasure else set()
    run.summary = SweepSummary(run.run_id, total=len(cells), resumed=len(cells) - len(pending))
    run.refs = [
        r
        for r in store.ok_cells(run.conn)
        if (r["dtype"], r["machine"], r["numba_threads"], r["blas_threads"])
        == (run.plan.dtype, run.machine, *run.threads)
    ]
    for k, vs in run.made.items():  # visits of unfinished cells also predict times
        c = pending[k]
        run.refs += [reference(run.registry[c.algorithm], c, v["samples"]) for v in vs.values()]
    passes = [
        [
            c
            for c in run.plan.cells(run.registry, p)
            if run.key(c) in pending and p + 1 not in run.made.get(run.key(c), {})
        ]
        for p in range(run.plan.visits)
    ]
    run.bar = Progress(sum(len(p) for p in passes), stream, enabled=progress)
    if run.summary.resumed or run.made:
        partial = sum(len(v) for v in run.made.values())
        run.bar.say(
            f"resuming: {run.summary.resumed} of {len(cells)} cells already in {db_path}"
            + (f", and {partial} visits to unfinished cells" if partial else "")
        )
    return passes


def _visit(run: _Run, cell: Cell, p: int) -> None:
    """Make visit ``p`` to ``cell``: the budget guard first, then measure and store it."""
    from bpttbench.bench.measure import measure_visit

    k = run.key(cell)
    if k in run.dropped:
        run.bar.finish(None)
        return
    spec = run.registry[cell.algorithm]
    n_visits = run.plan.visits
    run.bar.start(cell, f"visit {p}/{n_visits}" if n_visits > 1 else "")
    stored = run.made.get(k, {})
    if 1 not in stored:
        reason = budget_check(
            spec,
            cell,
            [r for r in run.refs if r["algorithm"] == cell.algorithm],
            run.max_memory,
            run.plan.max_cell_seconds,
            run.plan.timing,
            n_visits,
        )
        if reason is not None:
            _drop(run, cell, "skipped", reason)
            run.summary.skipped += 1
            run.bar.finish(None)
            return
    t0 = time.perf_counter()
    try:
        visit = measure_visit(
            spec,
            cell.size,
            cell.dtype,
            run.plan.seed,
            run.per_visit,
            run.threads == (1, 1),
            memory=not any(v.get("peak_bytes") is not None for v in stored.values()),
        )
    except Exception as exc:  # a kernel failing on one cell must not end the sweep
        _drop(run, cell, "error", f"{type(exc).__name__}: {exc}".splitlines()[0][:500])
        run.summary.errors += 1
        run.bar.finish(time.perf_counter() - t0)
        return
    run.made.setdefault(k, {})[p] = visit
    run.refs.append(reference(spec, cell, visit["samples"]))
    written = store.write_visit(
        run.conn,
        {"cell_key": k, "visit": p, "run_id": run.run_id, **visit, "created": now()},
        finish=lambda visits: _cell_row(run, cell, visits),
        fresh=_first_write(run, k),
    )
    if written is not None:
        run.summary.measured += 1
    run.bar.finish(time.perf_counter() - t0)


def _drop(run: _Run, cell: Cell, status: str, reason: str) -> None:
    """Record a cell as skipped or failed; it gets no further visits in this sweep."""
    word = "skip" if status == "skipped" else "error"
    run.bar.say(f"{word} {cell.label()}: {reason}")
    k = run.key(cell)
    row = {**run.row(cell), "status": status, "reason": reason, "created": now()}
    store.write_cell(run.conn, row, fresh=_first_write(run, k))
    run.dropped.add(k)


def _first_write(run: _Run, key: str) -> bool:
    """Whether this is the first write of a remeasured cell (its old visits go)."""
    if key in run.fresh:
        run.fresh.discard(key)
        return True
    return False


def _cell_row(run: _Run, cell: Cell, visits: Mapping[int, Mapping]) -> dict | None:
    """The finished cell's row from its stored visits, or None while some are missing."""
    from bpttbench.bench.measure import combine

    numbers = range(1, run.plan.visits + 1)
    if not all(i in visits for i in numbers):
        return None
    spec = run.registry[cell.algorithm]
    res = combine([visits[i] for i in numbers], spec, cell.size, cell.dtype)
    res.pop("samples", None)
    return {
        **run.row(cell),
        **res,
        "status": "ok",
        "reason": None,
        "efficiency": res["gflops"] / run.gemm if run.gemm else None,
        "created": now(),
    }
