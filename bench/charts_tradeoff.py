"""The trade-off chart: time against peak memory, one marker per algorithm and setting.

Like ``charts``, it takes prepared points and styles and returns a
:class:`matplotlib.figure.Figure`; ``bench.tradeoff`` picks the points from the
store. A line joins the settings of one algorithm (checkpointed BPTT over its
slots c, truncated BPTT over k), each point labelled with its setting;
truncated BPTT's markers are hollow, as it computes a different gradient. A
point whose time was scaled rather than measured at the chart's T (RTRL from a
short run) is hollow inside a ring and says so in the legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from bpttbench.bench.charts import _log10_axis, legend_right, new_figure, styled
from bpttbench.costs import Style
from matplotlib.figure import Figure
from matplotlib.lines import Line2D


@dataclass
class TradeoffLine:
    """One algorithm's points: (peak bytes, median seconds), each with its setting's label."""

    label: str
    style: Style
    memory: np.ndarray
    time: np.ndarray
    tags: Sequence[str] = ()  # per point: "c=32", "k=16"; empty for a single point
    hollow: bool = False  # a different gradient: hollow markers
    scaled: bool = False  # time scaled from another T, not measured here: ringed


@styled
def tradeoff_chart(
    lines: Sequence[TradeoffLine],
    title: str,
    footer: str,
    target: tuple[float, float, str] | None = None,
) -> Figure:
    """Log-log: x the peak memory, y the median time; ``target`` an (x, y, label) star."""
    fig, axes = new_figure(8.4, 5.2, footer)
    ax = axes[0, 0]
    handles = []
    for ln in lines:
        x, y = np.asarray(ln.memory, float), np.asarray(ln.time, float)
        colour = ln.style.colour
        face = "white" if ln.hollow or ln.scaled else colour
        kw = {"marker": ln.style.marker, "ms": 6, "mec": colour, "mfc": face, "color": colour}
        ls = ln.style.linestyle if len(x) > 1 else "none"
        ax.plot(x, y, ls=ls, lw=1.3, **kw)
        if ln.scaled:  # a ring around the point: its time was not measured at this T
            ax.plot(x, y, ls="none", marker="o", ms=13, mfc="none", mec=colour, mew=0.8)
        for xi, yi, tag in zip(x, y, ln.tags, strict=False):
            if tag:
                ax.annotate(tag, (xi, yi), xytext=(4, 4), textcoords="offset points",
                            fontsize=7, color=colour)  # fmt: skip
        handles.append(Line2D([], [], ls=ls, label=ln.label, **kw))
    if target is not None:
        tx, ty, tlabel = target
        ax.plot([tx], [ty], ls="none", marker="*", ms=12, color="0.25", mfc="none")
        handles.append(
            Line2D([], [], ls="none", marker="*", ms=10, color="0.25", mfc="none", label=tlabel)
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    xlo, xhi = ax.get_xlim()
    ylo, yhi = ax.get_ylim()
    _log10_axis(ax.xaxis, "B", span=xhi / xlo)
    _log10_axis(ax.yaxis, "s", span=yhi / ylo)
    ax.set_xlabel("peak memory per call (bytes, tracemalloc)")
    ax.set_ylabel("time per gradient call (seconds, median)")
    ax.set_title(title, loc="left")
    legend_right(ax, handles=handles, handlelength=2.6, labelspacing=0.9)
    return fig
