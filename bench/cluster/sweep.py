"""The cell layer: a sweep's plan run through the cluster, visit by visit.

Owns :func:`run_cluster_sweep` and the state of one such sweep
(:class:`_ClusterSweep`): probing the workers' fingerprints, the resume rule
(which cells and visits are still to make), the machines' peaks before the
first visit, handing out visits (pass by pass, visit ``p + 1`` of a cell only
after visit ``p``, later visits pinned to the machine of the first), the
budget guard, and what to do with each outcome (store it, retry a cancelled
visit, record a lost or failed one as an error, leave a stranded cell
unfinished). The rows are written by :class:`.writes.StoreWrites`.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bpttbench.bench import BenchError

from .connect import RESOURCE
from .faults import Outcome, one_line
from .pool import STRANDED_AFTER, Job, OneAtATime, host_of
from .worker import VisitTask, fingerprint, machine_peaks, run_visit
from .writes import StoreWrites, _fp_id, _label


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


class _ClusterSweep(StoreWrites):
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
        # A cell that two sweeps of the plan share (their fixed sizes made equal, as by
        # --fixed) is queued once per visit: a second copy would find its visit made.
        queued: set[tuple] = set()
        for p in range(1, plan.visits + 1):
            for c in plan.cells(registry, p - 1):
                lab = _label(c)
                if lab in pending and p not in self.made.get(lab, {}) and (p, lab) not in queued:
                    queued.add((p, lab))
                    self.queue.append((p, c))
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

    def give_up(self, why: str) -> None:
        left = {_label(c) for _, c in self.queue if _label(c) not in self.dropped}
        self.summary.unfinished += len(left)
        self.bar.say(f"{len(left)} cell(s) left unfinished: {why}; rerun to resume")
        self.queue = []
