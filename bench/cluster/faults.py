"""What became of a job: its value, or why it has none.

Owns the classification of a finished Dask future into an :class:`Outcome`
(:func:`outcome_of`) and the one-line reasons stored with failed cells. The
retry policy itself is Dask's: a job whose worker dies (killed, out of memory)
is run again by the scheduler on another worker, up to
``distributed.scheduler.allowed-failures`` (3 by default); past that the future
fails with ``KilledWorker``, which becomes an outcome with ``lost`` set and a
reason that says so. A job that raises is an outcome with the exception's first
line; one the scheduler dropped (restart, lost connection) is ``cancelled`` and
may be submitted again. Stranded jobs (pinned to a machine with no worker left)
are detected by the pool (:meth:`pool.OneAtATime.wait`), which knows the hosts.
What a sweep does with each kind is :meth:`sweep._ClusterSweep.on_outcome`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pool import Job


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


def outcome_of(job: Job, fut, seconds: float) -> Outcome:
    """The outcome of ``job`` from its completed future ``fut`` (released here)."""
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


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
