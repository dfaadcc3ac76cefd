"""Source 2 of the report: pytest-benchmark JSON files, and their charts.

``--benchmark-json FILE ...`` (``--benchmark-autosave`` output, or
``--benchmark-json``) gives a time chart per axis of the last file and, with two
or more files, a ratio per benchmark against the first (the baseline).
bpttbench's own suite (``bench/conftest.py``) stores the algorithm, axis and
sizes in ``extra_info``; other suites are read from their groups and test ids.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from bpttbench.bench import charts as ch
from bpttbench.bench import charts_compare as cc
from bpttbench.bench import fmt
from bpttbench.bench.fit import fit_table
from bpttbench.bench.sections import TIME_REF, describe_slopes, scaling_series, sentence
from bpttbench.bench.view import Skip, View

MAX_COMPARE_ROWS = 80


@dataclass
class BenchFile:
    path: Path
    cells: pd.DataFrame  # one row per benchmark, the store's cell columns where known
    footer: str


def read_benchmark_json(path: str | Path, view: View) -> BenchFile:
    """Parse a pytest-benchmark JSON file; Skip with a one-line reason if it is not one."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise Skip(f"{path.name}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Skip(f"{path.name}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise Skip(
            f"{path.name} is not JSON ({exc.msg}, line {exc.lineno}), so not "
            f"pytest-benchmark output"
        ) from None
    if not (
        isinstance(doc, dict) and isinstance(doc.get("benchmarks"), list) and "machine_info" in doc
    ):
        raise Skip(
            f"{path.name} is not pytest-benchmark output (no 'benchmarks' list and 'machine_info')"
        )
    rows = []
    for b in doc["benchmarks"]:
        stats = b.get("stats") if isinstance(b, dict) else None
        if not isinstance(stats, dict) or not isinstance(stats.get("median"), (int, float)):
            continue
        rows.append(_benchmark_row(b, stats, doc, view))
    if not rows:
        raise Skip(f"{path.name} has no benchmark with timing statistics")
    cells = pd.DataFrame(rows)
    return BenchFile(path, cells, _json_footer(doc, path, cells))


def _benchmark_row(b: Mapping, stats: Mapping, doc: Mapping, view: View) -> dict:
    """One benchmark as a cell: algorithm, axis and sizes from extra_info, params or names.

    bpttbench's suite stores ``algorithm``, ``axis``, ``size`` (a dict) and
    ``dtype`` in ``extra_info``; other suites are read from a group like
    ``bptt-T`` or ``bptt vs T (...)`` and sizes from ``params`` or ids like ``T=64``.
    """
    params = b.get("params") if isinstance(b.get("params"), dict) else {}
    extra = b.get("extra_info") if isinstance(b.get("extra_info"), dict) else {}
    sizes = extra.get("size") if isinstance(extra.get("size"), dict) else {}
    name = str(b.get("name", "?"))
    group = str(b.get("group") or "")
    m = re.match(r"^\s*([\w.]+?)(?:-| vs )(\w+)\b", group)
    alg = extra.get("algorithm") or (m.group(1) if m else None)
    axis = extra.get("axis") or (m.group(2) if m else None)
    if not alg or axis not in view.axes():
        alg, axis = None, None

    def size_of(var: str):
        for src in (sizes, params, extra):
            v = src.get(var)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return int(v)
        found = re.search(rf"(?:^|[\[\-_, ]){re.escape(var)}=(\d+)", name)
        return int(found.group(1)) if found else None

    row = {
        "name": name,
        "fullname": str(b.get("fullname", name)),
        "group": group,
        "algorithm": alg,
        "axis": axis,
        **{v: size_of(v) for v in view.sizes},
    }
    size = None
    if axis is not None:
        size = size_of(axis) if axis != "k" else (size_of("k") or row["k1"])
    row.update(
        size=size,
        dtype=str(extra.get("dtype") or params.get("dtype") or "float64"),
        status="ok" if size else "unplaced",
        median_s=float(stats["median"]),
        q25_s=_number(stats.get("q1")),
        q75_s=_number(stats.get("q3")),
        rounds=stats.get("rounds"),
        flops=_number(extra.get("flops")),
        peak_bytes=_number(extra.get("peak_bytes")),
        model_bytes=_number(extra.get("model_bytes", extra.get("analytic_bytes"))),
        compile_s=_number(extra.get("compile_s")),
        created=str(doc.get("datetime", "")),
        machine=str((doc.get("machine_info") or {}).get("node", "")),
        numba_threads=extra.get("numba_threads"),
        blas_threads=extra.get("blas_threads"),
    )
    row["gflops"] = (
        row["flops"] / row["median_s"] / 1e9 if row["flops"] and row["median_s"] > 0 else None
    )
    return row


def _number(v) -> float | None:
    """A JSON number as a float; None for anything else (a string, a bool, null)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _json_footer(doc: Mapping, path: Path, cells: pd.DataFrame) -> str:
    mi = doc.get("machine_info") or {}
    cpu = mi.get("cpu") or {}
    ci = doc.get("commit_info") or {}
    commit = str(ci.get("id") or "unknown")[:10] + (" (dirty)" if ci.get("dirty") else "")
    parts = [
        f"pytest-benchmark {doc.get('version', '?')}",
        path.name,
        f"machine {mi.get('node', '?')} ({cpu.get('brand_raw', '?')})",
    ]
    threads = [_one_value(cells.get(c)) for c in ("numba_threads", "blas_threads")]
    if all(t is not None for t in threads):
        parts.append(
            f"Numba threads {fmt.integer(threads[0])}, BLAS threads {fmt.integer(threads[1])}"
        )
    parts += [
        f"Python {mi.get('python_version', '?')}",
        f"commit {commit}",
        str(doc.get("datetime", ""))[:16],
    ]
    return " · ".join(parts)


def _one_value(col):
    """The single value of a column, or None if it is missing or varies."""
    if col is None:
        return None
    vals = col.dropna().unique()
    return vals[0] if len(vals) == 1 else None


def chart_bench_time(bf: BenchFile, axis: str, view: View):
    """Median time per benchmark against ``axis``, with fits of the file's own sweeps."""
    ok = bf.cells[(bf.cells["status"] == "ok") & (bf.cells["axis"] == axis)]
    try:
        fits = {(f.algorithm, f.axis, f.metric): f for f in fit_table(ok, view.registry)}
    except Exception:  # sizes the models need may be missing from the JSON: plain slopes
        fits = {}
    series, common, _ = scaling_series(ok, fits, view, axis, "time")
    if not series:
        raise Skip(f"{bf.path.name}: fewer than 2 sizes along {axis} for every algorithm")
    dtypes = ok["dtype"].dropna().unique()
    sub = ", ".join(x for x in (common, dtypes[0] if len(dtypes) == 1 else "") if x)
    title = f"pytest-benchmark: time per call vs {view.axis_name(axis)}"
    title += f"\n{sub}" if sub else ""
    fig = ch.scaling_chart(series, view.axis_label(axis), "time", title, TIME_REF, bf.footer)
    slopes = "; ".join(
        s for s in (describe_slopes(fits, view, axis, "time", own) for own in (True, False)) if s
    )
    caption = (
        f"From {bf.path.name}: the same reading as the store's time charts (median per "
        f"benchmark, bars from first to third quartile). {sentence('Fitted', slopes)}"
    )
    return fig, caption.strip(), ""


def chart_bench_compare(files: Sequence[BenchFile]):
    """Each benchmark's median time over the first file's, for every later file."""
    base, others = files[0], files[1:]
    b = base.cells.drop_duplicates("fullname").set_index("fullname")["median_s"]
    names = list(b.index)
    series, notes = [], []
    for f in others:
        o = f.cells.drop_duplicates("fullname").set_index("fullname")["median_s"]
        series.append(
            (f"{f.path.name} ÷ {base.path.name}", [o.get(k, np.nan) / b[k] for k in names])
        )
        only = len(set(o.index) - set(b.index))
        if only:
            notes.append(f"{only} benchmark(s) only in {f.path.name}")
    common = [i for i, k in enumerate(names) if any(np.isfinite(s[1][i]) for s in series)]
    if not common:
        raise Skip(f"no benchmark appears in both {base.path.name} and the other file(s)")
    if len(common) > MAX_COMPARE_ROWS:
        spread = [
            max(abs(math.log(s[1][i])) for s in series if np.isfinite(s[1][i])) for i in common
        ]
        keep = sorted(np.argsort(spread)[::-1][:MAX_COMPARE_ROWS])
        notes.append(
            f"showing the {MAX_COMPARE_ROWS} of {len(common)} benchmarks that changed most"
        )
        common = [common[i] for i in keep]
    short = base.cells.drop_duplicates("fullname").set_index("fullname")["name"]
    unique = short.nunique() == len(short)
    labels = [fmt.short(short[names[i]] if unique else names[i]) for i in common]
    series = [(n_, [v[i] for i in common]) for n_, v in series]
    fig = cc.dot_ratio_chart(
        labels,
        series,
        "median time ÷ baseline's (log scale)",
        f"Saved runs compared, baseline {base.path.name}",
        others[-1].footer,
        note="< 1: faster than the baseline",
    )
    ratios = np.array([v for _, vals in series for v in vals if np.isfinite(v)])
    gm = float(np.exp(np.mean(np.log(ratios))))
    caption = (
        f"Points left of the line got faster than {base.path.name}, right got slower; "
        f"geometric mean ratio {gm:.3g}, range {ratios.min():.3g} to {ratios.max():.3g}."
    )
    if notes:
        caption += " " + "; ".join(notes) + "."
    return fig, caption, ""
