"""``bpttbench quality`` on a Dask cluster: the quality jobs run on the workers.

Owns the worker function :func:`run_quality_job` (the worker's threads pinned
to one, as a local quality run pins them, the job run by
:func:`quality.runner.run_job` in the worker's helper process of one thread,
:mod:`.memprobe`, where its peak bytes and step times are measured as a local
run measures them, the result sent back with the worker's fingerprint) and the
client loop :func:`run_cluster_quality`. The rows are those of a local run
(:func:`quality.runner.row_of`), keyed by the machine of the worker that ran
the job; only the client writes the store, one transaction
per row as results arrive, holding the store's writer lease. There is one run
row (preset ``quality:NAME``) per machine fingerprint met.

Resume rule, as for cluster sweeps: a job is done when the store holds its row
from any machine of the cluster, so a rerun through the same cluster runs only
the jobs not stored yet, whichever worker ran the others.

Faults. Each worker runs one job at a time (:class:`.pool.OneAtATime`). A
worker that dies mid-job loses only that job, which Dask runs again on another
worker up to ``allowed-failures``; a job that still fails (or raises on the
worker) is reported with its reason and left unstored, so the next run tries
it again; the command then exits 1. A client killed mid-run loses only the
jobs in flight.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Mapping, Sequence

from bpttbench.bench import BenchError

from .faults import one_line
from .pool import Job, OneAtATime
from .sweep import probe
from .worker import FINGERPRINT_KEYS, fingerprint


def run_quality_job(job) -> dict:
    """Run one quality job on this worker: ``{"worker": fingerprint, and "result"
    or "error": reason}``."""
    from . import memprobe

    out: dict = {"worker": fingerprint(1)}
    try:  # in the worker's helper process: tracemalloc would count this one's threads
        out["result"] = memprobe.call(job_in_helper, job)
    except memprobe.Failed as exc:  # one job failing must not end the run
        out["error"] = str(exc)
    except Exception as exc:
        out["error"] = one_line(exc)
    return out


def job_in_helper(job) -> dict:
    """In the worker's helper process (:mod:`.memprobe`): the job, threads pinned to one."""
    from bpttbench.bench.quality.runner import run_job

    from .memprobe import pin_threads

    pin_threads(1)
    return run_job(job)


def run_cluster_quality(
    jobs: Sequence,
    db_path,
    client,
    preset: str = "custom",
    argv: Sequence[str] | None = None,
    say: Callable[[str], None] | None = None,
    failed: list | None = None,
) -> list[dict]:
    """Run the jobs not yet stored on the workers of ``client``; return the plan's rows
    (as :func:`quality.runner.run_quality` does). Jobs that failed are appended to
    ``failed`` as ``(job, reason)``."""
    from bpttbench.bench import store
    from bpttbench.bench.quality import runner

    say = say or (lambda _line: None)
    failed = failed if failed is not None else []
    pool = OneAtATime(client)
    probed = probe(pool, 1)
    machines = sorted({fp["machine"] for fp in probed.values()})
    conn = store.connect(db_path)
    try:
        store.acquire_lease(conn)
        try:
            todo = _not_stored(jobs, db_path, machines)
            say(
                f"quality: {len(jobs) - len(todo)} of {len(jobs)} rows already stored; "
                f"{len(probed)} worker(s) on {', '.join(machines)}, one job per worker at a time"
            )
            runs = _RunsByMachine(conn, preset, argv)
            _run_and_store(pool, todo, conn, runs, say, failed)
            runs.finish()
        finally:
            store.release_lease(conn)
    finally:
        pool.cancel()
        conn.close()
    wanted = {j.key(m) for j in jobs for m in machines}
    return [r for r in runner.load_rows(db_path) if r[runner.KEY] in wanted]


def _not_stored(jobs: Sequence, db_path, machines: Sequence[str]) -> list:
    """The jobs whose row no machine of the cluster has stored yet (the resume rule)."""
    from bpttbench.bench import store
    from bpttbench.bench.quality import runner

    done = set(store.load_table(db_path, runner.TABLE, (runner.KEY,), "rowid")[runner.KEY])
    return [j for j in jobs if not any(j.key(m) in done for m in machines)]


class _RunsByMachine:
    """One run row (preset ``quality:NAME``) per machine fingerprint met, begun when the
    first row from that machine arrives, all with the same start time."""

    def __init__(self, conn, preset: str, argv: Sequence[str] | None):
        self.conn = conn
        self.preset = preset
        self.argv = argv
        self.started = _now()
        self.ids: dict[tuple, int] = {}

    def id_of(self, fp: Mapping) -> int:
        from bpttbench.bench import store

        full = tuple(fp.get(k) for k in FINGERPRINT_KEYS)
        if full not in self.ids:
            self.ids[full] = store.begin_run(
                self.conn,
                {
                    "started": self.started,
                    **{k: fp.get(k) for k in FINGERPRINT_KEYS},
                    "preset": f"quality:{self.preset}",
                    "argv": json.dumps(list(self.argv) if self.argv is not None else sys.argv[1:]),
                },
            )
        return self.ids[full]

    def finish(self) -> None:
        from bpttbench.bench import store

        for run_id in self.ids.values():
            store.finish_run(self.conn, run_id, _now())


def _run_and_store(pool, todo: list, conn, runs: _RunsByMachine, say, failed: list) -> None:
    """Run ``todo`` on the pool and store each row as it arrives, one transaction a row,
    so that a client killed mid-run loses only the jobs in flight."""
    from bpttbench.bench import store
    from bpttbench.bench.quality import runner
    from bpttbench.bench.schema import QUALITY

    submitted = [Job(run_quality_job, (j,), tag=j, name=f"quality-{j.kind}") for j in todo]
    for i, out in enumerate(pool.run(submitted), 1):
        job = out.job.tag
        value = out.value if out.error is None else None
        if out.cancelled and pool.client.status != "running":
            raise BenchError(
                "lost the connection to the Dask scheduler; the rows finished so far "
                "are saved, rerun the same command to resume"
            )
        reason = out.error if value is None else value.get("error")
        label = f"{job.kind} {job.task.label()} {job.setting.name} seed {job.seed}"
        if reason is not None:
            failed.append((job, reason))
            say(f"[{i}/{len(todo)}] {label}: FAILED ({reason}); rerun to retry")
            continue
        fp, result = value["worker"], value["result"]
        row = runner.row_of(job, result, runs.id_of(fp), fp["machine"])
        with store.transaction(conn):
            store.upsert(conn, QUALITY, row)
        flag = " DIVERGED" if result.get("diverged") else ""
        say(f"[{i}/{len(todo)}] {label}: {out.seconds:.1f} s on {fp['machine']}{flag}")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
