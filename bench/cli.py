"""The ``bpttbench`` command line: sweep, quality, fit, run, export, report, peers.

Bad input (an unknown algorithm, axis or preset, a malformed grid, a TOML
error, a number out of range, a database that is not ours, a path that cannot
be read or written) prints one line on stderr and exits with status 2 before
anything is written. No output is ever written over the results store, nor
over a file bpttbench did not write, unless ``--force`` (``bench.paths``).
Ctrl-C exits with status 130 and a line that says what was kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from bpttbench.bench import DEFAULT_DB, BenchError

PROG = "bpttbench"
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
# What an interrupt leaves behind, by command.
INTERRUPTED = {
    "sweep": "the cells finished so far are saved; rerun the same command to resume",
    "run": "the cells finished so far are saved; rerun the same command to resume",
    "peers": "the peer cells finished so far are saved",
    "report": "the report may be incomplete; rerun the command to rebuild it",
}
# What the report writes in --out, and how each file it wrote begins.
REPORT_FILES = (("report.md", ("# bpttbench report",)), ("summary.json", ('{\n  "about": ',)))
OPTIONAL = {
    "report": (
        "bpttbench.bench.report",
        "charts and report.md from the store or pytest-benchmark JSON",
    ),
    "peers": (
        "bpttbench.bench.peers",
        "the same gradients timed in PyTorch and JAX, for comparison",
    ),
}


def _registry():
    try:
        import bpttbench
    except ImportError as exc:
        raise BenchError(f"cannot import the kernels package: {exc}") from None
    return bpttbench.ALGORITHMS


def _add_budget(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_DB, help=f"results database (default: {DEFAULT_DB})")
    p.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default=None,
        help="floating-point type of the problems (default: the grid's, float64)",
    )
    p.add_argument(
        "--threads",
        default=None,
        metavar="N[,N...]",
        help="Numba and BLAS threads (default: the grid's, else 1; single-threaded timings "
        "are not disturbed by other programs, and descheduled rounds are retimed); a list "
        "like 1,2 is a threads axis: the plan is swept once per count, each run with its "
        "own GEMM peak at that count, for the report's parallel speed-up",
    )
    p.add_argument(
        "--max-memory",
        default=None,
        metavar="BYTES",
        help="skip cells whose model memory exceeds this, e.g. 4GiB "
        "(default: half the available RAM)",
    )
    p.add_argument(
        "--max-cell-seconds",
        type=float,
        default=None,
        metavar="S",
        help="skip cells predicted to take longer than this (default: the preset's)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser of every subcommand, in the order ``--help`` lists them.

    Each subcommand's options are one function below, a flat list beside its help
    texts; ``argv`` says which optional subcommand to load (:func:`_add_optional`).
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Benchmarks of gradient algorithms for recurrent networks (BPTT, "
        "truncated BPTT, RTRL and the online rules, on Elman, GRU and LSTM cells, and "
        "backprop): sweeps, exponent fits, report.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_run(sub)
    _add_sweep(sub)
    _add_quality(sub)
    _add_fit(sub)
    _add_export(sub)
    _add_optional(sub, argv)
    return parser


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="quick preset sweep, then the fit table, then the report")
    _add_budget(p)
    p.add_argument("--preset", default="quick", help="preset to sweep (default: quick)")
    p.add_argument("--out", default="reports", help="report directory (default: reports)")
    p.add_argument("--no-report", action="store_true", help="stop after the fit table")
    _add_force(p, "report.md and summary.json in --out")
    p.add_argument(
        "--no-quality", action="store_true", help="skip the quick quality pass after the sweep"
    )
    p.add_argument(
        "--remeasure",
        action="store_true",
        help="measure cells again even if the store has them (default: resume, reuse them)",
    )
    p.add_argument("--check", action="store_true", help="exit 1 if any fit FAILs")


def _add_sweep(sub) -> None:
    from bpttbench.bench import cluster

    p = sub.add_parser("sweep", help="measure cells of a preset or custom grid into the store")
    _add_budget(p)
    p.add_argument("--preset", default=None, help="quick (about 5 min) or full (about an hour)")
    p.add_argument("--grid", default=None, metavar="FILE.toml", help="custom grid (TOML)")
    p.add_argument(
        "--algorithms",
        nargs="+",
        default=None,
        metavar="NAME",
        help="only these algorithms (registry names)",
    )
    p.add_argument(
        "--axes",
        nargs="+",
        default=None,
        metavar="AXIS",
        help="only these axes (T, n, B, k, depth, width)",
    )
    p.add_argument(
        "--points",
        action="append",
        default=[],
        metavar="AXIS=SPEC",
        help="sizes of an axis: START:STOP:POINTS (geometric) or V1,V2,...",
    )
    p.add_argument(
        "--fixed",
        action="append",
        default=[],
        metavar="VAR=N",
        help="fixed size for every sweep that does not move VAR, e.g. n=64",
    )
    p.add_argument(
        "--min-time", type=float, default=None, metavar="S", help="seconds of timed rounds per cell"
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the problems and cell order")
    p.add_argument(
        "--remeasure", action="store_true", help="measure cells again even if the store has them"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, measure nothing")
    cluster.add_arguments(p)  # --scheduler ADDRESS | --local-cluster N
    p.add_argument(
        "--dump-grid",
        action="store_true",
        help="print the plan as a TOML grid (to edit and pass to --grid), measure nothing",
    )


def _add_quality(sub) -> None:
    p = sub.add_parser(
        "quality", help="gradient fidelity, vanishing gradients and online learning, per cost"
    )
    _quality_arguments(p)


def _add_fit(sub) -> None:
    p = sub.add_parser("fit", help="exponent table with verdicts, from the store")
    p.add_argument("--db", default=DEFAULT_DB, help=f"results database (default: {DEFAULT_DB})")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument("--check", action="store_true", help="exit 1 if any fit FAILs")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="write the cells (or runs) table as CSV")
    p.add_argument("--db", default=DEFAULT_DB, help=f"results database (default: {DEFAULT_DB})")
    p.add_argument("--table", choices=("cells", "runs"), default="cells")
    p.add_argument("-o", "--output", default="-", help="CSV file (default: standard output)")
    _add_force(p, "the output file")


def _add_optional(sub, argv: Sequence[str]) -> None:
    """The subcommands of :data:`OPTIONAL`, listed always; only the one ``argv`` names
    imports its module (matplotlib, torch, jax: slow to import, and maybe not installed).
    The others take any arguments, as they do not run; one whose module fails to import
    says why when it runs."""
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in OPTIONAL.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:
            try:
                mod = importlib.import_module(module)
                mod.add_arguments(p)
                p.set_defaults(_command=mod.command)
                if name == "report":
                    _add_force(p, "report.md and summary.json in --out")
            except (ImportError, AttributeError) as exc:
                p.add_argument("rest", nargs=argparse.REMAINDER)
                p.set_defaults(_unavailable=f"{name} is unavailable: {exc}")
        else:
            p.add_argument("rest", nargs=argparse.REMAINDER)


def _add_force(p: argparse.ArgumentParser, what: str) -> None:
    try:
        p.add_argument(
            "--force",
            action="store_true",
            help=f"overwrite {what} even if bpttbench did not write it (never the store)",
        )
    except argparse.ArgumentError:  # the command defines its own --force
        pass


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        args = build_parser(argv).parse_args(argv)
        if getattr(args, "_unavailable", None):
            print(f"{PROG}: {args._unavailable}", file=sys.stderr)
            return 1
        _check_outputs(args)
        if getattr(args, "_command", None):
            return int(args._command(args) or 0)
        return int(COMMANDS[args.command](args, argv) or 0)
    except BenchError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        kept = INTERRUPTED.get(command, "nothing was written")
        print(f"\n{PROG}: interrupted; {kept}", file=sys.stderr)
        return EXIT_INTERRUPTED


def check_report_out(out, db, force: bool = False) -> None:
    """Refuse a report folder that cannot be written, or whose report.md or summary.json
    bpttbench did not write (unless ``force``).

    For ``bpttbench report --out`` and ``run --out``; ``bench.report`` may call it too.
    """
    from bpttbench.bench import paths

    paths.check_output_dir(
        out,
        store=db,
        files=[(name, paths.starts_with(heads)) for name, heads in REPORT_FILES],
        force=force,
        what="--out",
    )
    charts = Path(out) / "charts"
    if charts.is_dir() and Path(db).exists() and paths.same_file(Path(db).parent, charts):
        raise BenchError(f"the results store {db} is in {charts}, which the report rewrites")


def _check_outputs(args) -> None:
    """Check every path a command will write before it starts (a sweep may take hours)."""
    command = getattr(args, "command", None)
    if command == "report" or (command == "run" and not args.no_report):
        check_report_out(args.out, args.db, args.force)


# --- subcommands ---------------------------------------------------------------------


def _plan(args, registry, preset: str | None):
    from bpttbench.bench import grid

    if args.grid and preset:
        raise BenchError("give --preset or --grid, not both")
    plan = (
        grid.load_grid_file(args.grid, registry)
        if args.grid
        else grid.preset_plan(preset or "quick", registry)
    )
    points = dict(grid.parse_points(s) for s in getattr(args, "points", []))
    fixed = dict(grid.parse_fixed(s) for s in getattr(args, "fixed", []))
    plan = grid.restrict(
        plan,
        registry,
        getattr(args, "algorithms", None),
        getattr(args, "axes", None),
        points,
        fixed,
    )
    plan = grid.apply_settings(
        plan,
        {
            "dtype": args.dtype,
            "max_cell_seconds": args.max_cell_seconds,
            "min_time": getattr(args, "min_time", None),
            "seed": getattr(args, "seed", None),
        },
        "command line",
    )
    if getattr(args, "threads", None) is not None:  # over the grid's [settings] threads
        plan = dataclasses.replace(plan, threads=grid.parse_threads(args.threads, "--threads"))
    return plan


def _budget(args, plan) -> float | None:
    from bpttbench.bench import cluster
    from bpttbench.bench.budget import parse_bytes
    from bpttbench.bench.measure import available_cpus, check_threads

    if not cluster.wanted(args):  # on a cluster, each worker's CPUs are checked
        for threads in plan.threads:
            check_threads(threads, available_cpus())
    return parse_bytes(args.max_memory) if args.max_memory is not None else None


def _do_sweep(args, argv, preset):
    from bpttbench.bench import cluster, grid, sweep

    registry = _registry()
    plan = _plan(args, registry, preset)
    max_memory = _budget(args, plan)
    if getattr(args, "dump_grid", False):
        print(grid.to_toml(plan, registry), end="")
        return None
    if getattr(args, "dry_run", False):
        print(grid.describe(plan, registry))
        return None
    if cluster.wanted(args):  # on Dask workers (the extra 'cluster')
        return cluster.sweep_command(args, plan, max_memory, argv)
    summaries = []
    for threads in plan.threads:  # the threads axis: one run per count, each with its peak
        summary = sweep.run_sweep(
            plan,
            args.db,
            registry,
            threads=threads,
            max_memory=max_memory,
            remeasure=getattr(args, "remeasure", False),
            progress=not args.quiet,
            argv=argv,
        )
        on = f" on {threads} thread(s)" if len(plan.threads) > 1 else ""
        print(
            f"run {summary.run_id}{on}: {summary.measured} cells measured, {summary.resumed} "
            f"already stored, {summary.skipped} skipped, {summary.errors} failed "
            f"in {summary.seconds:.0f} s -> {args.db}"
        )
        summaries.append(summary)
    # The last run's summary, with the failures of every run (the exit status reads them).
    summary.errors = sum(s.errors for s in summaries)
    return summary


def cmd_sweep(args, argv) -> int:
    summary = _do_sweep(args, argv, args.preset)
    return 1 if summary is not None and summary.errors else 0


def _fits(db):
    from bpttbench.bench import fit, store

    registry = _registry()
    return fit.fit_table(store.load_cells(db), registry, store.load_runs(db))


def _print_table(results) -> None:
    from bpttbench.bench import fit

    if not results:
        print("no fits: the store has no measured sweep with a theoretical exponent")
        return
    print(fit.format_table(results))
    print(fit.headline(results))


def cmd_fit(args, argv) -> int:
    results = _fits(args.db)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        _print_table(results)
    return 1 if args.check and any(r.verdict == "FAIL" for r in results) else 0


def _quality_arguments(p: argparse.ArgumentParser) -> None:
    from bpttbench.bench import cluster
    from bpttbench.bench.quality import runner

    runner.add_arguments(p)
    cluster.add_arguments(p)  # --scheduler ADDRESS | --local-cluster N


def cmd_quality(args, argv) -> int:
    from bpttbench.bench import cluster
    from bpttbench.bench.quality import runner

    if cluster.wanted(args):  # on Dask workers (the extra 'cluster')
        return cluster.quality_command(args, argv)
    return runner.command(args, argv)


def cmd_run(args, argv) -> int:
    t0 = time.perf_counter()
    args.grid = None
    _do_sweep(args, argv, args.preset)
    if not args.no_quality:
        from bpttbench.bench.quality import runner

        t_q = time.perf_counter()
        rows = runner.quality_pass(args.db, "quick", quiet=args.quiet, argv=argv)
        print(runner.summary_table(rows))
        print(f"quality pass: {len(rows)} rows in {time.perf_counter() - t_q:.0f} s")
    results = _fits(args.db)
    print()
    _print_table(results)
    if not args.no_report:
        try:
            report = importlib.import_module("bpttbench.bench.report")
            build = report.build_report
        except (ImportError, AttributeError) as exc:
            print(f"{PROG}: report unavailable ({exc}); fits are in {args.db}", file=sys.stderr)
        else:
            try:
                path = build(args.db, benchmark_json=[], out_dir=Path(args.out), fits=results)
            except Exception:  # a bug in the report must not hide the results above
                traceback.print_exc()
                print(
                    f"{PROG}: the report failed; the measurements and fits are in {args.db}",
                    file=sys.stderr,
                )
                return 1
            print(f"report: {path}")
    print(f"{PROG} run finished in {time.perf_counter() - t0:.0f} s")
    return 1 if args.check and any(r.verdict == "FAIL" for r in results) else 0


def cmd_export(args, argv) -> int:
    from bpttbench.bench import paths, store

    if args.output == "-":
        paths.check_stdout_is_not(args.db)
        store.read_table(args.db, args.table).to_csv(sys.stdout, index=False)
    else:
        out = store.export_csv(args.db, args.output, args.table, force=args.force)
        print(f"wrote {out}")
    return 0


COMMANDS = {
    "sweep": cmd_sweep,
    "fit": cmd_fit,
    "run": cmd_run,
    "export": cmd_export,
    "quality": cmd_quality,
}


if __name__ == "__main__":
    sys.exit(main())
