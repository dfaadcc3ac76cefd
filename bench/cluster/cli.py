"""The command-line glue: ``--scheduler ADDRESS | --local-cluster N`` on
``bpttbench sweep`` and ``bpttbench quality``.

Owns the options (:func:`add_arguments`), whether a command asked for a cluster
(:func:`wanted`) and the commands on one (:func:`sweep_command`,
:func:`quality_command`): the install hint when the extra is missing, the store
checked before a cluster starts, the run, and its summary.
"""

from __future__ import annotations

from bpttbench.bench import BenchError

from .connect import RESOURCE, connect, require_distributed
from .quality import run_cluster_quality
from .sweep import ClusterSummary, run_cluster_sweep


def add_arguments(p) -> None:
    """``--scheduler ADDRESS | --local-cluster N`` on a sweep's parser."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="measure on the workers of this Dask scheduler, e.g. tcp://HOST:8786 "
        f"(workers need --nthreads 1 --resources {RESOURCE}=1; extra: cluster)",
    )
    group.add_argument(
        "--local-cluster",
        type=int,
        default=None,
        metavar="N",
        help="measure on a local Dask cluster of N worker processes (extra: cluster)",
    )


def wanted(args) -> bool:
    return (
        getattr(args, "scheduler", None) is not None
        or getattr(args, "local_cluster", None) is not None
    )


def sweep_command(args, plan, max_memory, argv) -> ClusterSummary:
    """``bpttbench sweep`` with ``--scheduler`` or ``--local-cluster``: run, then one line."""
    import bpttbench
    from bpttbench.bench import store

    require_distributed()
    if args.local_cluster is not None and args.local_cluster < 1:
        raise BenchError(f"--local-cluster must be >= 1, got {args.local_cluster}")
    store.connect(args.db, bpttbench.ALGORITHMS).close()  # a bad store: refused before a cluster
    if len(plan.threads) > 1:
        raise BenchError(
            f"threads {list(plan.threads)}: a cluster sweep runs one thread count; "
            "run it once per count (--threads N)"
        )
    with connect(args.scheduler, args.local_cluster) as client:
        summary = run_cluster_sweep(
            plan,
            args.db,
            client,
            threads=plan.threads[0],
            max_memory=max_memory,
            remeasure=getattr(args, "remeasure", False),
            progress=not args.quiet,
            argv=argv,
        )
    ids = ", ".join(str(i) for i in summary.run_ids) or "-"
    print(
        f"run(s) {ids} on {summary.workers} worker(s) ({', '.join(summary.machines)}): "
        f"{summary.measured} cells measured, {summary.resumed} already stored, "
        f"{summary.skipped} skipped, {summary.errors} failed, {summary.unfinished} unfinished "
        f"in {summary.seconds:.0f} s -> {args.db}"
    )
    return summary


def quality_command(args, argv) -> int:
    """``bpttbench quality`` with ``--scheduler`` or ``--local-cluster``: the jobs on the
    workers, then the table a local run prints; exit 1 when a job failed."""
    import sys

    from bpttbench.bench import store
    from bpttbench.bench.quality import runner

    require_distributed()
    if args.local_cluster is not None and args.local_cluster < 1:
        raise BenchError(f"--local-cluster must be >= 1, got {args.local_cluster}")
    store.connect(args.db).close()  # a bad store: refused before a cluster
    failed: list = []
    with connect(args.scheduler, args.local_cluster) as client:

        def run_pass(db, preset, task, quiet, argv):
            jobs = runner.select(runner.preset_jobs(preset), task)
            say = None if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
            return run_cluster_quality(jobs, db, client, preset, argv, say, failed)

        status = runner.command(args, argv, run_pass=run_pass)
    if failed:
        print(f"{len(failed)} job(s) failed, left for a rerun:", file=sys.stderr)
        for job, reason in failed:
            print(f"  {job.kind} {job.setting.name} seed {job.seed}: {reason}", file=sys.stderr)
        return 1
    return status
