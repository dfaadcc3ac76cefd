"""The report's charts of the results store, one builder per chart.

Time and memory against each axis (:func:`chart_scaling`: one chart per axis
that some algorithm's ``chart_axes`` names; :func:`chart_other_axes`: small
panels for the rest), the fitted exponents (:func:`chart_exponents`, measured
exponents apart from the FLOP-model check), the achieved GFLOP/s
(:func:`chart_efficiency`) and the peer tools (:func:`chart_peers`). Each builder
takes a :class:`~bpttbench.bench.view.Context` and returns ``(figure, caption,
markdown)`` or raises :class:`~bpttbench.bench.view.Skip` with the reason. The
pair charts are in ``pairs``, the pytest-benchmark charts in ``benchjson``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from bpttbench.bench import charts as ch
from bpttbench.bench import charts_compare as cc
from bpttbench.bench import fmt, report_gpu
from bpttbench.bench.fit import METRIC_COLUMN, ols_slope, verdict_counts
from bpttbench.bench.peers import load_peers
from bpttbench.bench.slices import (
    fixed_sizes,
    median_positive,
    pick_sweep,
    row_keys,
    size_dict,
)
from bpttbench.bench.view import Context, Skip, View
from bpttbench.costs import Style

TIME_REF = "dashed: theory slope through\nthe fit window"
MEMORY_REF = "dashed: analytic model\n(registry memory model)"


# --- scaling: a metric against one axis, a line per algorithm ---------------------------


def fit_label(fit) -> str:
    """The legend's second line: fitted slope, interval, theory and verdict."""
    if fit is None:
        return ""
    if not math.isfinite(fit.slope):
        return f"no fit ({fit.n_points} points in window), theory {fit.theory:g}"
    return (
        f"slope {fmt.slope(fit.slope)} [{fmt.slope(fit.ci_low)}, {fmt.slope(fit.ci_high)}], "
        f"theory {fit.theory:g}\n{fit.verdict}"
    )


def scaling_series(
    ok: pd.DataFrame,
    fits: Mapping,
    view: View,
    axis: str,
    metric: str,
    include: Callable[[str], bool] = lambda _name: True,
) -> tuple[list[ch.Series], str, list[str]]:
    """One series per algorithm with at least two points; the common fixed sizes; the rest.

    ``include(name)`` chooses the algorithms (those charted on their own along
    the axis, or those in the panels).
    """
    col = METRIC_COLUMN[metric]
    series, fixed_all, too_few = [], [], []
    for alg in view.order(ok.loc[ok["axis"] == axis, "algorithm"]):
        if not include(alg):
            continue
        fit = fits.get((alg, axis, metric))
        sw = pick_sweep(ok, view, alg, axis, fit)
        sw = sw[pd.to_numeric(sw[col], errors="coerce") > 0]
        if sw["size"].nunique() < 2:
            too_few.append(view.title(alg))
            continue
        s = _series(sw, fit, view, alg, metric)
        fixed_all.append((s, fixed_sizes(sw, view.axis_vars(alg, axis), view)))
        series.append(s)
    return series, _common_fixed(fixed_all, view), too_few


def _series(sw: pd.DataFrame, fit, view: View, alg: str, metric: str) -> ch.Series:
    """One algorithm's points, spread, fit window and dashed reference line."""
    x = sw["size"].to_numpy(float)
    y = sw[METRIC_COLUMN[metric]].to_numpy(float)
    s = ch.Series(name=alg, label=view.title(alg), x=x, y=y, style=view.style(alg))
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
        s.ref_x, s.ref_y = model_memory(sw, view, alg)
    line2 = fit_label(fit) or (
        f"slope {ols_slope(np.log(x), np.log(y))[0]:.2f} (all points; no theory)"
    )
    s.label = f"{s.label}\n{line2}"
    return s


def _common_fixed(fixed_all: list, view: View) -> str:
    """The sizes every series holds at one value; each label gets its own others."""
    if not fixed_all:
        return ""
    keys = set.intersection(*(set(f) for _, f in fixed_all))
    first = fixed_all[0][1]
    common = {
        k: first[k] for k in view.sizes if k in keys and all(f[k] == first[k] for _, f in fixed_all)
    }
    for s, f in fixed_all:
        own = {k: v for k, v in f.items() if k not in common}
        if own:
            head, rest = s.label.split("\n", 1)
            s.label = f"{head} ({view.sizes_text(own)})\n{rest}"
    return view.sizes_text(common)


def model_memory(sweep: pd.DataFrame, view: View, alg: str):
    """Analytic bytes at the sweep's sizes: the stored model_bytes, else the registry's."""
    x = sweep["size"].to_numpy(float)
    if "model_bytes" in sweep.columns:
        mb = pd.to_numeric(sweep["model_bytes"], errors="coerce").to_numpy(float)
        if np.isfinite(mb).all() and (mb > 0).all():
            return x, mb
    spec = view.registry.get(alg)
    if spec is None:
        return None, None
    itemsize = np.dtype(str(sweep["dtype"].iloc[0])).itemsize
    try:
        mb = [spec.memory_bytes(size_dict(r, view), itemsize) for _, r in sweep.iterrows()]
    except (KeyError, TypeError):
        return None, None
    return x, np.array(mb)


def describe_slopes(fits: Mapping, view: View, axis: str, metric: str, own: bool = True) -> str:
    """``'BPTT 1.03 (theory 1); RTRL 1.00 (theory 1)'`` for the algorithms on the chart."""
    parts = [
        f"{view.title(a)} {f.slope:.2f} (theory {f.theory:g})"
        for (a, ax_, m), f in fits.items()
        if ax_ == axis and m == metric and math.isfinite(f.slope) and view.own_chart(a, ax_) == own
    ]
    return "; ".join(parts)


def sentence(prefix: str, body: str) -> str:
    return f"{prefix}: {body}." if body else ""


def chart_scaling(ctx: Context, axis: str, metric: str):
    """Time or memory against ``axis`` for the algorithms charted on their own along it."""
    store, view = ctx.need_store(), ctx.view
    series, common, too_few = scaling_series(
        store.ok, store.fits, view, axis, metric, lambda a: view.own_chart(a, axis)
    )
    if not series:
        who = f" ({', '.join(too_few)} had fewer)" if too_few else ""
        raise Skip(f"fewer than 2 measured sizes along {axis} for every algorithm{who}")
    what = "Time per gradient call" if metric == "time" else "Peak memory per call"
    fixed = ", ".join(x for x in (common, str(store.config.get("dtype", ""))) if x)
    title = f"{what} vs {view.axis_name(axis)}\n{fixed}"
    ref = TIME_REF if metric == "time" else MEMORY_REF
    fig = ch.scaling_chart(series, view.axis_label(axis), metric, title, ref, store.footer)
    slopes = sentence("Fitted", describe_slopes(store.fits, view, axis, metric))
    if metric == "time":
        caption = (
            f"The slope on these log-log axes is the exponent: each solid line should run "
            f"parallel to its dashed theory line where markers are filled (the fit window)"
            f"; bars are the interquartile range. {slopes}"
        )
    else:
        caption = (
            f"Measured tracemalloc peaks (solid) should track the analytic model (dashed); "
            f"a flat line means memory does not grow along {axis}. {slopes}"
        )
    if too_few:
        caption += f" Not drawn (fewer than 2 sizes): {', '.join(too_few)}."
    return fig, caption.strip(), ""


def other_axes(ctx: Context) -> list[str]:
    """Axes with measured cells of an algorithm that is not charted on its own along them."""
    ok = ctx.need_store().ok
    have = set(zip(ok["algorithm"], ok["axis"], strict=True))
    return [
        a
        for a in ctx.view.axes()
        if any(ax == a and not ctx.view.own_chart(n, a) for n, ax in have)
    ]


def chart_other_axes(ctx: Context):
    """Small panels: time and memory along every axis without a chart of its own."""
    store, view = ctx.need_store(), ctx.view
    panels = []
    for axis in other_axes(ctx):
        for metric in ("time", "memory"):
            series, common, _ = scaling_series(
                store.ok, store.fits, view, axis, metric, lambda a, x=axis: not view.own_chart(a, x)
            )
            if series:
                title = f"{metric} vs {axis}" + (f": {common}" if common else "")
                panels.append(ch.Panel(view.axis_label(axis), metric, series, title))
    if not panels:
        raise Skip("no sweep along the other axes with 2 or more sizes")
    fig = ch.panels_chart(panels, f"Scaling along the {other_axes_title(ctx)}", store.footer)
    slopes = "; ".join(
        f"{view.title(a)} {m} vs {ax_} {f.slope:.2f} (theory {f.theory:g})"
        for (a, ax_, m), f in store.fits.items()
        if not view.own_chart(a, ax_) and m in ("time", "memory") and math.isfinite(f.slope)
    )
    names = fmt.join([view.axis_name(a) for a in other_axes(ctx)])
    caption = (
        f"{names[0].upper()}{names[1:]}, one at a time; dashed lines as in the charts "
        f"above. {sentence('Fitted', slopes)}"
    )
    return fig, caption.strip(), ""


def other_axes_title(ctx: Context) -> str:
    """``'other axes: batch size B, truncation length k, ...'``."""
    return "other axes: " + ", ".join(ctx.view.axis_name(a) for a in other_axes(ctx))


# --- exponents ------------------------------------------------------------------------


def chart_exponents(ctx: Context):
    """Every fitted exponent against theory; the FLOP-model checks in a panel of their own."""
    store, view = ctx.need_store(), ctx.view
    fits = list(store.fits.values())
    if not fits:
        raise Skip("no exponent fits (no sweep has a theoretical exponent and enough points)")
    rows = [
        cc.SlopeRow(
            f"{view.title(f.algorithm)} · {f.axis}",
            f.metric,
            f.slope,
            f.ci_low,
            f.ci_high,
            f.theory,
            f.delta,
            f.verdict,
        )
        for f in fits
    ]
    fig = cc.exponent_chart(rows, store.footer)
    m, c = verdict_counts(fits), verdict_counts(fits, measured=False)
    caption = (
        "Each bar is a fitted exponent with its 95% interval; it passes when the whole "
        "interval lies in the grey band around the theory (black tick). Measured (time and "
        f"memory): {m['PASS']} of {m['total']} PASS, {m['INCONCLUSIVE']} INCONCLUSIVE, "
        f"{m['FAIL']} FAIL."
    )
    if c["total"]:
        caption += (
            f" The FLOP counts (right panel) are the registry's exact models, not "
            f"measurements: their fits check the declared exponents and fit windows, "
            f"{c['PASS']} of {c['total']} PASS."
        )
    return fig, caption, exponent_tables(fits, view)


_TABLE_HEAD = (
    "| algorithm | axis | metric | theory | fitted slope | 95% interval | verdict "
    "| fit window | points | note |\n|---|---|---|---|---|---|---|---|---|---|"
)


def _table_row(f, view: View) -> str:
    theory = f"{f.theory:g} ± {f.delta:g}" if f.delta else f"{f.theory:g}"
    if math.isfinite(f.slope):
        slope, ci = f"{f.slope:.3f}", f"[{f.ci_low:.3f}, {f.ci_high:.3f}]"
    else:
        slope, ci = "-", "-"
    window = f"{min(f.window)}-{max(f.window)}" if f.window else "(empty)"
    note = str(f.note or "").replace("|", "/")
    return (
        f"| {view.title(f.algorithm)} | {f.axis} | {f.metric} | {theory} | "
        f"{slope} | {ci} | **{f.verdict}** | {window} | {f.n_points} | {note} |"
    )


def exponent_tables(fits: Sequence, view: View) -> str:
    """The measured exponents' table, the FLOP-model checks' table, and the sources."""
    measured = [f for f in fits if f.measured]
    checks = [f for f in fits if not f.measured]
    text = "Measured exponents (time and memory):\n\n" + "\n".join(
        [_TABLE_HEAD, *(_table_row(f, view) for f in measured)]
    )
    if checks:
        text += (
            "\n\nModel check, not a measurement: exponents of the exact FLOP counts over the "
            "same sweeps.\n\n" + "\n".join([_TABLE_HEAD, *(_table_row(f, view) for f in checks)])
        )
    sources: dict[str, list[str]] = {}
    for f in measured:
        sources.setdefault(f.source, []).append(f"{view.title(f.algorithm)} {f.metric} vs {f.axis}")
    if sources:
        text += "\n\nSources of the theoretical exponents (FLOPs share the time exponent's):\n\n"
        text += "\n".join(f"- {src}: {', '.join(who)}" for src, who in sources.items() if src)
    return text


# --- efficiency -----------------------------------------------------------------------

# A gated cell's line: its algorithm's colour, a marker and dashes of its own.
_CELL_LINES = {"gru": ("D", "--"), "lstm": ("s", ":")}


def cell_style(style: Style, cell: str) -> Style:
    """The style of an algorithm's line for a gated ``cell``: same colour, other marks."""
    marker, line = _CELL_LINES.get(cell, ("^", "-."))
    return Style(style.colour, marker, line)


def chart_efficiency(ctx: Context):
    """Achieved GFLOP/s along every axis, against the run's GEMM and GEMV rates."""
    store, view = ctx.need_store(), ctx.view
    ok = store.ok[pd.to_numeric(store.ok["gflops"], errors="coerce") > 0]
    if ok.empty:
        raise Skip("no cell has an achieved GFLOP/s")
    panels, best = [], {}
    for axis in view.axes():
        panel = ch.Panel(view.axis_label(axis), "time", subtitle=f"along {axis}")
        for alg in view.order(ok.loc[ok["axis"] == axis, "algorithm"]):
            sw = pick_sweep(ok, view, alg, axis, store.fits.get((alg, axis, "time")))
            if sw["size"].nunique() < 2:
                continue
            x, y = sw["size"].to_numpy(float), sw["gflops"].to_numpy(float)
            panel.series.append(ch.Series(alg, view.title(alg), x, y, view.style(alg)))
            top = sw.loc[sw["gflops"].idxmax()]
            if top["gflops"] > best.get(alg, (0, None))[0]:
                best[alg] = (float(top["gflops"]), top)
        for (alg, cell, ax_, metric), fit in store.cell_fits.items():  # the gated cells' sweeps
            if ax_ != axis or metric != "time":
                continue
            sw = pick_sweep(ok, view, alg, axis, fit)
            if sw["size"].nunique() < 2 or not sw["cell"].astype(str).eq(cell).all():
                continue
            x, y = sw["size"].to_numpy(float), sw["gflops"].to_numpy(float)
            style = cell_style(view.style(alg), cell)
            title = f"{view.title(alg)} ({cell.upper()})"
            panel.series.append(ch.Series(f"{alg}[{cell}]", title, x, y, style))
            top = sw.loc[sw["gflops"].idxmax()]
            if top["gflops"] > best.get(title, (0, None))[0]:
                best[title] = (float(top["gflops"]), top)
        if panel.series:
            panels.append(panel)
    if not panels:
        raise Skip("fewer than 2 sizes with an achieved GFLOP/s along every axis")
    gemm = median_positive(store.runs.get("gemm_gflops"))
    gemv = median_positive(store.runs.get("gemv_gflops"))
    fig = ch.efficiency_chart(panels, gemm, gemv, store.footer)
    bests = "; ".join(
        f"{view.title(a) if a in view.registry else a} {g:.3g} GFLOP/s at "
        f"{view.sizes_text(size_dict(r, view))}" + (f" ({g / gemm:.0%} of GEMM)" if gemm else "")
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


# --- peers ----------------------------------------------------------------------------


def peer_rows(db_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every peer row of the store, and those with a time ratio; Skip when there are none."""
    try:
        df = load_peers(db_path)
    except Exception as exc:
        raise Skip(f"peer measurements could not be read: {exc}") from None
    df = report_gpu.cpu_rows(df)  # GPU rows have their own chart (report_gpu)
    if df is None or len(df) == 0:
        raise Skip("no peer measurements in the store (run `bpttbench peers`)")
    status = df["status"] if "status" in df.columns else pd.Series("ok", index=df.index)
    ratio = pd.to_numeric(df["ratio_vs_bpttbench"], errors="coerce")
    ok = df[(status == "ok") & (ratio > 0)]
    if ok.empty:
        raise Skip(f"no peer measurement has a time ratio ({fmt.counts(status.value_counts())})")
    return df, ok


def peer_groups(ok: pd.DataFrame):
    """``(first row, rows)`` per tool, cell, algorithm, T, B, k, dtype, threads: latest per n."""
    keys = ("tool", "cell", "algorithm", "T", "B", "k", "dtype", "threads")
    keys = [c for c in keys if c in ok.columns]
    order = [c for c in ("created", "run_ts") if c in ok.columns]
    for _, g in ok.groupby(row_keys(ok, keys), sort=True):
        # The latest measurement of each size: stable sort by time, keep the last.
        g = g.sort_values([*order, "n"], kind="stable").drop_duplicates("n", keep="last")
        g = g.sort_values("n", kind="stable")
        yield g.iloc[0], g


def chart_peers(ctx: Context, db_path: str | Path):
    """Peer tools' time over bpttbench's against n, a line per tool and algorithm."""
    store, view = ctx.need_store(), ctx.view
    df, ok = peer_rows(db_path)
    series = []
    for row, g in peer_groups(ok):
        sizes = ", ".join(
            f"{k}={fmt.integer(row[k])}" for k in ("T", "B", "k") if pd.notna(row.get(k))
        )
        cell = peer_cell(row.get("cell"))
        label = f"{row['tool']}: {view.title(row['algorithm'])} ({cell})\n({sizes})"
        x, y = g["n"].to_numpy(float), g["ratio_vs_bpttbench"].to_numpy(float)
        alg = row["algorithm"]
        style = view.style(alg)
        if cell != "Elman":  # a gated cell's line: the algorithm's colour, its own marks
            style = cell_style(style, cell.lower())
        series.append(cc.PeerLine(alg, row["tool"], label, x, y, style, cell))
    fig = cc.peers_chart(series, view.axis_label("n"), store.footer)
    r = ok["ratio_vs_bpttbench"].astype(float)
    caption = (
        "Each line is a peer library computing the same gradient, timed interleaved with "
        "bpttbench's kernel; above the line at 1 bpttbench is faster. Ratios run from "
        f"{r.min():.2g} to {r.max():.2g}; every timed peer agreed with bpttbench's gradient "
        f"(largest relative error {pd.to_numeric(ok['max_rel_err'], errors='coerce').max():.1g})."
    )
    return fig, caption, peers_table(df, view)


def peer_cell(cell) -> str:
    """The recurrent cell of a peer row as the report names it: Elman (also for rows from
    before the cell column), GRU, LSTM."""
    if not isinstance(cell, str) or cell in ("", "elman"):
        return "Elman"
    return cell.upper()


def peers_table(df: pd.DataFrame, view: View, most: int = 40) -> str:
    """The peers table of the store as Markdown, refused cells included.

    The cell has a column of its own: a GRU or LSTM row has the same algorithm and
    sizes as an Elman row, and only the cell tells them apart.
    """
    rows = [
        "| tool | cell | algorithm | T | n | B | k | dtype | status | peer median (s) "
        "| bpttbench median (s) | ratio | max rel. error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.head(most).to_dict("records"):
        tool = f"{fmt.text(r.get('tool'))} {fmt.text(r.get('tool_version'))}".strip()
        rows.append(
            f"| {tool} | {peer_cell(r.get('cell'))} | {view.title(r.get('algorithm'))} "
            f"| {fmt.integer(r.get('T'))} | "
            f"{fmt.integer(r.get('n'))} | {fmt.integer(r.get('B'))} | {fmt.cell(r.get('k'), 'd')} "
            f"| {r.get('dtype')} | {r.get('status', 'ok')} | {fmt.cell(r.get('median_s'))} | "
            f"{fmt.cell(r.get('bpttbench_median_s'))} | {fmt.cell(r.get('ratio_vs_bpttbench'))} "
            f"| {fmt.cell(r.get('max_rel_err'), '.1e')} |"
        )
    if len(df) > most:
        rows.append(f"\n({len(df) - most} more rows in the store's peers table.)")
    return "\n".join(rows)
