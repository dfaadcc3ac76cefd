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
makes T) and issue 12's time target: the predicted time, BPTT's measured time plus
(E - T) tau with tau the time of one evaluation, the slope of a least-squares line
time = a + tau E through the other slot counts (leave-one-out; THEORY.md, "Checkpointed
BPTT", says why this source), the ratio measured / predicted and whether it is within
10%. The FLOP model's time paid, flops(c) / flops(BPTT) - 1, stays in summary.json
(it counts tanh as one FLOP and under-predicts). The same columns are given at the
other (n, cell) measured at T = 1000, B = 8 (n = 64, 256, 512; Elman, GRU, LSTM). The slot count
quoted beside Gruslys's figure is the one that saves at least 95% for the
least time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from bpttbench.bench import fmt
from bpttbench.bench.charts_tradeoff import TradeoffLine, tradeoff_chart
from bpttbench.bench.view import Context, Skip, View
from bpttbench.checkpointed_bptt import evaluations  # the module's, not the function's
from bpttbench.tradeoff import CHECKPOINTED, SIZE, SLOTS_AXIS

GRUSLYS = {
    "source": "Gruslys et al. 2016 (abstract)",
    "T": 1000,
    "memory_saved": 0.95,
    "time_paid": 1 / 3,
}
# Issue 12: time overhead over BPTT at most 10% above what the extra evaluations predict.
TIME_TARGET = 0.10
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
    cell: str = "elman"

    @property
    def empty(self) -> bool:
        return not (self.bptt or self.rtrl or self.tbptt or self.checkpointed)


def _match(ok: pd.DataFrame, sizes: Mapping[str, object], cell: str = "elman") -> pd.DataFrame:
    """Rows whose sizes equal ``sizes`` (columns absent from the store are not required)."""
    mask = pd.Series(True, index=ok.index)
    for var, want in sizes.items():
        if var in ok.columns:
            mask &= pd.to_numeric(ok[var], errors="coerce") == float(want)
    if "cell" in ok.columns:  # the Elman cell: the default where the column is empty
        named = ok["cell"].astype(str) == cell
        mask &= (ok["cell"].isna() | named) if cell == "elman" else named
    elif cell != "elman":
        mask &= False
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


def tradeoff_points(
    ok: pd.DataFrame, view: View, size: Mapping[str, int] = SIZE, cell: str = "elman"
) -> Tradeoff:
    """The chart's points from the store's measured cells (see the module docstring)."""
    at = {**HELD, **size}
    out = Tradeoff(dict(size), cell=cell)
    mine = {a: ok[ok["algorithm"] == a] for a in ("bptt", "rtrl", "tbptt", CHECKPOINTED)}
    for _, r in _latest(_match(mine["bptt"], at, cell), None).iterrows():
        out.bptt = _point("bptt", r)
    tb = _match(mine["tbptt"], at)
    if {"k1", "k2"} <= set(tb.columns):
        tb = tb[
            pd.to_numeric(tb["k1"], errors="coerce") == pd.to_numeric(tb["k2"], errors="coerce")
        ]
        out.tbptt = [_point("tbptt", r, "k1") for _, r in _latest(tb, "k1").iterrows()]
    ck = _match(mine[CHECKPOINTED], at, cell)
    if cell != "elman":  # the other cells: BPTT and checkpointed BPTT only
        out.checkpointed = [
            _point(CHECKPOINTED, r, SLOTS_AXIS) for _, r in _latest(ck, SLOTS_AXIS).iterrows()
        ]
        return out
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
    return evaluations(T, slots, B)


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
            size = {**HELD, **tr.size, "cell": tr.cell}
            try:
                ratio = spec.flop_count({**spec.sizes, **size, SLOTS_AXIS: c}) / (
                    bptt_spec.flop_count({**bptt_spec.sizes, **size})
                )
                row["model_time_paid"] = ratio - 1.0
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                pass
        rows.append(row)
    _predict(rows, T, base.time_s)
    return rows


def evaluation_fit(E, t) -> dict | None:
    """Least squares t = a + tau E over a c sweep: tau, a and the relative residuals."""
    E, t = np.asarray(E, float), np.asarray(t, float)
    if len(E) < 2 or np.ptp(E) == 0:
        return None
    tau, a = np.polyfit(E, t, 1)
    resid = (t - (a + tau * E)) / t
    return {"tau_s": float(tau), "intercept_s": float(a), "residuals": resid.tolist()}


def _predict(rows: list[dict], T: int, bptt_s: float) -> None:
    """Each row's predicted time: BPTT's measured time plus its extra evaluations times
    tau, the time of one evaluation fitted over the *other* slot counts (leave-one-out, so
    no point predicts itself); the ratio of measured to predicted and the 10% target."""
    E = [r["forward_steps"] for r in rows]
    t = [r["time_s"] for r in rows]
    for i, r in enumerate(rows):
        fit = evaluation_fit(E[:i] + E[i + 1 :], t[:i] + t[i + 1 :]) if len(rows) >= 3 else None
        r["per_evaluation_s"] = r["predicted_time_paid"] = r["time_ratio"] = None
        r["meets_time_target"] = None
        if fit is None or fit["tau_s"] <= 0:
            continue
        predicted = bptt_s + (r["forward_steps"] - T) * fit["tau_s"]
        r["per_evaluation_s"] = fit["tau_s"]
        r["predicted_time_paid"] = predicted / bptt_s - 1.0
        r["time_ratio"] = r["time_s"] / predicted
        r["meets_time_target"] = bool(r["time_ratio"] <= 1.0 + TIME_TARGET)


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
        "(schedule) | time paid predicted | measured / predicted | within 10% |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = f"{r['c']}" + (" (>= T: every state stored)" if r["c"] >= T else "")
        ratio = "-" if r["time_ratio"] is None else f"{r['time_ratio']:.2f}"
        verdict = {None: "-", True: "yes", False: "NO"}[r["meets_time_target"]]
        lines.append(
            f"| {c} | {fmt.nbytes(r['peak_bytes'])} | {fmt.seconds(r['time_s'])} | "
            f"{_pct(r['memory_saved'])} | {_pct(r['time_paid'])} | {_pct(r['extra_forward'])} "
            f"({r['forward_steps']} against {T}) | {_pct(r['predicted_time_paid'])} | "
            f"{ratio} | {verdict} |"
        )
    return "\n".join(lines) + "\n\n" + prediction_note(rows) + "\n\n" + gruslys_sentence(rows, T)


def prediction_note(rows: list[dict]) -> str:
    """How the prediction is made, with the fit over all the slot counts and its residuals."""
    fit = evaluation_fit([r["forward_steps"] for r in rows], [r["time_s"] for r in rows])
    how = (
        "Predicted time: BPTT's measured time plus the extra cell evaluations times the time "
        "of one evaluation, the slope tau of a least-squares line time = a + tau E through "
        "the other slot counts' (E, time) (leave-one-out: no slot count predicts itself); "
        f"the issue's target is measured / predicted <= {1 + TIME_TARGET:.2f}."
    )
    if fit is None:
        return how + " Too few slot counts measured to fit tau."
    worst = max(abs(x) for x in fit["residuals"])
    return (
        f"{how} The line through all {len(rows)}: tau = {fmt.seconds(fit['tau_s'])} an "
        f"evaluation, a = {fmt.seconds(fit['intercept_s'])}, residuals at most "
        f"{_pct(worst)} of the time."
    )


# The time target at the other measured sizes: issue 12 asks it "at n = 64..512", for
# every cell; the chart's size (the Elman cell at SIZE) is the Gruslys table itself.
OVERHEAD_N = (64, 256, 512)
OVERHEAD_CELLS = ("elman", "gru", "lstm")


def overhead_sets(ok: pd.DataFrame, view: View) -> list[tuple[str, Tradeoff, list[dict]]]:
    """(label, points, rows) of every other (n, cell) at SIZE's T and B with BPTT and at
    least one slot count measured."""
    out = []
    for cell in OVERHEAD_CELLS:
        for n in OVERHEAD_N:
            size = {**SIZE, "n": n}
            if cell == "elman" and size == SIZE:
                continue
            tr = tradeoff_points(ok, view, size, cell)
            rows = gruslys_rows(tr, view.registry)
            if rows:
                out.append((f"{view.sizes_text(size)}, {cell}", tr, rows))
    return out


def overhead_tables(ok: pd.DataFrame, view: View) -> str:
    """The time-target columns of the Gruslys table at the other (n, cell) measured."""
    parts = []
    for label, tr, rows in overhead_sets(ok, view):
        T = int(tr.size["T"])
        table = gruslys_table(rows, T).split("\n\n", 1)[0]
        parts.append(f"Time overhead at {label}:\n\n{table}\n\n{prediction_note(rows)}")
    return "\n\n".join(parts)


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
    table = gruslys_table(rows, int(tr.size["T"]))
    more = overhead_tables(store.ok, view)
    return fig, caption, table + ("\n\n" + more if more else "")


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
    out["time_overhead"] = {
        label: {f"c={r['c']}": {k: r[k] for k in r if k != "c"} for r in rows}
        for label, _, rows in overhead_sets(ctx.need_store().ok, view)
    }
    return out
