"""summary.json: the figures the README quotes, computed from the store and benchmark JSON.

``bpttbench report`` writes it beside report.md. Every figure that the README
gives about the reference run (exponent counts, slopes with their intervals,
efficiency ranges, the GEMM peak, each pair's memory boundary and measured
ratios, the peers' ratios) is a value here, and ``tests/test_readme.py``
regenerates this file from the committed store and checks the README's text
against it, so a figure cannot drift from the data it describes. Numbers are
kept to six significant digits.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from bpttbench.bench import cells_compare, online_budget
from bpttbench.bench.benchjson import BenchFile
from bpttbench.bench.fit import verdict_counts
from bpttbench.bench.pairs import pair_summary
from bpttbench.bench.sections import peer_groups, peer_rows
from bpttbench.bench.slices import median_positive, size_dict
from bpttbench.bench.tradeoff import tradeoff_summary
from bpttbench.bench.view import Context, Skip

ABOUT = (
    "Figures the README quotes, computed by `bpttbench report` from the results store "
    "(and pytest-benchmark JSON); regenerate with that command, never edit by hand."
)


def build_summary(ctx: Context, bench_files: Sequence[BenchFile], db_path) -> dict:
    """Every figure of the summary, from the store's slice, its fits and the peers table."""
    out: dict = {"about": ABOUT, "store": Path(db_path).name}
    store = ctx.store
    if store is not None:
        fits = store.all_fits()
        out["run"] = _run(ctx)
        out["exponents"] = {
            "measured": verdict_counts(fits),
            "model_check": verdict_counts(fits, measured=False),
        }
        out["slopes"] = _slopes(fits)
        out["efficiency"] = _efficiency(ctx)
        out["online_budget"] = online_budget.summary(ctx)
        if cells_compare.has_gated(store.ok):
            out["cells"] = cells_compare.cells_summary(ctx)
        out["pairs"] = {}
        for a, b in ctx.view.pairs():
            try:
                out["pairs"][f"{a}_vs_{b}"] = pair_summary(ctx, a, b)
            except Skip:
                continue
        try:
            out["tradeoff"] = tradeoff_summary(ctx)
        except Skip:
            pass
        try:
            out["peers"] = _peers(db_path)
        except Skip:
            pass
    out["benchmark_json"] = [
        {"file": bf.path.name, "benchmarks": len(bf.cells)} for bf in bench_files
    ]
    return _rounded(out)


def write_summary(path: Path, summary: Mapping) -> None:
    path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")


def _run(ctx: Context) -> dict:
    store = ctx.store
    runs = store.runs.sort_values("run_id")
    started = pd.to_datetime(runs["started"], errors="coerce", utc=True)
    finished = pd.to_datetime(runs.get("finished"), errors="coerce", utc=True)
    seconds = float((finished - started).dt.total_seconds().sum()) if len(runs) else math.nan
    last = runs.iloc[-1] if len(runs) else {}
    return {
        "cells": len(store.cells),
        "ok": len(store.ok),
        "minutes": round(seconds / 60) if math.isfinite(seconds) else None,
        "preset": last.get("preset"),
        "machine": store.config.get("machine"),
        "cpu": last.get("cpu"),
        "numba_threads": int(store.config.get("numba_threads")),
        "blas_threads": int(store.config.get("blas_threads")),
        "dtype": store.config.get("dtype"),
        "date": str(last.get("started", ""))[:10],
    }


def _slopes(fits) -> dict:
    out: dict = {}
    for f in fits:
        out.setdefault(f.label, {}).setdefault(f.axis, {})[f.metric] = {
            "slope": f.slope,
            "ci_low": f.ci_low,
            "ci_high": f.ci_high,
            "theory": f.theory,
            "verdict": f.verdict,
            "points": f.n_points,
        }
    return out


def _efficiency(ctx: Context) -> dict:
    """Achieved GFLOP/s over the run's GEMM rate: each algorithm's range over its cells."""
    store, view = ctx.store, ctx.view
    gemm = median_positive(store.runs.get("gemm_gflops"))
    out: dict = {"gemm_gflops": gemm, "gemv_gflops": median_positive(store.runs.get("gemv_gflops"))}
    ok = store.ok[pd.to_numeric(store.ok["gflops"], errors="coerce") > 0]
    if not gemm or ok.empty:
        return out
    out["algorithms"] = {}
    # A gated cell's range apart from the Elman cell's: keyed "bptt[gru]" like the slopes.
    cell = ok["cell"].astype(str) if "cell" in ok.columns else pd.Series("", index=ok.index)
    gated = cell.isin(cells_compare.GATED)
    label = ok["algorithm"].where(~gated, ok["algorithm"] + "[" + cell + "]")
    for name in view.order(label):
        c = ok[label == name]
        lo, hi = c.loc[c["gflops"].idxmin()], c.loc[c["gflops"].idxmax()]
        out["algorithms"][name] = {
            "min": lo["gflops"] / gemm,
            "max": hi["gflops"] / gemm,
            "min_at": size_dict(lo, view),
            "max_at": size_dict(hi, view),
        }
    return out


def _peers(db_path) -> dict:
    """Per tool: its version; per tool, algorithm and (T, B, k): the ratio at each n."""
    _, ok = peer_rows(db_path)
    versions = ok.groupby("tool")["tool_version"].last().to_dict()
    out: dict = {
        "tools": {
            t: {"version": v, "release": ".".join(re.findall(r"\d+", str(v))[:2])}
            for t, v in versions.items()
        },
        "max_rel_err": float(pd.to_numeric(ok["max_rel_err"], errors="coerce").max()),
        "threads": sorted({int(t) for t in ok["threads"].dropna()}),
        "groups": {},
    }
    for row, g in peer_groups(ok):
        held = ",".join(f"{k}={int(row[k])}" for k in ("T", "B", "k") if pd.notna(row.get(k)))
        for k, usual in (("cell", "elman"), ("dtype", "float64")):  # float32, gated: apart
            held += f",{k}={row[k]}" if row.get(k, usual) not in (usual, None) else ""
        ratios = dict(zip(g["n"].astype(int), g["ratio_vs_bpttbench"].astype(float), strict=True))
        by_tool = out["groups"].setdefault(row["tool"], {}).setdefault(row["algorithm"], {})
        by_tool[held] = {
            "ratios": {f"n={n}": r for n, r in ratios.items()},
            "min": min(ratios.values()),
            "max": max(ratios.values()),
            "n_min": min(ratios),
            "n_max": max(ratios),
        }
    return out


def _rounded(value):
    """Floats to six significant digits (NaN and infinities to None), recursively."""
    if isinstance(value, Mapping):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):  # NumPy scalars
        value = value.item()
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value
