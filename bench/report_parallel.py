"""The report's parallel-efficiency chart: speed-up against threads, per algorithm.

A sweep with a threads axis (``bpttbench sweep --threads 1,2``, or
``threads = [1, 2]`` in a grid's ``[settings]``) measures every cell once per
thread count, each count a run of its own with its own GEMM peak at that count
(``bench.measure.machine_peak``). The store keys the cells by their thread
counts (``nt=`` / ``bt=`` in the cell key), so the same cell at 1 and at t
threads are two rows; this module pairs them up:

    speed-up(t)    = median time at 1 thread / median time at t threads
    efficiency(t)  = speed-up(t) / t                    (1 is perfect scaling)
    GFLOP/s(t)     against the all-core GEMM peak: the run's GEMM at the
                   largest thread count measured, the roof a parallel kernel
                   is quoted against

For each algorithm (and machine and dtype) the line is its largest cell (most
FLOPs) measured at one thread and at least one other count: the cell with the
most work to share out, where a parallel kernel should do best.

Without any cell at two thread counts the chart is still drawn, as an empty
state whose panels say how to get it (:data:`EMPTY`); the caption says so too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from bpttbench.bench import charts as ch
from bpttbench.bench import store as results
from bpttbench.bench.slices import row_keys, size_dict
from bpttbench.bench.view import NoSource, View
from matplotlib.figure import Figure

NAME = "parallel"
TITLE = "Parallel speed-up and efficiency against threads"
EMPTY = (
    "no cell measured at more than one thread count: sweep with a threads axis, "
    "e.g. `bpttbench sweep --threads 1,2`"
)


@dataclass
class Line:
    algorithm: str
    machine: str
    dtype: str
    sizes: str
    threads: np.ndarray  # thread counts, 1 first
    seconds: np.ndarray  # median time per call at each count
    gflops: np.ndarray
    label: str = ""
    colour: str = "black"
    marker: str = "o"

    @property
    def speedup(self) -> np.ndarray:
        return self.seconds[0] / self.seconds

    @property
    def efficiency(self) -> np.ndarray:
        return self.speedup / self.threads


def thread_count(df: pd.DataFrame) -> pd.Series:
    """A row's thread count: the larger of its Numba and BLAS counts."""
    nt = pd.to_numeric(df.get("numba_threads"), errors="coerce")
    bt = pd.to_numeric(df.get("blas_threads"), errors="coerce")
    return pd.concat([nt, bt], axis=1).max(axis=1)


def lines(cells: pd.DataFrame, view: View | None = None) -> list[Line]:
    """One line per (algorithm, machine, dtype): its largest cell at 1 and more threads."""
    view = view or View.of({})
    if cells is None or cells.empty:
        return []
    ok = cells[(cells["status"] == "ok") & (pd.to_numeric(cells["median_s"], errors="coerce") > 0)]
    ok = ok.assign(threads=thread_count(ok), base=_base_keys(ok))
    ok = ok[ok["threads"] >= 1]
    out = []
    for (alg, machine, dtype), g in ok.groupby(["algorithm", "machine", "dtype"], sort=False):
        best = None
        for _, c in g.groupby("base", sort=True):
            c = c.sort_values(["threads", "created"], kind="stable").drop_duplicates(
                "threads", keep="last"
            )
            if len(c) < 2 or c["threads"].iloc[0] != 1:
                continue
            flops = pd.to_numeric(c["flops"], errors="coerce").max()
            flops = -1.0 if pd.isna(flops) else float(flops)
            if best is None or flops > best[0]:
                best = (flops, c)
        if best is None:
            continue
        c = best[1]
        style = view.style(alg)
        sizes = view.sizes_text(size_dict(c.iloc[0], view))
        out.append(
            Line(
                str(alg), str(machine), str(dtype), sizes,
                c["threads"].to_numpy(float), c["median_s"].to_numpy(float),
                pd.to_numeric(c["gflops"], errors="coerce").to_numpy(float),
                f"{view.title(alg)} ({sizes})", style.colour, style.marker,
            )
        )  # fmt: skip
    order = {a: i for i, a in enumerate(view.order(x.algorithm for x in out))}
    return sorted(out, key=lambda x: (order[x.algorithm], x.machine, x.dtype))


def _base_keys(df: pd.DataFrame) -> pd.Series:
    """What a cell is without its thread counts (algorithm, axis, sizes): the same at every count.

    The store's cell key with its ``nt=`` and ``bt=`` left out; the size columns
    are the cell's columns that are neither the head, the tail nor the extras.
    """
    known = {*results.CELL_HEAD, *results.CELL_TAIL, *results.CELL_EXTRA} - {"algorithm", "axis"}
    return row_keys(df, [c for c in df.columns if c not in known])


def gemm_peaks(runs: pd.DataFrame) -> dict[tuple[str, str, int], float]:
    """The runs' median GEMM GFLOP/s by (machine, thread count)."""
    if runs is None or runs.empty or "gemm_gflops" not in runs.columns:
        return {}
    r = runs.assign(
        threads=thread_count(runs), gemm=pd.to_numeric(runs["gemm_gflops"], errors="coerce")
    )
    r = r[(r["gemm"] > 0) & (r["threads"] >= 1)]
    return {
        (str(m), int(t)): float(g["gemm"].median())
        for (m, t), g in r.groupby(["machine", "threads"])
    }


def all_core_peak(peaks: dict, machine: str) -> tuple[int, float] | None:
    """(threads, GFLOP/s) of the GEMM peak at the largest thread count measured on ``machine``."""
    mine = sorted((t, g) for (m, t), g in peaks.items() if m == machine)
    return mine[-1] if mine else None


@ch.styled
def parallel_chart(found: Sequence[Line], peaks: dict, footer: str, empty: str = EMPTY) -> Figure:
    """Speed-up, efficiency and GFLOP/s against threads; the empty state without ``found``."""
    fig, axes = ch.new_figure(14.5, 4.4, footer, ncols=3)
    top = max([2.0, *(x.threads.max() for x in found)])
    ts = np.arange(1, int(top) + 1)
    ax_s, ax_e, ax_g = axes[0]
    ax_s.plot(ts, ts, color="0.5", ls="--", lw=1, label="perfect scaling")
    ax_e.axhline(1.0, color="0.5", ls="--", lw=1)
    for x in found:
        kw = {"color": x.colour, "marker": x.marker, "ms": 5.5, "lw": 1.5, "label": x.label}
        ax_s.plot(x.threads, x.speedup, **kw)
        ax_e.plot(x.threads, x.efficiency, **kw)
        ax_g.plot(x.threads, x.gflops, **kw)
    for machine in sorted({x.machine for x in found}):
        mine = sorted((t, g) for (m, t), g in peaks.items() if m == machine)
        if mine:
            t, g = zip(*mine, strict=True)
            ax_g.plot(t, g, color="black", lw=2, marker="s", ms=4, label=f"GEMM peak ({machine})")
    for ax, ylabel, title in (
        (ax_s, "speed-up over 1 thread", "Speed-up"),
        (ax_e, "efficiency = speed-up / threads", "Parallel efficiency"),
        (ax_g, "GFLOP/s", "Achieved GFLOP/s and the GEMM peak at each count"),
    ):
        ax.set_xlabel("threads (Numba and BLAS)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left")
        ax.set_xlim(0.8, top + 0.2)
        ax.set_xticks(ts if top <= 16 else ts[:: max(1, int(top) // 8)])
        if not found:
            ax.text(0.5, 0.5, empty.replace(": ", ":\n", 1), transform=ax.transAxes,
                    ha="center", va="center", fontsize=8, wrap=True,
                    bbox={"boxstyle": "round", "fc": "white", "ec": "0.6"})  # fmt: skip
    ax_s.set_ylim(0, top + 0.5)
    ax_e.set_ylim(0, 1.2)
    if found:
        ax_g.set_ylim(bottom=0)
        ch.legend_right(ax_g)
    fig.suptitle(
        "Parallel speed-up of each algorithm's largest cell measured at several thread counts",
        x=0.01, ha="left", fontsize=10,
    )  # fmt: skip
    return fig


def table(found: Sequence[Line], peaks: dict) -> str:
    """Every line's points as a Markdown table."""
    rows = [
        "| algorithm | sizes | dtype | machine | threads | median (s) | speed-up | efficiency "
        "| GFLOP/s | % of GEMM at this count | % of all-core GEMM |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in found:
        roof = all_core_peak(peaks, x.machine)
        for t, s, sp, e, g in zip(
            x.threads, x.seconds, x.speedup, x.efficiency, x.gflops, strict=True
        ):
            here = peaks.get((x.machine, int(t)))
            rows.append(
                f"| {x.label.split(' (')[0]} | {x.sizes} | {x.dtype} | {x.machine} | {int(t)} | "
                f"{s:.3g} | {sp:.2f}x | {e:.0%} | {_num(g)} | {_pct(g, here)} | "
                f"{_pct(g, roof[1] if roof else None)} |"
            )
    return "\n".join(rows)


def _num(v) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.3g}"


def _pct(g, peak) -> str:
    return "-" if not peak or g is None or not np.isfinite(g) else f"{g / peak:.0%}"


def caption(found: Sequence[Line], peaks: dict) -> str:
    """What the chart shows, with each algorithm's speed-up at its largest thread count."""
    what = (
        "Each line is one algorithm's largest cell timed at one thread and at more (a sweep "
        "with a threads axis, one run per count, each with its own GEMM peak); efficiency is "
        "speed-up divided by threads, and GFLOP/s is set against the GEMM peak measured at "
        "each count, the all-core one being the roof."
    )
    if not found:
        return f"{EMPTY[0].upper()}{EMPTY[1:]}. {what}"
    parts = []
    for x in found:
        roof = all_core_peak(peaks, x.machine)
        text = (
            f"{x.label} {x.speedup[-1]:.2f}x on {int(x.threads[-1])} threads "
            f"({x.efficiency[-1]:.0%} efficient"
        )
        if roof and np.isfinite(x.gflops[-1]):
            text += f", {x.gflops[-1] / roof[1]:.0%} of the {roof[0]}-thread GEMM peak"
        parts.append(text + ")")
    return f"{what} At the largest count: {'; '.join(parts)}."


def chart_parallel(cells: pd.DataFrame, runs: pd.DataFrame, view: View | None = None, footer=""):
    """(figure, caption, markdown) from a store's cells and runs (any configuration)."""
    found = lines(cells, view)
    peaks = gemm_peaks(runs)
    md = table(found, peaks) if found else ""
    return parallel_chart(found, peaks, footer), caption(found, peaks), md


def chart(ctx, db_path: str | Path):
    """The report's builder: every configuration of the store, not only the charted slice."""
    store = ctx.need_store()
    try:
        runs = results.load_runs(db_path)
    except Exception as exc:  # the store was read a moment ago: say what went wrong
        raise NoSource(f"the runs could not be read: {exc}") from None
    cells = store.all_cells if store.all_cells is not None else store.cells
    return chart_parallel(cells, runs, ctx.view, store.footer)
