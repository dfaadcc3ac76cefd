"""Drawing the report's charts: matplotlib figures from prepared data, no I/O but saving.

Every function here takes plain arrays and labels (``bpttbench.bench.report`` prepares
them from the store) and returns a :class:`matplotlib.figure.Figure`. Figures
are built without ``pyplot``, so nothing global is touched and no screen is
needed; :func:`save` writes each one as PNG and SVG.

Colours are the Okabe-Ito palette (safe for the common colour-vision
deficiencies), and every algorithm also has its own marker, so lines stay
distinguishable in grey.
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter

DPI = 120
OKABE_ITO = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "green": "#009E73",
    "purple": "#CC79A7",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}
ALGORITHM_STYLE = {  # name -> (colour, marker)
    "bptt": (OKABE_ITO["blue"], "o"),
    "tbptt": (OKABE_ITO["green"], "s"),
    "rtrl": (OKABE_ITO["vermillion"], "^"),
    "backprop": (OKABE_ITO["purple"], "D"),
}
_SPARE = [(OKABE_ITO["orange"], "v"), (OKABE_ITO["sky"], "P"), (OKABE_ITO["black"], "X")]
VERDICT_STYLE = {  # verdict -> (colour, marker)
    "PASS": (OKABE_ITO["green"], "o"),
    "INCONCLUSIVE": (OKABE_ITO["orange"], "s"),
    "FAIL": (OKABE_ITO["vermillion"], "X"),
}
AXIS_LABEL = {
    "T": "sequence length T (steps)",
    "n": "state size n (hidden units)",
    "B": "batch size B",
    "k": "truncation length k = k1 = k2 (steps)",
    "depth": "depth L (layers)",
    "width": "width w (units per layer)",
}
METRIC_LABEL = {
    "time": "time per gradient call",
    "memory": "peak memory per call",
    "flops": "FLOPs per call",
}
RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "bpttbench",
    "svg.fonttype": "none",
}


def styled(draw):
    """Run a drawing function inside the report's rc settings (fonts, grid, SVG salt)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(RC):
            return draw(*args, **kwargs)

    return wrapper


def algorithm_style(name: str) -> tuple[str, str]:
    """(colour, marker) of an algorithm; names outside the four get spare styles."""
    if name in ALGORITHM_STYLE:
        return ALGORITHM_STYLE[name]
    return _SPARE[sum(map(ord, name)) % len(_SPARE)]


# --- figure plumbing -----------------------------------------------------------------


def new_figure(
    width: float, height: float, footer: str, nrows: int = 1, ncols: int = 1, **subplot_kw
) -> tuple[Figure, np.ndarray]:
    """A figure with a grid of axes and ``footer`` (run metadata) along its bottom edge."""
    with mpl.rc_context(RC):
        fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    lines = textwrap.wrap(footer, width=int(width * 17)) if footer else []
    if lines:
        fig.text(0.01, 0.005, "\n".join(lines), fontsize=6.5, color="0.35", va="bottom", ha="left")
        # Keep the axes clear of the footer: constrained layout plans inside ``rect``.
        fig.get_layout_engine().set(
            rect=(0, 0.028 * len(lines) * 4.5 / height, 1, 1 - 0.028 * len(lines) * 4.5 / height)
        )
    return fig, axes


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``name.png`` and ``name.svg`` into ``out_dir``; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    with mpl.rc_context(RC):
        fig.savefig(paths[0], dpi=DPI, metadata={"Software": None})
        fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    return paths


def _log2_axis(axis, numticks: int = 12) -> None:
    """Sizes are powers of two: ticks at powers of two, labelled as plain integers."""
    axis.set_major_locator(LogLocator(base=2, numticks=numticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: format_size(v)))
    axis.set_minor_formatter(NullFormatter())


def format_size(v: float) -> str:
    """Tick label of a size: 512, 8192, 65.5k, 4.19M."""
    if v >= 1e6:
        return f"{v / 1e6:.3g}M"
    if v >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:g}"


def log_subs(span: float) -> tuple[float, ...]:
    """Major ticks per decade for a log axis covering a factor ``span``: enough for 3 or more."""
    return (1.0,) if span >= 100 else (1.0, 2.0, 5.0) if span >= 10 else tuple(range(1, 10))


def _log10_axis(axis, unit: str, span: float = 1e3) -> None:
    """Engineering labels (1 ms, 100 kB); more ticks per decade when the range ``span`` is short."""
    subs = log_subs(span)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    axis.set_major_formatter(EngFormatter(unit=unit, places=0, sep=" "))
    axis.set_minor_formatter(NullFormatter())


# --- scaling charts: a metric against one axis, a line per algorithm -------------------


@dataclass
class Series:
    """One algorithm's measured points along an axis, and its dashed reference line."""

    name: str
    label: str
    x: np.ndarray
    y: np.ndarray
    y_low: np.ndarray | None = None  # spread (e.g. first and third quartile)
    y_high: np.ndarray | None = None
    in_window: np.ndarray | None = None  # points the exponent fit used (filled markers)
    ref_x: np.ndarray | None = None  # dashed line: theory or analytic model
    ref_y: np.ndarray | None = None


def draw_scaling(ax, series: Sequence[Series], axis: str, unit: str) -> None:
    """Measured medians (solid, spread as error bars) and dashed references on log-log axes."""
    for s in series:
        colour, marker = algorithm_style(s.name)
        if s.ref_x is not None and len(s.ref_x):
            ax.plot(s.ref_x, s.ref_y, ls=(0, (4, 2.5)), lw=1.2, color=colour, alpha=0.9)
        yerr = None
        if s.y_low is not None and s.y_high is not None:
            yerr = np.vstack([np.clip(s.y - s.y_low, 0, None), np.clip(s.y_high - s.y, 0, None)])
        ax.errorbar(
            s.x,
            s.y,
            yerr=yerr,
            color=colour,
            lw=1.4,
            capsize=2.5,
            elinewidth=1,
            marker="none",
            label=None,
        )
        window = s.in_window if s.in_window is not None else np.ones(len(s.x), bool)
        ax.plot(
            s.x[window], s.y[window], ls="none", marker=marker, ms=5.5, color=colour, mec=colour
        )
        ax.plot(
            s.x[~window], s.y[~window], ls="none", marker=marker, ms=5.5, mfc="white", mec=colour
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _log2_axis(ax.xaxis)
    lo, hi = ax.get_ylim()
    _log10_axis(ax.yaxis, unit, span=hi / lo)
    ax.set_xlabel(AXIS_LABEL.get(axis, axis))


def scaling_legend(ax, series: Sequence[Series], ref_label: str, window_note: bool) -> None:
    """Legend outside the axes: one entry per algorithm, then what dashes and hollow marks mean."""
    handles = []
    for s in series:
        colour, marker = algorithm_style(s.name)
        handles.append(Line2D([], [], color=colour, marker=marker, ms=5.5, lw=1.4, label=s.label))
    handles.append(Line2D([], [], color="0.3", ls=(0, (4, 2.5)), lw=1.2, label=ref_label))
    if window_note:
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                marker="o",
                mfc="white",
                ls="none",
                label="hollow: outside the fit window",
            )
        )
    legend_right(ax, handles=handles, handlelength=2.6, labelspacing=0.9)


@styled
def scaling_chart(
    series: Sequence[Series], axis: str, metric: str, title: str, ref_label: str, footer: str
) -> Figure:
    """One metric (time or memory) against one axis, a line per algorithm."""
    fig, axes = new_figure(8.4, 4.8, footer)
    ax = axes[0, 0]
    unit = "s" if metric == "time" else "B"
    draw_scaling(ax, series, axis, unit)
    ax.set_ylabel(f"{METRIC_LABEL[metric]} ({'seconds' if unit == 's' else 'bytes'})")
    ax.set_title(title, loc="left")
    has_window = any(s.in_window is not None and not s.in_window.all() for s in series)
    scaling_legend(ax, series, ref_label, has_window)
    return fig


@dataclass
class Panel:
    """One small scaling panel: an axis and metric with its series."""

    axis: str
    metric: str
    series: list[Series] = field(default_factory=list)
    subtitle: str = ""


@styled
def panels_chart(panels: Sequence[Panel], title: str, footer: str) -> Figure:
    """A grid of small scaling panels (axes beyond T and n), one legend for all."""
    ncols = 2 if len(panels) > 1 else 1
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = new_figure(4.4 * ncols + 1.9, 3.2 * nrows + 0.7, footer, nrows, ncols)
    names: dict[str, str] = {}
    for ax, panel in zip(axes.flat, panels, strict=False):
        unit = "s" if panel.metric == "time" else "B"
        draw_scaling(ax, panel.series, panel.axis, unit)
        ax.set_ylabel(f"{METRIC_LABEL[panel.metric]} ({'s' if unit == 's' else 'bytes'})")
        ax.set_title(panel.subtitle, loc="left", fontsize=8.5)
        for s in panel.series:
            names.setdefault(s.name, s.label.split("\n")[0])
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color=algorithm_style(k)[0], marker=algorithm_style(k)[1], lw=1.4, label=v)
        for k, v in names.items()
    ]
    handles.append(
        Line2D(
            [],
            [],
            color="0.3",
            ls=(0, (4, 2.5)),
            lw=1.2,
            label="dashed: theory slope\n(time) or model (memory)",
        )
    )
    fig.legend(handles=handles, loc="outside right upper", frameon=False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    return fig


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


@styled
def exponent_chart(rows: Sequence[SlopeRow], footer: str) -> Figure:
    """A panel per metric; each row a fitted slope with its 95% interval against theory."""
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
        ax.set_title(f"{metric} exponent", loc="left")
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


@styled
def ratio_chart(
    T: np.ndarray,
    n: np.ndarray,
    panels: Sequence[RatioPanel],
    measured: Sequence[tuple[float, float]],
    names: tuple[str, str],
    each: dict[str, Sequence[tuple[float, float]]],
    title: str,
    footer: str,
) -> Figure:
    """Maps of cost(A) / cost(B) over a fine (n, T) grid, log colour scale centred on 1.

    Contours mark every power of ten (labelled), a thick one the ratio 1.
    ``measured`` are (n, T) where both were measured at the same size (rings);
    ``each`` maps an algorithm to the (n, T) it was measured at (small markers).
    """
    fig, axes = new_figure(5.0 * len(panels) + 0.6, 5.0, footer, 1, len(panels))
    cmap = mpl.colormaps["PuOr_r"]
    for ax, panel in zip(axes[0], panels, strict=True):
        logr = np.log10(panel.ratio)
        lim = max(1.0, float(np.nanmax(np.abs(logr))))
        norm = Normalize(-lim, lim)
        mesh = ax.pcolormesh(n, T, logr, cmap=cmap, norm=norm, shading="gouraud", rasterized=True)
        lo, hi = math.floor(np.nanmin(logr)), math.ceil(np.nanmax(logr))
        decades = [k for k in range(lo, hi + 1) if k != 0]
        if decades:
            cs = ax.contour(n, T, logr, levels=decades, colors="0.15", linewidths=0.6)
            ax.clabel(cs, fmt=lambda v: f"{format_ratio(10.0**v)}x", fontsize=7, inline=True)
        if np.nanmin(logr) < 0 < np.nanmax(logr):
            cs = ax.contour(n, T, logr, levels=[0], colors="black", linewidths=2.0)
            ax.clabel(cs, fmt=lambda v: "equal", fontsize=7.5, inline=True)
        for name, pts in each.items():
            if pts:
                px, py = zip(*pts, strict=True)
                ax.plot(
                    px,
                    py,
                    ls="none",
                    marker=algorithm_style(name)[1],
                    ms=4.5,
                    mew=0.9,
                    mfc="white",
                    mec="black",
                )
        if measured:
            mx, my = zip(*measured, strict=True)
            ax.plot(mx, my, ls="none", marker="o", ms=11, mfc="none", mec="black", mew=1.2)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        _log2_axis(ax.xaxis)
        _log2_axis(ax.yaxis)
        ax.set_xlim(n[0], n[-1])
        ax.set_ylim(T[0], T[-1])
        ax.grid(False)
        ax.set_xlabel(AXIS_LABEL["n"])
        ax.set_ylabel(AXIS_LABEL["T"])
        ax.set_title(panel.title, loc="left")
        cb = fig.colorbar(mesh, ax=ax, shrink=0.9, pad=0.02)
        ticks = np.arange(-math.floor(lim), math.floor(lim) + 1)
        step = max(1, math.ceil(len(ticks) / 7))
        ticks = ticks[(ticks % step) == 0]
        cb.set_ticks(ticks, labels=[format_ratio(10.0**t) for t in ticks])
        cb.set_label(f"{names[0]} ÷ {names[1]}  (>1: {names[1]} cheaper)")
    keys = list(each)
    handles = [
        Line2D(
            [],
            [],
            ls="none",
            marker=algorithm_style(k)[1],
            ms=4.5,
            mfc="white",
            mec="black",
            label=f"{names[i] if i < 2 else k} measured",
        )
        for i, k in enumerate(keys)
        if each[k]
    ]
    if measured:
        handles.append(
            Line2D(
                [],
                [],
                ls="none",
                marker="o",
                ms=9,
                mfc="none",
                mec="black",
                label="both, same size",
            )
        )
    if handles:
        fig.legend(
            handles=handles,
            loc="outside upper right",
            ncols=len(handles),
            frameon=False,
            fontsize=7.5,
        )
    fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    return fig


# --- where RTRL's memory drops below BPTT's ----------------------------------------


@dataclass
class BoundaryPoint:
    n: float
    T: float
    a_lower: bool  # algorithm A (RTRL) used less memory here
    both_measured: bool


@styled
def boundary_chart(
    n_line: np.ndarray,
    T_line: np.ndarray,
    points: Sequence[BoundaryPoint],
    names: tuple[str, str],
    keys: tuple[str, str],
    guide: bool,
    title: str,
    footer: str,
) -> Figure:
    """The model's T*(n) where memory(A) = memory(B), the two regions, and measured points."""
    fig, axes = new_figure(8.4, 5.0, footer)
    ax = axes[0, 0]
    (ca, ma), (cb, mb) = algorithm_style(keys[0]), algorithm_style(keys[1])
    xs = [p.n for p in points] + list(n_line)
    ys = [p.T for p in points] + list(T_line)
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
    if guide:
        g = n_line.astype(float) ** 2
        ax.plot(n_line, g, color="0.45", lw=1, ls=":", label="guide: T = n²")
    for p in points:
        colour, marker = (ca, ma) if p.a_lower else (cb, mb)
        ax.plot(
            p.n,
            p.T,
            ls="none",
            marker=marker,
            ms=7,
            mec=colour,
            mfc=colour if p.both_measured else "white",
            mew=1.3,
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    _log2_axis(ax.xaxis)
    _log2_axis(ax.yaxis)
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel(AXIS_LABEL["n"])
    ax.set_ylabel(AXIS_LABEL["T"])
    ax.set_title(title, loc="left")
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        mpl.patches.Patch(color=ca, alpha=0.25, label=f"{names[0]} needs less memory"),
        mpl.patches.Patch(color=cb, alpha=0.25, label=f"{names[1]} needs less memory"),
        Line2D([], [], ls="none", marker=ma, color=ca, label=f"measured: {names[0]} lower"),
        Line2D([], [], ls="none", marker=mb, color=cb, label=f"measured: {names[1]} lower"),
        Line2D(
            [],
            [],
            ls="none",
            marker="o",
            mfc="white",
            mec="0.3",
            label="hollow: one side measured,\nthe other from its model",
        ),
    ]
    legend_right(ax, handles=handles, labelspacing=0.9)
    return fig


# --- efficiency: achieved GFLOP/s against the matrix-multiply peak ---------------------


@styled
def efficiency_chart(
    panels: Sequence[Panel], gemm: float | None, gemv: float | None, footer: str
) -> Figure:
    """Achieved GFLOP/s per kernel along each axis; GEMM and GEMV rates as horizontal lines."""
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = new_figure(3.1 * ncols + 2.2, 3.4 * nrows + 0.7, footer, nrows, ncols, sharey=True)
    names: dict[str, str] = {}
    for ax, panel in zip(axes.flat, panels, strict=False):
        for s in panel.series:
            colour, marker = algorithm_style(s.name)
            ax.plot(s.x, s.y, color=colour, marker=marker, ms=5, lw=1.4)
            names.setdefault(s.name, s.label)
        if gemm:
            ax.axhline(gemm, color="black", lw=1.2)
        if gemv:
            ax.axhline(gemv, color="0.4", lw=1.2, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        _log2_axis(ax.xaxis, numticks=7)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(AXIS_LABEL.get(panel.axis, panel.axis))
        ax.set_title(panel.subtitle, loc="left", fontsize=8.5)
        last_in_row = ax in axes[:, -1] or ax is list(axes.flat)[len(panels) - 1]
        if gemm and last_in_row:
            sec = ax.secondary_yaxis(
                "right", functions=(lambda g: g / gemm * 100, lambda e: e * gemm / 100)
            )
            sec.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            sec.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
            sec.yaxis.set_minor_formatter(NullFormatter())
            sec.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("achieved GFLOP/s (FLOPs / median time)")
    if gemm:
        corner = list(axes.flat)[min(ncols, len(panels)) - 1]
        corner.annotate(
            "% of GEMM peak",
            xy=(1.0, 1.0),
            xycoords="axes fraction",
            xytext=(0, 6),
            textcoords="offset points",
            ha="center",
            fontsize=7,
            color="0.3",
        )
    handles = [
        Line2D([], [], color=algorithm_style(k)[0], marker=algorithm_style(k)[1], lw=1.4, label=v)
        for k, v in names.items()
    ]
    if gemm:
        handles.append(
            Line2D(
                [], [], color="black", lw=1.2, label=f"GEMM peak, same run\n({gemm:.3g} GFLOP/s)"
            )
        )
    if gemv:
        handles.append(
            Line2D(
                [], [], color="0.4", lw=1.2, ls=":", label=f"GEMV, same run\n({gemv:.3g} GFLOP/s)"
            )
        )
    fig.legend(handles=handles, loc="outside right upper", frameon=False, labelspacing=0.9)
    fig.suptitle(
        "Achieved GFLOP/s against the machine's matrix-multiply rates",
        x=0.01,
        ha="left",
        fontsize=10,
    )
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


def legend_right(ax, **kwargs) -> None:
    """The legend outside the axes, to their right, top-aligned and frameless."""
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, borderaxespad=0, **kwargs
    )


TOOL_LINESTYLE = ["-", (0, (5, 2)), (0, (1, 1.5)), "-."]


@styled
def peers_chart(
    series: Sequence[tuple[str, str, str, np.ndarray, np.ndarray]], footer: str
) -> Figure:
    """Time ratio peer / bpttbench against n: colour and marker by algorithm, dashes by tool.

    ``series`` holds (algorithm, tool, label, n, ratio) per line. When one tool
    has several lines for one algorithm (other T or B), the later ones get
    hollow markers and a thinner line so that no two lines look alike.
    """
    fig, axes = new_figure(8.4, 4.6, footer)
    ax = axes[0, 0]
    tools = list(dict.fromkeys(t for _, t, _, _, _ in series))
    seen: dict[tuple[str, str], int] = {}
    for alg, tool, label, x, y in series:
        colour, marker = algorithm_style(alg)
        ls = TOOL_LINESTYLE[tools.index(tool) % len(TOOL_LINESTYLE)]
        repeat = seen.get((alg, tool), 0)
        seen[(alg, tool)] = repeat + 1
        face = colour if repeat == 0 else "white"
        ax.plot(
            x, y, color=colour, marker=marker, ms=5.5 + repeat, lw=1.5 if repeat == 0 else 1.0,
            ls=ls, mfc=face, mew=1.3, label=label,
        )  # fmt: skip
    ax.axhline(1.0, color="black", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _log2_axis(ax.xaxis)
    values = np.concatenate([y for *_, y in series])
    lo, hi = min(values.min(), 1.0) / 1.3, max(values.max(), 1.0) * 1.3
    ax.set_ylim(lo, hi)
    span = hi / lo
    subs = log_subs(span)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(AXIS_LABEL["n"])
    ax.set_ylabel("peer's median time ÷ bpttbench's\n(above 1: bpttbench is faster)")
    ax.set_title("Peer implementations of the same gradient against bpttbench", loc="left")
    legend_right(ax, labelspacing=0.9, handlelength=3)
    return fig
