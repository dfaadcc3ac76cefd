"""Drawing the report's charts: matplotlib figures from prepared data, no I/O but saving.

Every function here takes plain arrays, labels and styles (the report modules
prepare them from the store and the registry) and returns a
:class:`matplotlib.figure.Figure`; nothing here knows an algorithm or an axis by
name. Figures are built without ``pyplot``, so nothing global is touched and no
screen is needed; :func:`save` writes each one as PNG and SVG. This module holds
the plumbing, the styles and the scaling charts; ``charts_compare`` the charts
that set algorithms side by side.

Styles: :func:`assign_styles` gives every algorithm of the registry its own
colour, marker and line style, by registry order (a spec's explicit ``style``
first): colours from the Okabe-Ito palette (safe for the common colour-vision
deficiencies) and markers, so lines stay distinguishable in grey.
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
from bpttbench.costs import Style
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
# Style sequence, by registry order: 8 colours and 9 markers (coprime, so the first 72
# algorithms differ in both colour and marker from their neighbours and from each other),
# then line styles; the first four are BPTT's blue circles, truncated BPTT's green
# squares, RTRL's vermillion triangles and backprop's purple diamonds.
PALETTE = tuple(
    OKABE_ITO[c]
    for c in ("blue", "green", "vermillion", "purple", "orange", "sky", "black", "yellow")
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h", "<")
LINESTYLES = ("-", "-.", (0, (1, 1.2)), (0, (7, 1.5, 1, 1.5, 1, 1.5)))
GOLDEN = (math.sqrt(5) - 1) / 2
VERDICT_STYLE = {  # verdict -> (colour, marker)
    "PASS": (OKABE_ITO["green"], "o"),
    "INCONCLUSIVE": (OKABE_ITO["orange"], "s"),
    "FAIL": (OKABE_ITO["vermillion"], "X"),
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


def default_style(i: int) -> Style:
    """The ``i``-th style of the sequence: distinct from every earlier one, for any ``i``.

    Colours and markers cycle together (72 pairs), then line styles (288 styles);
    beyond that, colours step around the hue circle by the golden ratio.
    """
    pairs = len(PALETTE) * len(MARKERS)
    line = LINESTYLES[(i // pairs) % len(LINESTYLES)]
    if i < pairs * len(LINESTYLES):
        return Style(PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)], line)
    hue = (i * GOLDEN) % 1.0
    colour = mpl.colors.to_hex(mpl.colors.hsv_to_rgb((hue, 0.85, 0.75)))
    return Style(colour, MARKERS[i % len(MARKERS)], line)


def _key(style: Style) -> tuple[str, str, str]:
    return (style.colour.lower(), style.marker, str(style.linestyle))


def assign_styles(registry, extra: Sequence[str] = ()) -> dict[str, Style]:
    """A style of its own for each algorithm: the same in every chart and every report.

    The registry's algorithms come first, in registry order: a spec's explicit
    ``style`` where it has one that no earlier algorithm took, else the next
    style of the sequence (:func:`default_style`) not yet taken. Names in
    ``extra`` (algorithms in the data but not in the registry) follow.
    """
    out: dict[str, Style] = {}
    taken: set[tuple] = set()
    for name, spec in registry.items():
        style = getattr(spec, "style", None)
        if style is not None and _key(style) not in taken:
            out[name] = style
            taken.add(_key(style))
    i = 0
    for name in [*registry, *(x for x in extra if x not in registry)]:
        if name in out:
            continue
        while _key(default_style(i)) in taken:
            i += 1
        out[name] = default_style(i)
        taken.add(_key(out[name]))
    return out


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
    style: Style
    y_low: np.ndarray | None = None  # spread (e.g. first and third quartile)
    y_high: np.ndarray | None = None
    in_window: np.ndarray | None = None  # points the exponent fit used (filled markers)
    ref_x: np.ndarray | None = None  # dashed line: theory or analytic model
    ref_y: np.ndarray | None = None


def draw_scaling(ax, series: Sequence[Series], xlabel: str, unit: str, numticks: int = 12) -> None:
    """Measured medians (spread as error bars) and dashed references on log-log axes.

    ``numticks`` bounds the powers of two labelled along x (fewer in small panels).
    """
    for s in series:
        colour, marker = s.style.colour, s.style.marker
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
            ls=s.style.linestyle,
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
    _log2_axis(ax.xaxis, numticks=numticks)
    lo, hi = ax.get_ylim()
    _log10_axis(ax.yaxis, unit, span=hi / lo)
    ax.set_xlabel(xlabel)


def scaling_legend(ax, series: Sequence[Series], ref_label: str, window_note: bool) -> None:
    """Legend outside the axes: one entry per algorithm, then what dashes and hollow marks mean."""
    handles = [style_handle(s.style, s.label, ms=5.5) for s in series]
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


def style_handle(style: Style, label: str, **kwargs) -> Line2D:
    """A legend entry drawn in an algorithm's style."""
    return Line2D(
        [], [], color=style.colour, marker=style.marker, ls=style.linestyle, lw=1.4, label=label,
        **kwargs,
    )  # fmt: skip


@styled
def scaling_chart(
    series: Sequence[Series], xlabel: str, metric: str, title: str, ref_label: str, footer: str
) -> Figure:
    """One metric (time or memory) against one axis, a line per algorithm."""
    fig, axes = new_figure(8.4, 4.8, footer)
    ax = axes[0, 0]
    unit = "s" if metric == "time" else "B"
    draw_scaling(ax, series, xlabel, unit)
    ax.set_ylabel(f"{METRIC_LABEL[metric]} ({'seconds' if unit == 's' else 'bytes'})")
    ax.set_title(title, loc="left")
    has_window = any(s.in_window is not None and not s.in_window.all() for s in series)
    scaling_legend(ax, series, ref_label, has_window)
    return fig


@dataclass
class Panel:
    """One small panel: a metric against one axis (labelled ``xlabel``), with its series."""

    xlabel: str
    metric: str
    series: list[Series] = field(default_factory=list)
    subtitle: str = ""


@styled
def panels_chart(panels: Sequence[Panel], title: str, footer: str) -> Figure:
    """A grid of small scaling panels (axes beyond T and n), one legend for all."""
    ncols = 2 if len(panels) > 1 else 1
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = new_figure(4.4 * ncols + 1.9, 3.2 * nrows + 0.7, footer, nrows, ncols)
    for ax, panel in zip(axes.flat, panels, strict=False):
        unit = "s" if panel.metric == "time" else "B"
        draw_scaling(ax, panel.series, panel.xlabel, unit, numticks=7)
        ax.set_ylabel(f"{METRIC_LABEL[panel.metric]} ({'s' if unit == 's' else 'bytes'})")
        ax.set_title(panel.subtitle, loc="left", fontsize=8.5)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    handles = algorithm_handles(panels)
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


def algorithm_handles(panels: Sequence[Panel]) -> list[Line2D]:
    """One legend entry per algorithm drawn in any of the panels (its label's first line)."""
    seen: dict[str, Line2D] = {}
    for panel in panels:
        for s in panel.series:
            if s.name not in seen:
                seen[s.name] = style_handle(s.style, s.label.split("\n")[0])
    return list(seen.values())


# --- efficiency: achieved GFLOP/s against the matrix-multiply peak ---------------------


@styled
def efficiency_chart(
    panels: Sequence[Panel], gemm: float | None, gemv: float | None, footer: str
) -> Figure:
    """Achieved GFLOP/s per kernel along each axis; GEMM and GEMV rates as horizontal lines."""
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = new_figure(3.1 * ncols + 2.2, 3.4 * nrows + 0.7, footer, nrows, ncols, sharey=True)
    for ax, panel in zip(axes.flat, panels, strict=False):
        last_in_row = ax in axes[:, -1] or ax is list(axes.flat)[len(panels) - 1]
        _efficiency_panel(ax, panel, gemm, gemv, percent_axis=bool(gemm and last_in_row))
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("achieved GFLOP/s (FLOPs / median time)")
    handles = algorithm_handles(panels)
    if gemm:
        corner = list(axes.flat)[min(ncols, len(panels)) - 1]
        corner.annotate(
            "% of GEMM peak", xy=(1.0, 1.0), xycoords="axes fraction", xytext=(0, 6),
            textcoords="offset points", ha="center", fontsize=7, color="0.3",
        )  # fmt: skip
        label = f"GEMM peak, same run\n({gemm:.3g} GFLOP/s)"
        handles.append(Line2D([], [], color="black", lw=1.2, label=label))
    if gemv:
        label = f"GEMV, same run\n({gemv:.3g} GFLOP/s)"
        handles.append(Line2D([], [], color="0.4", lw=1.2, ls=":", label=label))
    fig.legend(handles=handles, loc="outside right upper", frameon=False, labelspacing=0.9)
    title = "Achieved GFLOP/s against the machine's matrix-multiply rates"
    fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    return fig


def _efficiency_panel(ax, panel: Panel, gemm, gemv, percent_axis: bool) -> None:
    """One axis's GFLOP/s lines, the GEMM and GEMV rates, and a % of GEMM scale if asked."""
    for s in panel.series:
        st = s.style
        ax.plot(s.x, s.y, color=st.colour, marker=st.marker, ls=st.linestyle, ms=5, lw=1.4)
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
    ax.set_xlabel(panel.xlabel)
    ax.set_title(panel.subtitle, loc="left", fontsize=8.5)
    if percent_axis:
        sec = ax.secondary_yaxis(
            "right", functions=(lambda g: g / gemm * 100, lambda e: e * gemm / 100)
        )
        sec.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        sec.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
        sec.yaxis.set_minor_formatter(NullFormatter())
        sec.tick_params(labelsize=7)


def legend_right(ax, **kwargs) -> None:
    """The legend outside the axes, to their right, top-aligned and frameless."""
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, borderaxespad=0, **kwargs
    )
