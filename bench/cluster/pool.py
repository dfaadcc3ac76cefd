"""Submission and scheduling: picklable jobs on the workers, one at a time per worker.

Owns :class:`OneAtATime`, which runs :class:`Job` s (a module-level function
and its arguments) on the workers of a ``distributed.Client``, at most one per
worker: every job asks for one unit of the worker resource ``timing``
(workers are started with ``--resources timing=1``), and the client keeps no
more jobs in flight than there are units, so a job never waits queued on a
worker that might die. Outcomes stream back as they complete
(``distributed.as_completed``) and are classified by :mod:`.faults`. A job may
be pinned to the hosts of one machine; a pinned job whose hosts have had no
worker for ``STRANDED_AFTER`` seconds is given up (``stranded``). Nothing here
knows about cells or stores, so runs other than sweeps can use it.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from bpttbench.bench import BenchError

from .connect import RESOURCE, require_distributed
from .faults import Outcome, outcome_of

STRANDED_AFTER = 60.0  # seconds a pinned job may wait without a worker on its machine


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
        return outcome_of(job, fut, time.monotonic() - t0)

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


def host_of(address: str) -> str:
    from distributed.comm import get_address_host

    return get_address_host(address)
