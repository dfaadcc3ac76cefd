"""Sweep planning, presets, the budget guard, and the loop that measures and stores cells.

A sweep moves one size variable (an *axis*) over a geometric grid with the
others fixed. A *grid* is a list of such axis sweeps plus timing settings; the
``quick`` and ``full`` presets are grids, and a TOML file holds a custom one in
the same shape::

    [settings]                 # all optional
    dtype = "float64"
    min_time = 0.3             # seconds of timed rounds per cell
    round_time = 0.005         # a round lasts at least this long
    min_rounds = 5
    visits = 3                 # time each cell in 3 visits spread over the sweep
    max_cell_seconds = 60
    seed = 0                   # cell order is shuffled with this seed

    [fixed.rnn]                # optional: defaults for every recurrent sweep
    m = 1
    p = 1

    [[sweep]]
    algorithm = "bptt"
    axis = "T"
    geometric = [16, 4096, 9]  # start, stop, points; or: values = [16, 32, ...]
    multiple = 1               # optional: round the geometric sizes to multiples of this
    fixed = { n = 64, B = 1 }

Cells of all sweeps are shuffled together (seeded), so slow drifts of the
machine spread over every axis instead of bending one slope.

Budget guard: before a cell runs, its predicted memory (the registry's model)
and predicted time (scaled by FLOPs from the nearest measured cell of the same
algorithm) are checked against the limits; a cell over budget is skipped with
a printed line and recorded as ``skipped`` with the reason.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import sys
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import numpy as np
from bpttbench.bench import BenchError, store
from bpttbench.bench.fmt import seconds as fmt_seconds
from bpttbench.bench.measure import TimingSettings, available_memory

MIN_FIT_POINTS = 4
DTYPES = ("float64", "float32")
SETTING_KEYS = {
    "dtype",
    "min_time",
    "round_time",
    "min_rounds",
    "max_rounds",
    "max_cell_seconds",
    "seed",
    "visits",
}


def geometric(start: int, stop: int, points: int, multiple: int = 1) -> list[int]:
    """``points`` integers spaced geometrically from ``start`` to ``stop`` (duplicates dropped).

    With ``multiple``, each is rounded to the nearest multiple of it (at least
    ``multiple``): matrix sizes that are multiples of the SIMD width keep BLAS
    on its fast paths, so the efficiency does not jump from one size to the next.
    """
    if points < 1 or start < 1 or stop < start or multiple < 1:
        raise BenchError(
            f"bad geometric grid [{start}, {stop}, {points}]: need 1 <= start <= stop, points >= 1"
        )
    if points == 1:
        return [int(start)]
    vals = np.geomspace(start, stop, points)
    return sorted({max(multiple, multiple * int(np.rint(v / multiple))) for v in vals})


# --- presets -------------------------------------------------------------------------
# A preset is timing settings plus, for every algorithm in the registry, the axis
# sweeps its spec declares under the preset's name (AlgorithmSpec.presets): the sizes
# and why they were chosen live beside each algorithm in the registry.
PRESET_SETTINGS: dict[str, dict] = {
    "quick": {
        "min_time": 0.3,
        "round_time": 0.005,
        "min_rounds": 6,
        "visits": 3,
        "max_cell_seconds": 30,
    },
    "full": {
        "min_time": 8.0,
        "round_time": 0.02,
        "min_rounds": 8,
        "visits": 4,
        "max_cell_seconds": 180,
    },
}


def preset_grid(name: str, registry: Mapping) -> dict:
    """The preset ``name`` as a grid: its settings and every algorithm's sweeps for it."""
    sweeps = [
        sweep.as_grid(algorithm)
        for algorithm, spec in registry.items()
        for sweep in spec.presets.get(name, ())
    ]
    return {"settings": dict(PRESET_SETTINGS.get(name, {})), "sweep": sweeps}


# --- plans ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AxisSweep:
    algorithm: str
    axis: str
    values: tuple[int, ...]
    fixed: Mapping[str, int]


@dataclass(frozen=True)
class Cell:
    algorithm: str
    axis: str
    value: int
    size: Mapping[str, int]
    dtype: str

    def label(self) -> str:
        rest = " ".join(f"{k}={v}" for k, v in self.size.items() if k not in ("m", "p"))
        return f"{self.algorithm} {self.axis}={self.value} [{rest}]"


@dataclass
class Plan:
    name: str
    sweeps: list[AxisSweep]
    timing: TimingSettings = field(default_factory=TimingSettings)
    dtype: str = "float64"
    seed: int = 0
    max_cell_seconds: float = 60.0
    visits: int = 1

    def cells(self, registry: Mapping, shuffle: int = 0) -> list[Cell]:
        """Every cell of the plan, shuffled with the plan's seed (and ``shuffle``, per pass)."""
        out = [
            Cell(s.algorithm, s.axis, v, cell_size(registry[s.algorithm], s, v), self.dtype)
            for s in self.sweeps
            for v in s.values
        ]
        random.Random(f"{self.seed}/{shuffle}").shuffle(out)
        return out


def spec_axes(spec) -> tuple[str, ...]:
    """The axes an algorithm can be swept on: those with a theoretical exponent.

    (Recurrent algorithms share one axis table; only truncated BPTT has
    exponents along ``k``, so only it takes k1 and k2.)
    """
    axes = {axis for axis, _ in spec.exponents}
    return tuple(a for a in spec.axis_vars if a in axes) or tuple(spec.axis_vars)


def size_vars(spec) -> tuple[str, ...]:
    """The size variables an algorithm takes (its spec's sizes)."""
    return tuple(spec.sizes)


def cell_size(spec, sweep: AxisSweep, value: int) -> dict[str, int]:
    size = {v: sweep.fixed[v] for v in size_vars(spec)}
    for v in spec.axis_vars[sweep.axis]:
        size[v] = int(value)
    return size


def _positive_int(x: object, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or x != int(x) or x < 1:
        raise BenchError(f"{what} must be a positive integer, got {x!r}")
    return int(x)


def _check_keys(d: Mapping, allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise BenchError(f"unknown key(s) {', '.join(unknown)} in {where}")


def parse_grid(grid: Mapping, registry: Mapping, source: str) -> Plan:
    """Validate a grid (preset dict or parsed TOML) and turn it into a :class:`Plan`."""
    if not isinstance(grid, Mapping):
        raise BenchError(f"{source}: a grid is a table with [[sweep]] entries")
    _check_keys(grid, ("settings", "fixed", "sweep"), source)
    settings = dict(grid.get("settings", {}))
    _check_keys(settings, SETTING_KEYS, f"{source} [settings]")
    family_fixed = grid.get("fixed", {})
    if not isinstance(family_fixed, Mapping):
        raise BenchError(f"{source}: [fixed] must be a table like [fixed.rnn]")
    _check_keys(family_fixed, {spec.family for spec in registry.values()}, f"{source} [fixed]")
    raw = grid.get("sweep")
    if not raw:
        raise BenchError(f"{source}: the grid has no [[sweep]] entries")
    if not isinstance(raw, list):
        raise BenchError(f"{source}: 'sweep' must be an array of tables ([[sweep]])")

    sweeps = []
    for i, s in enumerate(raw, 1):
        where = f"{source} sweep #{i}"
        if not isinstance(s, Mapping):
            raise BenchError(f"{where}: must be a table")
        _check_keys(s, ("algorithm", "axis", "values", "geometric", "multiple", "fixed"), where)
        name = s.get("algorithm")
        if name not in registry:
            raise BenchError(
                f"{where}: unknown algorithm {name!r} (known: {', '.join(sorted(registry))})"
            )
        spec = registry[name]
        axis = s.get("axis")
        if axis not in spec_axes(spec):
            raise BenchError(
                f"{where}: {name} has no axis {axis!r} (axes: {', '.join(spec_axes(spec))})"
            )
        values = _sweep_values(s, where)
        fixed = dict(spec.sizes)
        fixed.update(_fixed_sizes(family_fixed.get(spec.family, {}), spec, f"{where} fixed"))
        fixed.update(_fixed_sizes(s.get("fixed", {}), spec, f"{where} fixed"))
        sweeps.append(AxisSweep(name, axis, tuple(values), fixed))

    plan = Plan(name=source, sweeps=sweeps)
    return apply_settings(plan, settings, source)


def _sweep_values(s: Mapping, where: str) -> list[int]:
    if ("values" in s) == ("geometric" in s):
        raise BenchError(
            f"{where}: give exactly one of values = [...] or geometric = [start, stop, points]"
        )
    if "geometric" in s:
        g = s["geometric"]
        if not isinstance(g, list) or len(g) != 3:
            raise BenchError(f"{where}: geometric must be [start, stop, points]")
        start, stop, points = (_positive_int(x, f"{where} geometric") for x in g)
        multiple = _positive_int(s.get("multiple", 1), f"{where} multiple")
        values = geometric(start, stop, points, multiple)
    else:
        v = s["values"]
        if not isinstance(v, list) or not v:
            raise BenchError(f"{where}: values must be a non-empty list of sizes")
        values = sorted({_positive_int(x, f"{where} value") for x in v})
    if len(values) < MIN_FIT_POINTS:
        raise BenchError(
            f"{where}: {len(values)} distinct size(s) {values}; a fit needs at least "
            f"{MIN_FIT_POINTS} (8 or more spanning a decade for a verdict)"
        )
    return values


def _fixed_sizes(d: object, spec, where: str) -> dict[str, int]:
    if not isinstance(d, Mapping):
        raise BenchError(f"{where}: must be a table of size = value")
    allowed = size_vars(spec)
    _check_keys(d, allowed, f"{where} ({spec.name} takes {', '.join(allowed)})")
    return {k: _positive_int(v, f"{where} {k}") for k, v in d.items()}


def apply_settings(plan: Plan, settings: Mapping, source: str) -> Plan:
    """Overlay ``[settings]`` (or command-line flags) on a plan, validating each value."""
    timing = plan.timing
    for key, val in settings.items():
        if val is None:
            continue
        if key == "dtype":
            if val not in DTYPES:
                raise BenchError(f"{source}: dtype must be one of {', '.join(DTYPES)}, got {val!r}")
            plan = replace(plan, dtype=val)
        elif key == "seed":
            if isinstance(val, bool) or not isinstance(val, int):
                raise BenchError(f"{source}: seed must be an integer, got {val!r}")
            plan = replace(plan, seed=val)
        elif key in ("min_rounds", "max_rounds"):
            timing = replace(timing, **{key: _positive_int(val, f"{source} {key}")})
        elif key == "visits":
            plan = replace(plan, visits=_positive_int(val, f"{source} visits"))
        elif key in ("min_time", "round_time", "max_cell_seconds"):
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not val > 0:
                raise BenchError(f"{source}: {key} must be a positive number, got {val!r}")
            if key == "max_cell_seconds":
                plan = replace(plan, max_cell_seconds=float(val))
            else:
                timing = replace(timing, **{key: float(val)})
    if timing.max_rounds < timing.min_rounds:
        raise BenchError(f"{source}: max_rounds must be >= min_rounds")
    return replace(plan, timing=timing)


def preset_names(registry: Mapping) -> list[str]:
    """Presets with settings, then any other preset name a spec declares."""
    named = {p for spec in registry.values() for p in spec.presets}
    return [*PRESET_SETTINGS, *sorted(named - set(PRESET_SETTINGS))]


def preset_plan(name: str, registry: Mapping) -> Plan:
    if name not in preset_names(registry):
        known = ", ".join(preset_names(registry))
        raise BenchError(f"unknown preset {name!r} (presets: {known})")
    grid = preset_grid(name, registry)
    if not grid["sweep"]:
        raise BenchError(f"preset {name!r}: no algorithm in the registry has sweeps for it")
    plan = parse_grid(grid, registry, f"preset {name}")
    return replace(plan, name=name)


def load_grid_file(path: str | Path, registry: Mapping) -> Plan:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise BenchError(f"cannot read grid file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BenchError(f"grid file {path} is not UTF-8 text") from None
    try:
        grid = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"TOML error in {path}: {exc}") from None
    plan = parse_grid(grid, registry, path.name)
    return replace(plan, name=f"grid:{path.name}")


def restrict(
    plan: Plan,
    registry: Mapping,
    algorithms: Sequence[str] | None = None,
    axes: Sequence[str] | None = None,
    points: Mapping[str, list[int]] | None = None,
    fixed: Mapping[str, int] | None = None,
) -> Plan:
    """Apply the command line's filters and overrides to a plan."""
    sweeps = list(plan.sweeps)
    if algorithms:
        unknown = [a for a in algorithms if a not in registry]
        if unknown:
            raise BenchError(
                f"unknown algorithm {unknown[0]!r} (known: {', '.join(sorted(registry))})"
            )
        sweeps = [s for s in sweeps if s.algorithm in algorithms]
    if axes:
        known = {a for spec in registry.values() for a in spec_axes(spec)}
        unknown = [a for a in axes if a not in known]
        if unknown:
            raise BenchError(f"unknown axis {unknown[0]!r} (axes: {', '.join(sorted(known))})")
        sweeps = [s for s in sweeps if s.axis in axes]
    if not sweeps:
        raise BenchError(f"{plan.name}: no sweep left for the chosen algorithms and axes")
    for axis, values in (points or {}).items():
        if not any(s.axis == axis for s in sweeps):
            raise BenchError(f"--points {axis}=...: no sweep in the plan moves axis {axis!r}")
        if len(values) < MIN_FIT_POINTS:
            raise BenchError(
                f"--points {axis}: {len(values)} distinct size(s); a fit needs at least "
                f"{MIN_FIT_POINTS}"
            )
        sweeps = [replace(s, values=tuple(values)) if s.axis == axis else s for s in sweeps]
    for var, value in (fixed or {}).items():
        used = False
        new = []
        for s in sweeps:
            spec = registry[s.algorithm]
            if var in size_vars(spec) and var not in spec.axis_vars[s.axis]:
                s = replace(s, fixed={**s.fixed, var: value})
                used = True
            new.append(s)
        if not used:
            raise BenchError(f"--fixed {var}={value}: no sweep in the plan has {var!r} fixed")
        sweeps = new
    return replace(plan, sweeps=sweeps)


def parse_points(spec: str) -> tuple[str, list[int]]:
    """``T=16:4096:9`` (geometric start:stop:points) or ``T=16,64,256,1024``."""
    axis, sep, rest = spec.partition("=")
    if not sep or not axis or not rest:
        raise BenchError(f"--points {spec!r}: expected AXIS=START:STOP:POINTS or AXIS=V1,V2,...")
    try:
        if ":" in rest:
            parts = [int(x) for x in rest.split(":")]
            if len(parts) != 3:
                raise ValueError
            return axis, geometric(*parts)
        values = [int(x) for x in rest.split(",") if x.strip()]
    except ValueError:
        raise BenchError(f"--points {spec!r}: sizes must be integers") from None
    if not values or any(v < 1 for v in values):
        raise BenchError(f"--points {spec!r}: sizes must be positive integers")
    return axis, sorted(set(values))


def parse_fixed(spec: str) -> tuple[str, int]:
    var, sep, rest = spec.partition("=")
    try:
        value = int(rest)
    except ValueError:
        value = 0
    if not sep or not var or value < 1:
        raise BenchError(f"--fixed {spec!r}: expected VAR=POSITIVE_INTEGER, e.g. n=64")
    return var, value


def parse_bytes(text: str) -> int:
    """``4GiB``, ``512M``, ``2.5GB``, ``1e9`` -> bytes (K/M/G/T and KiB.. are powers of 1024)."""
    s = text.strip().upper().replace(" ", "")
    units = {"": 1, "B": 1}
    for i, p in enumerate("KMGT", 1):
        units[p] = units[p + "IB"] = 1024**i
        units[p + "B"] = 1000**i
    num = s.rstrip("KMGTIB")
    unit = s[len(num) :]
    try:
        value = float(num) * units[unit]
    except (ValueError, KeyError):
        raise BenchError(f"--max-memory {text!r}: expected bytes like 4GiB, 512M or 2e9") from None
    if not value > 0:
        raise BenchError(f"--max-memory {text!r}: must be positive")
    return int(value)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# --- budget guard --------------------------------------------------------------------


def predicted_cell_seconds(call_s: float, timing: TimingSettings, visits: int = 1) -> float:
    """Wall time of a cell whose call takes ``call_s``: per visit a warm-up and a
    calibration call, then the rounds, and one memory pass."""
    return (2 * visits + 1) * call_s + max(timing.min_time, timing.min_rounds * call_s)


def predict_call_seconds(
    spec, size: Mapping[str, int], refs: Sequence[Mapping]
) -> tuple[float, Mapping] | None:
    """Scale the measured call time of the cell nearest in FLOPs by the FLOP ratio."""
    if not refs:
        return None
    flops = spec.flop_count(size)
    if not flops > 0:
        return None
    ref = min(refs, key=lambda r: abs(math.log(flops / r["flops"])))
    return ref["median_s"] * flops / ref["flops"], ref


def budget_check(
    spec,
    cell: Cell,
    refs: Sequence[Mapping],
    max_memory: float,
    max_cell_seconds: float,
    timing: TimingSettings,
    visits: int = 1,
) -> str | None:
    """The reason a cell is over budget, or None if it may run."""
    itemsize = np.dtype(cell.dtype).itemsize
    mem = spec.memory_bytes(cell.size, itemsize)
    if mem > max_memory:
        return f"predicted memory {fmt_bytes(mem)} > limit {fmt_bytes(max_memory)} (--max-memory)"
    pred = predict_call_seconds(spec, cell.size, refs)
    if pred is not None:
        call_s, _ref_cell = pred
        cell_s = predicted_cell_seconds(call_s, timing, visits)
        if cell_s > max_cell_seconds:
            return (
                f"predicted {fmt_seconds(cell_s)} for the cell ({fmt_seconds(call_s)} per call, "
                f"scaled by FLOPs from a measured cell) > limit {fmt_seconds(max_cell_seconds)} "
                f"(--max-cell-seconds)"
            )
    return None


# --- progress ------------------------------------------------------------------------


class Progress:
    """One status line on stderr: visits done/total, the current cell, time left.

    On a terminal the line is rewritten in place; in a log (not a terminal) a
    line is written at most every ``log_every`` seconds.
    """

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        enabled: bool = True,
        log_every: float = 10.0,
    ):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.measured = 0
        self.spent = 0.0
        self.log_every = log_every
        self._last_log = -math.inf
        self._width = 0

    def eta(self) -> float:
        if self.measured == 0:
            return float("nan")
        return self.spent / self.measured * (self.total - self.done)

    def start(self, cell: Cell, note: str = "") -> None:
        if not self.enabled:
            return
        pct = 100.0 * self.done / max(self.total, 1)
        bar_n = 20
        filled = int(bar_n * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (bar_n - filled)
        line = (
            f"[{bar}] {self.done}/{self.total} {pct:3.0f}%  left {fmt_seconds(self.eta())}  "
            f"{cell.label()}" + (f" {note}" if note else "")
        )
        if self.tty:
            pad = max(self._width - len(line), 0)
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            t = time.monotonic()
            if t - self._last_log < self.log_every:
                return
            self._last_log = t
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, seconds: float | None) -> None:
        self.done += 1
        if seconds is not None:
            self.measured += 1
            self.spent += seconds

    def say(self, message: str) -> None:
        """A line of its own (a skipped cell, an error), not overwritten by the bar."""
        if self.tty:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(message + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


# --- the sweep loop ------------------------------------------------------------------


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
    """Measure every cell of ``plan`` not already in the store.

    Each cell is timed in ``plan.visits`` visits, made in as many passes over
    the cells, each pass in its own shuffled order: a slow spell of the machine
    (another program on the sibling core, say) then falls on one visit of a
    cell, not on all of it, and the median over all rounds stays clean. Every
    visit is stored as it is made; the cell row is written with its last visit.

    Cells finished earlier (same key: sizes, dtype, threads, machine) are
    skipped unless ``remeasure``; visits made by an interrupted sweep count. An
    interrupt (Ctrl-C) propagates after the visits finished so far are saved;
    rerunning the same command resumes.
    """
    from bpttbench.bench.measure import (
        combine,
        machine_peak,
        measure_visit,
        run_metadata,
        set_threads,
        visit_settings,
    )

    if registry is None:
        import bpttbench

        registry = bpttbench.ALGORITHMS
    stream = stream if stream is not None else sys.stderr
    t_start = time.perf_counter()
    if max_memory is None:
        max_memory = available_memory() / 2
    n_visits = plan.visits
    per_visit = visit_settings(plan.timing, n_visits)

    conn = store.connect(db_path, registry)
    try:
        numba_threads, blas_threads = set_threads(threads)
        single = numba_threads == 1 and blas_threads == 1
        meta = run_metadata()
        gemm = gemv = None
        if measure_peak:
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
        machine = meta["machine"]

        def key(c: Cell) -> str:
            return store.cell_key(
                c.algorithm, c.axis, c.size, c.dtype, numba_threads, blas_threads, machine
            )

        cells = plan.cells(registry)
        done_keys = set() if remeasure else store.finished_keys(conn)
        pending = {key(c): c for c in cells if key(c) not in done_keys}
        made = {} if remeasure else store.load_visits(conn, set(pending))
        summary = SweepSummary(run_id=run_id, total=len(cells), resumed=len(cells) - len(pending))
        refs = [
            r
            for r in store.ok_cells(conn)
            if r["dtype"] == plan.dtype
            and r["machine"] == machine
            and r["numba_threads"] == numba_threads
            and r["blas_threads"] == blas_threads
        ]
        for k, vs in made.items():  # visits of unfinished cells also predict times
            c = pending[k]
            for v in vs.values():
                refs.append(_ref(registry[c.algorithm], c, v["samples"]))

        passes = [
            [
                c
                for c in plan.cells(registry, p)
                if key(c) in pending and p + 1 not in made.get(key(c), {})
            ]
            for p in range(n_visits)
        ]
        bar = Progress(sum(len(p) for p in passes), stream, enabled=progress)
        if summary.resumed or made:
            partial = sum(len(v) for v in made.values())
            bar.say(
                f"resuming: {summary.resumed} of {len(cells)} cells already in {db_path}"
                + (f", and {partial} visits to unfinished cells" if partial else "")
            )
        dropped: set[str] = set()  # skipped or failed: no further visits
        for p, todo in enumerate(passes, 1):
            for cell in todo:
                k = key(cell)
                if k in dropped:
                    bar.finish(None)
                    continue
                spec = registry[cell.algorithm]
                bar.start(cell, f"visit {p}/{n_visits}" if n_visits > 1 else "")
                row = {
                    "cell_key": k,
                    "run_id": run_id,
                    "algorithm": cell.algorithm,
                    "axis": cell.axis,
                    "size": cell.value,
                    **{v: cell.size.get(v) for v in conn.sizes},
                    "dtype": cell.dtype,
                    "numba_threads": numba_threads,
                    "blas_threads": blas_threads,
                    "machine": machine,
                }
                if p == 1 or 1 not in made.get(k, {}):
                    alg_refs = [r for r in refs if r["algorithm"] == cell.algorithm]
                    reason = budget_check(
                        spec,
                        cell,
                        alg_refs,
                        max_memory,
                        plan.max_cell_seconds,
                        plan.timing,
                        n_visits,
                    )
                    if reason is not None:
                        bar.say(f"skip {cell.label()}: {reason}")
                        store.write_cell(
                            conn, {**row, "status": "skipped", "reason": reason, "created": now()}
                        )
                        summary.skipped += 1
                        dropped.add(k)
                        bar.finish(None)
                        continue
                t0 = time.perf_counter()
                try:
                    visit = measure_visit(
                        spec,
                        cell.size,
                        cell.dtype,
                        plan.seed,
                        per_visit,
                        single,
                        memory=p == 1
                        or not any(
                            v.get("peak_bytes") is not None for v in made.get(k, {}).values()
                        ),
                    )
                except Exception as exc:  # a kernel failing on one cell must not end the sweep
                    reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
                    bar.say(f"error {cell.label()}: {reason}")
                    store.write_cell(
                        conn, {**row, "status": "error", "reason": reason, "created": now()}
                    )
                    summary.errors += 1
                    dropped.add(k)
                    bar.finish(time.perf_counter() - t0)
                    continue
                made.setdefault(k, {})[p] = visit
                refs.append(_ref(spec, cell, visit["samples"]))
                cell_row = None
                if all(i in made[k] for i in range(1, n_visits + 1)):
                    res = combine(
                        [made[k][i] for i in range(1, n_visits + 1)], spec, cell.size, cell.dtype
                    )
                    res.pop("samples", None)
                    eff = res["gflops"] / gemm if gemm else None
                    cell_row = {
                        **row,
                        **res,
                        "status": "ok",
                        "reason": None,
                        "efficiency": eff,
                        "created": now(),
                    }
                    summary.measured += 1
                store.write_visit(
                    conn,
                    {"cell_key": k, "visit": p, "run_id": run_id, **visit, "created": now()},
                    cell_row,
                )
                bar.finish(time.perf_counter() - t0)
        bar.close()
        store.finish_run(conn, run_id, now())
    finally:
        conn.close()
    summary.seconds = time.perf_counter() - t_start
    return summary


def _ref(spec, cell: Cell, samples: Sequence[float]) -> dict:
    """A measured point for the budget guard's time prediction."""
    return {
        "algorithm": cell.algorithm,
        "flops": spec.flop_count(cell.size),
        "median_s": float(np.median(samples)),
    }


def describe(plan: Plan, registry: Mapping) -> str:
    """The plan as text (``bpttbench sweep --dry-run``)."""
    lines = [
        f"plan {plan.name}: dtype {plan.dtype}, seed {plan.seed}, "
        f"min_time {plan.timing.min_time} s, round_time {plan.timing.round_time} s, "
        f"min_rounds {plan.timing.min_rounds}, visits {plan.visits}, "
        f"max_cell_seconds {plan.max_cell_seconds}"
    ]
    for s in plan.sweeps:
        spec = registry[s.algorithm]
        fixed = {
            k: v
            for k, v in s.fixed.items()
            if k in size_vars(spec) and k not in spec.axis_vars[s.axis]
        }
        lines.append(
            f"  {s.algorithm:9s} {s.axis:6s} {list(s.values)}  fixed "
            + " ".join(f"{k}={v}" for k, v in fixed.items())
        )
    lines.append(f"  {sum(len(s.values) for s in plan.sweeps)} cells")
    return "\n".join(lines)


def to_toml(plan: Plan, registry: Mapping) -> str:
    """The plan as a TOML grid (``bpttbench sweep --dump-grid``): edit it, pass it to --grid."""
    t = plan.timing
    lines = [
        f"# bpttbench grid, from {plan.name}",
        "[settings]",
        f'dtype = "{plan.dtype}"',
        f"seed = {plan.seed}",
        f"min_time = {t.min_time!r}",
        f"round_time = {t.round_time!r}",
        f"min_rounds = {t.min_rounds}",
        f"max_rounds = {t.max_rounds}",
        f"visits = {plan.visits}",
        f"max_cell_seconds = {plan.max_cell_seconds!r}",
    ]
    for s in plan.sweeps:
        spec = registry[s.algorithm]
        fixed = ", ".join(
            f"{k} = {v}"
            for k, v in s.fixed.items()
            if k in size_vars(spec) and k not in spec.axis_vars[s.axis]
        )
        lines += [
            "",
            "[[sweep]]",
            f'algorithm = "{s.algorithm}"',
            f'axis = "{s.axis}"',
            f"values = [{', '.join(str(v) for v in s.values)}]",
            f"fixed = {{ {fixed} }}",
        ]
    return "\n".join(lines) + "\n"
