"""The cell comparison: the gated cells (GRU, LSTM) against the Elman cell at equal sizes.

For every algorithm that takes the cell as a size (``cell`` in its spec's
sizes: BPTT, truncated BPTT, RTRL), each gated cell measured at the same sizes
as an Elman cell (every other size variable equal, the report's one
configuration) gives a measured time ratio, gated over Elman, and beside it
the ratio the FLOP model predicts (``spec.flop_count`` at both sizes); the
memory ratio likewise, measured peak over measured peak, beside the memory
model's. A measured ratio above the predicted one says that the gated cell's
kernel reaches a lower FLOP rate than the Elman cell's (its pointwise gates
are work the FLOP model counts as one FLOP each); below, a higher one.

The gated cells' fitted exponents (one fit per cell, ``fit.fit_table``) are
set beside the Elman cell's: the declared exponents are the same for every
cell (the gates multiply the cost by a constant), so the slopes should agree.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from bpttbench.bench import charts as ch
from bpttbench.bench import fmt
from bpttbench.bench.slices import row_keys, size_dict
from bpttbench.bench.view import Context, Skip, View

GATED = ("gru", "lstm")
CELL_TITLES = {"elman": "Elman", "gru": "GRU", "lstm": "LSTM"}
NAME = "cells"
TITLE = "Gated cells against the Elman cell at equal sizes"


def cell_title(view: View, algorithm: str, cell: str) -> str:
    """``'BPTT (GRU)'``: the algorithm's title with the cell's name."""
    return f"{view.title(algorithm)} ({CELL_TITLES.get(cell, str(cell).upper())})"


def has_gated(ok: pd.DataFrame) -> bool:
    """Whether any cell of ``ok`` ran a gated cell (a store from before the cells has none)."""
    return "cell" in ok.columns and bool(ok["cell"].astype(str).isin(GATED).any())


def cell_algorithms(view: View) -> list[str]:
    """The registry's algorithms that take the cell as a size, in registry order."""
    return [name for name, spec in view.registry.items() if "cell" in spec.sizes]


def cell_ratios(ok: pd.DataFrame, view: View) -> pd.DataFrame:
    """One row per gated cell measured where the Elman cell was, at every other size equal.

    Columns: ``algorithm``, ``cell``, ``axis`` (the gated cell's sweep), the size
    variables, ``time_ratio`` / ``flop_ratio`` (gated over Elman, measured and
    by the FLOP model) and ``memory_ratio`` / ``model_memory_ratio``. Empty
    when nothing pairs up. The latest measurement of each size is used.
    """
    out: list[dict] = []
    if "cell" not in ok.columns:
        return pd.DataFrame(out)
    for alg in cell_algorithms(view):
        spec = view.registry[alg]
        part = ok[ok["algorithm"] == alg]
        if part.empty:
            continue
        size_cols = [v for v in spec.sizes if v != "cell" and v in part.columns]
        order = [c for c in ("created",) if c in part.columns]
        part = part.sort_values(order, kind="stable") if order else part
        part = part.assign(_key=row_keys(part, size_cols), _cell=part["cell"].astype(str))
        part = part.drop_duplicates(["_key", "_cell"], keep="last")
        elman = part[part["_cell"] == "elman"].set_index("_key")
        for _, g in part[part["_cell"].isin(GATED)].iterrows():
            if g["_key"] not in elman.index:
                continue
            e = elman.loc[g["_key"]]
            gs, es = size_dict(g, view), size_dict(e, view)
            itemsize = np.dtype(str(g.get("dtype", "float64"))).itemsize
            row = {"algorithm": alg, "cell": g["_cell"], "axis": g.get("axis")}
            row.update({v: gs[v] for v in size_cols if v in gs})
            row["time_ratio"] = _ratio(g.get("median_s"), e.get("median_s"))
            row["flop_ratio"] = _ratio(spec.flop_count(gs), spec.flop_count(es))
            row["memory_ratio"] = _ratio(g.get("peak_bytes"), e.get("peak_bytes"))
            row["model_memory_ratio"] = _ratio(
                spec.memory_bytes(gs, itemsize), spec.memory_bytes(es, itemsize)
            )
            out.append(row)
    df = pd.DataFrame(out)
    if df.empty:
        return df
    rank = {a: i for i, a in enumerate(view.registry)}
    keys = [v for v in view.sizes if v in df.columns]
    df = df.assign(_rank=df["algorithm"].map(rank), _cell=df["cell"].map(GATED.index))
    return df.sort_values(["_rank", "_cell", *keys]).drop(columns=["_rank", "_cell"])


def _ratio(a, b) -> float:
    """a / b as a float; NaN where either is missing or not positive."""
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return math.nan
    return a / b if a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b) else math.nan


def ratio_summary(ratios: pd.DataFrame) -> dict:
    """Per algorithm and gated cell: the measured and predicted ratios' median, min, max."""
    out: dict = {}
    if ratios.empty:
        return out
    for (alg, cell), g in ratios.groupby(["algorithm", "cell"], sort=False):
        entry: dict = {"points": len(g)}
        for col in ("time_ratio", "flop_ratio", "memory_ratio", "model_memory_ratio"):
            v = pd.to_numeric(g[col], errors="coerce").dropna()
            if len(v):
                entry[col] = {"median": float(v.median()), "min": float(v.min()),
                              "max": float(v.max())}  # fmt: skip
        out.setdefault(alg, {})[cell] = entry
    return out


def exponent_pairs(store, view: View) -> list[dict]:
    """The gated cells' measured fits beside the Elman cell's, per algorithm, axis and metric."""
    rows = []
    for (alg, cell, axis, metric), f in store.cell_fits.items():
        if not f.measured:
            continue
        e = store.fits.get((alg, axis, metric))
        rows.append({"algorithm": alg, "cell": cell, "axis": axis, "metric": metric,
                     "fit": f, "elman": e})  # fmt: skip
    rank = {a: i for i, a in enumerate(view.registry)}
    cells = {c: i for i, c in enumerate(GATED)}
    rows.sort(key=lambda r: (rank.get(r["algorithm"], 99), r["axis"], r["metric"],
                             cells.get(r["cell"], 9)))  # fmt: skip
    return rows


def cells_summary(ctx: Context) -> dict:
    """summary.json's ``cells``: the ratios and the gated exponents beside the Elman ones."""
    store, view = ctx.store, ctx.view
    out: dict = {"ratios": ratio_summary(cell_ratios(store.ok, view)), "exponents": {}}
    for r in exponent_pairs(store, view):
        f, e = r["fit"], r["elman"]
        by = out["exponents"].setdefault(r["algorithm"], {}).setdefault(r["cell"], {})
        by.setdefault(r["axis"], {})[r["metric"]] = {
            "slope": f.slope, "ci_low": f.ci_low, "ci_high": f.ci_high, "theory": f.theory,
            "verdict": f.verdict, "points": f.n_points,
            "elman_slope": None if e is None else e.slope,
        }  # fmt: skip
    return out


def chart_cells(ctx: Context):
    """Measured time ratio (gated over Elman) against the FLOP model's, one point per size."""
    store, view = ctx.need_store(), ctx.view
    if not has_gated(store.ok):
        raise Skip("no gated cell (cell=gru or lstm) was measured in this store")
    ratios = cell_ratios(store.ok, view)
    pairs = exponent_pairs(store, view)
    usable = ratios.dropna(subset=["time_ratio", "flop_ratio"]) if len(ratios) else ratios
    if usable.empty and not pairs:
        raise Skip("no gated cell was measured at the sizes of an Elman cell, and none was fitted")
    fig, axes = ch.new_figure(7.5, 4.8, store.footer)
    ax = axes[0, 0]
    markers = {"gru": "o", "lstm": "s"}
    # (no ratio but a fitted pair: ``usable`` is then an empty frame without columns)
    for (alg, cell), g in usable.groupby(["algorithm", "cell"], sort=False) if len(usable) else ():
        style = view.style(alg)
        ax.scatter(g["flop_ratio"], g["time_ratio"], marker=markers.get(cell, "^"),
                   color=style.colour, label=cell_title(view, alg, cell), alpha=0.8)  # fmt: skip
    if len(usable):
        lo = min(usable["flop_ratio"].min(), usable["time_ratio"].min()) / 1.3
        hi = max(usable["flop_ratio"].max(), usable["time_ratio"].max()) * 1.3
        ax.plot([lo, hi], [lo, hi], "--", color="0.5", lw=1, label="measured = predicted")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ch.legend_right(ax)
    ax.set_xlabel("predicted: FLOP-model ratio, gated / Elman")
    ax.set_ylabel("measured: time ratio, gated / Elman")
    ax.set_title(TITLE)
    summary = ratio_summary(usable)
    parts = [
        f"{cell_title(view, alg, cell)} {e['time_ratio']['median']:.3g}x measured against "
        f"{e['flop_ratio']['median']:.3g}x predicted (median of {e['points']})"
        for alg, by in summary.items()
        for cell, e in by.items()
        if "time_ratio" in e and "flop_ratio" in e
    ]
    caption = (
        "Each point is one size (T, n, B and the rest equal) measured with a gated cell and "
        "with the Elman cell; on the dashed line the time ratio is what the FLOP models "
        "predict. Above it, the gated kernel runs at a lower FLOP rate than the Elman one."
    )
    if parts:
        caption += " " + "; ".join(parts) + "."
    return fig, caption, ratio_table(usable, view) + "\n\n" + exponent_table(pairs, view)


def ratio_table(ratios: pd.DataFrame, view: View) -> str:
    """The ratios at each size as Markdown."""
    if ratios.empty:
        return "No gated cell was measured at the sizes of an Elman cell."
    rows = [
        "| algorithm (cell) | sizes | time ratio | FLOP-model ratio | memory ratio "
        "| memory-model ratio |",
        "|---|---|---|---|---|---|",
    ]
    sizes = [v for v in view.sizes if v in ratios.columns and v != "cell"]
    for r in ratios.to_dict("records"):
        held = view.sizes_text({v: r[v] for v in sizes if pd.notna(r.get(v))})
        rows.append(
            f"| {cell_title(view, r['algorithm'], r['cell'])} | {held} | "
            f"{fmt.cell(r['time_ratio'])} | {fmt.cell(r['flop_ratio'])} | "
            f"{fmt.cell(r['memory_ratio'])} | {fmt.cell(r['model_memory_ratio'])} |"
        )
    return "\n".join(rows)


def exponent_table(pairs: list[dict], view: View) -> str:
    """The gated cells' fitted exponents beside the Elman cell's, as Markdown."""
    if not pairs:
        return "No gated cell's sweep was fitted."
    rows = [
        "| algorithm (cell) | axis | metric | slope [95% interval] | theory | verdict "
        "| Elman slope |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in pairs:
        f, e = r["fit"], r["elman"]
        slope = (
            f"{fmt.slope(f.slope)} [{fmt.slope(f.ci_low)}, {fmt.slope(f.ci_high)}]"
            if math.isfinite(f.slope)
            else "no fit"
        )
        elman = fmt.slope(e.slope) if e is not None and math.isfinite(e.slope) else "-"
        rows.append(
            f"| {cell_title(view, r['algorithm'], r['cell'])} | {r['axis']} | {r['metric']} | "
            f"{slope} | {f.theory:g} | {f.verdict} | {elman} |"
        )
    return "\n".join(rows)
