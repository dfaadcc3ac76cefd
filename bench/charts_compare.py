"""Charts that set algorithms side by side: exponents against theory, cost maps of a pair,
where one's memory drops below the other's, and ratio plots (saved runs, peer tools).

Like ``charts``, every function takes prepared arrays, labels and styles and
returns a :class:`matplotlib.figure.Figure`; the report modules prepare the data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
from bpttbench.bench.charts import (
    OKABE_ITO,
    VERDICT_STYLE,
    _log2_axis,
    legend_right,
    log_subs,
    new_figure,
    styled,
)
from bpttbench.costs import Style
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

# --- exponents: fitted slopes and intervals against theory ----------------------------


@dataclass
class SlopeRow:
    label: str  # e.g. "BPTT · T"
    metric: str
    slope: float
    ci_low: float
    ci_high: float
    theory: float
    delta: float
    verdict: str


PANEL_TITLE = {
    "time": "time exponent (measured)",
    "memory": "memory exponent (measured)",
    "flops": "FLOP-count exponent\n(a check of the cost model)",
}


@styled
def exponent_chart(rows: Sequence[SlopeRow], footer: str) -> Figure:
    """A panel per metric; each row a fitted slope with its 95% interval against theory.

    The FLOP-count panel, a check of the cost model rather than a measurement,
    comes last on a grey background, apart from the measured panels.
    """
    metrics = [m for m in ("time", "memory", "flops") if any(r.metric == m for r in rows)]
    labels = list(dict.fromkeys(r.label for r in rows))
    ypos = {lab: i for i, lab in enumerate(labels)}
    height = 1.6 + 0.32 * len(labels)
    fig, axes = new_figure(2.6 * len(metrics) + 1.8, height, footer, 1, len(metrics), sharey=True)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for r in (r for r in rows if r.metric == metric):
            y = ypos[r.label]
            ax.add_patch(
                mpl.patches.Rectangle(
                    (r.theory - r.delta, y - 0.32), 2 * r.delta, 0.64, color="0.85", lw=0
                )
            )
            ax.plot([r.theory, r.theory], [y - 0.32, y + 0.32], color="black", lw=1.3)
            if math.isfinite(r.slope):
                colour, marker = VERDICT_STYLE.get(r.verdict, ("0.4", "o"))
                ax.errorbar(
                    r.slope,
                    y,
                    xerr=[[r.slope - r.ci_low], [r.ci_high - r.slope]],
                    color=colour,
                    marker=marker,
                    ms=6,
                    capsize=3,
                    lw=1.4,
                )
            else:
                ax.text(r.theory, y, "  no fit", va="center", ha="left", fontsize=7, color="0.4")
        ax.set_title(PANEL_TITLE[metric], loc="left")
        if metric == "flops":
            ax.set_facecolor("0.96")
        ax.set_xlabel("slope of log(metric) on log(size)")
        ax.grid(axis="y", visible=False)
        ax.set_ylim(len(labels) - 0.5, -0.5)
    axes[0, 0].set_yticks(range(len(labels)), labels)
    handles = [
        Line2D([], [], color=c, marker=m, ls="-", label=v) for v, (c, m) in VERDICT_STYLE.items()
    ]
    handles += [
        Line2D([], [], color="black", lw=1.3, label="theory"),
        mpl.patches.Patch(color="0.85", label="theory ± margin"),
    ]
    fig.legend(handles=handles, loc="outside upper center", ncols=5, frameon=False)
    return fig


# --- cost at equal (T, n): model ratio heatmaps -------------------------------------


def format_ratio(r: float) -> str:
    """A ratio in two significant digits: 0.031, 0.5, 3.2, 48, 1.2k, 35M, 1e-6."""
    if not math.isfinite(r) or r <= 0:
        return "-"
    if r < 0.001:
        return f"{r:.0e}".replace("e-0", "e-")

    def two(v: float) -> str:
        return f"{v:.0f}" if v >= 9.95 else f"{v:.2g}"

    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if r >= div * 0.995:
            return two(r / div) + suffix
    return two(r)


@dataclass
class RatioPanel:
    title: str
    ratio: np.ndarray  # (len(T), len(n)), A / B
    boundary: bool = False  # draw the ratio = 1 contour


@dataclass
class RatioMap:
    """The grid and the points every panel of a ratio chart shares."""

    y: np.ndarray  # the grid's y values (rows of each panel's ratio)
    x: np.ndarray  # its x values (columns)
    labels: tuple[str, str]  # x and y axis labels
    names: tuple[str, str]  # A and B
    measured: Sequence[tuple[float, float]]  # (x, y) where both were measured: rings
    each: Sequence[tuple[str, str, Sequence[tuple[float, float]]]]  # (label, marker, points)


@styled
def ratio_chart(m: RatioMap, panels: Sequence[RatioPanel], title: str, footer: str) -> Figure:
    """Maps of cost(A) / cost(B) over a fine (x, y) grid, log colour scale centred on 1.

    Contours mark every power of ten (labelled), a thick one the ratio 1 in a
    panel marked ``boundary``. Rings mark where both were measured at the same
    size; small markers where each algorithm was measured.
    """
    fig, axes = new_figure(5.0 * len(panels) + 0.6, 5.0, footer, 1, len(panels))
    for ax, panel in zip(axes[0], panels, strict=True):
        _ratio_panel(fig, ax, panel, m)
    handles = [
        Line2D([], [], ls="none", marker=marker, ms=4.5, mfc="white", mec="black", label=label)
        for label, marker, pts in m.each
        if pts
    ]
    if m.measured:
        handles.append(
            Line2D([], [], ls="none", marker="o", ms=9, mfc="none", mec="black",
                   label="both, same size")
        )  # fmt: skip
    if handles:
        fig.legend(
            handles=handles, loc="outside upper right", ncols=len(handles), frameon=False,
            fontsize=7.5,
        )  # fmt: skip
    fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    return fig


def _ratio_panel(fig: Figure, ax, panel: RatioPanel, m: RatioMap) -> None:
    """One panel: the coloured map, its contours, the measured sizes and a colour bar."""
    logr = np.log10(panel.ratio)
    lim = max(1.0, float(np.nanmax(np.abs(logr))))
    mesh = ax.pcolormesh(
        m.x, m.y, logr, cmap=mpl.colormaps["PuOr_r"], norm=Normalize(-lim, lim),
        shading="gouraud", rasterized=True,
    )  # fmt: skip
    lo, hi = math.floor(np.nanmin(logr)), math.ceil(np.nanmax(logr))
    decades = [k for k in range(lo, hi + 1) if k != 0]
    if decades:
        cs = ax.contour(m.x, m.y, logr, levels=decades, colors="0.15", linewidths=0.6)
        ax.clabel(cs, fmt=lambda v: f"{format_ratio(10.0**v)}x", fontsize=7, inline=True)
    if panel.boundary and np.nanmin(logr) < 0 < np.nanmax(logr):
        cs = ax.contour(m.x, m.y, logr, levels=[0], colors="black", linewidths=2.0)
        ax.clabel(cs, fmt=lambda v: "equal", fontsize=7.5, inline=True)
    for _label, marker, pts in m.each:
        if pts:
            px, py = zip(*pts, strict=True)
            ax.plot(px, py, ls="none", marker=marker, ms=4.5, mew=0.9, mfc="white", mec="black")
    if m.measured:
        mx, my = zip(*m.measured, strict=True)
        ax.plot(mx, my, ls="none", marker="o", ms=11, mfc="none", mec="black", mew=1.2)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    _log2_axis(ax.xaxis)
    _log2_axis(ax.yaxis)
    ax.set_xlim(m.x[0], m.x[-1])
    ax.set_ylim(m.y[0], m.y[-1])
    ax.grid(False)
    ax.set_xlabel(m.labels[0])
    ax.set_ylabel(m.labels[1])
    ax.set_title(panel.title, loc="left")
    cb = fig.colorbar(mesh, ax=ax, shrink=0.9, pad=0.02)
    ticks = np.arange(-math.floor(lim), math.floor(lim) + 1)
    step = max(1, math.ceil(len(ticks) / 7))
    ticks = ticks[(ticks % step) == 0]
    cb.set_ticks(ticks, labels=[format_ratio(10.0**t) for t in ticks])
    cb.set_label(f"{m.names[0]} ÷ {m.names[1]}  (>1: {m.names[1]} cheaper)")


# --- where one algorithm's memory drops below another's -------------------------------


@dataclass
class BoundaryPoint:
    """A size where both algorithms were measured, and which one used less memory."""

    x: float
    y: float
    a_lower: bool  # algorithm A used less memory here


@dataclass
class Boundary:
    """The model's boundary y*(x) where memory(A) = memory(B), and what to draw with it."""

    x: np.ndarray
    y: np.ndarray
    names: tuple[str, str]
    styles: tuple[Style, Style]
    labels: tuple[str, str]  # x and y axis labels
    guide: float | None = None  # power of a dotted guide y ~ x^guide, if any
    guide_label: str = ""
    note: str = ""  # said in the chart when there is no measured point


@styled
def boundary_chart(b: Boundary, points: Sequence[BoundaryPoint], title: str, footer: str) -> Figure:
    """The model's boundary, the two regions, and measured-against-measured points."""
    fig, axes = new_figure(8.4, 5.0, footer)
    ax = axes[0, 0]
    n_line, T_line, names = b.x, b.y, b.names
    (ca, ma), (cb, mb) = ((s.colour, s.marker) for s in b.styles)
    xs = [p.x for p in points] + list(n_line)
    ys = [p.y for p in points] + list(T_line)
    x_lo, x_hi = min(xs) / 1.5, max(xs) * 1.5
    y_lo, y_hi = max(1.0, min(ys) / 2), max(ys) * 2
    ax.fill_between(n_line, T_line, y_hi, color=ca, alpha=0.10, lw=0)
    ax.fill_between(n_line, y_lo, T_line, color=cb, alpha=0.10, lw=0)
    ax.plot(
        n_line,
        T_line,
        color="black",
        lw=1.8,
        label=f"model: memory({names[0]}) = memory({names[1]})",
    )
    if b.guide is not None:
        mid = len(n_line) // 2
        g = T_line[mid] * (n_line.astype(float) / n_line[mid]) ** b.guide
        ax.plot(n_line, g, color="0.45", lw=1, ls=":", label=b.guide_label)
    for p in points:
        colour, marker = (ca, ma) if p.a_lower else (cb, mb)
        ax.plot(p.x, p.y, ls="none", marker=marker, ms=7, mec=colour, mfc=colour, mew=1.3)
    if not points and b.note:
        ax.text(
            0.98, 0.03, b.note, transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
            bbox={"boxstyle": "round,pad=0.4", "fc": "white", "ec": "0.6"},
        )  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    _log2_axis(ax.xaxis)
    _log2_axis(ax.yaxis)
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel(b.labels[0])
    ax.set_ylabel(b.labels[1])
    ax.set_title(title, loc="left")
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        mpl.patches.Patch(color=ca, alpha=0.25, label=f"{names[0]} needs less memory"),
        mpl.patches.Patch(color=cb, alpha=0.25, label=f"{names[1]} needs less memory"),
    ]
    if any(p.a_lower for p in points):
        handles.append(
            Line2D([], [], ls="none", marker=ma, color=ca, label=f"measured: {names[0]} lower")
        )
    if any(not p.a_lower for p in points):
        handles.append(
            Line2D([], [], ls="none", marker=mb, color=cb, label=f"measured: {names[1]} lower")
        )
    legend_right(ax, handles=handles, labelspacing=0.9)
    return fig


# --- ratio dot plots: saved pytest-benchmark runs, peer tools -----------------------


@styled
def dot_ratio_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    xlabel: str,
    title: str,
    footer: str,
    note: str = "",
) -> Figure:
    """Rows of ratios on a log axis around 1; one marker style per series."""
    height = 1.5 + 0.24 * len(labels)
    width = 8.4
    fig, axes = new_figure(width, height, footer)
    ax = axes[0, 0]
    styles = [
        (OKABE_ITO["blue"], "o"),
        (OKABE_ITO["vermillion"], "^"),
        (OKABE_ITO["green"], "s"),
        (OKABE_ITO["purple"], "D"),
        (OKABE_ITO["orange"], "v"),
    ]
    y = np.arange(len(labels))
    finite = []
    for k, (name, values) in enumerate(series):
        colour, marker = styles[k % len(styles)]
        v = np.asarray(values, dtype=float)
        ok = np.isfinite(v) & (v > 0)
        finite.extend(v[ok])
        ax.plot(v[ok], y[ok], ls="none", marker=marker, ms=6, color=colour, label=name)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    lo = min([*finite, 1.0]) / 1.3
    hi = max([*finite, 1.0]) * 1.3
    ax.set_xlim(min(lo, 0.5), max(hi, 2.0))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(y, labels, fontsize=7.5)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(f"{xlabel}\n{note}" if note else xlabel)
    ax.set_title(title, loc="left")
    if len(series) > 1 or series[0][0]:
        legend_right(ax)
    return fig


TOOL_LINESTYLE = ["-", (0, (5, 2)), (0, (1, 1.5)), "-."]


@dataclass
class PeerLine:
    """One peer tool's time ratios for one algorithm (at one T, B, k) against n."""

    algorithm: str
    tool: str
    label: str
    x: np.ndarray
    y: np.ndarray
    style: Style
    cell: str = "Elman"  # the recurrent cell: a GRU line is not an Elman line


@styled
def peers_chart(series: Sequence[PeerLine], xlabel: str, footer: str) -> Figure:
    """Time ratio peer / bpttbench against n: colour by algorithm, marker by
    algorithm and cell (a GRU or LSTM line has its own), dashes by tool.

    When one tool has several lines for one algorithm (other T or B), the later
    ones get hollow markers and a thinner line so that no two lines look alike.
    """
    fig, axes = new_figure(8.4, 4.6, footer)
    ax = axes[0, 0]
    tools = list(dict.fromkeys(s.tool for s in series))
    seen: dict[tuple[str, str], int] = {}
    for s in series:
        alg, tool, label, x, y = s.algorithm, s.tool, s.label, s.x, s.y
        colour, marker = s.style.colour, s.style.marker
        ls = TOOL_LINESTYLE[tools.index(tool) % len(TOOL_LINESTYLE)]
        repeat = seen.get((alg, tool, s.cell), 0)
        seen[(alg, tool, s.cell)] = repeat + 1
        face = colour if repeat == 0 else "white"
        ax.plot(
            x, y, color=colour, marker=marker, ms=5.5 + repeat, lw=1.5 if repeat == 0 else 1.0,
            ls=ls, mfc=face, mew=1.3, label=label,
        )  # fmt: skip
    ax.axhline(1.0, color="black", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _log2_axis(ax.xaxis)
    values = np.concatenate([s.y for s in series])
    lo, hi = min(values.min(), 1.0) / 1.3, max(values.max(), 1.0) * 1.3
    ax.set_ylim(lo, hi)
    span = hi / lo
    subs = log_subs(span)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("peer's median time ÷ bpttbench's\n(above 1: bpttbench is faster)")
    ax.set_title("Peer implementations of the same gradient against bpttbench", loc="left")
    legend_right(ax, labelspacing=0.9, handlelength=3)
    return fig
