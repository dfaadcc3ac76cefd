"""The report: charts (PNG and SVG), report.md and summary.json from the results store
and pytest-benchmark JSON.

``bpttbench report [--db PATH] [--benchmark-json FILE ...] [--out DIR]`` writes

    DIR/report.md         Markdown that renders on GitHub; images linked relatively
    DIR/charts/*.png|svg  one pair per chart
    DIR/summary.json      the figures the README quotes (see ``summary``)

This module plans and builds; the rooms it draws on are: ``view`` (what the
report reads from the registry), ``slices`` (the store's slice and its fits),
``benchjson`` (pytest-benchmark JSON), ``sections`` (the store's charts),
``pairs`` (two algorithms side by side), ``markdown`` (report.md), ``summary``
(summary.json), ``fmt`` (numbers as text), and ``charts`` / ``charts_compare``
(the figures).

Which charts there are comes from the registry: a time and a memory chart for
each axis that some algorithm's ``chart_axes`` names, panels for the other axes,
a cost map and a memory boundary for each declared pair, and every algorithm in
its own style, plugins included.

Bad input never stops the report: a missing or empty database, a file that is
not pytest-benchmark JSON, or too few points for a chart each give one line on
stderr and a line in the report's "Skipped" section, and every chart that can
be drawn is drawn.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bpttbench
from bpttbench.bench import (
    DEFAULT_DB,
    cells_compare,
    online_budget,
    online_targets,
    quality_report,
    report_gpu,
    report_parallel,
    report_targets,
)
from bpttbench.bench import charts as ch
from bpttbench.bench.benchjson import (
    BenchFile,
    chart_bench_compare,
    chart_bench_time,
    read_benchmark_json,
)
from bpttbench.bench.fit import FitResult
from bpttbench.bench.markdown import Chart, write_markdown
from bpttbench.bench.pairs import chart_boundary, chart_cost_grid, pair_axes
from bpttbench.bench.sections import (
    chart_efficiency,
    chart_exponents,
    chart_other_axes,
    chart_peers,
    chart_scaling,
    other_axes,
    other_axes_title,
)
from bpttbench.bench.slices import StoreData, load_store
from bpttbench.bench.summary import build_summary, write_summary
from bpttbench.bench.tradeoff import chart_tradeoff
from bpttbench.bench.view import Context, NoSource, Skip, View

CHART_DIR = "charts"
SUMMARY = "summary.json"
# Files in CHART_DIR that this module writes; stale ones are removed on each build.
_OUR_CHARTS = re.compile(
    r"^(time_vs_\w+|memory_vs_\w+|exponents|cost_grid\w*|memory_boundary\w*|efficiency|parallel"
    r"|other_axes|online_budget|online_targets|tradeoff|peers|peers_gpu|bench_time_vs_\w+|bench_compare"
    r"|quality_\w+|cells)\.(png|svg)$"
)
SECTIONS = {
    "time": "Time",
    "memory": "Memory",
    "fit": "Exponents",
    "cost": "Cost side by side",
    "cells": "Cells",
    "eff": "Efficiency",
    "other": "Other axes",
    "online": "Online algorithms",
    "peers": "Peers",
    "json": "pytest-benchmark",
}
Plan = list[tuple[Chart, Callable]]


def _store_plan(ctx: Context, db_path) -> Plan:
    """The store's charts in report order; a builder returns (figure, caption, markdown)."""
    view = ctx.view
    plan: Plan = []
    for metric, what in (("time", "Time"), ("memory", "Memory")):
        for axis in view.chart_axes():
            chart = Chart(
                f"{metric}_vs_{axis}", f"{what} vs {view.axis_name(axis)}", SECTIONS[metric]
            )
            plan.append((chart, lambda axis=axis, metric=metric: chart_scaling(ctx, axis, metric)))
    plan.append(
        (
            Chart("exponents", "Fitted exponents against theory", SECTIONS["fit"]),
            lambda: chart_exponents(ctx),
        )
    )
    for a, b in view.pairs():
        names = f"{view.title(a)}", f"{view.title(b)}"
        try:
            at = "({}, {})".format(*pair_axes(view, a, b))
        except Skip:
            at = "sizes"
        plan += [
            (
                Chart(f"cost_grid_{a}_vs_{b}", f"{names[0]} against {names[1]} at equal {at}",
                      SECTIONS["cost"]),
                lambda a=a, b=b: chart_cost_grid(ctx, a, b),
            ),
            (
                Chart(f"memory_boundary_{a}_vs_{b}",
                      f"Where {names[0]}'s memory drops below {names[1]}'s", SECTIONS["cost"]),
                lambda a=a, b=b: chart_boundary(ctx, a, b),
            ),
        ]  # fmt: skip
    chart = Chart("tradeoff", "Time against memory at equal sizes", SECTIONS["cost"])
    plan.append((chart, lambda: chart_tradeoff(ctx)))
    if ctx.store is not None and cells_compare.has_gated(ctx.store.ok):
        chart = Chart(cells_compare.NAME, cells_compare.TITLE, SECTIONS["cells"])
        plan.append((chart, lambda: cells_compare.chart_cells(ctx)))
    title = "Achieved GFLOP/s against the matrix-multiply peak"
    plan.append((Chart("efficiency", title, SECTIONS["eff"]), lambda: chart_efficiency(ctx)))
    chart = Chart(
        report_parallel.NAME, report_parallel.TITLE, SECTIONS["eff"]
    )  # or its empty state
    plan.append((chart, lambda: report_parallel.chart(ctx, db_path)))
    chart = Chart(report_targets.NAME, report_targets.TITLE, SECTIONS["eff"])  # a table
    plan.append((chart, lambda: report_targets.chart(ctx, db_path)))
    if ctx.store is not None and other_axes(ctx):
        title = other_axes_title(ctx)
        chart = Chart("other_axes", title[0].upper() + title[1:], SECTIONS["other"])
        plan.append((chart, lambda: chart_other_axes(ctx)))
    chart = Chart(online_budget.NAME, online_budget.TITLE, SECTIONS["online"])
    plan.append((chart, lambda: online_budget.chart(ctx)))
    chart = Chart(online_targets.NAME, online_targets.TITLE, SECTIONS["online"])
    plan.append((chart, lambda: online_targets.chart(ctx, db_path)))
    if ctx.store is not None:
        chart = Chart("peers", "Peer implementations", SECTIONS["peers"])
        plan.append((chart, lambda: chart_peers(ctx, db_path)))
    chart = Chart(report_gpu.NAME, report_gpu.TITLE, SECTIONS["peers"])  # even without a sweep
    plan.append((chart, lambda: report_gpu.chart(ctx, db_path)))
    plan += quality_report.plan(db_path)  # the Quality section: its own table, even without cells
    return plan


def _json_plan(view: View, bench_files: Sequence[BenchFile]) -> Plan:
    """The pytest-benchmark charts: time per axis of the last file, then the comparison."""
    current = bench_files[-1]
    name = current.path.name
    plan: Plan = []
    axes = [a for a in view.axes() if a in set(current.cells["axis"].dropna())]
    for axis in axes:
        chart = Chart(
            f"bench_time_vs_{axis}", f"pytest-benchmark: time vs {axis} ({name})", SECTIONS["json"]
        )
        plan.append((chart, lambda axis=axis: chart_bench_time(current, axis, view)))
    if not axes:
        chart = Chart(
            "bench_time_vs_T", f"pytest-benchmark: time charts ({name})", SECTIONS["json"]
        )
        why = Skip(f"no benchmark in {name} has a group like 'bptt-T' and a size")
        plan.append((chart, lambda: _raise(why)))
    if len(bench_files) >= 2:
        chart = Chart("bench_compare", "pytest-benchmark: saved runs compared", SECTIONS["json"])
        plan.append((chart, lambda: chart_bench_compare(bench_files)))
    return plan


def _raise(exc: Exception):
    raise exc


@dataclass
class Report:
    path: Path
    charts: list[Chart]
    problems: list[str]  # sources that could not be read
    summary: dict = field(default_factory=dict)

    @property
    def drawn(self) -> list[Chart]:
        return [c for c in self.charts if not c.skipped]


@dataclass
class Sources:
    """What the report is made from: the registry's view, the store's slice, the JSON files."""

    ctx: Context
    bench_files: list[BenchFile]
    problems: list[str]


def read_sources(
    db_path: str | Path,
    benchmark_json: Iterable[str | Path],
    registry: Mapping | None = None,
    fits: Sequence[FitResult] | None = None,
) -> Sources:
    """Read the store (with ``fits`` if given, else fitting it once) and the JSON files."""
    registry = bpttbench.ALGORITHMS if registry is None else registry
    view = View.of(registry)
    problems: list[str] = []
    store: StoreData | None = None
    try:
        store = load_store(db_path, view, fits)
    except Skip as exc:
        problems.append(f"Results store: {exc}.")
    bench_files: list[BenchFile] = []
    for p in benchmark_json:
        try:
            bench_files.append(read_benchmark_json(p, view))
        except Skip as exc:
            problems.append(f"pytest-benchmark JSON: {exc}.")
    found = [*(store.cells["algorithm"] if store is not None else ())]
    found += [a for bf in bench_files for a in bf.cells["algorithm"].dropna()]
    return Sources(Context(View.of(registry, found), store), bench_files, problems)


def summarize(
    db_path: str | Path = DEFAULT_DB,
    benchmark_json: Iterable[str | Path] = (),
    registry: Mapping | None = None,
) -> dict:
    """The figures of summary.json, without drawing anything."""
    src = read_sources(db_path, benchmark_json, registry)
    return build_summary(src.ctx, src.bench_files, db_path)


def make_report(
    db_path: str | Path = DEFAULT_DB,
    benchmark_json: Iterable[str | Path] = (),
    out_dir: Path = Path("reports"),
    *,
    registry: Mapping | None = None,
    fits: Sequence[FitResult] | None = None,
    echo: Callable[[str], None] | None = None,
) -> Report:
    """Build everything; return what was drawn, skipped and why. ``echo`` gets each problem.

    ``fits`` are the store's exponent fits when the caller has made them
    (``bpttbench run``); without them the report fits the store once.
    """
    echo = echo or (lambda _line: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chart_dir = out_dir / CHART_DIR
    src = read_sources(db_path, benchmark_json, registry, fits)
    for line in src.problems:
        echo(line)
    plan: Plan = []
    if src.ctx.store is not None or not src.bench_files:
        plan += _store_plan(src.ctx, db_path)
    if src.bench_files:
        plan += _json_plan(src.ctx.view, src.bench_files)
    charts: list[Chart] = []
    for chart, build in plan:
        try:
            fig, chart.caption, chart.markdown = build()
        except Skip as exc:
            chart.skipped = str(exc)
            if not isinstance(exc, NoSource):
                echo(f"skipped {chart.title}: {exc}")
        else:  # a builder without a figure gives a table alone
            chart.files = ch.save(fig, chart_dir, chart.name) if fig is not None else []
        charts.append(chart)
    path = out_dir / "report.md"
    write_markdown(path, src.ctx, charts, src.problems, src.bench_files, db_path)
    summary = build_summary(src.ctx, src.bench_files, db_path)
    write_summary(out_dir / SUMMARY, summary)
    _remove_stale(chart_dir, {f.name for c in charts for f in c.files})
    return Report(path, charts, src.problems, summary)


def _remove_stale(chart_dir: Path, keep: set[str]) -> None:
    """Delete charts this module wrote on an earlier build and did not write now."""
    if not chart_dir.is_dir():
        return
    for f in chart_dir.iterdir():
        if f.is_file() and _OUR_CHARTS.match(f.name) and f.name not in keep:
            f.unlink()


def build_report(
    db_path: str | Path = DEFAULT_DB,
    benchmark_json: Iterable[str | Path] = (),
    out_dir: Path = Path("reports"),
    fits: Sequence[FitResult] | None = None,
) -> Path:
    """Write the charts, report.md and summary.json into ``out_dir``; return report.md's path.

    Problems with the inputs (a missing database, a file that is not
    pytest-benchmark JSON, too few points for a chart) are printed to stderr,
    one line each, and listed in the report; they never raise.
    """
    return make_report(db_path, benchmark_json, out_dir, fits=fits, echo=_stderr).path


def _stderr(line: str) -> None:
    print(f"bpttbench report: {line}", file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` command's options to ``parser``."""
    parser.add_argument(
        "--db", default=DEFAULT_DB, metavar="PATH", help=f"results database (default {DEFAULT_DB})"
    )
    parser.add_argument(
        "--benchmark-json",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="pytest-benchmark JSON file(s) to chart as well; with two or more, "
        "each is compared with the first",
    )
    parser.add_argument(
        "--out", default="reports", metavar="DIR", help="output directory (default reports/)"
    )


def command(args: argparse.Namespace) -> int:
    """Run ``bpttbench report``: print the report's path; exit 0, or 2 if nothing was drawn."""
    report = make_report(args.db, args.benchmark_json, Path(args.out), echo=_stderr)
    print(report.path)
    if not report.drawn:
        _stderr("no chart could be drawn; see the reasons above and in the report")
        return 2
    return 0
