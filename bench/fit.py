"""Exponent fits: OLS of log(metric) on log(size) over a model-chosen window, and verdicts.

For each algorithm, axis and metric (``time``: median seconds per call;
``memory``: tracemalloc peak bytes; ``flops``: the exact count, as a control)
the cells of one sweep (every other size, the dtype, thread counts and machine
fixed) are fitted by ordinary least squares of log(value) on log(size). The fit
window is chosen from the registry's analytic model, never from the
measurements: a size is in the window when the terms of the model's leading
power along the axis carry at least 90% of the total (the time model for time,
the FLOP model for flops, the memory model for memory). The 95% interval of the
slope comes from the t distribution with n - 2 degrees of freedom.

The time model (:func:`time_terms`) is the FLOP model at the GEMM rate plus the
weights a call reads whatever its batch (``spec.weight_reads``) at the GEMV
rate, both rates measured by the run (``balance`` = GEMM GFLOP/s / GEMV
GFLOP/s, ~2.8 on the reference machine): a read costs the time of 2 x balance
FLOPs. Every FLOP term of a kernel grows like B, but each product of B rows by
a weight matrix reads the matrix whatever B: at small B the products are GEMVs,
memory-bound, and the time per sequence falls as B grows. Along B, the B^1
terms carry 90% of this model only from B = 9 x 2 balance x reads / (FLOPs per
row): B >= 17 for BPTT (6 n^2 FLOPs and 2 n^2 reads a step), 25 for the MLP,
~1 for RTRL (its products have n P rows per sequence). Along T, n, k, depth and
width the reads carry the leading power or less, so those windows barely move.
The reads are a lower bound (once per product; BLAS packs and re-reads more),
so the window starts no later than the kernels' real B^0 work would start it:
a kernel whose time grows like B^0.8 where the rows lead still FAILs
(tests/test_fit.py).

Verdict (THEORY.md, "Measuring"), an equivalence test against the theoretical
exponent theta with margin delta (0.15 time, 0.1 memory and flops): PASS when
the whole interval lies inside theta +- delta, INCONCLUSIVE when the slope does
but the interval does not, FAIL otherwise. A window with fewer than
``MIN_POINTS`` sizes gives no slope: the result is INCONCLUSIVE with a note
saying so.

Time and memory are measured; the FLOP count is the registry's exact model, so
its fit checks the model's declared exponent and the fit window, not the
machine. Summaries (:func:`verdict_counts`, :func:`headline`) keep the two apart.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import bpttbench
import numpy as np
import pandas as pd
from bpttbench.costs import Term, leading_share, share_of_power
from scipy import stats

DELTA = {"time": 0.15, "memory": 0.10, "flops": 0.10}
METRICS = ("time", "memory", "flops")
MEASURED = ("time", "memory")  # the FLOP count is a model: its fit checks the model
VERDICTS = ("PASS", "INCONCLUSIVE", "FAIL")
METRIC_COLUMN = {"time": "median_s", "memory": "peak_bytes", "flops": "flops"}
LEADING_SHARE = 0.90
# GEMM over GEMV GFLOP/s where the runs recorded no peaks (the reference machine's ~2.8).
DEFAULT_BALANCE = 3.0
MIN_POINTS = 4
CONFIDENCE = 0.95
GROUP_EXTRA = ("dtype", "numba_threads", "blas_threads", "machine")


def size_columns(registry: Mapping) -> tuple[str, ...]:
    """Every size variable of the registry's algorithms, in registry order (the store's columns)."""
    return tuple(dict.fromkeys(v for spec in registry.values() for v in spec.sizes))


def text_sizes(registry: Mapping) -> tuple[str, ...]:
    """The categorical size variables (a text default, such as ``cell``), in registry order.

    A sweep holds each at one value and never moves it, so the fits treat every
    value as a sweep of its own (the GRU's BPTT is fitted apart from the Elman's).
    """
    return tuple(
        dict.fromkeys(
            v for spec in registry.values() for v, d in spec.sizes.items() if isinstance(d, str)
        )
    )


def size_value(value) -> int | str:
    """A stored size as the kernels take it: an int, or the text of a categorical size."""
    if isinstance(value, str):
        return value
    return int(value)


@dataclass
class FitResult:
    """One fitted exponent, and the cells it was fitted on.

    The sweep is the cells of ``algorithm`` along ``axis`` with the sizes
    ``fixed``, in ``dtype``, on ``machine`` with the thread counts given;
    ``sizes`` are its sizes along the axis, ``window`` those fitted and
    ``cells`` the full sizes of each fitted cell (see :func:`sweep_rows`).
    """

    algorithm: str
    axis: str
    metric: str
    slope: float
    ci_low: float
    ci_high: float
    theory: float
    verdict: str
    window: list[int]
    local_slopes: list[tuple[float, float]]
    n_points: int
    source: str
    delta: float = 0.0
    intercept: float = float("nan")
    dtype: str = "float64"
    fixed: dict[str, int | str] = field(default_factory=dict)  # text: a categorical size
    sizes: list[int] = field(default_factory=list)  # every measured size of the sweep
    note: str = ""
    machine: str | None = None
    numba_threads: int | None = None
    blas_threads: int | None = None
    cells: list[dict[str, int | str]] = field(default_factory=list)  # the fitted cells' sizes

    @property
    def cell(self) -> str | None:
        """The recurrent cell the sweep held (``"gru"``), None where it had no cell size."""
        cell = self.fixed.get("cell")
        return None if cell is None else str(cell)

    @property
    def label(self) -> str:
        """The algorithm's name, with a gated cell's in brackets: ``bptt[gru]``."""
        cell = self.cell
        return self.algorithm if cell in (None, "elman") else f"{self.algorithm}[{cell}]"

    @property
    def measured(self) -> bool:
        """A fit of a measurement (time, memory), not of the FLOP model."""
        return self.metric in MEASURED

    def as_dict(self) -> dict:
        """JSON-ready: NaN becomes null, tuples become lists."""
        d = asdict(self)
        d["local_slopes"] = [[_num(a), _num(b)] for a, b in self.local_slopes]
        for k in ("slope", "ci_low", "ci_high", "theory", "intercept"):
            d[k] = _num(d[k])
        return d


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def ols_slope(x: Sequence[float], y: Sequence[float], confidence: float = CONFIDENCE):
    """Slope, intercept and the two-sided ``confidence`` t-interval of the slope.

    With two points the line is exact and the interval is (NaN, NaN).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(x)
    if n < 2:
        raise ValueError("a slope needs at least 2 points")
    xm = x.mean()
    sxx = float(((x - xm) ** 2).sum())
    if sxx == 0:
        raise ValueError("all sizes are equal")
    slope = float(((x - xm) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * xm)
    if n == 2:
        return slope, intercept, math.nan, math.nan
    resid = y - (intercept + slope * x)
    s2 = float((resid**2).sum()) / (n - 2)
    se = math.sqrt(s2 / sxx)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * se
    return slope, intercept, slope - half, slope + half


def verdict(ci_low: float, slope: float, ci_high: float, theory: float, delta: float) -> str:
    """Equivalence test: PASS, INCONCLUSIVE or FAIL (see the module docstring)."""
    lo, hi = theory - delta, theory + delta
    eps = 1e-12
    if lo - eps <= ci_low and ci_high <= hi + eps:
        return "PASS"
    if lo - eps <= slope <= hi + eps:
        return "INCONCLUSIVE"
    return "FAIL"


def local_slopes(sizes: Sequence[float], values: Sequence[float]) -> list[tuple[float, float]]:
    """Slope between each pair of neighbouring sizes, at their geometric mean."""
    out = []
    pts = list(zip(sizes, values, strict=True))
    for (s0, v0), (s1, v1) in itertools.pairwise(pts):
        if s1 > s0 and v0 > 0 and v1 > 0:
            out.append((math.sqrt(s0 * s1), math.log(v1 / v0) / math.log(s1 / s0)))
    return out


def time_terms(spec, size: Mapping[str, int], balance: float = DEFAULT_BALANCE):
    """The time model in GEMM-rate FLOPs: the FLOP terms, plus each weight read at the GEMV rate.

    Reading a weight once (a GEMV's 2 FLOPs per entry at ``1 / balance`` of the GEMM
    rate) costs ``2 * balance`` FLOPs' time at the GEMM rate. The weight reads carry
    no B (a step reads its weights whatever the batch): along B they are the term
    that keeps a small batch off the B^1 power (see the module docstring).
    """
    terms = list(spec.flops(size))
    reads = getattr(spec, "weight_reads", None)
    if reads is not None:
        terms += [Term(2.0 * balance * t.value, t.powers) for t in reads(size)]
    return terms


def model_terms(
    spec, metric: str, size: Mapping[str, int], itemsize: int, balance: float = DEFAULT_BALANCE
):
    if metric == "memory":
        return spec.memory(size, itemsize)
    if metric == "time":
        return time_terms(spec, size, balance)
    return spec.flops(size)


def fit_window(
    spec,
    axis: str,
    metric: str,
    sizes: Sequence[Mapping[str, int]],
    itemsize: int,
    theory: float | None = None,
    threshold: float = LEADING_SHARE,
    balance: float = DEFAULT_BALANCE,
) -> list[bool]:
    """Which cells are in the fit window, from the analytic model alone.

    A cell is in when the model's terms of power ``theory`` along the axis
    carry at least ``threshold`` of its total: those terms then lead the model
    there. This also admits an exponent that holds only in a regime (BPTT's
    memory grows like n while the T n B states outweigh the n^2 weights).
    Without ``theory``, the highest power over the sweep is the one that must lead.
    """
    axis_vars = spec.axis_vars[axis]
    terms = [model_terms(spec, metric, s, itemsize, balance) for s in sizes]
    if not terms:
        return []
    if theory is None:
        theory = max(leading_share(t, axis_vars)[0] for t in terms)
    return [share_of_power(t, axis_vars, theory) >= threshold for t in terms]


def theory_for(spec, axis: str, metric: str):
    """The registry's exponent for (axis, metric); FLOPs fall back to the time exponent."""
    exp = _exponent(spec, axis, metric)
    if exp is None:
        return None
    if (axis, metric) not in spec.exponents:
        return exp.value, f"{exp.source} (time exponent, for the FLOP count)"
    return exp.value, exp.source


def _exponent(spec, axis: str, metric: str):
    exp = spec.exponents.get((axis, metric))
    if exp is None and metric == "flops":
        exp = spec.exponents.get((axis, "time"))
    return exp


def _sweeps(cells: pd.DataFrame, spec, axis: str) -> list[pd.DataFrame]:
    """Split one algorithm's cells on ``axis`` into sweeps (everything else fixed)."""
    moved = set(spec.axis_vars[axis])
    keys = [c for c in (*spec.sizes, *GROUP_EXTRA) if c in cells.columns and c not in moved]
    if not keys:
        return [cells]
    grouped = cells.groupby([cells[k].astype(str) for k in keys], sort=False, dropna=False)
    return [g for _, g in grouped]


def _rank(sweep: pd.DataFrame):
    """A sweep's claim to be reported: the most sizes, then the most recent."""
    return (sweep["size"].nunique(), str(sweep["created"].max()) if "created" in sweep else "")


def _pick(sweeps: list[pd.DataFrame]) -> pd.DataFrame:
    """The sweep to report: the most sizes, then the most recent."""
    return max(sweeps, key=_rank)


def _best_fit(spec, axis: str, metric: str, sweeps: list[pd.DataFrame]) -> FitResult | None:
    """The fit of the sweep with the most sizes in its window, then by :func:`_rank`.

    Sweeps of one axis may sit where different terms lead (checkpointed BPTT's slots
    lead its memory only where c n B outweighs the buffers): each metric is fitted
    where its model's leading term carries the most points.
    """
    fits = [(fit_sweep(spec, axis, metric, s), s) for s in sweeps]
    fits = [(r, s) for r, s in fits if r is not None]
    if not fits:
        return None
    return max(fits, key=lambda rs: (rs[0].n_points, _rank(rs[1])))[0]


def fit_sweep(spec, axis: str, metric: str, sweep: pd.DataFrame) -> FitResult | None:
    """Fit one metric of one sweep (cells of one algorithm and axis, all else fixed)."""
    th = theory_for(spec, axis, metric)
    if th is None:
        return None
    theory, source = th
    delta = DELTA[metric]
    sweep = sweep.sort_values("size").drop_duplicates("size", keep="last")
    dtype = str(sweep["dtype"].iloc[0])
    itemsize = np.dtype(dtype).itemsize
    size_cols = [v for v in spec.sizes if v in sweep.columns]
    sizes = [
        {v: size_value(r[v]) for v in size_cols if pd.notna(r[v])} for _, r in sweep.iterrows()
    ]
    moved = set(spec.axis_vars[axis])
    fixed = {k: v for k, v in sizes[0].items() if k not in moved} if sizes else {}
    xs = [int(s) for s in sweep["size"]]
    ys = [float(v) if pd.notna(v) else float("nan") for v in sweep[METRIC_COLUMN[metric]]]
    # The window is where the terms carrying the exponent lead (Exponent.window_power).
    window_power = getattr(_exponent(spec, axis, metric), "window_power", theory)
    in_window = fit_window(
        spec, axis, metric, sizes, itemsize, float(window_power), balance=sweep_balance(sweep)
    )
    usable = [w and y > 0 and math.isfinite(y) for w, y in zip(in_window, ys, strict=True)]
    window = [x for x, u in zip(xs, usable, strict=True) if u]
    notes = []
    dropped = sum(1 for w, u in zip(in_window, usable, strict=True) if w and not u)
    if dropped:
        notes.append(f"{dropped} point(s) in the window had no positive {metric} value")
    result = FitResult(
        algorithm=spec.name,
        axis=axis,
        metric=metric,
        slope=float("nan"),
        ci_low=float("nan"),
        ci_high=float("nan"),
        theory=float(theory),
        verdict="INCONCLUSIVE",
        window=window,
        local_slopes=local_slopes(xs, ys),
        n_points=len(window),
        source=source,
        delta=delta,
        dtype=dtype,
        fixed=fixed,
        sizes=xs,
        cells=[s for s, u in zip(sizes, usable, strict=True) if u],
        **_config(sweep),
    )
    if len(window) < MIN_POINTS or len(set(window)) < 2:
        notes.insert(
            0,
            f"no fit: {len(window)} of {len(xs)} sizes in the window, where the model's "
            f"terms of power {theory:g} carry >= {LEADING_SHARE:.0%} (need {MIN_POINTS})",
        )
        result.note = "; ".join(notes)
        return result
    wy = [y for y, u in zip(ys, usable, strict=True) if u]
    slope, intercept, lo, hi = ols_slope(np.log(window), np.log(wy))
    result.slope, result.intercept, result.ci_low, result.ci_high = slope, intercept, lo, hi
    result.verdict = verdict(lo, slope, hi, float(theory), delta)
    span = max(window) / min(window)
    if len(window) < 8 or span < 8:
        notes.append(f"{len(window)} points spanning {span:.1f}x (8 over a decade recommended)")
    result.note = "; ".join(notes)
    return result


PEAK_COLUMNS = ("gemm_gflops", "gemv_gflops")


def sweep_balance(sweep: pd.DataFrame) -> float:
    """GEMM over GEMV GFLOP/s of the runs that measured ``sweep`` (their medians), or
    :data:`DEFAULT_BALANCE` where the frame carries no peaks (see :func:`with_peaks`)."""
    if not all(c in sweep.columns for c in PEAK_COLUMNS):
        return DEFAULT_BALANCE
    gemm, gemv = (pd.to_numeric(sweep[c], errors="coerce") for c in PEAK_COLUMNS)
    ok = (gemm > 0) & (gemv > 0)
    if not ok.any():
        return DEFAULT_BALANCE
    return float(gemm[ok].median() / gemv[ok].median())


def with_peaks(cells: pd.DataFrame, runs: pd.DataFrame | None) -> pd.DataFrame:
    """``cells`` with the GEMM and GEMV GFLOP/s that each cell's run measured (``runs``)."""
    if runs is None or "run_id" not in cells.columns or any(c in cells for c in PEAK_COLUMNS):
        return cells
    if not all(c in runs.columns for c in ("run_id", *PEAK_COLUMNS)):
        return cells
    peaks = runs[["run_id", *PEAK_COLUMNS]].drop_duplicates("run_id")
    return cells.merge(peaks, on="run_id", how="left", validate="many_to_one").set_axis(cells.index)


def _config(sweep: pd.DataFrame) -> dict:
    """The machine and thread counts a sweep was measured with, where the frame has them."""
    out: dict = {}
    for col in ("machine", "numba_threads", "blas_threads"):
        if col in sweep.columns and pd.notna(sweep[col].iloc[0]):
            v = sweep[col].iloc[0]
            out[col] = str(v) if col == "machine" else int(v)
    return out


def sweep_rows(cells: pd.DataFrame, fit: FitResult) -> pd.DataFrame:
    """The rows of ``cells`` in the sweep ``fit`` was fitted on, one per size (the latest)."""
    mask = (cells["algorithm"] == fit.algorithm) & (cells["axis"] == fit.axis)
    if "dtype" in cells.columns:
        mask &= cells["dtype"].astype(str) == fit.dtype
    for col, want in {
        "machine": fit.machine,
        "numba_threads": fit.numba_threads,
        "blas_threads": fit.blas_threads,
        **fit.fixed,
    }.items():
        if want is None or col not in cells.columns:
            continue
        if isinstance(want, str):
            mask &= cells[col].astype(str) == want
        else:  # size and thread columns may be floats (NaN where a variable does not apply)
            mask &= pd.to_numeric(cells[col], errors="coerce") == float(want)
    rows = cells[mask & cells["size"].isin(fit.sizes)]
    return rows.sort_values(["size", "created"]).drop_duplicates("size", keep="last")


def fit_table(
    cells_df: pd.DataFrame, registry: Mapping | None = None, runs: pd.DataFrame | None = None
) -> list[FitResult]:
    """Fit every (algorithm, axis, metric) with data and a theoretical exponent.

    ``cells_df`` is :func:`bpttbench.bench.store.load_cells`' frame; only ``status == 'ok'``
    cells are used. ``runs`` (:func:`~bpttbench.bench.store.load_runs`) gives each cell its
    run's measured GEMM and GEMV rates for the time model (:func:`time_terms`); without
    it the time windows take :data:`DEFAULT_BALANCE`. Each machine and each dtype is
    fitted on its own; where one algorithm and axis has several sweeps there (other
    fixed sizes or thread counts), each metric is fitted on the sweep with the most sizes in its fit
    window, then the most sizes, then the most recent.
    """
    if registry is None:
        registry = bpttbench.ALGORITHMS
    if cells_df is None or len(cells_df) == 0:
        return []
    df = with_peaks(cells_df, runs)
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    results: list[FitResult] = []
    order = {name: i for i, name in enumerate(registry)}
    by = ["algorithm", "axis", "dtype", *(["machine"] if "machine" in df.columns else [])]
    # One fit per value of a categorical size (each cell): never one sweep across cells.
    by += [c for c in text_sizes(registry) if c in df.columns]
    for (name, axis, *_), part in sorted(
        df.groupby(by, sort=False, dropna=False),
        key=lambda kv: (order.get(kv[0][0], len(order)), *(str(k) for k in kv[0][1:])),
    ):
        spec = registry.get(name)
        if spec is None or axis not in spec.axis_vars:
            continue
        sweeps = _sweeps(part, spec, axis)
        for metric in METRICS:
            res = _best_fit(spec, axis, metric, sweeps)
            if res is not None:
                results.append(res)
    return results


def verdict_counts(results: Sequence[FitResult], measured: bool = True) -> dict[str, int]:
    """``{"PASS": .., "INCONCLUSIVE": .., "FAIL": .., "total": ..}`` of the measured fits
    (time and memory), or with ``measured=False`` of the FLOP-model checks."""
    chosen = [r for r in results if r.measured == measured]
    counts = {v: sum(r.verdict == v for r in chosen) for v in VERDICTS}
    counts["total"] = len(chosen)
    return counts


def headline(results: Sequence[FitResult]) -> str:
    """One line: the measured exponents' verdicts, then the FLOP-model check apart."""
    m, f = verdict_counts(results), verdict_counts(results, measured=False)
    line = (
        f"{m['PASS']} of {m['total']} measured time and memory exponents PASS "
        f"({m['INCONCLUSIVE']} INCONCLUSIVE, {m['FAIL']} FAIL)"
    )
    if f["total"]:
        line += f"; model check, FLOP counts: {f['PASS']} of {f['total']} PASS"
    return line


def format_table(results: Sequence[FitResult]) -> str:
    """The exponent table as aligned text: measured fits, then the FLOP-model checks apart."""
    head = (
        f"{'algorithm':10s} {'axis':6s} {'metric':7s} {'slope':>7s} {'95% interval':>17s} "
        f"{'theory':>10s} {'verdict':12s} window"
    )
    lines = [head, "-" * len(head)]
    many = len({r.machine for r in results}) > 1  # then each line names its machine
    lines += [_table_line(r, many) for r in results if r.measured]
    checks = [_table_line(r, many) for r in results if not r.measured]
    if checks:
        lines += ["", "model check (exact FLOP counts, not measured):", *checks]
    return "\n".join(lines)


def _table_line(r: FitResult, machine: bool = False) -> str:
    if math.isfinite(r.slope):
        slope = f"{r.slope:7.3f}"
        ci = f"[{r.ci_low:6.3f}, {r.ci_high:6.3f}]"
    else:
        slope, ci = f"{'-':>7s}", f"{'-':>17s}"
    win = f"{min(r.window)}..{max(r.window)} ({r.n_points} pts)" if r.window else "(empty)"
    th = f"{r.theory:g}+-{r.delta:g}"
    line = (
        f"{r.label:10s} {r.axis:6s} {r.metric:7s} {slope} {ci:>17s} {th:>10s} {r.verdict:12s} {win}"
    )
    line += f"  [{r.machine}]" if machine else ""
    return f"{line}  # {r.note}" if r.note else line
