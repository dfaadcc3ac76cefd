"""Every way to pay for a gradient at one (T, n, B), and checkpointed BPTT against Gruslys et al.

The cells come from the trade-off sweeps (``bpttbench.tradeoff``): BPTT,
truncated BPTT over k (k1 = k2 = k), RTRL and checkpointed BPTT over its slots
c, all at ``SIZE`` (T = 1000, n = 64, B = 8). :func:`chart_tradeoff` draws the
median time against the tracemalloc peak, one marker per algorithm and setting,
with the Gruslys comparison as a table beneath; :func:`tradeoff_summary` gives
the same figures to ``summary.json``.

RTRL at T = 1000 costs minutes per cell; where only shorter runs at the same
(n, B) were measured, its point is the longest one's peak (RTRL's memory has no
term in T) with its time scaled by the steps, T / T_run, and is labelled as
scaled, never as measured.

The Gruslys comparison. Gruslys et al. 2016 (abstract) report that at T = 1000
their schedule "saves 95% of memory usage while using only one third more time
per iteration". For each measured slot count c, with BPTT measured at the same
sizes:

    memory saved = 1 - peak(c) / peak(BPTT)
    time paid    = time(c) / time(BPTT) - 1
    extra forward steps = (E(T, c, B) - T) / T

where E(T, c, B) is the cell evaluations of the schedule the kernel runs
(``checkpointed_bptt.evaluations``: revolve over segments of BPTT's chunk,
L F(ceil(T / L), c) + T, or T + H L where spare slots keep a tail; plain BPTT
makes T) and, where the checkpointed kernel is registered, the time paid its FLOP
model predicts, flops(c) / flops(BPTT) - 1. The slot count
quoted beside Gruslys's figure is the one that saves at least 95% for the
least time.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from bpttbench.bench import fmt
from bpttbench.bench.charts_tradeoff import TradeoffLine, tradeoff_chart
from bpttbench.bench.view import Context, Skip, View
from bpttbench.tradeoff import CHECKPOINTED, SIZE, SLOTS_AXIS

GRUSLYS = {
    "source": "Gruslys et al. 2016 (abstract)",
    "T": 1000,
    "memory_saved": 0.95,
    "time_paid": 1 / 3,
}
SAVED = GRUSLYS["memory_saved"]  # the memory saved at which the time paid is quoted
# The defaults of the sizes the sweeps leave alone; a cell with others is not this point.
HELD = {"m": 1, "p": 1}


@dataclass
class Point:
    """One algorithm at one setting: its median time and peak memory at the chart's T."""

    algorithm: str
    setting: int | None  # k for truncated BPTT, c for checkpointed BPTT, else None
    time_s: float
    peak_bytes: float
    scaled_from: int | None = None  # RTRL: the T its time was measured at, when not SIZE's


@dataclass
class Tradeoff:
    """The points of the chart, by algorithm; settings in increasing order."""

    size: Mapping[str, int]
    bptt: Point | None = None
    rtrl: Point | None = None
    tbptt: list[Point] = field(default_factory=list)
    checkpointed: list[Point] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.bptt or self.rtrl or self.tbptt or self.checkpointed)


def _match(ok: pd.DataFrame, sizes: Mapping[str, object]) -> pd.DataFrame:
    """Rows whose sizes equal ``sizes`` (columns absent from the store are not required)."""
    mask = pd.Series(True, index=ok.index)
    for var, want in sizes.items():
        if var in ok.columns:
            mask &= pd.to_numeric(ok[var], errors="coerce") == float(want)
    if "cell" in ok.columns:  # the Elman cell: the default where the column is empty
        mask &= ok["cell"].isna() | (ok["cell"].astype(str) == "elman")
    good = (pd.to_numeric(ok["median_s"], errors="coerce") > 0) & (
        pd.to_numeric(ok["peak_bytes"], errors="coerce") > 0
    )
    return ok[mask & good]


def _latest(rows: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """The latest row per ``by`` (or the latest row), in increasing ``by``."""
    rows = rows.sort_values("created", kind="stable")
    if by is None:
        return rows.tail(1)
    rows = rows.assign(_by=pd.to_numeric(rows[by], errors="coerce")).dropna(subset=["_by"])
    return rows.drop_duplicates("_by", keep="last").sort_values("_by")


def _point(alg: str, row, setting=None, scaled_from=None, times: float = 1.0) -> Point:
    s = None if setting is None else int(row[setting])
    return Point(alg, s, float(row["median_s"]) * times, float(row["peak_bytes"]), scaled_from)


def tradeoff_points(ok: pd.DataFrame, view: View, size: Mapping[str, int] = SIZE) -> Tradeoff:
    """The chart's points from the store's measured cells (see the module docstring)."""
    at = {**HELD, **size}
    out = Tradeoff(dict(size))
    mine = {a: ok[ok["algorithm"] == a] for a in ("bptt", "rtrl", "tbptt", CHECKPOINTED)}
    for _, r in _latest(_match(mine["bptt"], at), None).iterrows():
        out.bptt = _point("bptt", r)
    tb = _match(mine["tbptt"], at)
    if {"k1", "k2"} <= set(tb.columns):
        tb = tb[
            pd.to_numeric(tb["k1"], errors="coerce") == pd.to_numeric(tb["k2"], errors="coerce")
        ]
        out.tbptt = [_point("tbptt", r, "k1") for _, r in _latest(tb, "k1").iterrows()]
    ck = _match(mine[CHECKPOINTED], at)
    if SLOTS_AXIS in ck.columns:
        out.checkpointed = [
            _point(CHECKPOINTED, r, SLOTS_AXIS) for _, r in _latest(ck, SLOTS_AXIS).iterrows()
        ]
    out.rtrl = _rtrl_point(mine["rtrl"], view, at)
    return out


def _rtrl_point(rtrl: pd.DataFrame, view: View, at: Mapping[str, int]) -> Point | None:
    """Measured at T if it was; else the longest shorter run, its time scaled by T / T_run."""
    T = at["T"]
    for _, r in _latest(_match(rtrl, at), None).iterrows():
        return _point("rtrl", r)
    short = _match(rtrl, {k: v for k, v in at.items() if k != "T"})
    short = short[pd.to_numeric(short["T"], errors="coerce") < T]
    if short.empty:
        return None
    t_run = int(pd.to_numeric(short["T"]).max())
    spec = view.registry.get("rtrl")
    if spec is not None:  # carry the peak to T only where the model says memory is flat in T
        itemsize = np.dtype(str(short["dtype"].iloc[0])).itemsize
        sizes = {**spec.sizes, **at}
        if spec.memory_bytes({**sizes, "T": t_run}, itemsize) != spec.memory_bytes(sizes, itemsize):
            return None
    row = _latest(short[pd.to_numeric(short["T"]) == t_run], None).iloc[0]
    return _point("rtrl", row, scaled_from=t_run, times=T / t_run)


# --- the Gruslys comparison -------------------------------------------------------------


def forward_steps(T: int, slots: int, B: int) -> int:
    """Cell evaluations of the checkpointed kernel's schedule (BPTT makes T): revolve's
    forward advances over segments of L = 128 / B steps, times L, plus each step once in
    its segment's reversal, or T + H L with spare slots keeping a tail
    (``checkpointed_bptt.evaluations``, the kernel's own count)."""
    return _checkpointed_module().evaluations(T, slots, B)


def _checkpointed_module():
    # ``bpttbench.checkpointed_bptt`` is the function; the module holds the counts.
    return importlib.import_module("bpttbench.checkpointed_bptt")


def gruslys_rows(tr: Tradeoff, registry: Mapping) -> list[dict]:
    """Per measured slot count: memory saved and time paid against BPTT, and the predictions."""
    if tr.bptt is None or not tr.checkpointed:
        return []
    T, B = int(tr.size["T"]), int(tr.size["B"])
    base = tr.bptt
    spec, bptt_spec = registry.get(CHECKPOINTED), registry.get("bptt")
    rows = []
    for p in tr.checkpointed:
        c = int(p.setting)
        row = {
            "c": c,
            "peak_bytes": p.peak_bytes,
            "time_s": p.time_s,
            "memory_saved": 1.0 - p.peak_bytes / base.peak_bytes,
            "time_paid": p.time_s / base.time_s - 1.0,
            "forward_steps": forward_steps(T, c, B),
            "extra_forward": (forward_steps(T, c, B) - T) / T,
            "model_time_paid": None,
        }
        if spec is not None and bptt_spec is not None:
            size = {**HELD, **tr.size}
            try:
                ratio = spec.flop_count({**spec.sizes, **size, SLOTS_AXIS: c}) / (
                    bptt_spec.flop_count({**bptt_spec.sizes, **size})
                )
                row["model_time_paid"] = ratio - 1.0
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                pass
        rows.append(row)
    return rows


def at_saved(rows: list[dict], saved: float = SAVED) -> dict | None:
    """The slot count that saves at least ``saved`` of BPTT's memory for the least time."""
    enough = [r for r in rows if r["memory_saved"] >= saved]
    return min(enough, key=lambda r: r["time_paid"]) if enough else None


def _pct(v) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{100 * v:.1f}%"


def gruslys_sentence(rows: list[dict], T: int) -> str:
    """What the measured slots give beside Gruslys et al.'s 95% for a third more time."""
    ref = (
        f"Gruslys et al. 2016 report {_pct(GRUSLYS['memory_saved'])} of memory saved for "
        f"{_pct(GRUSLYS['time_paid'])} more time at T = {GRUSLYS['T']} (their abstract; "
        f"their machine and network)"
    )
    if not rows:
        return f"{ref}; checkpointed BPTT and BPTT were not both measured here."
    best = at_saved(rows)
    if best is not None:
        return (
            f"Here, at T = {T}, c = {best['c']} slots save {_pct(best['memory_saved'])} of "
            f"BPTT's peak memory for {_pct(best['time_paid'])} more time "
            f"(the schedule makes {_pct(best['extra_forward'])} more forward steps); {ref}."
        )
    most = max(rows, key=lambda r: r["memory_saved"])
    return (
        f"No measured slot count saves {_pct(SAVED)} here: the most is "
        f"{_pct(most['memory_saved'])} at c = {most['c']}, for {_pct(most['time_paid'])} "
        f"more time; {ref}."
    )


def gruslys_table(rows: list[dict], T: int) -> str:
    """The comparison as Markdown: one row per measured slot count, then the sentence."""
    if not rows:
        return gruslys_sentence(rows, T)
    lines = [
        "| slots c | peak memory | time | memory saved | time paid | extra forward steps "
        "(schedule) | time paid (FLOP model) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = f"{r['c']}" + (" (>= T: every state stored)" if r["c"] >= T else "")
        lines.append(
            f"| {c} | {fmt.nbytes(r['peak_bytes'])} | {fmt.seconds(r['time_s'])} | "
            f"{_pct(r['memory_saved'])} | {_pct(r['time_paid'])} | {_pct(r['extra_forward'])} "
            f"({r['forward_steps']} against {T}) | {_pct(r['model_time_paid'])} |"
        )
    return "\n".join(lines) + "\n\n" + gruslys_sentence(rows, T)


# --- the chart and summary.json ---------------------------------------------------------


def _where(tr: Tradeoff, view: View) -> str:
    return view.sizes_text(tr.size)


def need_points(ctx: Context) -> Tradeoff:
    """The points, or Skip saying which cells are missing and how to measure them."""
    store, view = ctx.need_store(), ctx.view
    tr = tradeoff_points(store.ok, view)
    drawn = sum((tr.bptt is not None, tr.rtrl is not None, len(tr.tbptt), len(tr.checkpointed)))
    if drawn < 2:
        raise Skip(
            f"fewer than 2 measured cells at {_where(tr, view)} (the trade-off sweeps of "
            f"`bpttbench sweep --preset full` or `quick` measure them)"
        )
    return tr


def chart_tradeoff(ctx: Context):
    """Time against peak memory at one (T, n, B); the Gruslys comparison beneath."""
    store, view = ctx.need_store(), ctx.view
    tr = need_points(ctx)
    lines = []

    def add(alg: str, pts: list[Point], label: str, tag: str = "", **kw) -> None:
        if pts:
            lines.append(
                TradeoffLine(
                    label,
                    view.style(alg),
                    np.array([p.peak_bytes for p in pts]),
                    np.array([p.time_s for p in pts]),
                    [f"{tag}={p.setting}" if tag else "" for p in pts],
                    **kw,
                )
            )

    add("bptt", [tr.bptt] if tr.bptt else [], view.title("bptt"))
    ckpt = view.title(CHECKPOINTED) if CHECKPOINTED in view.registry else "Checkpointed BPTT"
    add(CHECKPOINTED, tr.checkpointed, f"{ckpt} over slots c", "c")
    add("tbptt", tr.tbptt, f"{view.title('tbptt')} over k = k1 = k2\n(a different gradient)",
        "k", hollow=True)  # fmt: skip
    if tr.rtrl is not None:
        label = view.title("rtrl")
        if tr.rtrl.scaled_from:
            label += (
                f"\n(timed at T = {tr.rtrl.scaled_from}, time scaled\n"
                f"x{tr.size['T'] / tr.rtrl.scaled_from:g} by steps: not measured here)"
            )
        add("rtrl", [tr.rtrl], label, scaled=tr.rtrl.scaled_from is not None)
    target = None
    if tr.bptt is not None and tr.size["T"] == GRUSLYS["T"]:
        target = (
            tr.bptt.peak_bytes * (1 - GRUSLYS["memory_saved"]),
            tr.bptt.time_s * (1 + GRUSLYS["time_paid"]),
            "Gruslys et al. 2016's claim\n(95% saved, 1/3 more time)\nagainst this BPTT",
        )
    where = ", ".join(x for x in (_where(tr, view), str(store.config.get("dtype", ""))) if x)
    title = f"Time against memory: every way to pay for a gradient\n{where}"
    fig = tradeoff_chart(lines, title, store.footer, target)
    rows = gruslys_rows(tr, view.registry)
    caption = (
        "Each marker is one algorithm at one setting, at equal sizes: down and to the left is "
        "cheaper. Checkpointed BPTT and BPTT compute the same gradient; truncated BPTT (hollow) "
        "stores only k states and computes a different one; RTRL stores no state but pays n^4 "
        "a step."
    )
    if tr.rtrl is not None and tr.rtrl.scaled_from:
        caption += (
            f" RTRL was timed at T = {tr.rtrl.scaled_from} only: its time is scaled by the "
            f"steps (a model point) and its peak carried over, as its memory has no term in T."
        )
    if not tr.checkpointed:
        caption += f" No checkpointed BPTT cells at {_where(tr, view)} yet."
    return fig, caption, gruslys_table(rows, int(tr.size["T"]))


def tradeoff_summary(ctx: Context) -> dict:
    """The chart's figures for summary.json; Skip when the cells are missing."""
    view = ctx.view
    tr = need_points(ctx)

    def fig(p: Point) -> dict:
        out = {"time_s": p.time_s, "peak_bytes": p.peak_bytes}
        if p.scaled_from:
            out["time_scaled_from_T"] = p.scaled_from
        return out

    rows = gruslys_rows(tr, view.registry)
    best = at_saved(rows)
    out: dict = {"size": dict(tr.size)}
    if tr.bptt is not None:
        out["bptt"] = fig(tr.bptt)
    if tr.rtrl is not None:
        out["rtrl"] = fig(tr.rtrl)
    out["tbptt"] = {f"k={p.setting}": fig(p) for p in tr.tbptt}
    out["checkpointed_bptt"] = {f"c={p.setting}": fig(p) for p in tr.checkpointed}
    out["gruslys"] = {
        "reported": {k: GRUSLYS[k] for k in ("source", "T", "memory_saved", "time_paid")},
        "slots": {
            f"c={r['c']}": {k: r[k] for k in r if k not in ("c", "peak_bytes", "time_s")}
            for r in rows
        },
        "at_95": None if best is None else {k: best[k] for k in best},
    }
    return out
