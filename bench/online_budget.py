"""The online rules against a budget: time per step and memory against n, and how far n goes.

Which algorithms: every one whose registered memory exponent along T is 0 (it
keeps nothing per step, so it can run forever): exact RTRL, truncated BPTT and
the online rules (UORO, KF-RTRL, R-KF, SnAp-1, SnAp-2, RFLO), plugins included.

Time per step is a call's median time over the steps and sequences it processed,
``median_s / (T B)``: the cost of one step of one sequence, the figure an online
learner pays per observation. Memory is the call's tracemalloc peak (the
working memory; it does not grow with T for these algorithms, so it is what a
run of any length holds).

The budget (``TIME_BUDGET`` per step, ``MEMORY_BUDGET``) is met up to a state
size n read off the measured sweep along n, the one the exponent fit used
(:func:`budget_n`): between the last measured size within budget and the first
one over it, n follows the fitted power law through the last point within
budget (the measured local slope where the fit gave none), so the figure is an
interpolation between two measurements, never an extrapolation. Where every
measured size is within budget the table says "at least" the largest; where
none is, "below" the smallest.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import pandas as pd
from bpttbench.bench import charts as ch
from bpttbench.bench import fmt
from bpttbench.bench.fit import METRIC_COLUMN
from bpttbench.bench.sections import _series
from bpttbench.bench.slices import pick_sweep
from bpttbench.bench.view import Context, Skip, View

TIME_BUDGET = 1e-3  # seconds per step of one sequence
MEMORY_BUDGET = 2**30  # bytes
AXIS = "n"
NAME = "online_budget"
TITLE = "Online algorithms: time per step and memory against n, and a budget"
DEFINITION = (
    "time per step = median call time / (T B), one step of one sequence; memory = the "
    "call's tracemalloc peak (flat in T for these algorithms)"
)


def online_algorithms(view: View) -> list[str]:
    """The registry's algorithms whose memory exponent along T is 0."""
    out = []
    for name, spec in view.registry.items():
        exp = spec.exponents.get(("T", "memory"))
        if exp is not None and exp.value == 0 and AXIS in spec.axis_vars:
            out.append(name)
    return out


def budget_n(sizes: Sequence[float], values: Sequence[float], slope: float, limit: float):
    """``(n, bound)``: the state size up to which ``values`` stay within ``limit``.

    ``bound`` is ``"interpolated"`` (n lies between two measured sizes, on the
    power law of exponent ``slope`` through the last one within the limit;
    the local slope between the two where ``slope`` is not a positive number),
    ``"at_least"`` (every measured size is within the limit: n is the largest,
    nothing is extrapolated) or ``"below"`` (none is: n is the smallest).
    """
    pts = sorted((float(x), float(y)) for x, y in zip(sizes, values, strict=True) if y > 0)
    if not pts:
        raise ValueError("no positive measurement")
    if pts[0][1] > limit:
        return pts[0][0], "below"
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if y1 > limit:
            s = (
                slope
                if math.isfinite(slope) and slope > 0
                else math.log(y1 / y0) / math.log(x1 / x0)
            )
            n = x0 * (limit / y0) ** (1.0 / s) if s > 0 else x0
            return min(max(n, x0), x1), "interpolated"
    return pts[-1][0], "at_least"


def _per_step(sw: pd.DataFrame) -> pd.DataFrame:
    sw = sw.copy()
    steps = pd.to_numeric(sw["T"], errors="coerce") * pd.to_numeric(sw["B"], errors="coerce")
    for col in ("median_s", "q25_s", "q75_s"):
        if col in sw.columns:
            sw[col] = sw[col] / steps
    return sw


def _usable(sw: pd.DataFrame, metric: str, col: str) -> pd.DataFrame | None:
    """The sweep per step (time), its positive values; None under two sizes."""
    if sw.empty:
        return None
    sw = _per_step(sw) if metric == "time" else sw
    sw = sw[pd.to_numeric(sw[col], errors="coerce") > 0]
    return sw if sw["size"].nunique() >= 2 else None


def budget_rows(ok: pd.DataFrame, fits: Mapping, view: View) -> list[dict]:
    """One row per online algorithm measured along n: its sweep, exponents and budget n."""
    rows = []
    for alg in online_algorithms(view):
        entry: dict = {"algorithm": alg, "title": view.title(alg)}
        for metric, limit in (("time", TIME_BUDGET), ("memory", MEMORY_BUDGET)):
            fit = fits.get((alg, AXIS, metric))
            col = METRIC_COLUMN[metric]
            sw = _usable(pick_sweep(ok, view, alg, AXIS, fit), metric, col)
            if sw is None:
                continue
            slope = fit.slope if fit is not None else math.nan
            n, bound = budget_n(sw["size"], sw[col], slope, limit)
            if metric == "time" and bound == "at_least":
                # The fitted sweep may stop short of the budget (the n^2 rules fit inside
                # the last-level cache, specs/online.py): read n off the sweep that reaches
                # furthest, with the local slope (the fitted one holds within its sizes).
                wide = _usable(pick_sweep(ok, view, alg, AXIS, fit, widest=True), metric, col)
                if wide is not None and wide["size"].max() > sw["size"].max():
                    sw = wide
                    n, bound = budget_n(sw["size"], sw[col], slope, limit)
                    if fit is not None and fit.window and n > max(fit.window):
                        n, bound = budget_n(sw["size"], sw[col], math.nan, limit)
            entry[metric] = {
                "n": float(n),
                "bound": bound,
                "slope": slope,
                "theory": fit.theory if fit is not None else math.nan,
                "verdict": fit.verdict if fit is not None else "",
                "measured": [int(sw["size"].min()), int(sw["size"].max())],
                "sweep": sw,
            }
        if "time" in entry or "memory" in entry:
            rows.append(entry)
    return rows


def _n_text(cell: Mapping | None) -> str:
    if cell is None:
        return "not measured"
    n, bound = cell["n"], cell["bound"]
    if bound == "at_least":
        return f">= {n:.0f} (every measured n; not extrapolated)"
    if bound == "below":
        return f"< {n:.0f} (the smallest measured n is over)"
    return f"{n:.0f}"


def _slope_text(cell: Mapping | None) -> str:
    if cell is None or not math.isfinite(cell["slope"]):
        return "-"
    return f"{fmt.slope(cell['slope'])} (theory {cell['theory']:g}, {cell['verdict']})"


def table(rows: Sequence[Mapping]) -> str:
    """The budget table as Markdown."""
    head = (
        f"| algorithm | time per step vs n: fitted exponent | n within "
        f"{fmt.seconds(TIME_BUDGET)} per step | memory vs n: fitted exponent | n within "
        f"{fmt.nbytes(MEMORY_BUDGET)} | n measured |"
    )
    lines = [head, "|" + "---|" * 6]
    for r in rows:
        t, m = r.get("time"), r.get("memory")
        span = (t or m)["measured"]
        lines.append(
            f"| {r['title']} | {_slope_text(t)} | {_n_text(t)} | {_slope_text(m)} | "
            f"{_n_text(m)} | {span[0]}..{span[1]} |"
        )
    return "\n".join(lines)


def chart(ctx: Context):
    """Time per step and memory against n for every online algorithm, with the budget table."""
    store, view = ctx.need_store(), ctx.view
    rows = budget_rows(store.ok, store.fits, view)
    if not rows:
        raise Skip("no online algorithm (memory flat in T) has 2 or more measured sizes along n")
    panels = []
    for metric, limit in (("time", TIME_BUDGET), ("memory", MEMORY_BUDGET)):
        series = []
        for r in rows:
            if metric in r:
                fit = store.fits.get((r["algorithm"], AXIS, metric))
                series.append(_series(r[metric]["sweep"], fit, view, r["algorithm"], metric))
        if series:
            what = "time per step" if metric == "time" else "memory"
            bound = fmt.seconds(limit) if metric == "time" else fmt.nbytes(limit)
            panels.append(
                ch.Panel(view.axis_label(AXIS), metric, series, f"{what} (dotted: budget {bound})")
            )
    fig = ch.panels_chart(panels, TITLE, store.footer)
    for ax, panel in zip(fig.axes, panels, strict=False):  # the budgets, dotted
        limit = TIME_BUDGET if panel.metric == "time" else MEMORY_BUDGET
        ax.axhline(limit, color="0.4", linestyle=":", linewidth=1.0)
        if panel.metric == "time":
            ax.set_ylabel("time per step of one sequence (s)")
    caption = (
        f"Exact RTRL and truncated BPTT next to the online rules; {DEFINITION}. The table "
        f"gives the state size n up to which each stays within {fmt.seconds(TIME_BUDGET)} "
        f"per step and {fmt.nbytes(MEMORY_BUDGET)} on this machine, interpolated along the "
        f"measured sweep with the fitted exponent and never extrapolated past it."
    )
    return fig, caption, table(rows)


def summary(ctx: Context) -> dict:
    """The budget table's figures for summary.json."""
    store = ctx.need_store()
    rows = budget_rows(store.ok, store.fits, ctx.view)
    out: dict = {
        "time_per_step_s": TIME_BUDGET,
        "memory_bytes": MEMORY_BUDGET,
        "definition": DEFINITION,
        "algorithms": {},
    }
    for r in rows:
        out["algorithms"][r["algorithm"]] = {
            metric: {k: v for k, v in r[metric].items() if k != "sweep"}
            for metric in ("time", "memory")
            if metric in r
        }
    return out
