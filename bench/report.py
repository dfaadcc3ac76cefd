"""The report: charts (PNG and SVG) and report.md from the results store and pytest-benchmark JSON.

``bpttbench report [--db PATH] [--benchmark-json FILE ...] [--out DIR]`` writes

    DIR/report.md         Markdown that renders on GitHub; images linked relatively
    DIR/charts/*.png|svg  one pair per chart

Sources. The results store (``bpttbench.bench.store``) gives the measured cells and the
run metadata; the charts use one consistent slice of it: the machine, thread
counts and dtype with the most successful cells (other slices are counted in
the report, not mixed in). Exponent fits come from ``bpttbench.bench.fit.fit_table`` on
that slice, the analytic models from the registry ``bpttbench.ALGORITHMS``.
pytest-benchmark JSON files (``--benchmark-json``, or ``--benchmark-autosave``
output) are a second source: their time charts, and a ratio per benchmark when
two or more files are given (the first is the baseline).

Bad input never stops the report: a missing or empty database, a file that is
not pytest-benchmark JSON, or too few points for a chart each give one line on
stderr and a line in the report's "Skipped" section, and every chart that can
be drawn is drawn.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from bpttbench.bench import DEFAULT_DB, BenchError
from bpttbench.bench import charts as ch

SIZE_VARS = ("T", "n", "B", "m", "p", "k1", "k2", "depth", "width")
AXES = ("T", "n", "B", "k", "depth", "width")
CONFIG_COLUMNS = ("machine", "numba_threads", "blas_threads", "dtype")
CHART_DIR = "charts"
# Files in CHART_DIR that this module writes; stale ones are removed on each build.
_OUR_CHARTS = re.compile(
    r"^(time_vs_\w+|memory_vs_\w+|exponents|cost_grid|memory_boundary|efficiency|other_axes"
    r"|peers|bench_time_vs_\w+|bench_compare)\.(png|svg)$"
)
MAX_COMPARE_ROWS = 80


class Skip(Exception):
    """A chart (or a whole source) cannot be drawn; the message says why."""


class NoSource(Skip):
    """A chart's source could not be read; that was already said once, so it is not echoed."""


# --- the registry --------------------------------------------------------------------


def _default_registry() -> tuple[dict, str]:
    """``bpttbench.ALGORITHMS`` and an empty note, or an empty dict and why it is missing."""
    try:
        import bpttbench

        return dict(bpttbench.ALGORITHMS), ""
    except (ImportError, AttributeError) as exc:
        return {}, f"the algorithm registry bpttbench.ALGORITHMS is unavailable ({exc})"


def _title(registry: Mapping, name: str) -> str:
    spec = registry.get(name)
    return getattr(spec, "title", None) or name.upper()


def _axis_vars(registry: Mapping, name: str, axis: str) -> tuple[str, ...]:
    spec = registry.get(name)
    if spec is not None and axis in getattr(spec, "axis_vars", {}):
        return tuple(spec.axis_vars[axis])
    return ("k1", "k2") if axis == "k" else (axis,)


def _order(registry: Mapping, names: Iterable[str]) -> list[str]:
    """Algorithms in registry order, unknown names after them alphabetically."""
    rank = {n: i for i, n in enumerate(registry)}
    return sorted(set(names), key=lambda n: (rank.get(n, len(rank)), n))


# --- source 1: the results store -------------------------------------------------------


@dataclass
class StoreData:
    """The slice of the store the charts use, with its fits and run metadata."""

    cells: pd.DataFrame  # every status, one configuration
    runs: pd.DataFrame  # the runs those cells came from
    config: dict  # machine, numba_threads, blas_threads, dtype
    fits: dict  # (algorithm, axis, metric) -> FitResult
    footer: str
    notes: list[str] = field(default_factory=list)  # for "About the data"
    all_cells: pd.DataFrame | None = None

    @property
    def ok(self) -> pd.DataFrame:
        return self.cells[self.cells["status"] == "ok"]


def load_store(db_path: str | Path, registry: Mapping) -> StoreData:
    """Read the store, choose the slice to chart, fit it. Raises Skip with a reason."""
    from bpttbench.bench import store

    name = Path(db_path).name
    try:
        cells = store.load_cells(db_path)
        runs = store.load_runs(db_path)
    except BenchError as exc:  # name the file as the user gave it, not its full path
        raise Skip(str(exc).replace(str(Path(db_path).resolve()), str(db_path))) from None
    if cells.empty:
        raise Skip(f"{name} holds no measured cells yet (run `bpttbench sweep` first)")
    ok = cells[cells["status"] == "ok"]
    if ok.empty:
        counts = cells["status"].value_counts().to_dict()
        raise Skip(f"no cell in {name} was measured successfully ({_counts_text(counts)})")
    keys = [c for c in CONFIG_COLUMNS if c in ok.columns]
    config_of = row_keys(ok, keys)
    ranked = sorted(
        ((len(g), str(g["created"].max()), cfg) for cfg, g in ok.groupby(config_of)),
        reverse=True,
    )
    chosen = ranked[0][2]
    in_slice = row_keys(cells, keys) == chosen
    part = cells[in_slice].copy()
    config = {k: part[k].iloc[0] for k in keys}
    data = StoreData(
        cells=part,
        runs=runs[runs["run_id"].isin(part["run_id"].unique())],
        config=config,
        fits={},
        footer="",
        all_cells=cells,
    )
    others = len(ranked) - 1
    if others:
        left = int((~in_slice & (cells["status"] == "ok")).sum())
        data.notes.append(
            f"{left} measured cells in {others} other configuration(s) (machine, thread counts "
            f"or dtype) are in the store but not charted, so that every chart compares like "
            f"with like."
        )
    data.footer = _store_footer(data.runs, config)
    try:
        from bpttbench.bench.fit import fit_table

        data.fits = {(f.algorithm, f.axis, f.metric): f for f in fit_table(part, registry)}
    except Exception as exc:  # a fit failure must not cost the charts
        data.notes.append(f"Exponent fits failed: {type(exc).__name__}: {exc}")
    return data


def row_keys(df: pd.DataFrame, cols: Sequence[str]) -> pd.Series:
    """One string per row joining the values of ``cols`` (missing values as 'nan')."""
    keys = ["|".join(str(v) for v in row) for row in df[list(cols)].itertuples(index=False)]
    return pd.Series(keys, index=df.index, dtype=object)


def _store_footer(runs: pd.DataFrame, config: Mapping) -> str:
    if runs.empty:
        return f"machine {config.get('machine')}"
    r = runs.sort_values("run_id").iloc[-1]
    ids = sorted(runs["run_id"].astype(int))
    run_text = f"run {ids[0]}" if len(ids) == 1 else f"runs {ids[0]}-{ids[-1]}"
    commit = str(r.get("commit") or "unknown")[:10]
    parts = [
        f"machine {r.get('machine')} ({r.get('cpu')})",
        f"Numba threads {_int(config.get('numba_threads'))}, "
        f"BLAS threads {_int(config.get('blas_threads'))}",
        f"{config.get('dtype')}",
        f"Python {r.get('python')}, Numba {r.get('numba')}, NumPy {r.get('numpy')}, "
        f"SciPy {r.get('scipy')}",
        f"commit {commit}",
        f"{run_text}, started {str(r.get('started'))[:16]}",
    ]
    return "bpttbench · " + " · ".join(parts)


def _int(v) -> str:
    """A count that pandas may have turned into a float: 2.0 -> '2'."""
    try:
        return str(int(v))
    except (TypeError, ValueError):
        return str(v)


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"


# --- sweeps: the cells of one algorithm along one axis, everything else fixed ----------


def pick_sweep(ok: pd.DataFrame, registry: Mapping, alg: str, axis: str, fit=None) -> pd.DataFrame:
    """The sweep to chart: the one the fit used, else the one with the most sizes."""
    part = ok[(ok["algorithm"] == alg) & (ok["axis"] == axis)]
    if part.empty:
        return part
    moved = set(_axis_vars(registry, alg, axis))
    fixed_cols = [v for v in SIZE_VARS if v in part.columns and v not in moved]
    key = row_keys(part, fixed_cols) if fixed_cols else None
    groups = [g for _, g in part.groupby(key)] if key is not None else [part]
    chosen = None
    if fit is not None and getattr(fit, "fixed", None):
        for g in groups:
            first = g.iloc[0]
            if all(
                pd.notna(first.get(k)) and int(first[k]) == int(v)
                for k, v in fit.fixed.items()
                if k in g.columns
            ):
                chosen = g
                break
    if chosen is None:
        chosen = max(groups, key=lambda g: (g["size"].nunique(), str(g["created"].max())))
    return chosen.sort_values(["size", "created"]).drop_duplicates("size", keep="last")


def fixed_sizes(sweep: pd.DataFrame, moved: Iterable[str]) -> dict[str, int]:
    """Size variables held fixed in a sweep (those with one value)."""
    out = {}
    for v in SIZE_VARS:
        if v in moved or v not in sweep.columns:
            continue
        vals = sweep[v].dropna().unique()
        if len(vals) == 1:
            out[v] = int(vals[0])
    return out


def sizes_text(sizes: Mapping[str, int]) -> str:
    """``{'n': 32, 'B': 1, 'm': 8, 'p': 8}`` -> ``'n=32, B=1, m=p=8'``."""
    parts, done = [], set()
    for a, b in (("m", "p"), ("k1", "k2")):
        if a in sizes and b in sizes and sizes[a] == sizes[b]:
            done |= {a, b}
    for v in SIZE_VARS:
        if v not in sizes or (v in done and v in ("p", "k2")):
            continue
        if v in ("m", "k1") and v in done:
            parts.append(f"{v}={'p' if v == 'm' else 'k2'}={sizes[v]}")
        else:
            parts.append(f"{v}={sizes[v]}")
    return ", ".join(parts)


def _size_dict(row: Mapping) -> dict[str, int]:
    return {v: int(row[v]) for v in SIZE_VARS if v in row and pd.notna(row[v])}


# --- chart data: scaling series --------------------------------------------------------


METRIC_COLUMN = {"time": "median_s", "memory": "peak_bytes"}


def fit_label(fit) -> str:
    """The legend's second line: fitted slope, interval, theory and verdict."""
    if fit is None:
        return ""
    if not math.isfinite(fit.slope):
        return f"no fit ({fit.n_points} points in window), theory {fit.theory:g}"
    return (
        f"slope {_f2(fit.slope)} [{_f2(fit.ci_low)}, {_f2(fit.ci_high)}], "
        f"theory {fit.theory:g}\n{fit.verdict}"
    )


def _f2(x: float) -> str:
    """Two decimals, without the '-0.00' a slope of -0.001 would print."""
    text = f"{x:.2f}"
    return "0.00" if text == "-0.00" else text


def _ols(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def scaling_series(
    ok: pd.DataFrame,
    fits: Mapping,
    registry: Mapping,
    axis: str,
    metric: str,
) -> tuple[list[ch.Series], str, list[str]]:
    """One series per algorithm with at least two points; the common fixed sizes; the rest."""
    col = METRIC_COLUMN[metric]
    series, fixed_all, too_few = [], [], []
    for alg in _order(registry, ok.loc[ok["axis"] == axis, "algorithm"]):
        fit = fits.get((alg, axis, metric))
        sw = pick_sweep(ok, registry, alg, axis, fit)
        sw = sw[pd.to_numeric(sw[col], errors="coerce") > 0]
        if sw["size"].nunique() < 2:
            too_few.append(_title(registry, alg))
            continue
        x = sw["size"].to_numpy(float)
        y = sw[col].to_numpy(float)
        s = ch.Series(name=alg, label=_title(registry, alg), x=x, y=y)
        if metric == "time" and {"q25_s", "q75_s"} <= set(sw.columns):
            s.y_low = sw["q25_s"].to_numpy(float)
            s.y_high = sw["q75_s"].to_numpy(float)
        if fit is not None:
            s.in_window = np.isin(x, np.asarray(fit.window, float))
        if metric == "time":
            theta = fit.theory if fit is not None else None
            if theta is not None and math.isfinite(theta):
                # Through the fit window; with no window, through the largest size, where
                # the leading term is nearest to dominating.
                w = s.in_window if s.in_window.any() else x == x.max()
                logc = np.mean(np.log(y[w])) - theta * np.mean(np.log(x[w]))
                s.ref_x, s.ref_y = x, np.exp(logc) * x**theta
        else:
            s.ref_x, s.ref_y = _model_memory(sw, registry, alg)
        line2 = fit_label(fit) or f"slope {_ols(x, y):.2f} (all points; no theory)"
        s.label = f"{s.label}\n{line2}"
        fixed_all.append((s, fixed_sizes(sw, _axis_vars(registry, alg, axis))))
        series.append(s)
    common = {}
    if fixed_all:
        keys = set.intersection(*(set(f) for _, f in fixed_all))
        common = {
            k: fixed_all[0][1][k]
            for k in SIZE_VARS
            if k in keys and all(f[k] == fixed_all[0][1][k] for _, f in fixed_all)
        }
        for s, f in fixed_all:
            own = {k: v for k, v in f.items() if k not in common}
            if own:
                first, rest = s.label.split("\n", 1)
                s.label = f"{first} ({sizes_text(own)})\n{rest}"
    return series, sizes_text(common), too_few


def _model_memory(sweep: pd.DataFrame, registry: Mapping, alg: str):
    """Analytic bytes at the sweep's sizes: the stored model_bytes, else the registry's."""
    x = sweep["size"].to_numpy(float)
    if "model_bytes" in sweep.columns:
        mb = pd.to_numeric(sweep["model_bytes"], errors="coerce").to_numpy(float)
        if np.isfinite(mb).all() and (mb > 0).all():
            return x, mb
    spec = registry.get(alg)
    if spec is None:
        return None, None
    itemsize = np.dtype(str(sweep["dtype"].iloc[0])).itemsize
    try:
        mb = np.array([spec.memory_bytes(_size_dict(r), itemsize) for _, r in sweep.iterrows()])
    except (KeyError, TypeError):
        return None, None
    return x, mb


# --- the charts from the store -------------------------------------------------------


@dataclass
class Chart:
    """A chart to write, or the reason it was skipped."""

    name: str
    title: str
    section: str
    caption: str = ""
    markdown: str = ""  # extra Markdown under the chart (a table)
    files: list[Path] = field(default_factory=list)
    skipped: str = ""


@dataclass
class Context:
    """What every chart builder may use: the registry and the store's slice (or None)."""

    registry: Mapping
    store: StoreData | None


def _describe_slopes(fits: Mapping, registry: Mapping, axis: str, metric: str) -> str:
    parts = [
        f"{_title(registry, a)} {f.slope:.2f} (theory {f.theory:g})"
        for (a, ax_, m), f in fits.items()
        if ax_ == axis and m == metric and math.isfinite(f.slope)
    ]
    return "; ".join(parts)


def chart_scaling(ctx: Context, axis: str, metric: str):
    store = _need_store(ctx)
    series, common, too_few = scaling_series(store.ok, store.fits, ctx.registry, axis, metric)
    if not series:
        who = f" ({', '.join(too_few)} had fewer)" if too_few else ""
        raise Skip(f"fewer than 2 measured sizes along {axis} for every algorithm{who}")
    what = "Time per gradient call" if metric == "time" else "Peak memory per call"
    fixed = ", ".join(x for x in (common, str(store.config.get("dtype", ""))) if x)
    title = f"{what} vs {ch.AXIS_LABEL[axis].split(' (')[0]}\n{fixed}"
    ref = (
        "dashed: theory slope through\nthe fit window"
        if metric == "time"
        else "dashed: analytic model\n(registry memory model)"
    )
    fig = ch.scaling_chart(series, axis, metric, title, ref, store.footer)
    slopes = _describe_slopes(store.fits, ctx.registry, axis, metric)
    if metric == "time":
        caption = (
            f"The slope on these log-log axes is the exponent: each solid line should run "
            f"parallel to its dashed theory line where markers are filled (the fit window)"
            f"; bars are the interquartile range. {_sentence('Fitted', slopes)}"
        )
    else:
        caption = (
            f"Measured tracemalloc peaks (solid) should track the analytic model (dashed); "
            f"a flat line means memory does not grow along {axis}. "
            f"{_sentence('Fitted', slopes)}"
        )
    if too_few:
        caption += f" Not drawn (fewer than 2 sizes): {', '.join(too_few)}."
    return fig, caption.strip(), ""


def _sentence(prefix: str, body: str) -> str:
    return f"{prefix}: {body}." if body else ""


def _need_store(ctx: Context) -> StoreData:
    if ctx.store is None:
        raise NoSource("no results store (see above)")
    return ctx.store


def chart_exponents(ctx: Context):
    store = _need_store(ctx)
    fits = list(store.fits.values())
    if not fits:
        raise Skip("no exponent fits (no sweep has a theoretical exponent and enough points)")
    rows = [
        ch.SlopeRow(
            f"{_title(ctx.registry, f.algorithm)} · {f.axis}",
            f.metric,
            f.slope,
            f.ci_low,
            f.ci_high,
            f.theory,
            getattr(f, "delta", 0.0),
            f.verdict,
        )
        for f in fits
    ]
    fig = ch.exponent_chart(rows, store.footer)
    counts = pd.Series([f.verdict for f in fits]).value_counts().to_dict()
    caption = (
        "Each bar is a fitted exponent with its 95% interval; it passes when the whole "
        "interval lies in the grey band around the theory (black tick). "
        f"{counts.get('PASS', 0)} PASS, {counts.get('INCONCLUSIVE', 0)} INCONCLUSIVE, "
        f"{counts.get('FAIL', 0)} FAIL."
    )
    return fig, caption, exponent_table(fits, ctx.registry)


def exponent_table(fits: Sequence, registry: Mapping) -> str:
    """The exponent table in Markdown, and the sources of the theoretical exponents."""
    head = (
        "| algorithm | axis | metric | theory | fitted slope | 95% interval | verdict "
        "| fit window | points | note |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for f in fits:
        delta = getattr(f, "delta", 0.0)
        theory = f"{f.theory:g} ± {delta:g}" if delta else f"{f.theory:g}"
        if math.isfinite(f.slope):
            slope, ci = f"{f.slope:.3f}", f"[{f.ci_low:.3f}, {f.ci_high:.3f}]"
        else:
            slope, ci = "-", "-"
        window = f"{min(f.window)}-{max(f.window)}" if f.window else "(empty)"
        note = str(getattr(f, "note", "") or "").replace("|", "/")
        lines.append(
            f"| {_title(registry, f.algorithm)} | {f.axis} | {f.metric} | {theory} | "
            f"{slope} | {ci} | **{f.verdict}** | {window} | {f.n_points} | {note} |"
        )
    sources: dict[str, list[str]] = {}
    for f in fits:
        if f.source and f.metric != "flops":  # FLOP exponents repeat the time exponent's source
            sources.setdefault(f.source, []).append(
                f"{_title(registry, f.algorithm)} {f.metric} vs {f.axis}"
            )
    text = "\n".join(lines)
    if sources:
        text += "\n\nSources of the theoretical exponents (FLOPs share the time exponent's):\n\n"
        text += "\n".join(f"- {src}: {', '.join(who)}" for src, who in sources.items())
    return text


RNN_PAIR = ("rtrl", "bptt")


def _pair(ctx: Context):
    """RTRL and BPTT specs and their ok cells, or Skip with the reason."""
    store = _need_store(ctx)
    a, b = RNN_PAIR
    missing = [x for x in RNN_PAIR if x not in ctx.registry]
    if missing:
        raise Skip(f"no cost model in the registry for {', '.join(missing)}")
    ok = store.ok
    cells = {x: ok[ok["algorithm"] == x] for x in RNN_PAIR}
    empty = [x for x in RNN_PAIR if cells[x].empty]
    if empty:
        raise Skip(f"no measured cells of {', '.join(empty)} in the store")
    rnn = pd.concat(cells.values())
    fixed = {}
    for v in ("B", "m", "p"):
        vals = rnn[v].dropna()
        if vals.empty:
            raise Skip(f"the cells carry no {v}")
        fixed[v] = int(vals.mode().iloc[0])
    itemsize = np.dtype(str(store.config.get("dtype", "float64"))).itemsize
    return store, ctx.registry[a], ctx.registry[b], cells, fixed, itemsize


def _geom_grid(values: Iterable[float], points: int = 40) -> np.ndarray:
    """Integer sizes evenly spaced in log around the powers of two that bracket ``values``."""
    v = [x for x in values if x and x > 0]
    # Half an octave of margin, so markers at the measured extremes are not cut in half.
    lo = max(1.0, 2 ** math.floor(math.log2(min(v))) / math.sqrt(2))
    hi = 2 ** math.ceil(math.log2(max(v))) * math.sqrt(2)
    return np.unique(np.round(np.geomspace(lo, hi, points)).astype(int))


def chart_cost_grid(ctx: Context):
    store, spec_a, spec_b, cells, fixed, itemsize = _pair(ctx)
    rate = {}
    for x, c in cells.items():
        g = pd.to_numeric(c["gflops"], errors="coerce")
        g = g[g > 0]
        if g.empty:
            raise Skip(f"no achieved GFLOP/s for {x} to calibrate its time model")
        rate[x] = float(g.median()) * 1e9
    both = pd.concat(cells.values())
    T = _geom_grid(both["T"].dropna())
    n = _geom_grid(both["n"].dropna())
    if len(T) < 2 or len(n) < 2:
        raise Skip("the measured cells span fewer than 2 values of T or n")
    a, b = RNN_PAIR
    t_ratio = np.empty((len(T), len(n)))
    m_ratio = np.empty_like(t_ratio)
    for i, t in enumerate(T):
        for j, nn in enumerate(n):
            size = {"T": int(t), "n": int(nn), **fixed, "k1": int(t), "k2": int(t)}
            t_a, t_b = spec_a.flop_count(size) / rate[a], spec_b.flop_count(size) / rate[b]
            t_ratio[i, j] = t_a / t_b
            m_ratio[i, j] = spec_a.memory_bytes(size, itemsize) / spec_b.memory_bytes(
                size, itemsize
            )
    names = (_title(ctx.registry, a), _title(ctx.registry, b))
    # Sizes where both were measured: the model's calibration can be checked there.
    key = ["T", "n", "B", "m", "p"]
    pairs = cells[a].merge(cells[b], on=key, suffixes=("_a", "_b"))
    same = (pairs["B"] == fixed["B"]) & (pairs["m"] == fixed["m"]) & (pairs["p"] == fixed["p"])
    pairs = pairs[same]
    pairs = pairs.drop_duplicates(["T", "n"])
    measured = [(float(r.n), float(r.T)) for r in pairs.itertuples()]
    each = {x: sorted({(float(r.n), float(r.T)) for r in c.itertuples()}) for x, c in cells.items()}
    fig = ch.ratio_chart(
        T,
        n,
        [
            ch.RatioPanel(f"time: {names[0]} ÷ {names[1]}", t_ratio),
            ch.RatioPanel(f"memory: {names[0]} ÷ {names[1]}", m_ratio, boundary=True),
        ],
        measured,
        names,
        each,
        f"Cost of {names[0]} relative to {names[1]} at equal (T, n)\n"
        f"from the cost models at {sizes_text(fixed)}, {store.config['dtype']}",
        store.footer,
    )
    caption = (
        f"Model predictions, calibrated by the measurements: time = exact FLOP count ÷ the "
        f"algorithm's median measured GFLOP/s ({rate[a] / 1e9:.3g} for {names[0]}, "
        f"{rate[b] / 1e9:.3g} for {names[1]}), memory = the analytic model. Orange: "
        f"{names[0]} costs more, purple: less; thin contours mark each factor of ten, the "
        f"thick one equal memory. "
        f"Over this grid {names[0]} takes {ch.format_ratio(t_ratio.min())} to "
        f"{ch.format_ratio(t_ratio.max())} times {names[1]}'s time."
    )
    caption += " Small markers: (T, n) where each was measured (at its sweep's B)" + (
        "; circles: where both were measured at the same size (table below)." if measured else "."
    )
    md = ""
    if len(pairs):
        rows = [
            "| T | n | measured time ratio | model time ratio | measured memory ratio "
            "| model memory ratio |",
            "|---|---|---|---|---|---|",
        ]
        for r in pairs.sort_values(["n", "T"]).head(12).itertuples():
            size = {"T": int(r.T), "n": int(r.n), **fixed, "k1": int(r.T), "k2": int(r.T)}
            mt = (spec_a.flop_count(size) / rate[a]) / (spec_b.flop_count(size) / rate[b])
            mm = spec_a.memory_bytes(size, itemsize) / spec_b.memory_bytes(size, itemsize)
            rows.append(
                f"| {int(r.T)} | {int(r.n)} | {r.median_s_a / r.median_s_b:.3g} | "
                f"{mt:.3g} | {_safe_ratio(r.peak_bytes_a, r.peak_bytes_b)} | {mm:.3g} |"
            )
        md = f"{names[0]} ÷ {names[1]} where both were measured at the same size:\n\n" + "\n".join(
            rows
        )
    return fig, caption, md


def _safe_ratio(a, b) -> str:
    try:
        return f"{float(a) / float(b):.3g}" if float(b) > 0 else "-"
    except (TypeError, ValueError):
        return "-"


def memory_crossover(
    spec_a, spec_b, n: int, fixed: Mapping, itemsize: int, t_max: int = 2**40
) -> float:
    """Smallest T at which memory(B) >= memory(A) at state size n (inf if none below t_max)."""

    def gap(t: int) -> float:
        size = {"T": t, "n": n, **fixed, "k1": t, "k2": t}
        return spec_b.memory_bytes(size, itemsize) - spec_a.memory_bytes(size, itemsize)

    if gap(1) >= 0:
        return 1.0
    if gap(t_max) < 0:
        return math.inf
    lo, hi = 1, t_max
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if gap(mid) >= 0 else (mid, hi)
    return float(hi)


def chart_boundary(ctx: Context):
    store, spec_a, spec_b, cells, fixed, itemsize = _pair(ctx)
    a, b = RNN_PAIR
    # RTRL's n range (it cannot go far) sets the chart's: from half its smallest n to four
    # times its largest.
    n_a = cells[a]["n"].dropna().astype(int)
    n_lo, n_hi = max(2, int(n_a.min()) // 2), int(n_a.max()) * 4
    n_all = pd.concat(cells.values())["n"].dropna().astype(int)
    n_all = n_all[(n_all >= n_lo) & (n_all <= n_hi)]
    n_line = np.unique(np.geomspace(n_lo, n_hi, 60).astype(int))
    T_line = np.array([memory_crossover(spec_a, spec_b, int(k), fixed, itemsize) for k in n_line])
    finite = np.isfinite(T_line)
    if finite.sum() < 2:
        raise Skip("the memory models do not cross in the measured range of n")
    n_line, T_line = n_line[finite], T_line[finite]
    # Points: every measured size of either algorithm; the other side measured if it was,
    # else from its model.
    key = ["T", "n", "B", "m", "p"]
    peaks = {
        x: {
            tuple(int(v) for v in r[key]): float(r["peak_bytes"])
            for _, r in c.iterrows()
            if pd.notna(r["peak_bytes"]) and r["peak_bytes"] > 0
        }
        for x, c in cells.items()
    }
    # Each point is compared at its own size; the line is drawn at the most common B, m, p,
    # but hardly moves with them: both memories grow about in proportion to B.
    points = []
    for sz in sorted(set(peaks[a]) | set(peaks[b])):
        size = dict(zip(key, sz, strict=True))
        if not n_lo <= size["n"] <= n_hi:
            continue
        full = {**size, "k1": size["T"], "k2": size["T"]}
        ma = peaks[a].get(sz, spec_a.memory_bytes(full, itemsize))
        mb = peaks[b].get(sz, spec_b.memory_bytes(full, itemsize))
        points.append(
            ch.BoundaryPoint(size["n"], size["T"], ma < mb, sz in peaks[a] and sz in peaks[b])
        )
    names = (_title(ctx.registry, a), _title(ctx.registry, b))
    fig = ch.boundary_chart(
        n_line,
        T_line,
        points,
        names,
        RNN_PAIR,
        guide=True,
        title=(
            f"Where {names[0]}'s memory drops below {names[1]}'s\n"
            f"{sizes_text(fixed)}, {store.config['dtype']}"
        ),
        footer=store.footer,
    )
    examples = [k for k in sorted(set(n_all)) if k in set(n_line)] or list(
        n_line[:: len(n_line) // 3]
    )
    ex = ", ".join(
        f"T > {memory_crossover(spec_a, spec_b, int(k), fixed, itemsize):,.0f} at n = {int(k)}"
        for k in examples[-3:]
    )
    caption = (
        f"Above the black line (from the analytic memory models) {names[0]}'s influence "
        f"matrix takes less memory than {names[1]}'s stored states: {ex}; it grows "
        f"roughly like T = n² (dotted). Markers are measured peaks, each compared at "
        f"its own size (the line barely moves with B)."
    )
    return fig, caption, ""


def chart_efficiency(ctx: Context):
    store = _need_store(ctx)
    ok = store.ok[pd.to_numeric(store.ok["gflops"], errors="coerce") > 0]
    if ok.empty:
        raise Skip("no cell has an achieved GFLOP/s")
    panels = []
    best = {}
    for axis in AXES:
        panel = ch.Panel(axis, "time")
        for alg in _order(ctx.registry, ok.loc[ok["axis"] == axis, "algorithm"]):
            sw = pick_sweep(ok, ctx.registry, alg, axis, store.fits.get((alg, axis, "time")))
            if sw["size"].nunique() < 2:
                continue
            s = ch.Series(
                alg,
                _title(ctx.registry, alg),
                sw["size"].to_numpy(float),
                sw["gflops"].to_numpy(float),
            )
            panel.series.append(s)
            top = sw.loc[sw["gflops"].idxmax()]
            if top["gflops"] > best.get(alg, (0, None))[0]:
                best[alg] = (float(top["gflops"]), top)
        if panel.series:
            panel.subtitle = f"along {axis}"
            panels.append(panel)
    if not panels:
        raise Skip("fewer than 2 sizes with an achieved GFLOP/s along every axis")
    gemm = _median_positive(store.runs.get("gemm_gflops"))
    gemv = _median_positive(store.runs.get("gemv_gflops"))
    fig = ch.efficiency_chart(panels, gemm, gemv, store.footer)
    bests = "; ".join(
        f"{_title(ctx.registry, a)} {g:.3g} GFLOP/s at {sizes_text(_size_dict(r))}"
        + (f" ({g / gemm:.0%} of GEMM)" if gemm else "")
        for a, (g, r) in best.items()
    )
    caption = (
        "The gap between each line and the solid GEMM line is what the kernel leaves on "
        "the table; kernels bound by matrix-vector products (small B) can at best reach "
        f"the dotted GEMV line. Best: {bests}."
    )
    if not gemm:
        caption += " (The run recorded no GEMM peak.)"
    return fig, caption, ""


def _median_positive(col) -> float | None:
    if col is None:
        return None
    v = pd.to_numeric(col, errors="coerce")
    v = v[v > 0]
    return float(v.median()) if len(v) else None


def chart_other_axes(ctx: Context):
    store = _need_store(ctx)
    panels = []
    for axis in (a for a in AXES if a not in ("T", "n")):
        for metric in ("time", "memory"):
            series, common, _ = scaling_series(store.ok, store.fits, ctx.registry, axis, metric)
            if series:
                panels.append(ch.Panel(axis, metric, series, f"{metric} vs {axis}: {common}"))
    if not panels:
        raise Skip("no sweep along B, k, depth or width with 2 or more sizes")
    fig = ch.panels_chart(panels, "Scaling along the other axes", store.footer)
    slopes = "; ".join(
        f"{_title(ctx.registry, a)} {m} vs {ax_} {f.slope:.2f} (theory {f.theory:g})"
        for (a, ax_, m), f in store.fits.items()
        if ax_ not in ("T", "n") and m in ("time", "memory") and math.isfinite(f.slope)
    )
    caption = (
        "Batch size, truncation length and the MLP's depth and width, one at a time; "
        f"dashed lines as in the charts above. {_sentence('Fitted', slopes)}"
    )
    return fig, caption.strip(), ""


def chart_peers(ctx: Context, db_path: str | Path):
    store = _need_store(ctx)
    try:
        from bpttbench.bench.peers import load_peers
    except ImportError:
        raise Skip("bpttbench.bench.peers.load_peers is not available in this version") from None
    try:
        df = load_peers(db_path)
    except Exception as exc:
        raise Skip(f"peer measurements could not be read: {exc}") from None
    if df is None or len(df) == 0:
        raise Skip("no peer measurements in the store (run `bpttbench peers`)")
    status = df["status"] if "status" in df.columns else pd.Series("ok", index=df.index)
    ratio = pd.to_numeric(df["ratio_vs_bpttbench"], errors="coerce")
    ok = df[(status == "ok") & (ratio > 0)]
    if ok.empty:
        counts = _counts_text(status.value_counts().to_dict())
        raise Skip(f"no peer measurement has a time ratio ({counts})")
    series = []
    keys = [c for c in ("tool", "algorithm", "T", "B", "k", "dtype", "threads") if c in ok.columns]
    order = [c for c in ("created", "run_ts") if c in ok.columns]
    for _, g in ok.groupby(row_keys(ok, keys), sort=True):
        # The latest measurement of each size: stable sort by time, keep the last.
        g = g.sort_values([*order, "n"], kind="stable").drop_duplicates("n", keep="last")
        g = g.sort_values("n", kind="stable")
        row = g.iloc[0]
        sizes = ", ".join(f"{k}={_int(row[k])}" for k in ("T", "B", "k") if pd.notna(row.get(k)))
        label = f"{row['tool']}: {_title(ctx.registry, row['algorithm'])}\n({sizes})"
        series.append(
            (
                row["algorithm"],
                row["tool"],
                label,
                g["n"].to_numpy(float),
                g["ratio_vs_bpttbench"].to_numpy(float),
            )
        )
    fig = ch.peers_chart(series, store.footer)
    r = ok["ratio_vs_bpttbench"].astype(float)
    caption = (
        "Each line is a peer library computing the same gradient, timed interleaved with "
        "bpttbench's kernel; above the line at 1 bpttbench is faster. Ratios run from "
        f"{r.min():.2g} to {r.max():.2g}; every timed peer agreed with bpttbench's gradient "
        f"(largest relative error {pd.to_numeric(ok['max_rel_err'], errors='coerce').max():.1g})."
    )
    return fig, caption, _peers_table(df, ctx.registry)


def _peers_table(df: pd.DataFrame, registry: Mapping, most: int = 40) -> str:
    rows = [
        "| tool | algorithm | T | n | B | k | dtype | status | peer median (s) "
        "| bpttbench median (s) | ratio | max rel. error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.head(most).to_dict("records"):
        tool = f"{_text(r.get('tool'))} {_text(r.get('tool_version'))}".strip()
        rows.append(
            f"| {tool} | "
            f"{_title(registry, r.get('algorithm'))} | {_int(r.get('T'))} | {_int(r.get('n'))} | "
            f"{_int(r.get('B'))} | {_fmt(r.get('k'), 'd')} | {r.get('dtype')} | "
            f"{r.get('status', 'ok')} | {_fmt(r.get('median_s'))} | "
            f"{_fmt(r.get('bpttbench_median_s'))} | {_fmt(r.get('ratio_vs_bpttbench'))} | "
            f"{_fmt(r.get('max_rel_err'), '.1e')} |"
        )
    if len(df) > most:
        rows.append(f"\n({len(df) - most} more rows in the store's peers table.)")
    return "\n".join(rows)


def _text(v) -> str:
    """A value for a table cell; empty when missing (None or NaN)."""
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _fmt(v, spec: str = ".3g") -> str:
    """A number for a table cell; '-' when missing."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "-"
    if not math.isfinite(v):
        return "-"
    return format(int(v), "d") if spec == "d" else format(v, spec)


# --- source 2: pytest-benchmark JSON -----------------------------------------------------


@dataclass
class BenchFile:
    path: Path
    cells: pd.DataFrame  # one row per benchmark, the store's cell columns where known
    footer: str


def read_benchmark_json(path: str | Path) -> BenchFile:
    """Parse a pytest-benchmark JSON file; Skip with a one-line reason if it is not one."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise Skip(f"{path.name}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Skip(f"{path.name}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise Skip(
            f"{path.name} is not JSON ({exc.msg}, line {exc.lineno}), so not "
            f"pytest-benchmark output"
        ) from None
    if not (
        isinstance(doc, dict) and isinstance(doc.get("benchmarks"), list) and "machine_info" in doc
    ):
        raise Skip(
            f"{path.name} is not pytest-benchmark output (no 'benchmarks' list and 'machine_info')"
        )
    rows = []
    for b in doc["benchmarks"]:
        stats = b.get("stats") if isinstance(b, dict) else None
        if not isinstance(stats, dict) or not isinstance(stats.get("median"), (int, float)):
            continue
        rows.append(_benchmark_row(b, stats, doc))
    if not rows:
        raise Skip(f"{path.name} has no benchmark with timing statistics")
    cells = pd.DataFrame(rows)
    return BenchFile(path, cells, _json_footer(doc, path, cells))


def _benchmark_row(b: Mapping, stats: Mapping, doc: Mapping) -> dict:
    """One benchmark as a cell: algorithm, axis and sizes from extra_info, params or names.

    bpttbench's suite stores ``algorithm``, ``axis``, ``size`` (a dict) and
    ``dtype`` in ``extra_info``; other suites are read from a group like
    ``bptt-T`` or ``bptt vs T (...)`` and sizes from ``params`` or ids like ``T=64``.
    """
    params = b.get("params") if isinstance(b.get("params"), dict) else {}
    extra = b.get("extra_info") if isinstance(b.get("extra_info"), dict) else {}
    sizes = extra.get("size") if isinstance(extra.get("size"), dict) else {}
    name = str(b.get("name", "?"))
    group = str(b.get("group") or "")
    m = re.match(r"^\s*([\w.]+?)(?:-| vs )(\w+)\b", group)
    alg = extra.get("algorithm") or (m.group(1) if m else None)
    axis = extra.get("axis") or (m.group(2) if m else None)
    if not alg or axis not in AXES:
        alg, axis = None, None

    def size_of(var: str):
        for src in (sizes, params, extra):
            v = src.get(var)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return int(v)
        found = re.search(rf"(?:^|[\[\-_, ]){re.escape(var)}=(\d+)", name)
        return int(found.group(1)) if found else None

    row = {
        "name": name,
        "fullname": str(b.get("fullname", name)),
        "group": group,
        "algorithm": alg,
        "axis": axis,
        **{v: size_of(v) for v in SIZE_VARS},
    }
    size = None
    if axis is not None:
        size = size_of(axis) if axis != "k" else (size_of("k") or row["k1"])
    row.update(
        size=size,
        dtype=str(extra.get("dtype") or params.get("dtype") or "float64"),
        status="ok" if size else "unplaced",
        median_s=float(stats["median"]),
        q25_s=_num(stats.get("q1")),
        q75_s=_num(stats.get("q3")),
        rounds=stats.get("rounds"),
        flops=_num(extra.get("flops")),
        peak_bytes=_num(extra.get("peak_bytes")),
        model_bytes=_num(extra.get("model_bytes", extra.get("analytic_bytes"))),
        compile_s=_num(extra.get("compile_s")),
        created=str(doc.get("datetime", "")),
        machine=str((doc.get("machine_info") or {}).get("node", "")),
        numba_threads=extra.get("numba_threads"),
        blas_threads=extra.get("blas_threads"),
    )
    row["gflops"] = (
        row["flops"] / row["median_s"] / 1e9 if row["flops"] and row["median_s"] > 0 else None
    )
    return row


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _json_footer(doc: Mapping, path: Path, cells: pd.DataFrame) -> str:
    mi = doc.get("machine_info") or {}
    cpu = mi.get("cpu") or {}
    ci = doc.get("commit_info") or {}
    commit = str(ci.get("id") or "unknown")[:10] + (" (dirty)" if ci.get("dirty") else "")
    parts = [
        f"pytest-benchmark {doc.get('version', '?')}",
        path.name,
        f"machine {mi.get('node', '?')} ({cpu.get('brand_raw', '?')})",
    ]
    threads = [_one_value(cells.get(c)) for c in ("numba_threads", "blas_threads")]
    if all(t is not None for t in threads):
        parts.append(f"Numba threads {_int(threads[0])}, BLAS threads {_int(threads[1])}")
    parts += [
        f"Python {mi.get('python_version', '?')}",
        f"commit {commit}",
        str(doc.get("datetime", ""))[:16],
    ]
    return " · ".join(parts)


def _one_value(col):
    """The single value of a column, or None if it is missing or varies."""
    if col is None:
        return None
    vals = col.dropna().unique()
    return vals[0] if len(vals) == 1 else None


def chart_bench_time(bf: BenchFile, axis: str, registry: Mapping):
    ok = bf.cells[(bf.cells["status"] == "ok") & (bf.cells["axis"] == axis)]
    fits = {}
    try:
        from bpttbench.bench.fit import fit_table

        fits = {(f.algorithm, f.axis, f.metric): f for f in fit_table(ok, registry)}
    except Exception:  # sizes the models need may be missing from the JSON: plain slopes
        fits = {}
    series, common, _ = scaling_series(ok, fits, registry, axis, "time")
    if not series:
        raise Skip(f"{bf.path.name}: fewer than 2 sizes along {axis} for every algorithm")
    dtypes = ok["dtype"].dropna().unique()
    sub = ", ".join(x for x in (common, dtypes[0] if len(dtypes) == 1 else "") if x)
    title = f"pytest-benchmark: time per call vs {ch.AXIS_LABEL[axis].split(' (')[0]}"
    title += f"\n{sub}" if sub else ""
    fig = ch.scaling_chart(
        series, axis, "time", title, "dashed: theory slope through\nthe fit window", bf.footer
    )
    caption = (
        f"From {bf.path.name}: the same reading as the store's time charts (median per "
        f"benchmark, bars from first to third quartile). "
        f"{_sentence('Fitted', _describe_slopes(fits, registry, axis, 'time'))}"
    )
    return fig, caption.strip(), ""


def chart_bench_compare(files: Sequence[BenchFile]):
    base, others = files[0], files[1:]
    b = base.cells.drop_duplicates("fullname").set_index("fullname")["median_s"]
    names = list(b.index)
    series, notes = [], []
    for f in others:
        o = f.cells.drop_duplicates("fullname").set_index("fullname")["median_s"]
        series.append(
            (f"{f.path.name} ÷ {base.path.name}", [o.get(k, np.nan) / b[k] for k in names])
        )
        only = len(set(o.index) - set(b.index))
        if only:
            notes.append(f"{only} benchmark(s) only in {f.path.name}")
    common = [i for i, k in enumerate(names) if any(np.isfinite(s[1][i]) for s in series)]
    if not common:
        raise Skip(f"no benchmark appears in both {base.path.name} and the other file(s)")
    if len(common) > MAX_COMPARE_ROWS:
        spread = [
            max(abs(math.log(s[1][i])) for s in series if np.isfinite(s[1][i])) for i in common
        ]
        keep = sorted(np.argsort(spread)[::-1][:MAX_COMPARE_ROWS])
        notes.append(
            f"showing the {MAX_COMPARE_ROWS} of {len(common)} benchmarks that changed most"
        )
        common = [common[i] for i in keep]
    short = base.cells.drop_duplicates("fullname").set_index("fullname")["name"]
    unique = short.nunique() == len(short)
    labels = [_short(short[names[i]] if unique else names[i]) for i in common]
    series = [(n_, [v[i] for i in common]) for n_, v in series]
    fig = ch.dot_ratio_chart(
        labels,
        series,
        "median time ÷ baseline's (log scale)",
        f"Saved runs compared, baseline {base.path.name}",
        others[-1].footer,
        note="< 1: faster than the baseline",
    )
    ratios = np.array([v for _, vals in series for v in vals if np.isfinite(v)])
    gm = float(np.exp(np.mean(np.log(ratios))))
    caption = (
        f"Points left of the line got faster than {base.path.name}, right got slower; "
        f"geometric mean ratio {gm:.3g}, range {ratios.min():.3g} to {ratios.max():.3g}."
    )
    if notes:
        caption += " " + "; ".join(notes) + "."
    return fig, caption, ""


def _short(name: str, width: int = 52) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


# --- report.md ----------------------------------------------------------------------------


def _intro(ctx: Context, bench_files: Sequence[BenchFile], charts: Sequence[Chart]) -> str:
    store = ctx.store
    lines = []
    if store is not None:
        algs = _order(ctx.registry, store.ok["algorithm"])
        titles = [_title(ctx.registry, a) for a in algs]
        r = store.runs.sort_values("run_id").iloc[-1] if len(store.runs) else {}
        lines.append(
            f"This report compares what it costs to compute exact gradients with "
            f"{_join(titles)}. Each point is the median wall-clock time of one gradient call "
            f"(after a warm-up call that compiles the kernel; compile time is kept apart) and "
            f"the peak memory that call allocated, measured with tracemalloc in a separate, "
            f"untimed pass. It was measured on {r.get('machine', '?')} ({r.get('cpu', '?')}) with "
            f"{_int(store.config.get('numba_threads'))} Numba thread(s) and "
            f"{_int(store.config.get('blas_threads'))} BLAS thread(s), in "
            f"{store.config.get('dtype')}, on {str(r.get('started', '?'))[:10]}."
        )
        lines.extend(_findings(ctx))
    elif bench_files:
        lines.append(
            "This report charts pytest-benchmark results of bpttbench's gradient kernels: the "
            "median time per call of each benchmark, and how saved runs compare. The results "
            "store could not be read (see Skipped), so only these charts are drawn."
        )
    else:
        lines.append(
            "No results were available: neither a results store nor pytest-benchmark "
            "JSON could be read, so no chart was drawn (reasons below)."
        )
    drawn = sum(1 for c in charts if not c.skipped)
    skipped = len(charts) - drawn
    lines.append(
        f"{drawn} chart(s) drawn" + (f", {skipped} skipped (see the end)." if skipped else ".")
    )
    return " ".join(lines)


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _findings(ctx: Context) -> list[str]:
    """Two or three sentences on what the data shows, from the fits and the models."""
    store = ctx.store
    out = []
    fits = list(store.fits.values())
    if fits:
        c = pd.Series([f.verdict for f in fits]).value_counts().to_dict()
        out.append(
            f"{c.get('PASS', 0)} of the {len(fits)} exponents checked agree with "
            f"theory (PASS), {c.get('INCONCLUSIVE', 0)} INCONCLUSIVE, "
            f"{c.get('FAIL', 0)} FAIL."
        )
    ok = store.ok
    a, b = RNN_PAIR
    pa, pb = ok[ok["algorithm"] == a], ok[ok["algorithm"] == b]
    both = pa.merge(pb, on=["T", "n", "B", "m", "p"], suffixes=("_a", "_b"))
    if len(both):
        r = both.sort_values(["n", "T"]).iloc[-1]
        out.append(
            f"At T = {int(r['T'])}, n = {int(r['n'])}, {_title(ctx.registry, a)} took "
            f"{r['median_s_a'] / r['median_s_b']:.3g} times as long as "
            f"{_title(ctx.registry, b)} and used "
            f"{_safe_ratio(r['peak_bytes_a'], r['peak_bytes_b'])} times its memory."
        )
    try:
        _, spec_a, spec_b, cells, fixed, itemsize = _pair(ctx)
        n0 = int(pd.concat(cells.values())["n"].median())
        n0 = 2 ** round(math.log2(n0))
        t0 = memory_crossover(spec_a, spec_b, n0, fixed, itemsize)
        if math.isfinite(t0):
            out.append(
                f"By the cost models, {_title(ctx.registry, a)} needs less memory than "
                f"{_title(ctx.registry, b)} only when T exceeds about {t0:,.0f} at "
                f"n = {n0}, a boundary that grows roughly like n²."
            )
    except Skip:
        pass
    return out


def write_markdown(
    path: Path,
    ctx: Context,
    charts: Sequence[Chart],
    problems: Sequence[str],
    bench_files: Sequence[BenchFile],
    db_path: str | Path,
) -> None:
    parts = ["# bpttbench report", "", _intro(ctx, bench_files, charts), ""]
    section = None
    for c in charts:
        if c.skipped:
            continue
        if c.section != section:
            section = c.section
            parts += [f"## {section}", ""]
        png, svg = (f.relative_to(path.parent).as_posix() for f in c.files)
        parts += [
            f"### {c.title}",
            "",
            f"![{c.title}]({png})",
            "",
            f"*{c.caption}* ([SVG]({svg}))",
            "",
        ]
        if c.markdown:
            parts += [c.markdown, ""]
    skipped = [c for c in charts if c.skipped]
    if skipped or problems:
        parts += ["## Skipped", ""]
        parts += [f"- {p}" for p in problems]
        parts += [f"- **{c.title}**: {c.skipped}" for c in skipped]
        parts.append("")
    parts += (
        ["## About the data", ""]
        + [f"- {line}" for line in _data_notes(ctx, bench_files, db_path)]
        + [""]
    )
    path.write_text("\n".join(parts))


def _data_notes(ctx: Context, bench_files: Sequence[BenchFile], db_path) -> list[str]:
    out = []
    store = ctx.store
    if store is not None:
        counts = store.cells["status"].value_counts().to_dict()
        out.append(
            f"Results store `{Path(db_path).name}`: {len(store.cells)} cells in the charted "
            f"configuration ({_counts_text(counts)}); {store.footer}."
        )
        every = store.all_cells if store.all_cells is not None else store.cells
        bad = every[every["status"] != "ok"]
        for (status, reason), g in bad.groupby(["status", bad["reason"].fillna("no reason")]):
            who = ", ".join(
                sorted(
                    {
                        f"{a} {ax}={int(s)}"
                        for a, ax, s in zip(g["algorithm"], g["axis"], g["size"], strict=True)
                    }
                )
            )
            out.append(f"{len(g)} {status}: {reason} ({_short(who, 120)})")
        out.extend(store.notes)
    for bf in bench_files:
        unplaced = int((bf.cells["status"] != "ok").sum())
        line = f"pytest-benchmark `{bf.path.name}`: {len(bf.cells)} benchmarks; {bf.footer}."
        if unplaced:
            line += (
                f" {unplaced} had no group of the form algorithm-axis with a size, so they "
                f"appear only in the comparison."
            )
        out.append(line)
    out.append(
        "Charts: PNG for viewing, SVG beside each for print; regenerate with `bpttbench report`."
    )
    return out


# --- building the report ------------------------------------------------------------------

SECTIONS = {
    "time": "Time",
    "memory": "Memory",
    "fit": "Exponents",
    "cost": "Cost side by side",
    "eff": "Efficiency",
    "other": "Other axes",
    "peers": "Peers",
    "json": "pytest-benchmark",
}


def _plan(ctx: Context, db_path, bench_files: Sequence[BenchFile]):
    """(Chart, builder) pairs in report order; a builder returns (figure, caption, markdown)."""
    reg = ctx.registry
    plan: list[tuple[Chart, Callable]] = []
    if ctx.store is not None or not bench_files:
        plan += [
            (
                Chart("time_vs_T", "Time vs sequence length T", SECTIONS["time"]),
                lambda: chart_scaling(ctx, "T", "time"),
            ),
            (
                Chart("time_vs_n", "Time vs state size n", SECTIONS["time"]),
                lambda: chart_scaling(ctx, "n", "time"),
            ),
            (
                Chart("memory_vs_T", "Memory vs sequence length T", SECTIONS["memory"]),
                lambda: chart_scaling(ctx, "T", "memory"),
            ),
            (
                Chart("memory_vs_n", "Memory vs state size n", SECTIONS["memory"]),
                lambda: chart_scaling(ctx, "n", "memory"),
            ),
            (
                Chart("exponents", "Fitted exponents against theory", SECTIONS["fit"]),
                lambda: chart_exponents(ctx),
            ),
            (
                Chart("cost_grid", "RTRL against BPTT at equal (T, n)", SECTIONS["cost"]),
                lambda: chart_cost_grid(ctx),
            ),
            (
                Chart(
                    "memory_boundary", "Where RTRL's memory drops below BPTT's", SECTIONS["cost"]
                ),
                lambda: chart_boundary(ctx),
            ),
            (
                Chart(
                    "efficiency",
                    "Achieved GFLOP/s against the matrix-multiply peak",
                    SECTIONS["eff"],
                ),
                lambda: chart_efficiency(ctx),
            ),
        ]
        if ctx.store is not None and any(a not in ("T", "n") for a in ctx.store.ok["axis"]):
            plan.append(
                (
                    Chart("other_axes", "Batch, truncation, depth and width", SECTIONS["other"]),
                    lambda: chart_other_axes(ctx),
                )
            )
        if ctx.store is not None:
            plan.append(
                (
                    Chart("peers", "Peer implementations", SECTIONS["peers"]),
                    lambda: chart_peers(ctx, db_path),
                )
            )
    if bench_files:
        current = bench_files[-1]
        axes = [a for a in AXES if a in set(current.cells["axis"].dropna())]
        for axis in axes:
            plan.append(
                (
                    Chart(
                        f"bench_time_vs_{axis}",
                        f"pytest-benchmark: time vs {axis} ({current.path.name})",
                        SECTIONS["json"],
                    ),
                    lambda axis=axis: chart_bench_time(current, axis, reg),
                )
            )
        if not axes:
            plan.append(
                (
                    Chart(
                        "bench_time_vs_T",
                        f"pytest-benchmark: time charts ({current.path.name})",
                        SECTIONS["json"],
                    ),
                    lambda: _raise(
                        Skip(
                            f"no benchmark in {current.path.name} has a group "
                            f"like 'bptt-T' and a size"
                        )
                    ),
                )
            )
        if len(bench_files) >= 2:
            plan.append(
                (
                    Chart(
                        "bench_compare", "pytest-benchmark: saved runs compared", SECTIONS["json"]
                    ),
                    lambda: chart_bench_compare(bench_files),
                )
            )
    return plan


def _raise(exc: Exception):
    raise exc


@dataclass
class Report:
    path: Path
    charts: list[Chart]
    problems: list[str]  # sources that could not be read

    @property
    def drawn(self) -> list[Chart]:
        return [c for c in self.charts if not c.skipped]


def make_report(
    db_path: str | Path = DEFAULT_DB,
    benchmark_json: Iterable[str | Path] = (),
    out_dir: Path = Path("reports"),
    *,
    registry: Mapping | None = None,
    echo: Callable[[str], None] | None = None,
) -> Report:
    """Build everything; return what was drawn, skipped and why. ``echo`` gets each problem."""
    echo = echo or (lambda _line: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chart_dir = out_dir / CHART_DIR
    problems: list[str] = []
    if registry is None:
        registry, why = _default_registry()
        if why:
            problems.append(f"Model lines and model charts are limited: {why}.")
    store = None
    try:
        store = load_store(db_path, registry)
    except Skip as exc:
        problems.append(f"Results store: {exc}.")
    bench_files: list[BenchFile] = []
    for p in benchmark_json:
        try:
            bench_files.append(read_benchmark_json(p))
        except Skip as exc:
            problems.append(f"pytest-benchmark JSON: {exc}.")
    for line in problems:
        echo(line)
    ctx = Context(registry, store)
    charts: list[Chart] = []
    for chart, build in _plan(ctx, db_path, bench_files):
        try:
            fig, chart.caption, chart.markdown = build()
        except Skip as exc:
            chart.skipped = str(exc)
            if not isinstance(exc, NoSource):
                echo(f"skipped {chart.title}: {exc}")
        else:
            chart.files = ch.save(fig, chart_dir, chart.name)
        charts.append(chart)
    path = out_dir / "report.md"
    write_markdown(path, ctx, charts, problems, bench_files, db_path)
    _remove_stale(chart_dir, {f.name for c in charts for f in c.files})
    return Report(path, charts, problems)


def _remove_stale(chart_dir: Path, keep: set[str]) -> None:
    """Delete charts this module wrote on an earlier build and did not write now."""
    if not chart_dir.is_dir():
        return
    for f in chart_dir.iterdir():
        if f.is_file() and _OUR_CHARTS.match(f.name) and f.name not in keep:
            f.unlink()


def build_report(
    db_path: str | Path = DEFAULT_DB,
    benchmark_json: Iterable[str | Path] = (),
    out_dir: Path = Path("reports"),
) -> Path:
    """Write the charts and report.md into ``out_dir``; return the path of report.md.

    Problems with the inputs (a missing database, a file that is not
    pytest-benchmark JSON, too few points for a chart) are printed to stderr,
    one line each, and listed in the report; they never raise.
    """
    return make_report(db_path, benchmark_json, out_dir, echo=_stderr).path


def _stderr(line: str) -> None:
    print(f"bpttbench report: {line}", file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` command's options to ``parser``."""
    parser.add_argument(
        "--db", default=DEFAULT_DB, metavar="PATH", help=f"results database (default {DEFAULT_DB})"
    )
    parser.add_argument(
        "--benchmark-json",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="pytest-benchmark JSON file(s) to chart as well; with two or more, "
        "each is compared with the first",
    )
    parser.add_argument(
        "--out", default="reports", metavar="DIR", help="output directory (default reports/)"
    )


def command(args: argparse.Namespace) -> int:
    """Run ``bpttbench report``: print the report's path; exit 0, or 2 if nothing was drawn."""
    report = make_report(args.db, args.benchmark_json, Path(args.out), echo=_stderr)
    print(report.path)
    if not report.drawn:
        _stderr("no chart could be drawn; see the reasons above and in the report")
        return 2
    return 0
