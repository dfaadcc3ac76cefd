"""Report: charts (PNG, SVG) and report.md from the results store and pytest-benchmark JSON.

Work in progress: the entry points below are the contract the CLI wires.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from bench import DEFAULT_DB


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` command's options to ``parser``."""
    parser.add_argument("--db", default=DEFAULT_DB, metavar="PATH",
                        help=f"results database (default {DEFAULT_DB})")
    parser.add_argument("--benchmark-json", nargs="+", action="extend", default=[],
                        metavar="FILE", help="pytest-benchmark JSON file(s) to chart as well")
    parser.add_argument("--out", default="reports", metavar="DIR",
                        help="output directory (default reports/)")


def build_report(
    db_path: str | Path, benchmark_json: Iterable[str | Path] = (), out_dir: Path = Path("reports")
) -> Path:
    """Write the charts and report.md into ``out_dir``; return the path of report.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.md"
    path.write_text("# bpttbench report\n\n(report generator in progress)\n")
    return path


def command(args: argparse.Namespace) -> int:
    """Run ``bpttbench report``; print the report path; return the exit code."""
    path = build_report(args.db, args.benchmark_json, Path(args.out))
    print(path)
    return 0
