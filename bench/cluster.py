"""Sweeps on a Dask cluster: timed cell visits run on workers, one at a time per worker.

Two layers, so that runs other than sweeps (quality runs: a task returning a
row) can use the same machinery later:

- :class:`OneAtATime` runs picklable jobs (a module-level function and its
  arguments) on the workers of a ``distributed.Client``, at most one job per
  worker: every job asks for one unit of the worker resource ``timing``
  (workers are started with ``--resources timing=1``), and the client keeps no
  more jobs in flight than there are units, so a job never waits queued on a
  worker that might die. Outcomes stream back as they complete
  (``distributed.as_completed``): the value, or the reason the job failed.
  A job may be pinned to the hosts of one machine.
- :func:`run_cluster_sweep` is the sweep loop on top of it. The unit of work
  is one visit of one cell, a :class:`VisitTask`; the worker function
  :func:`run_visit` pins its threads as a local sweep does
  (:func:`measure.set_threads`), calls :func:`measure.measure_visit`, and
  returns the visit's figures with the worker's fingerprint (machine, CPU,
  library versions, commit, thread counts). Before the first visit, each
  machine measures its GEMM/GEMV peaks (:func:`machine_peaks`) on one of its
  workers, a job like a visit, while the cluster's other workers wait: peaks
  measured beside another worker's timing would be those of half a machine.

Only the client writes the store, one transaction per visit as results arrive,
so the store stays the single atomic, resumable record.

Machines. A cell's key names the machine that measured it: the key written is
built from the *worker's* fingerprint (its machine name and its thread counts
in effect), and the run row the cell points to describes that machine (one run
row per fingerprint met during the sweep, with that machine's peaks; a machine
that joins mid-sweep gets a run row without peaks). All visits of one cell are
made on one machine: visit 2 and later are pinned to the hosts of the machine
that made visit 1.

Resume rule. When the sweep starts, every worker reports its fingerprint; the
cluster's machines are those fingerprints (machine name, Numba and BLAS thread
counts). A cell is done when the store holds a finished row for it from any
machine of the cluster: the sweep asks for each cell once, on whichever worker
takes it, so a rerun through the same cluster (or any cluster containing the
machine that measured it) skips it whichever worker measured it. Cells measured
on machines outside the cluster do not count; a cluster of other machines
measures them again, under their own keys. Visits of an unfinished cell made on
a machine of the cluster are kept and the cell is finished there.

Faults. A worker that dies mid-visit (killed, out of memory) loses only that
visit: the scheduler runs it again on another worker (of the same machine, for
a pinned visit), up to its ``distributed.scheduler.allowed-failures`` (3 by
default); past that the cell is stored as an ``error`` row with the reason. A
visit that raises on the worker is an ``error`` row, as in a local sweep. A
pinned visit whose machine has no worker left for ``STRANDED_AFTER`` seconds is
given up and its cell left unfinished (its visits are kept for a later run).
A client killed mid-sweep loses only the visits in flight; rerunning the same
command resumes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bpttbench.bench import BenchError

RESOURCE = "timing"
INSTALL_HINT = "pip install 'bpttbench[cluster]'"
STRANDED_AFTER = 60.0  # seconds a pinned job may wait without a worker on its machine
FINGERPRINT_KEYS = (
    "machine",
    "cpu",
    "python",
    "numba",
    "numpy",
    "scipy",
    "commit",
    "numba_threads",
    "blas_threads",
)


def require_distributed():
    """``distributed``, or a :class:`BenchError` with the install hint when it is missing."""
    try:
        import distributed
    except ImportError:
        raise BenchError(
            f"the cluster options need Dask's distributed scheduler: {INSTALL_HINT}"
        ) from None
    return distributed


@contextlib.contextmanager
def connect(scheduler: str | None = None, local_workers: int | None = None, timeout="20s"):
    """A ``distributed.Client``: to the scheduler at ``scheduler``, or to a new
    ``LocalCluster`` of ``local_workers`` worker processes with one thread and
    the resource ``timing=1`` each (closed on exit)."""
    distributed = require_distributed()
    if (scheduler is None) == (local_workers is None):
        raise BenchError("give exactly one of a scheduler address and a number of local workers")
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise BenchError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        with client:
            yield client
        return
    if local_workers < 1:
        raise BenchError(f"--local-cluster must be >= 1, got {local_workers}")
    with (
        distributed.LocalCluster(
            n_workers=local_workers,
            threads_per_worker=1,
            processes=True,
            resources={RESOURCE: 1},
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


# --- the generic layer: picklable jobs, one at a time per worker ---------------------


@dataclass(frozen=True)
class Job:
    """What to run on a worker: ``fn(*args)``, ``fn`` a function the workers can
    unpickle (module-level, or a closure cloudpickle carries by value).

    ``tag`` stays on the client (bookkeeping); ``hosts`` restricts the job to
    workers on those hosts (empty: any worker with the resource).
    """

    fn: Callable
    args: tuple = ()
    tag: object = None
    hosts: tuple[str, ...] = ()
    name: str = "job"


@dataclass
class Outcome:
    """A finished job: its ``value``, or ``error`` (one line) when it failed.

    ``lost``: the workers running it died (``KilledWorker``); ``stranded``: it
    was pinned to hosts that had no worker left, and was given up; ``cancelled``:
    the scheduler dropped it (restarted, or the connection to it was lost), so
    it never ran to the end and may be submitted again.
    """

    job: Job
    value: object = None
    error: str | None = None
    lost: bool = False
    stranded: bool = False
    cancelled: bool = False
    seconds: float = 0.0  # from submission to completion


class OneAtATime:
    """Run jobs on the workers of ``client``, at most one per unit of ``resource``."""

    def __init__(
        self,
        client,
        resource: str = RESOURCE,
        stranded_after: float = STRANDED_AFTER,
        refresh: float = 1.0,
    ):
        distributed = require_distributed()
        self.client = client
        self.resource = resource
        self.stranded_after = stranded_after
        self.refresh = refresh
        self._ac = distributed.as_completed(loop=client.loop)
        self._jobs: dict[str, tuple[Job, object, float]] = {}  # key -> job, future, submitted
        self._workers: dict[str, dict] = {}
        self._seen = -float("inf")
        self._orphan_since: dict[str, float] = {}

    # workers
    def workers(self, fresh: bool = False) -> dict[str, dict]:
        """Workers offering the resource, by address (scheduler_info's entries)."""
        if fresh or time.monotonic() - self._seen > self.refresh:
            info = self.client.scheduler_info()["workers"]
            self._workers = {
                a: w for a, w in info.items() if (w.get("resources") or {}).get(self.resource, 0)
            }
            self._seen = time.monotonic()
        return self._workers

    def slots(self) -> int:
        """Jobs that may run at once: the units of the resource over all workers."""
        return sum(int(w["resources"][self.resource]) for w in self.workers().values())

    def hosts(self) -> set[str]:
        return {w["host"] for w in self.workers().values()}

    def free(self) -> int:
        return max(self.slots() - len(self._jobs), 0)

    def in_flight(self) -> int:
        return len(self._jobs)

    # jobs
    def submit(self, job: Job) -> str:
        key = f"{job.name}-{uuid.uuid4().hex[:12]}"
        fut = self.client.submit(
            job.fn,
            *job.args,
            key=key,
            resources={self.resource: 1},
            workers=list(job.hosts) or None,
            allow_other_workers=False,
            pure=False,
        )
        self._jobs[key] = (job, fut, time.monotonic())
        self._ac.add(fut)
        return key

    def wait(self, timeout: float = 1.0) -> list[Outcome]:
        """Outcomes of the jobs that finish within ``timeout`` seconds (maybe none)."""
        end = time.monotonic() + timeout
        while not self._ac.has_ready() and time.monotonic() < end and self._jobs:
            time.sleep(0.01)
        out = [self._outcome(fut) for fut in self._ac.next_batch(block=False)]
        out.extend(self._stranded())
        return [o for o in out if o is not None]

    def _outcome(self, fut) -> Outcome | None:
        entry = self._jobs.pop(fut.key, None)
        if entry is None:  # given up as stranded already
            return None
        job, _, t0 = entry
        seconds = time.monotonic() - t0
        if fut.status == "finished":
            value = fut.result()
            fut.release()
            return Outcome(job, value=value, seconds=seconds)
        if fut.status == "cancelled":
            return Outcome(job, error="cancelled", cancelled=True, seconds=seconds)
        exc = fut.exception()
        fut.release()
        from distributed import KilledWorker

        if isinstance(exc, KilledWorker):
            reason = (
                f"KilledWorker: the workers running it died {exc.allowed_failures + 1} times "
                "(killed, or out of memory)"
            )
            return Outcome(job, error=reason, lost=True, seconds=seconds)
        return Outcome(job, error=one_line(exc), seconds=seconds)

    def _stranded(self) -> list[Outcome]:
        """Pinned jobs whose hosts have had no worker for ``stranded_after`` seconds."""
        hosts = self.hosts()
        now = time.monotonic()
        out = []
        for key, (job, fut, t0) in list(self._jobs.items()):
            if not job.hosts or hosts & set(job.hosts):
                self._orphan_since.pop(key, None)
                continue
            since = self._orphan_since.setdefault(key, now)
            if now - since >= self.stranded_after:
                del self._jobs[key]
                self._orphan_since.pop(key, None)
                fut.cancel()
                reason = f"no worker left on {', '.join(job.hosts)}"
                out.append(Outcome(job, error=reason, stranded=True, seconds=now - t0))
        return out

    def run(self, jobs: Iterable[Job], poll: float = 1.0) -> Iterator[Outcome]:
        """Run every job, keeping each worker busy with one, and yield outcomes as they come."""
        todo = iter(jobs)
        more = True
        idle_since = None  # no worker offers the resource (one may be restarting)
        while more or self._jobs:
            while more and self.free():
                job = next(todo, None)
                if job is None:
                    more = False
                    break
                self.submit(job)
            if more and not self._jobs:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > self.stranded_after:
                    raise BenchError(f"no worker offers the resource {self.resource}=1")
                time.sleep(poll)
                continue
            idle_since = None
            yield from self.wait(poll)

    def cancel(self) -> None:
        """Cancel every job in flight (their outcomes are dropped)."""
        futs = [fut for _, fut, _ in self._jobs.values()]
        self._jobs.clear()
        if futs:
            with contextlib.suppress(Exception):
                self.client.cancel(futs)


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


def host_of(address: str) -> str:
    from distributed.comm import get_address_host

    return get_address_host(address)


# --- worker side ---------------------------------------------------------------------

_META: dict | None = None


def fingerprint(threads: int | None) -> dict:
    """This process's machine fingerprint with ``threads`` pinned (run on a worker)."""
    global _META
    from bpttbench.bench.measure import available_cpus, available_memory, run_metadata, set_threads

    numba_threads, blas_threads = set_threads(threads)
    if _META is None:
        _META = run_metadata()
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        address = None
    return {
        **_META,
        "numba_threads": numba_threads,
        "blas_threads": blas_threads,
        "available_memory": available_memory(),
        "cpus": available_cpus(),
        "address": address,
    }


@dataclass(frozen=True)
class VisitTask:
    """One visit of one cell, as sent to a worker (small and picklable)."""

    algorithm: str
    size: tuple[tuple[str, int], ...]
    dtype: str
    seed: int
    settings: object  # measure.TimingSettings, the per-visit share
    threads: int | None
    memory: bool


def machine_peaks(dtype: str, threads: int | None) -> dict:
    """This worker's GEMM and GEMV GFLOP/s (:func:`measure.machine_peak`) with its fingerprint."""
    from bpttbench.bench.measure import machine_peak

    worker = fingerprint(threads)
    single = worker["numba_threads"] == 1 and worker["blas_threads"] == 1
    gemm, gemv = machine_peak(dtype, check_cpu=single)
    return {"worker": worker, "gemm": gemm, "gemv": gemv}


def run_visit(task: VisitTask) -> dict:
    """Make one visit on this worker: ``{"worker": fingerprint, and "visit": figures,
    or "error": reason}``."""
    import bpttbench
    from bpttbench.bench.measure import measure_visit

    worker = fingerprint(task.threads)
    single = worker["numba_threads"] == 1 and worker["blas_threads"] == 1
    out = {"worker": worker}
    try:
        out["visit"] = measure_visit(
            bpttbench.ALGORITHMS[task.algorithm],
            dict(task.size),
            task.dtype,
            task.seed,
            task.settings,
            single,
            memory=task.memory,
        )
    except Exception as exc:  # a kernel failing on one cell must not end the sweep
        out["error"] = one_line(exc)
    return out


# --- the cell layer: a sweep through the cluster --------------------------------------


@dataclass
class ClusterSummary:
    run_ids: list[int] = field(default_factory=list)  # one run row per machine fingerprint
    total: int = 0
    resumed: int = 0
    measured: int = 0
    skipped: int = 0
    errors: int = 0
    unfinished: int = 0  # cells left with visits missing: no worker of their machine
    seconds: float = 0.0
    workers: int = 0
    machines: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> int | None:
        return self.run_ids[0] if self.run_ids else None


def run_cluster_sweep(
    plan,
    db_path: str | Path,
    client,
    threads: int | None = 1,
    max_memory: float | None = None,
    remeasure: bool = False,
    progress: bool = True,
    stream: TextIO | None = None,
    measure_peak: bool = True,
    argv: Sequence[str] | None = None,
    stranded_after: float = STRANDED_AFTER,
) -> ClusterSummary:
    """Measure every cell of ``plan`` not already in the store, on the workers of ``client``.

    The plan, settings and store of :func:`bpttbench.bench.sweep.run_sweep`,
    with visits made concurrently, one per worker; see the module docstring for
    the resume rule and faults. Visits are handed out pass by pass, each pass
    in its own shuffled order, visit ``p + 1`` of a cell only after visit ``p``,
    with no barrier between passes. ``max_memory`` defaults to half the memory
    of the worker with the least (available RAM, or its Dask memory limit).
    """
    import bpttbench
    from bpttbench.bench import store

    t_start = time.perf_counter()
    pool = OneAtATime(client, stranded_after=stranded_after)
    probed = probe(pool, threads)
    if max_memory is None:
        workers = pool.workers()
        limits = [fp["available_memory"] / 2 for fp in probed.values()]
        limits += [w["memory_limit"] / 2 for w in workers.values() if w.get("memory_limit")]
        max_memory = min(limits)
    registry = bpttbench.ALGORITHMS
    conn = store.connect(db_path, registry)
    try:
        store.acquire_lease(conn)  # the client is the store's one writer
        try:
            run = _ClusterSweep(plan, conn, pool, probed, registry, threads, max_memory)
            run.argv = argv
            run.prepare(remeasure, db_path, stream if stream is not None else sys.stderr, progress)
            if measure_peak and run.queue:
                run.measure_peaks()
            run.loop(stranded_after)
            run.finish()
        finally:
            store.release_lease(conn)
    finally:
        pool.cancel()
        conn.close()
    run.summary.seconds = time.perf_counter() - t_start
    return run.summary


def probe(pool: OneAtATime, threads: int | None) -> dict[str, dict]:
    """Every worker's fingerprint with ``threads`` pinned, by address."""
    workers = pool.workers(fresh=True)
    if not workers:
        raise BenchError(
            f"no worker of the cluster offers the resource {RESOURCE}=1: start workers with "
            f"`dask worker ADDRESS --nthreads 1 --resources {RESOURCE}=1`"
        )
    try:
        probed = pool.client.run(fingerprint, threads, workers=list(workers))
    except Exception as exc:
        raise BenchError(f"a worker cannot run bpttbench: {one_line(exc)}") from None
    from bpttbench.bench.measure import check_threads

    for fp in probed.values():  # as a local sweep refuses more threads than its CPUs
        try:
            check_threads(threads, fp["cpus"])
        except BenchError as exc:
            raise BenchError(f"worker on {fp['machine']}: {exc}") from None
    return probed


def _fp_id(fp: Mapping) -> tuple[str, int, int]:
    """What a cell key takes from a worker's fingerprint: machine and thread counts."""
    return (fp["machine"], int(fp["numba_threads"]), int(fp["blas_threads"]))


def _label(c) -> tuple:
    """A cell apart from the machine (a plan may sweep one axis at two fixed sizes)."""
    return (c.algorithm, c.axis, tuple(sorted(c.size.items())), c.dtype)


class _ClusterSweep:
    """The state of one sweep through a cluster (see :func:`run_cluster_sweep`)."""

    def __init__(self, plan, conn, pool, probed, registry, threads, max_memory):
        from bpttbench.bench import sweep
        from bpttbench.bench.measure import visit_settings

        self.plan, self.conn, self.pool, self.registry = plan, conn, pool, registry
        self.threads, self.max_memory = threads, max_memory
        self.argv = None
        self.fps = {_fp_id(fp) for fp in probed.values()}
        self.worker_of = {_fp_id(fp): fp for fp in probed.values()}  # a full fingerprint each
        self.worker_of_address = dict(probed)
        self.hosts_of: dict[str, set[str]] = {}  # machine -> hosts of its workers
        for address, fp in probed.items():
            self.hosts_of.setdefault(fp["machine"], set()).add(host_of(address))
        self.per_visit = visit_settings(plan.timing, plan.visits)
        self.summary = ClusterSummary(
            workers=len(probed), machines=sorted({m for m, _, _ in self.fps})
        )
        self.started = sweep.now()
        self.runs: dict[tuple, dict] = {}  # full fingerprint -> {"run_id", "gemm"}
        self.home: dict[tuple, tuple] = {}  # cell label -> fingerprint id of its machine
        self.made: dict[tuple, dict[int, dict]] = {}  # cell label -> {visit: figures}
        self.refs: list[dict] = []  # measured points for the budget guard
        self.queue: list[tuple[int, object]] = []  # (visit, cell) in hand-out order
        self.dropped: set[tuple] = set()  # skipped, failed or given up: no more visits
        self.busy: set[tuple] = set()  # a visit in flight
        self.fresh: set[tuple] = set()  # remeasured cells not written yet
        self._last = time.perf_counter()

    def key(self, c, fp: tuple) -> str:
        from bpttbench.bench import store

        m, nt, bt = fp
        return store.cell_key(c.algorithm, c.axis, c.size, c.dtype, nt, bt, m)

    # --- planning ---
    def prepare(self, remeasure: bool, db_path, stream, progress: bool) -> None:
        """Find the cells to measure and their missing visits (the resume rule)."""
        from bpttbench.bench import store
        from bpttbench.bench.budget import reference
        from bpttbench.bench.progress import Progress

        plan, conn, registry = self.plan, self.conn, self.registry
        cells = plan.cells(registry)
        self.summary.total = len(cells)
        done = set() if remeasure else store.finished_keys(conn)
        pending = {_label(c): c for c in cells if not any(self.key(c, f) in done for f in self.fps)}
        self.summary.resumed = len(cells) - len(pending)
        self.fresh = set(pending) if remeasure else set()  # old visits go at the first write
        if not remeasure:  # visits made on a machine of the cluster: finish the cell there
            keys = {self.key(c, f): (lab, f) for lab, c in pending.items() for f in self.fps}
            for k, vs in sorted(store.load_visits(conn, set(keys)).items()):
                lab, f = keys[k]
                if len(vs) > len(self.made.get(lab, {})):
                    self.home[lab], self.made[lab] = f, vs
        self.refs = [
            r
            for r in store.ok_cells(conn)
            if r["dtype"] == plan.dtype
            and (r["machine"], r["numba_threads"], r["blas_threads"]) in self.fps
        ]
        for lab, vs in self.made.items():
            for v in vs.values():
                c = pending[lab]
                self.refs.append(reference(registry[c.algorithm], c, v["samples"]))
        self.queue = [
            (p, c)
            for p in range(1, plan.visits + 1)
            for c in plan.cells(registry, p - 1)
            if _label(c) in pending and p not in self.made.get(_label(c), {})
        ]
        self.bar = Progress(len(self.queue), stream, enabled=progress)
        self.bar.say(
            f"cluster: {self.summary.workers} worker(s) on {len(self.summary.machines)} "
            f"machine(s) ({', '.join(self.summary.machines)}), one timed visit per worker at a time"
        )
        per_machine = Counter(fp["machine"] for fp in self.worker_of_address.values())
        shared = sorted(m for m, n in per_machine.items() if n > 1)
        if shared:
            self.bar.say(
                f"note: several workers share {', '.join(shared)} (its caches and memory "
                "bandwidth), so a cell whose data outgrow the caches runs slower than alone: "
                "for reference timings, run one worker per machine"
            )
        if self.summary.resumed or self.made:
            partial = sum(len(v) for v in self.made.values())
            self.bar.say(
                f"resuming: {self.summary.resumed} of {len(cells)} cells already in {db_path}"
                + (f", and {partial} visits to unfinished cells" if partial else "")
            )

    def measure_peaks(self) -> None:
        """GEMM/GEMV peaks of each machine, on one of its workers, before any visit."""
        one = {}
        for address, fp in self.worker_of_address.items():
            one.setdefault(_fp_id(fp), address)
        jobs = [
            Job(machine_peaks, (self.plan.dtype, self.threads), hosts=(host_of(a),), name="peaks")
            for a in one.values()
        ]
        for out in self.pool.run(jobs, poll=0.2):
            if out.error is None:
                self.run_for(out.value)
            else:
                self.bar.say(f"peaks not measured on {', '.join(out.job.hosts)}: {out.error}")

    # --- handing out visits ---
    def loop(self, stranded_after: float) -> None:
        waiting = None  # since when nothing could be handed out and nothing ran
        while self.queue or self.pool.in_flight():
            self.hand_out()
            if self.pool.in_flight():
                waiting = None
                for out in self.pool.wait(1.0):
                    self.on_outcome(out)
            elif self.queue:  # what is left waits for a worker (of its machine)
                waiting = waiting or time.monotonic()
                if time.monotonic() - waiting > stranded_after:
                    self.give_up(f"no worker to make them for {stranded_after:.0f} s")
                    return
                time.sleep(0.2)

    def _purge(self) -> None:
        """Drop the queued visits of cells that will get no more."""
        keep = []
        for p, c in self.queue:
            if _label(c) in self.dropped:
                self.bar.finish(None)
            else:
                keep.append((p, c))
        self.queue = keep

    def next_job(self):
        """The first queued visit that may start now: ``(index, visit, cell, hosts)`` or None."""
        live = self.pool.hosts()
        for i, (p, c) in enumerate(self.queue):
            lab = _label(c)
            if lab in self.busy or lab in self.dropped:
                continue
            if min(set(range(1, p + 1)) - set(self.made.get(lab, {}))) != p:
                continue  # an earlier visit is still to come
            hosts: tuple[str, ...] = ()
            if lab in self.home:  # pinned to the machine of its earlier visits
                hosts = tuple(sorted(self.hosts_of.get(self.home[lab][0], ())))
                if not live & set(hosts):
                    continue
            return i, p, c, hosts
        return None

    def hand_out(self) -> None:
        """Submit visits while workers are free (after the budget guard's check)."""
        from bpttbench.bench.budget import budget_check

        self._purge()
        while self.pool.free():
            found = self.next_job()
            if found is None:
                break
            i, p, c, hosts = found
            del self.queue[i]
            lab = _label(c)
            made = self.made.get(lab, {})
            spec = self.registry[c.algorithm]
            if p == 1 or 1 not in made:
                reason = budget_check(
                    spec,
                    c,
                    [r for r in self.refs if r["algorithm"] == c.algorithm],
                    self.max_memory,
                    self.plan.max_cell_seconds,
                    self.plan.timing,
                    self.plan.visits,
                )
                if reason is not None:
                    self.bar.say(f"skip {c.label()}: {reason}")
                    self.drop(c, self.home.get(lab, min(self.fps)), "skipped", reason)
                    self.summary.skipped += 1
                    self.bar.finish(None)
                    continue
            memory = p == 1 or not any(v.get("peak_bytes") is not None for v in made.values())
            task = VisitTask(
                c.algorithm,
                tuple(c.size.items()),
                c.dtype,
                self.plan.seed,
                self.per_visit,
                self.threads,
                memory,
            )
            name = f"visit-{c.algorithm}-{c.axis}{c.value}-v{p}"
            self.pool.submit(Job(run_visit, (task,), tag=(p, c), hosts=hosts, name=name))
            self.busy.add(lab)
            self.bar.start(c, f"visit {p}/{self.plan.visits}" if self.plan.visits > 1 else "")
        self._purge()

    # --- results ---
    def on_outcome(self, out: Outcome) -> None:
        p, c = out.job.tag
        lab = _label(c)
        self.busy.discard(lab)
        now = time.perf_counter()
        seconds, self._last = now - self._last, now  # wall time per visit, workers together
        if out.cancelled:  # it never ran to the end: hand it out again
            if self.pool.client.status != "running":
                raise BenchError(
                    "lost the connection to the Dask scheduler; the cells finished so far "
                    "are saved, rerun the same command to resume"
                )
            self.queue.insert(0, (p, c))
            return
        if out.stranded:
            self.summary.unfinished += 1
            self.dropped.add(lab)
            self.bar.say(f"unfinished {c.label()}: {out.error}; rerun to resume")
            self.bar.finish(None)
            return
        result = out.value if out.error is None else None
        if result is None or "error" in result:
            reason = out.error if result is None else result["error"]
            if result is not None:  # the visit raised on the worker: its machine is known
                fp, run_id = _fp_id(result["worker"]), self.run_for(result)["run_id"]
            else:  # the workers died, or the task could not run
                fp, run_id = self.home.get(lab, min(self.fps)), None
            self.bar.say(f"error {c.label()}: {reason}")
            self.drop(c, fp, "error", reason, run_id)
            self.summary.errors += 1
            self.bar.finish(seconds)
            return
        self.record(p, c, result)
        self.bar.finish(seconds)

    def record(self, p: int, c, result: Mapping) -> None:
        """Store one visit and, with the cell's last, its row from the stored visits:
        one transaction."""
        from bpttbench.bench import store, sweep
        from bpttbench.bench.budget import reference

        lab = _label(c)
        fp = _fp_id(result["worker"])
        run = self.run_for(result)
        self.home[lab] = fp
        self.fps.add(fp)  # a worker that joined later: its cells predict times too
        if result["worker"].get("address"):
            self.hosts_of.setdefault(fp[0], set()).add(host_of(result["worker"]["address"]))
        visit = result["visit"]
        self.made.setdefault(lab, {})[p] = visit
        self.refs.append(reference(self.registry[c.algorithm], c, visit["samples"]))
        row = self.base_row(c, fp, run["run_id"])
        written = store.write_visit(
            self.conn,
            {
                "cell_key": row["cell_key"],
                "visit": p,
                "run_id": run["run_id"],
                **visit,
                "created": sweep.now(),
            },
            finish=lambda visits: self.cell_row(c, row, run["gemm"], visits),
            fresh=self._first_write(lab),
        )
        if written is not None:
            self.summary.measured += 1

    def cell_row(self, c, row: Mapping, gemm: float | None, visits: Mapping[int, Mapping]):
        """The finished cell's row from its stored visits, or None while some are missing."""
        from bpttbench.bench import sweep
        from bpttbench.bench.measure import combine

        numbers = range(1, self.plan.visits + 1)
        if not all(i in visits for i in numbers):
            return None
        spec = self.registry[c.algorithm]
        res = combine([visits[i] for i in numbers], spec, c.size, c.dtype)
        res.pop("samples", None)
        return {
            **row,
            **res,
            "status": "ok",
            "reason": None,
            "efficiency": res["gflops"] / gemm if gemm else None,
            "created": sweep.now(),
        }

    def _first_write(self, lab: tuple) -> bool:
        """Whether this is the first write of a remeasured cell (its old visits go)."""
        if lab in self.fresh:
            self.fresh.discard(lab)
            return True
        return False

    def base_row(self, c, fp: tuple, run_id: int) -> dict:

        m, nt, bt = fp
        return {
            "cell_key": self.key(c, fp),
            "run_id": run_id,
            "algorithm": c.algorithm,
            "axis": c.axis,
            "size": c.value,
            **{v: c.size.get(v) for v in self.conn.sizes},
            "dtype": c.dtype,
            "numba_threads": nt,
            "blas_threads": bt,
            "machine": m,
        }

    def drop(self, c, fp: tuple, status: str, reason: str, run_id: int | None = None) -> None:
        """Store the cell as skipped or error, under machine ``fp``; it gets no more visits."""
        from bpttbench.bench import store, sweep

        if run_id is None:  # no result of its own: the run row of that machine's workers
            run_id = self.run_for({"worker": self.worker_of[fp]})["run_id"]
        row = {**self.base_row(c, fp, run_id), "status": status, "reason": reason}
        store.write_cell(
            self.conn, {**row, "created": sweep.now()}, fresh=self._first_write(_label(c))
        )
        self.dropped.add(_label(c))

    def run_for(self, result: Mapping) -> dict:
        """The run row of the worker that sent ``result``: one per fingerprint, made with
        its first result (the peaks job's, which brings the peaks)."""
        from bpttbench.bench import store

        fp = result["worker"]
        self.worker_of[_fp_id(fp)] = fp
        full = tuple(fp.get(k) for k in FINGERPRINT_KEYS)
        gemm, gemv = result.get("gemm"), result.get("gemv")
        run = self.runs.get(full)
        if run is None:  # its peaks come with the first result: the peaks job's
            argv = self.argv if self.argv is not None else sys.argv[1:]
            run_id = store.begin_run(
                self.conn,
                {
                    "started": self.started,
                    **{k: fp.get(k) for k in FINGERPRINT_KEYS},
                    "preset": self.plan.name,
                    "gemm_gflops": gemm,
                    "gemv_gflops": gemv,
                    "argv": json.dumps(list(argv)),
                },
            )
            run = self.runs[full] = {"run_id": run_id, "gemm": gemm}
            self.summary.run_ids.append(run_id)
        return run

    def give_up(self, why: str) -> None:
        left = {_label(c) for _, c in self.queue if _label(c) not in self.dropped}
        self.summary.unfinished += len(left)
        self.bar.say(f"{len(left)} cell(s) left unfinished: {why}; rerun to resume")
        self.queue = []

    def finish(self) -> None:
        from bpttbench.bench import store, sweep

        self.bar.close()
        for run in self.runs.values():
            store.finish_run(self.conn, run["run_id"], sweep.now())


# --- the command line ----------------------------------------------------------------


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
