"""The report's CPU/GPU crossover chart, from the ``peers`` table.

For each peer measured on a GPU (``bpttbench peers --device cuda``), the time
ratio *peer on the GPU ÷ bpttbench on the CPU* at the same (algorithm, cell,
T, n, B, dtype) against n: a line per (tool, cell, algorithm, T, k), one
panel per (B, dtype), the ratio 1 marked. Above 1 bpttbench on one CPU core
is faster; where a line crosses 1 the GPU takes over. Where it does is
interpolated on the log-log axes and stated in the caption.

When the table has no GPU row the chart is still drawn, as an empty state
whose panels say so (:data:`EMPTY`), and the caption says it too: the
report then tells a reader how to get the chart instead of dropping it.

``bpttbench.bench.report`` calls :func:`chart`; each algorithm is drawn in its
registry style (``View.style``), the tools told apart by line style as in the
CPU peers chart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from bpttbench.bench import charts as ch
from bpttbench.bench.charts_compare import TOOL_LINESTYLE
from bpttbench.bench.view import NoSource, View
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

NAME = "peers_gpu"
TITLE = "Peers on a GPU against bpttbench on the CPU"
EMPTY = "no GPU rows measured: run `bpttbench peers --device cuda` on a machine with a GPU"
PANEL_B = (1, 32)  # always drawn, with any other B measured
PANEL_DTYPES = ("float64", "float32")
CELL_MARKER = {"gru": "D", "lstm": "v"}  # elman: the algorithm's own marker
MOST_ROWS = 60


@dataclass
class Line:
    tool: str
    algorithm: str
    cell: str
    T: int
    k: int | None
    B: int
    dtype: str
    n: np.ndarray
    ratio: np.ndarray
    label: str = ""
    colour: str = "black"
    marker: str = "o"

    def crossover(self) -> float | None:
        """The n where the ratio first falls through 1, log-log interpolated (None if never)."""
        for (n0, r0), (n1, r1) in zip(
            zip(self.n, self.ratio, strict=True),
            zip(self.n[1:], self.ratio[1:], strict=True),
            strict=False,
        ):
            if r0 >= 1 > r1:
                f = math.log(r0) / (math.log(r0) - math.log(r1))
                return float(2 ** (math.log2(n0) + f * (math.log2(n1) - math.log2(n0))))
        return None


def _is_gpu(device) -> bool:
    return isinstance(device, str) and device.startswith("cuda")


def gpu_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows measured on a GPU (device ``cuda:...``), any status."""
    if "device" not in df.columns:
        return df.iloc[0:0]
    return df.loc[df["device"].map(_is_gpu).astype(bool)]


def cpu_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows measured on the CPU (device ``cpu``, or none recorded: older rows)."""
    if "device" not in df.columns:
        return df
    return df.loc[~df["device"].map(_is_gpu).astype(bool)]


def lines(df: pd.DataFrame, view: View | None = None) -> list[Line]:
    """One line per (tool, cell, algorithm, T, k, B, dtype) of the timed GPU rows."""
    view = view or View.of({})
    ok = gpu_rows(df)
    ratio = pd.to_numeric(ok.get("ratio_vs_bpttbench"), errors="coerce")
    ok = ok[(ok["status"] == "ok") & (ratio > 0)].copy()
    if ok.empty:
        return []
    ok["cell"] = ok["cell"].fillna("elman") if "cell" in ok.columns else "elman"
    ok["k"] = pd.to_numeric(ok["k"], errors="coerce")
    order = [c for c in ("created", "run_ts") if c in ok.columns]
    out = []
    keys = ["tool", "cell", "algorithm", "T", "k", "B", "dtype"]
    for key, g in ok.groupby(keys, dropna=False, sort=True):
        tool, cell, alg, T, k, B, dtype = key
        # The latest measurement of each n.
        g = g.sort_values([*order, "n"], kind="stable").drop_duplicates("n", keep="last")
        g = g.sort_values("n", kind="stable")
        kk = None if pd.isna(k) else int(k)
        name = view.title(alg) if cell == "elman" else f"{cell.upper()} {view.title(alg)}"
        sizes = f"T={int(T)}" + (f", k={kk}" if kk is not None else "")
        style = view.style(alg)
        out.append(
            Line(
                tool, alg, cell, int(T), kk, int(B), str(dtype),
                g["n"].to_numpy(float), g["ratio_vs_bpttbench"].to_numpy(float),
                f"{tool}: {name} ({sizes})", style.colour, style.marker,
            )
        )  # fmt: skip
    return out


def _panels(found: Sequence[Line]) -> tuple[list[int], list[str]]:
    Bs = sorted({*PANEL_B, *(x.B for x in found)})
    dtypes = [*PANEL_DTYPES, *sorted({x.dtype for x in found} - set(PANEL_DTYPES))]
    return Bs, dtypes


@ch.styled
def crossover_chart(
    found: Sequence[Line], footer: str, xlabel: str = "state size n", empty: str = EMPTY
) -> Figure:
    """Panels (B down, dtype across) of ratio against n; the empty state when ``found`` is empty."""
    Bs, dtypes = _panels(found)
    fig, axes = ch.new_figure(
        4.3 * len(dtypes) + 2.6, 3.0 * len(Bs) + 0.6, footer, nrows=len(Bs), ncols=len(dtypes),
        sharex=True, sharey=True,
    )  # fmt: skip
    values = np.concatenate([x.ratio for x in found]) if found else np.array([0.1, 10.0])
    lo, hi = min(values.min(), 1.0) / 1.5, max(values.max(), 1.0) * 1.5
    tools = sorted({x.tool for x in found})
    for i, B in enumerate(Bs):
        for j, dtype in enumerate(dtypes):
            ax = axes[i, j]
            ax.axhspan(1.0, hi, color="0.93", zorder=0, lw=0)
            ax.axhline(1.0, color="black", lw=1.2, zorder=1)
            ax.text(0.98, 0.97, "bpttbench (CPU) faster", transform=ax.transAxes, va="top",
                    ha="right", fontsize=7, color="0.35")  # fmt: skip
            ax.text(0.02, 0.03, "peer (GPU) faster", transform=ax.transAxes, va="bottom",
                    fontsize=7, color="0.35")  # fmt: skip
            here = [x for x in found if x.B == B and x.dtype == dtype]
            for x in here:
                ls = TOOL_LINESTYLE[tools.index(x.tool) % len(TOOL_LINESTYLE)]
                gated = x.cell in CELL_MARKER
                ax.plot(
                    x.n, x.ratio, color=x.colour, ls=ls, lw=1.0 if gated else 1.5,
                    marker=CELL_MARKER.get(x.cell, x.marker), ms=5.5,
                    mfc="white" if gated else x.colour, mew=1.2, label=x.label,
                )  # fmt: skip
                n_x = x.crossover()
                if n_x is not None:
                    ax.plot([n_x], [1.0], marker="|", ms=14, mew=2, color=x.colour, zorder=3)
            if not found:
                ax.text(0.5, 0.5, empty.replace(": ", ":\n", 1), transform=ax.transAxes,
                        ha="center", va="center", fontsize=8, wrap=True,
                        bbox={"boxstyle": "round", "fc": "white", "ec": "0.6"})  # fmt: skip
            elif not here:
                ax.text(0.5, 0.5, f"no GPU rows at B = {B}, {dtype}", transform=ax.transAxes,
                        ha="center", va="center", fontsize=8, color="0.35")  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlim(12, 1400)
            ax.set_ylim(lo, hi)
            ch._log2_axis(ax.xaxis)
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=ch.log_subs(hi / lo)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_title(f"B = {B}, {dtype}", loc="left")
            if i == len(Bs) - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel("peer on GPU ÷ bpttbench on CPU\n(median time per call)")
    handles = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    if handles:
        axes[0, -1].legend(
            handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.02, 1.0),
            frameon=False, borderaxespad=0, labelspacing=0.9, handlelength=3,
        )  # fmt: skip
    fig.suptitle(
        "Where a peer on a GPU overtakes bpttbench on one CPU core (| marks the crossover)",
        x=0.01, ha="left", fontsize=10,
    )  # fmt: skip
    return fig


def footer(df: pd.DataFrame) -> str:
    """Run metadata of the GPU rows: the GPU, the CPU bpttbench ran on, versions, commit."""
    g = gpu_rows(df)
    if g.empty:
        return "bpttbench peers · no GPU rows"
    last = g.sort_values("created", kind="stable").iloc[-1]
    parts = [
        "GPU " + ", ".join(sorted(set(g["device"].dropna()))),
        f"bpttbench on {last.get('cpu')} ({last.get('machine')}), "
        f"{_int(last.get('numba_threads'))} Numba / "
        f"{_int(last.get('blas_threads'))} BLAS thread(s)",
    ]
    versions: dict = {}
    for text in g["versions"].dropna() if "versions" in g.columns else ():
        try:
            versions.update(json.loads(text))
        except (TypeError, ValueError):
            continue
    if versions:
        parts.append(", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    if last.get("commit"):
        parts.append(f"commit {str(last.get('commit'))[:10]}")
    parts.append(f"run {last.get('run_ts')}")
    return "bpttbench peers · " + " · ".join(parts)


def _int(v) -> str:
    try:
        return str(int(v))
    except (TypeError, ValueError):
        return "?"


def _fmt(v, spec=".3g") -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "-"
    return format(v, spec) if math.isfinite(v) else "-"


def table(df: pd.DataFrame, view: View | None = None, most: int = MOST_ROWS) -> str:
    """The GPU rows as a Markdown table (the latest first)."""
    view = view or View.of({})
    g = gpu_rows(df).sort_values("created", ascending=False, kind="stable")
    rows = [
        "| tool | cell | algorithm | T | n | B | k | dtype | device | status | peer median (s) "
        "| bpttbench CPU median (s) | ratio | max rel. error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in g.head(most).to_dict("records"):
        k = "-" if pd.isna(r.get("k")) else _int(r.get("k"))
        rows.append(
            f"| {r.get('tool')} | {r.get('cell') or 'elman'} | {view.title(r.get('algorithm'))} | "
            f"{_int(r.get('T'))} | {_int(r.get('n'))} | {_int(r.get('B'))} | {k} | "
            f"{r.get('dtype')} | {r.get('device')} | {r.get('status')} | "
            f"{_fmt(r.get('median_s'))} | {_fmt(r.get('bpttbench_median_s'))} | "
            f"{_fmt(r.get('ratio_vs_bpttbench'))} | {_fmt(r.get('max_rel_err'), '.1e')} |"
        )
    if len(g) > most:
        rows.append(f"\n({len(g) - most} more GPU rows in the store's peers table.)")
    return "\n".join(rows)


def caption(found: Sequence[Line], df: pd.DataFrame) -> str:
    """What the chart shows, with the crossovers; the empty state's sentence when no GPU rows."""
    if not found:
        g = gpu_rows(df)
        why = f"{EMPTY[0].upper()}{EMPTY[1:]}."
        if len(g):  # GPU rows, none timed
            counts = ", ".join(f"{v} {k}" for k, v in sorted(g["status"].value_counts().items()))
            why = f"No GPU row has a time ratio ({counts}); see the table below."
        return (
            f"{why} This chart compares a peer library running on a GPU with bpttbench on one "
            "CPU core: the ratio of their median times at equal algorithm, T, n, B and dtype."
        )
    crossings = []
    never_below = never_above = 0
    for x in found:
        n_x = x.crossover()
        what = f"{x.label.split(' (')[0]} at B = {x.B}, {x.dtype}"
        if n_x is not None:
            crossings.append(f"{what} from n ≈ {n_x:.0f}")
        elif (x.ratio >= 1).all():
            never_below += 1
        elif (x.ratio < 1).all():
            never_above += 1
    text = (
        "Each line is a peer computing the same gradient on a GPU, timed interleaved with "
        "bpttbench's kernel on the CPU; above the line at 1 bpttbench on one CPU core is "
        f"faster. Ratios run from {min(x.ratio.min() for x in found):.2g} to "
        f"{max(x.ratio.max() for x in found):.2g}."
    )
    if crossings:
        text += f" The GPU takes over for {'; '.join(crossings)}."
    if never_below:
        text += f" {never_below} line(s) stay above 1 at every n measured."
    if never_above:
        text += f" {never_above} line(s) are below 1 from the smallest n measured."
    err = pd.to_numeric(gpu_rows(df)["max_rel_err"], errors="coerce")
    if err.notna().any():
        text += f" Every timed GPU peer passed the gradient check (largest error {err.max():.1g})."
    return text


def chart_gpu_crossover(df: pd.DataFrame, view: View | None = None):
    """(figure, caption, markdown) of the crossover chart from a peers table (may be empty)."""
    view = view or View.of({})
    found = lines(df, view)
    fig = crossover_chart(found, footer(df), view.axis_label("n"))
    md = table(df, view) if len(gpu_rows(df)) else ""
    return fig, caption(found, df), md


def load(db_path: str | Path) -> pd.DataFrame:
    """The peers table (empty with its columns when there is none); raises when unreadable."""
    from bpttbench.bench.peers import load_peers

    return load_peers(db_path)


def chart(ctx, db_path: str | Path):
    """The report's builder (``ctx``: a ``view.Context``): read the peers table, draw the chart."""
    try:
        df = load(db_path)
    except Exception as exc:  # no database, or not ours: the report already said so
        raise NoSource(f"peer measurements could not be read: {exc}") from None
    return chart_gpu_crossover(df, ctx.view)
