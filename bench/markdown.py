"""report.md: the introduction, one section per chart, what was skipped, and the data.

The introduction says what was measured and how, then the headline figures:
the measured exponents' verdicts (time and memory), the FLOP-model check apart,
and each declared pair's measured ratios and model boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bpttbench.bench import fmt
from bpttbench.bench.benchjson import BenchFile
from bpttbench.bench.fit import verdict_counts
from bpttbench.bench.pairs import pair_findings
from bpttbench.bench.view import Context


@dataclass
class Chart:
    """A chart to write, or the reason it was skipped."""

    name: str
    title: str
    section: str
    caption: str = ""
    markdown: str = ""  # extra Markdown under the chart (a table)
    files: list[Path] = field(default_factory=list)
    skipped: str = ""


def intro(ctx: Context, bench_files: Sequence[BenchFile], charts: Sequence[Chart]) -> str:
    """The opening paragraph: what, where, how, and the headline figures."""
    store, view = ctx.store, ctx.view
    lines = []
    if store is not None:
        titles = [view.title(a) for a in view.order(store.ok["algorithm"])]
        r = store.runs.sort_values("run_id").iloc[-1] if len(store.runs) else {}
        lines.append(
            f"This report compares what it costs to compute exact gradients with "
            f"{fmt.join(titles)}. Each point is the median wall-clock time of one gradient call "
            f"(after a warm-up call that compiles the kernel; compile time is kept apart) and "
            f"the peak memory that call allocated, measured with tracemalloc in a separate, "
            f"untimed pass. It was measured on {r.get('machine', '?')} ({r.get('cpu', '?')}) with "
            f"{fmt.integer(store.config.get('numba_threads'))} Numba thread(s) and "
            f"{fmt.integer(store.config.get('blas_threads'))} BLAS thread(s), in "
            f"{store.config.get('dtype')}, on {str(r.get('started', '?'))[:10]}."
        )
        lines.extend(findings(ctx))
    elif bench_files:
        lines.append(
            "This report charts pytest-benchmark results of bpttbench's gradient kernels: the "
            "median time per call of each benchmark, and how saved runs compare. The results "
            "store could not be read (see Skipped), so only these charts are drawn."
        )
    else:
        lines.append(
            "Neither measured cells in a results store nor pytest-benchmark JSON could be "
            "read (reasons below), so only charts of the store's peers table can be drawn."
        )
    drawn = sum(1 for c in charts if not c.skipped)
    skipped = len(charts) - drawn
    lines.append(
        f"{drawn} chart(s) drawn" + (f", {skipped} skipped (see the end)." if skipped else ".")
    )
    return " ".join(lines)


def findings(ctx: Context) -> list[str]:
    """Sentences on what the data shows, from the fits and the models."""
    fits = ctx.store.all_fits()
    out = []
    if fits:
        m, c = verdict_counts(fits), verdict_counts(fits, measured=False)
        out.append(
            f"{m['PASS']} of the {m['total']} measured time and memory exponents agree with "
            f"theory (PASS), {m['INCONCLUSIVE']} INCONCLUSIVE, {m['FAIL']} FAIL."
        )
        if c["total"]:
            out.append(
                f"As a check of the cost models (not a measurement), {c['PASS']} of the "
                f"{c['total']} FLOP-count exponents PASS."
            )
    for a, b in ctx.view.pairs():
        out.extend(pair_findings(ctx, a, b))
    return out


def write_markdown(
    path: Path,
    ctx: Context,
    charts: Sequence[Chart],
    problems: Sequence[str],
    bench_files: Sequence[BenchFile],
    db_path: str | Path,
) -> None:
    """Write report.md: introduction, the drawn charts by section, Skipped, About the data."""
    parts = ["# bpttbench report", "", intro(ctx, bench_files, charts), ""]
    section = None
    for c in charts:
        if c.skipped:
            continue
        if c.section != section:
            section = c.section
            parts += [f"## {section}", ""]
        if not c.files:  # a table without a figure
            parts += [f"### {c.title}", "", f"*{c.caption}*"]
            parts += ["", c.markdown, ""] if c.markdown else [""]
            continue
        png, svg = (f.relative_to(path.parent).as_posix() for f in c.files)
        parts += [f"### {c.title}", "", f"![{c.title}]({png})", "", f"*{c.caption}* ([SVG]({svg}))"]
        parts += ["", c.markdown, ""] if c.markdown else [""]
    skipped = [c for c in charts if c.skipped]
    if skipped or problems:
        parts += ["## Skipped", ""]
        parts += [f"- {p}" for p in problems]
        parts += [f"- **{c.title}**: {c.skipped}" for c in skipped]
        parts.append("")
    notes = data_notes(ctx, bench_files, db_path)
    parts += ["## About the data", "", *(f"- {line}" for line in notes), ""]
    path.write_text("\n".join(parts))


def data_notes(ctx: Context, bench_files: Sequence[BenchFile], db_path) -> list[str]:
    """Where the data came from, what failed or was skipped, and how to regenerate."""
    out = []
    store = ctx.store
    if store is not None:
        counts = store.cells["status"].value_counts().to_dict()
        out.append(
            f"Results store `{Path(db_path).name}`: {len(store.cells)} cells in the charted "
            f"configuration ({fmt.counts(counts)}); {store.footer}."
        )
        every = store.all_cells if store.all_cells is not None else store.cells
        bad = every[every["status"] != "ok"]
        for (status, reason), g in bad.groupby(["status", bad["reason"].fillna("no reason")]):
            who = ", ".join(
                sorted(
                    {
                        f"{a} {ax}={int(s)}"
                        for a, ax, s in zip(g["algorithm"], g["axis"], g["size"], strict=True)
                    }
                )
            )
            out.append(f"{len(g)} {status}: {reason} ({fmt.short(who, 120)})")
        out.extend(store.notes)
    for bf in bench_files:
        unplaced = int((bf.cells["status"] != "ok").sum())
        line = f"pytest-benchmark `{bf.path.name}`: {len(bf.cells)} benchmarks; {bf.footer}."
        if unplaced:
            line += (
                f" {unplaced} had no group of the form algorithm-axis with a size, so they "
                f"appear only in the comparison."
            )
        out.append(line)
    out.append(
        "Charts: PNG for viewing, SVG beside each for print; `summary.json` holds the figures "
        "the README quotes; regenerate all with `bpttbench report`."
    )
    return out
