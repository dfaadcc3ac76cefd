"""Pinning ``bpttbench peers`` to as many cores as it has threads, for the run, and back.

Why: a thread count is not a core count. XLA's CPU runtime keeps thread pools
of its own (17 OS threads after ``import jax`` here, whatever ``XLA_FLAGS``
says): with ``--xla_cpu_multi_thread_eigen=false`` its one-"thread" BPTT at
B = 32, n = 512 took 0.063 s a call in the reference run, where the same call
needs about 0.10 s of CPU time; counted per thread (``/proc/self/task/*/stat``,
ten calls), two of its threads did the work (55 and 48 ticks) on the 2-core
machine, and one (93 ticks) once pinned. Newer XLA has no flag that limits
them (``--intra_op_parallelism_threads`` is refused as an unknown flag).
The one honest limit is the CPU affinity: with ``--threads N`` every thread of
the process (the peer's pools, PyTorch's OpenMP pool, Numba's and the BLAS
workers, and bpttbench's kernel, timed interleaved in the same process) runs
on the same N cores, so "one thread" means one core for both sides.

Linux sets affinity per thread: ``os.sched_setaffinity(0, ...)`` pins only the
calling thread (and the threads it starts later). :class:`Pinned` therefore
pins every thread in ``/proc/self/task`` on entry, again with :meth:`Pinned.again`
after the peers' imports have started their pools, and on exit gives every
thread the process's earlier affinity back. Where the platform has no
affinity (macOS) nothing is pinned and the row records that (``affinity`` NULL).
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def supported() -> bool:
    """Whether this platform can pin threads (Linux: sched_setaffinity and /proc/self/task)."""
    return hasattr(os, "sched_setaffinity") and os.path.isdir("/proc/self/task")


def cpu_list(cpus: Iterable[int]) -> str:
    """A CPU set as the kernel writes it: ``"0"``, ``"0-3,6"``."""
    out: list[str] = []
    run: list[int] = []
    for c in sorted(set(cpus)):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [c]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


def current() -> str | None:
    """The calling thread's CPU set as a list (None where the platform has no affinity)."""
    if not supported():
        return None
    return cpu_list(os.sched_getaffinity(0))


def _threads() -> list[int]:
    return [int(t) for t in os.listdir("/proc/self/task")]


def _set(tid: int, cpus) -> None:
    try:
        os.sched_setaffinity(tid, cpus)
    except (ProcessLookupError, FileNotFoundError):  # the thread ended meanwhile
        pass


class Pinned:
    """Context manager: every thread of this process on ``threads`` cores, then back.

    The cores are the first ``threads`` of the process's allowed set (which
    ``--threads`` was already checked against). ``cpus`` is the pinned set as a
    list (``"0"``), or None where nothing was pinned (``threads`` None, or no
    affinity on this platform).
    """

    def __init__(self, threads: int | None):
        self.threads = threads
        self.cpus: str | None = None
        self._before: dict[int, set[int]] = {}
        self._process: set[int] | None = None
        self._mask: set[int] | None = None

    def __enter__(self) -> Pinned:
        if self.threads is None or not supported():
            return self
        self._process = set(os.sched_getaffinity(0))
        self._before = {tid: set(os.sched_getaffinity(tid)) for tid in _threads()}
        self._mask = set(sorted(self._process)[: max(1, int(self.threads))])
        self.cpus = cpu_list(self._mask)
        self.again()
        return self

    def again(self) -> None:
        """Pin the threads started since (a peer's import starts its pools)."""
        if self._mask is None:
            return
        for tid in _threads():
            _set(tid, self._mask)

    def __exit__(self, *exc) -> None:
        if self._mask is None:
            return
        for tid in _threads():  # threads started while pinned get the process's set
            _set(tid, self._before.get(tid, self._process))
        self._mask = None
