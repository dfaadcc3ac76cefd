"""Two algorithms side by side: the pairs the registry declares (``AlgorithmSpec.pairs``).

For a pair (A, B), e.g. RTRL and BPTT, on the first two axes both share (T and n):

- :func:`chart_cost_grid`: maps of A's cost over B's, time and memory, from the
  cost models (time calibrated by each algorithm's median measured GFLOP/s),
  with the sizes each was measured at, and a table of measured against model
  ratios where both were measured at the same size;
- :func:`chart_boundary`: where A's memory drops below B's, by the memory models,
  with measured points only where both algorithms were measured at the same
  size (measured against measured), or a plain "no common cells" when none were;
- :func:`pair_findings` and :func:`pair_summary`: the sentences of the report's
  introduction and the figures of ``summary.json``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from bpttbench.bench import charts_compare as cc
from bpttbench.bench import fmt
from bpttbench.bench.fit import ols_slope, size_value, text_sizes
from bpttbench.bench.view import Context, Skip, View


@dataclass
class Pair:
    """Algorithms A and B, their measured cells, and the sizes their models are compared at."""

    a: str
    b: str
    specs: tuple  # (spec A, spec B)
    cells: dict[str, pd.DataFrame]  # ok cells of each
    common: pd.DataFrame  # sizes both were measured at: one row each, columns _a and _b
    shared: list[str]  # size variables both take (the common cells agree on them)
    fixed: dict[str, int]  # the other sizes the model maps and boundary are drawn at
    axes: tuple[str, str]  # (y, x): the boundary gives y as a function of x
    itemsize: int
    names: tuple[str, str]  # titles

    def var(self, axis: str) -> tuple[str, ...]:
        """The size variables ``axis`` moves."""
        return tuple(self.specs[0].axis_vars[axis])

    def size(self, y: float, x: float) -> dict[str, int]:
        """A full size for both models: the fixed sizes with the two axes set."""
        out = {**self.specs[1].sizes, **self.specs[0].sizes, **self.fixed}
        out.update({v: int(y) for v in self.var(self.axes[0])})
        out.update({v: int(x) for v in self.var(self.axes[1])})
        return out

    def column(self, var: str) -> str:
        """The column of :attr:`common` holding ``var``: its own if both take it, else the
        column of the algorithm that does (``k1_a``)."""
        if var in self.shared:
            return var
        return f"{var}_a" if var in self.specs[0].sizes else f"{var}_b"

    def row_size(self, row: Mapping) -> dict[str, int]:
        """The size of a common cell (a row of :attr:`common`), for both models."""
        out = {**self.specs[1].sizes, **self.specs[0].sizes, **self.fixed}
        for v in out:
            col = self.column(v)
            if col in row and pd.notna(row[col]):
                out[v] = size_value(row[col])
        return out

    def memory(self, size: Mapping) -> tuple[float, float]:
        return tuple(s.memory_bytes(size, self.itemsize) for s in self.specs)

    @property
    def slug(self) -> str:
        return f"{self.a}_vs_{self.b}"


def pair_axes(view: View, a: str, b: str) -> tuple[str, str]:
    """The two axes a pair is compared on: A's first two chart axes that B has too."""
    missing = [x for x in (a, b) if x not in view.registry]
    if missing:
        raise Skip(f"no cost model in the registry for {', '.join(missing)}")
    spec_a, spec_b = view.registry[a], view.registry[b]
    axes = [x for x in spec_a.own_chart_axes() if x in spec_b.axis_vars]
    if len(axes) < 2:
        raise Skip(f"{a} and {b} share fewer than two axes to compare them on")
    return axes[0], axes[1]


def load_pair(ctx: Context, a: str, b: str) -> Pair:
    """The pair's specs and measured cells, or Skip with the reason."""
    store, view = ctx.need_store(), ctx.view
    axes = pair_axes(view, a, b)
    spec_a, spec_b = view.registry[a], view.registry[b]
    ok = store.ok
    if "cell" in ok.columns:  # the pairs compare the Elman cell; the gated cells: cells_compare
        ok = ok[ok["cell"].isna() | (ok["cell"].astype(str) == "elman")].drop(columns="cell")
    cells = {x: ok[ok["algorithm"] == x] for x in (a, b)}
    empty = [x for x in (a, b) if cells[x].empty]
    if empty:
        raise Skip(f"no measured cells of {', '.join(empty)} in the store")
    # A categorical size (the cell) is held at its default above: not a size to pair on.
    text = set(text_sizes(view.registry))
    shared = [v for v in view.sizes if v in spec_a.sizes and v in spec_b.sizes and v not in text]
    latest = {
        x: c.sort_values("created").drop_duplicates(shared, keep="last") for x, c in cells.items()
    }
    common = latest[a].merge(latest[b], on=shared, suffixes=("_a", "_b"))
    pair = Pair(
        a, b, (spec_a, spec_b), cells, common, shared, {}, axes,
        np.dtype(str(store.config.get("dtype", "float64"))).itemsize,
        (view.title(a), view.title(b)),
    )  # fmt: skip
    pair.fixed = _fixed(pair, view)
    return pair


def _fixed(pair: Pair, view: View) -> dict[str, int]:
    """Each size but the two axes' at its most common value: over the common cells when
    there are some, else over both algorithms' cells; else the specs' default."""
    moved = {*pair.var(pair.axes[0]), *pair.var(pair.axes[1])}
    spec_a, spec_b = pair.specs
    out = {}
    text = set(text_sizes(view.registry))
    for v in view.sizes:
        if v in moved or v in text or (v not in spec_a.sizes and v not in spec_b.sizes):
            continue
        if len(pair.common):
            values = pair.common.get(pair.column(v), pd.Series(dtype=float))
        else:
            values = pd.concat([c[v] for c in pair.cells.values() if v in c.columns])
        values = values.dropna()
        default = spec_a.sizes.get(v, spec_b.sizes.get(v))
        out[v] = size_value(values.mode().iloc[0]) if len(values) else default
    return out


def memory_crossover(
    spec_a, spec_b, size: Mapping, var: Iterable[str], itemsize: int, top: int = 2**40
) -> float:
    """Smallest value of the variables ``var`` at which A needs less memory than B.

    The other sizes are ``size``; inf when there is none below ``top``. The gap
    is assumed to grow with ``var`` (bisection), as it does along T.
    """
    var = tuple(var)

    def a_lower(t: int) -> bool:
        s = {**size, **dict.fromkeys(var, t)}
        return spec_a.memory_bytes(s, itemsize) < spec_b.memory_bytes(s, itemsize)

    if a_lower(1):
        return 1.0
    if not a_lower(top):
        return math.inf
    lo, hi = 1, top
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if a_lower(mid) else (mid, hi)
    return float(hi)


def crossover(pair: Pair, x: float) -> float:
    """The model boundary: smallest y at which A needs less memory than B, at x."""
    return memory_crossover(*pair.specs, pair.size(1, x), pair.var(pair.axes[0]), pair.itemsize)


def growth(x: np.ndarray, y: np.ndarray) -> float:
    """The boundary's exponent: slope of log y on log x."""
    return ols_slope(np.log(x), np.log(y))[0]


def _geom_grid(values: Iterable[float], points: int = 40) -> np.ndarray:
    """Integer sizes evenly spaced in log around the powers of two that bracket ``values``."""
    v = [x for x in values if x and x > 0]
    # Half an octave of margin, so markers at the measured extremes are not cut in half.
    lo = max(1.0, 2 ** math.floor(math.log2(min(v))) / math.sqrt(2))
    hi = 2 ** math.ceil(math.log2(max(v))) * math.sqrt(2)
    return np.unique(np.round(np.geomspace(lo, hi, points)).astype(int))


def _rates(pair: Pair) -> dict[str, float]:
    """Each algorithm's median measured FLOP/s, what turns a FLOP count into time: over
    the cells both were measured at where there are some (so that the model's ratio
    there is the measured one), else over all its cells."""
    rate = {}
    for x, c in pair.cells.items():
        suffix = "_a" if x == pair.a else "_b"
        g = pd.to_numeric(pair.common.get(f"gflops{suffix}", pd.Series(dtype=float)), "coerce")
        if not (g > 0).any():
            g = pd.to_numeric(c["gflops"], errors="coerce")
        g = g[g > 0]
        if g.empty:
            raise Skip(f"no achieved GFLOP/s for {x} to calibrate its time model")
        rate[x] = float(g.median()) * 1e9
    return rate


def _model_ratios(pair: Pair, size: Mapping, rate: Mapping) -> tuple[float, float]:
    """(time ratio, memory ratio) of A over B by the calibrated models at ``size``."""
    (spec_a, spec_b), (a, b) = pair.specs, (pair.a, pair.b)
    t = (spec_a.flop_count(size) / rate[a]) / (spec_b.flop_count(size) / rate[b])
    mem_a, mem_b = pair.memory(size)
    return t, mem_a / mem_b


def _at_fixed(pair: Pair) -> pd.DataFrame:
    """The common cells at the pair's fixed sizes, one per (y, x)."""
    rows = pair.common
    for v in pair.shared:
        if v in pair.fixed:
            rows = rows[rows[v] == pair.fixed[v]]
    y, x = (pair.var(a)[0] for a in pair.axes)
    return rows.drop_duplicates([y, x])


def chart_cost_grid(ctx: Context, a: str, b: str):
    """Maps of A's cost over B's, time and memory, over the measured range of both axes."""
    pair = load_pair(ctx, a, b)
    store, view = ctx.need_store(), ctx.view
    rate = _rates(pair)
    yv, xv = (pair.var(ax)[0] for ax in pair.axes)
    both = pd.concat(pair.cells.values())
    Y, X = _geom_grid(both[yv].dropna()), _geom_grid(both[xv].dropna())
    if len(Y) < 2 or len(X) < 2:
        raise Skip(f"the measured cells span fewer than 2 values of {yv} or {xv}")
    t_ratio = np.empty((len(Y), len(X)))
    m_ratio = np.empty_like(t_ratio)
    for i, y in enumerate(Y):
        for j, x in enumerate(X):
            t_ratio[i, j], m_ratio[i, j] = _model_ratios(pair, pair.size(y, x), rate)
    names, (ya, xa) = pair.names, pair.axes
    rows = _at_fixed(pair)
    measured = [(float(r[xv]), float(r[yv])) for _, r in rows.iterrows()]
    each = [
        (
            f"{names[i]} measured",
            view.style(x).marker,
            sorted({(float(r[xv]), float(r[yv])) for _, r in pair.cells[x].iterrows()}),
        )
        for i, x in enumerate((a, b))
    ]
    grid = cc.RatioMap(Y, X, (view.axis_label(xa), view.axis_label(ya)), names, measured, each)
    panels = [
        cc.RatioPanel(f"time: {names[0]} ÷ {names[1]}", t_ratio),
        cc.RatioPanel(f"memory: {names[0]} ÷ {names[1]}", m_ratio, boundary=True),
    ]
    title = (
        f"Cost of {names[0]} relative to {names[1]} at equal ({ya}, {xa})\n"
        f"from the cost models at {view.sizes_text(pair.fixed)}, {store.config['dtype']}"
    )
    fig = cc.ratio_chart(grid, panels, title, store.footer)
    over = " where both were measured" if len(pair.common) else ""
    caption = (
        f"Model predictions, calibrated by the measurements: time = exact FLOP count ÷ the "
        f"algorithm's median measured GFLOP/s{over} ({rate[a] / 1e9:.3g} for {names[0]}, "
        f"{rate[b] / 1e9:.3g} for {names[1]}), memory = the analytic model. Orange: "
        f"{names[0]} costs more, purple: less; thin contours mark each factor of ten, the "
        f"thick one equal memory. Over this grid {names[0]} takes "
        f"{cc.format_ratio(t_ratio.min())} to {cc.format_ratio(t_ratio.max())} times "
        f"{names[1]}'s time. Small markers: ({ya}, {xa}) where each was measured (at its "
        f"own sweep's other sizes)"
        + (
            "; circles: where both were measured at the same size (table below)."
            if measured
            else "."
        )
    )
    return fig, caption, _ratio_table(pair, rows, rate)


def _ratio_table(pair: Pair, rows: pd.DataFrame, rate: Mapping, most: int = 12) -> str:
    """Measured against model ratios where both were measured at the same size."""
    if rows.empty:
        return ""
    yv, xv = (pair.var(ax)[0] for ax in pair.axes)
    lines = [
        f"| {yv} | {xv} | measured time ratio | model time ratio | measured memory ratio "
        "| model memory ratio |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in rows.sort_values([xv, yv]).head(most).iterrows():
        mt, mm = _model_ratios(pair, pair.row_size(r), rate)
        lines.append(
            f"| {int(r[yv])} | {int(r[xv])} | {r['median_s_a'] / r['median_s_b']:.3g} | "
            f"{mt:.3g} | {fmt.ratio(r['peak_bytes_a'], r['peak_bytes_b'])} | {mm:.3g} |"
        )
    head = f"{pair.names[0]} ÷ {pair.names[1]} where both were measured at the same size:\n\n"
    return head + "\n".join(lines)


@dataclass
class Compared:
    """The common cells with measured peaks, and whether the models put them on the right side."""

    points: list[cc.BoundaryPoint]
    agree: int


def compare_measured(pair: Pair, x_range: tuple[float, float] | None = None) -> Compared:
    """Common cells (both measured, same size): which used less memory, measured and modelled."""
    yv, xv = (pair.var(ax)[0] for ax in pair.axes)
    points, agree = [], 0
    for _, r in pair.common.iterrows():
        pa, pb = (pd.to_numeric(r[c], errors="coerce") for c in ("peak_bytes_a", "peak_bytes_b"))
        if not (pa > 0 and pb > 0):  # also skips missing peaks (NaN)
            continue
        if x_range is not None and not x_range[0] <= r[xv] <= x_range[1]:
            continue
        mem_a, mem_b = pair.memory(pair.row_size(r))
        points.append(cc.BoundaryPoint(float(r[xv]), float(r[yv]), bool(pa < pb)))
        agree += (pa < pb) == (mem_a < mem_b)
    return Compared(points, agree)


def boundary_line(pair: Pair) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The model boundary over A's measured range of x (half its least to four times its most)."""
    xv = pair.var(pair.axes[1])[0]
    xa = pair.cells[pair.a][xv].dropna().astype(int)
    x_lo, x_hi = max(2, int(xa.min()) // 2), int(xa.max()) * 4
    x_line = np.unique(np.geomspace(x_lo, x_hi, 60).astype(int))
    y_line = np.array([crossover(pair, int(k)) for k in x_line])
    finite = np.isfinite(y_line)
    if finite.sum() < 2:
        raise Skip(f"the memory models do not cross in the measured range of {xv}")
    return x_line[finite], y_line[finite], (x_lo, x_hi)


def chart_boundary(ctx: Context, a: str, b: str):
    """Where A's memory drops below B's: the model boundary, measured against measured."""
    pair = load_pair(ctx, a, b)
    store, view = ctx.need_store(), ctx.view
    (ya, xa), names = pair.axes, pair.names
    x_line, y_line, x_range = boundary_line(pair)
    g = growth(x_line, y_line)
    power = round(g) if abs(g) >= 0.75 else None
    compared = compare_measured(pair, x_range)
    boundary = cc.Boundary(
        x_line, y_line, names, (view.style(a), view.style(b)),
        (view.axis_label(xa), view.axis_label(ya)),
        guide=power, guide_label=f"guide: {ya} ∝ {xa}{fmt.power(power)}" if power else "",
        note=f"no common cells: no size was measured\nfor both {names[0]} and {names[1]}",
    )  # fmt: skip
    title = (
        f"Where {names[0]}'s memory drops below {names[1]}'s\n"
        f"{view.sizes_text(pair.fixed)}, {store.config['dtype']}"
    )
    fig = cc.boundary_chart(boundary, compared.points, title, store.footer)
    xv = pair.var(xa)[0]
    x_all = pd.concat(pair.cells.values())[xv].dropna().astype(int)
    examples = [k for k in sorted(set(x_all)) if k in set(x_line)] or list(
        x_line[:: max(1, len(x_line) // 3)]
    )
    ex = ", ".join(
        f"{ya} > {crossover(pair, int(k)):,.0f} at {xa} = {int(k)}" for k in examples[-3:]
    )
    shape = (
        f"the boundary grows roughly like {xa}{fmt.power(power)} (dotted)"
        if power
        else f"the boundary hardly moves with {xa}"
    )
    caption = (
        f"Above the black line (from the analytic memory models) {names[0]} needs less "
        f"memory than {names[1]}: {ex}; {shape}. "
    )
    n = len(compared.points)
    if n:
        caption += (
            f"Markers: the {n} sizes where both were measured, coloured by which used less "
            f"memory (tracemalloc peaks, each compared at its own size); {compared.agree} of "
            f"{n} fall on the side the models predict."
        )
    else:
        caption += (
            f"No common cells: no size was measured for both {names[0]} and {names[1]}, so "
            f"no measured point is compared here."
        )
    return fig, caption, ""


def _typical_x(pair: Pair) -> int:
    """A power of two near the median x of both algorithms' cells."""
    xv = pair.var(pair.axes[1])[0]
    n0 = int(pd.concat(pair.cells.values())[xv].median())
    return 2 ** round(math.log2(n0))


def pair_findings(ctx: Context, a: str, b: str) -> list[str]:
    """Sentences for the report's introduction: measured ratios, the model boundary."""
    try:
        pair = load_pair(ctx, a, b)
    except Skip:
        return []
    (ya, xa), (na, nb) = pair.axes, pair.names
    yv, xv = (pair.var(ax)[0] for ax in pair.axes)
    out = []
    if len(pair.common):
        r = pair.common.sort_values([xv, yv]).iloc[-1]
        out.append(
            f"At {ya} = {int(r[yv])}, {xa} = {int(r[xv])}, {na} took "
            f"{r['median_s_a'] / r['median_s_b']:.3g} times as long as {nb} and used "
            f"{fmt.ratio(r['peak_bytes_a'], r['peak_bytes_b'])} times its memory."
        )
    n0 = _typical_x(pair)
    t0 = crossover(pair, n0)
    if math.isfinite(t0):
        try:
            x_line, y_line, _ = boundary_line(pair)
            g = growth(x_line, y_line)
        except Skip:
            g = 0.0
        shape = (
            f"a boundary that grows roughly like {xa}{fmt.power(round(g))}"
            if abs(g) >= 0.75
            else f"a boundary that hardly moves with {xa}"
        )
        out.append(
            f"By the cost models, {na} needs less memory than {nb} only when {ya} exceeds "
            f"about {t0:,.0f} at {xa} = {n0}, {shape}."
        )
    return out


def pair_summary(ctx: Context, a: str, b: str) -> dict:
    """The pair's figures for ``summary.json``."""
    pair = load_pair(ctx, a, b)
    (ya, xa) = pair.axes
    n0 = _typical_x(pair)
    out: dict = {
        "axes": [ya, xa],
        "fixed": pair.fixed,
        "crossover": {xa: n0, ya: crossover(pair, n0)},
        "common_cells": len(pair.common),
    }
    compared = compare_measured(pair)
    out.update(
        compared=len(compared.points),
        a_lower=sum(p.a_lower for p in compared.points),
        agree=compared.agree,
    )
    if len(pair.common):
        t = pair.common["median_s_a"] / pair.common["median_s_b"]
        m = pd.to_numeric(pair.common["peak_bytes_a"]) / pd.to_numeric(pair.common["peak_bytes_b"])
        out.update(
            time_ratio_median=float(t.median()),
            time_ratio_min=float(t.min()),
            time_ratio_max=float(t.max()),
            memory_ratio_median=float(m.median()),
        )
    return out
