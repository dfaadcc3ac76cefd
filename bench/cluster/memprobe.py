"""A worker's measurements, made in a quiet process of its own.

Why. ``tracemalloc`` counts every allocation of its process, whichever thread
makes it. A local sweep's process has one Python thread, so the peak it records
is the cell's own. A Dask worker process has several (its event loop with
heartbeats, the comms and the metrics, and the profiler sampling the task
thread's stack every few milliseconds), and the kernels release the GIL
(``nogil=True``), so those threads run during the traced call: their
allocations landed in the cell's peak, a few hundred bytes to about 300 KB per
cell, different on each visit. On the quick preset that bent the memory
exponents of the cells whose working set is small (truncated BPTT along T, RTRL
along T) and made them disagree with a local run of the same plan.

How. Each worker process starts one helper process (``python -m
bpttbench.bench.cluster.memprobe``), with no thread of its own, and sends it the
cell (algorithm, sizes, dtype, seed, threads) on a pipe. The helper pins the
threads as the worker does and makes the visit with the very function a local
sweep uses (:func:`measure.measure_visit`: the problem built with the same seed,
the timed rounds, then the traced call of :func:`measure.peak_memory`, which
also empties Python's free lists first). A cell's peak measured on a worker then equals the
local sweep's byte for byte for BPTT, truncated and checkpointed BPTT, RTRL,
SnAp and RFLO (``tests/test_cluster.py`` holds a sweep and three cells to
that). What is left is the process's own history, locally as on a worker:
UORO, KF-RTRL and R-KF trace up to about 200 bytes more or less depending on
how many calls the process made before (small blocks that NumPy and Python keep
for reuse), and backprop a few KB (Numba's typed lists): far below what bends
an exponent.

A sweep's visits run in the helper whole (:func:`cell_visit`: the timed rounds,
then the memory pass), for the same reason and one more: between the timed
calls the kernel holds no GIL, and the worker's threads take it, so the Python
part of every call could wait on them. Quality jobs
(:func:`.quality.run_quality_job`) run in the helper whole, for the same reason:
a learning job's peak bytes are traced, and its time per step is then measured
in a process of one thread, as a local run measures it.

The helper lives as long as its worker: it reads requests (a picklable function
and its arguments, length-prefixed pickles on its standard input) until its
standard input closes, and on Linux the kernel kills it when the worker thread
that started it ends (the worker killed or closed), so that no orphan runs on
beside the job's retry. What
a call raises comes back as one line (:class:`Failed`); a helper that died
(killed, out of memory) fails the call it was making and is started again on
the next.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable

_PROC: subprocess.Popen | None = None
_LOCK = threading.Lock()  # one call at a time on the pipe, whatever the worker's threads
_HEAD = struct.Struct("<Q")


class Failed(Exception):
    """A call in the helper failed; the message is what it raised, as one line."""


def _write(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEAD.pack(len(data)) + data)
    stream.flush()


def _read(stream):
    """The next object on ``stream``, or None at its end."""
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    (size,) = _HEAD.unpack(head)
    data = stream.read(size)
    return pickle.loads(data) if len(data) == size else None


def helper_environ(environ=None, nanny_set=None) -> dict:
    """The worker's environment without the variables Dask's nanny set for it.

    The nanny starts every worker with ``distributed.nanny.pre-spawn-environ``:
    ``MALLOC_TRIM_THRESHOLD_=65536`` and one OpenMP, MKL and OpenBLAS thread. With
    that trim threshold glibc hands freed blocks back to the system at once, and
    the next call faults its pages in again: BPTT at T = 2, n = 448, B = 64 took
    4.80 ms a call against 2.61 ms without it (measured, one thread), which bent
    the quick preset's time fits low even on a lone worker (BPTT along n: 1.78
    against 2.09 locally). A variable is dropped only where it holds the nanny's
    value; one the user set to something else is kept."""
    env = dict(os.environ if environ is None else environ)
    if nanny_set is None:
        try:
            import dask

            nanny_set = dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}
        except ImportError:  # no Dask: not a worker, nothing was set
            nanny_set = {}
    for key, value in nanny_set.items():
        if env.get(key) == str(value):
            del env[key]
    return env


def _helper() -> subprocess.Popen:
    global _PROC
    if _PROC is None or _PROC.poll() is not None:
        _PROC = subprocess.Popen(
            [sys.executable, "-m", "bpttbench.bench.cluster.memprobe", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=helper_environ(),
        )
    return _PROC


def call(fn: Callable, *args):
    """``fn(*args)`` in this worker's helper process (``fn`` picklable by name);
    raises :class:`Failed` with what it raised, or when the helper died."""
    with _LOCK:
        return _call(fn, args)


def _call(fn: Callable, args: tuple):
    proc = _helper()
    try:
        _write(proc.stdin, (fn, args))
        reply = _read(proc.stdout)
    except OSError:
        reply = None
    if reply is None:
        code = close()
        raise Failed(f"the worker's helper process ended (exit status {code}) during {fn.__name__}")
    ok, value = reply
    if not ok:
        raise Failed(value)
    return value


def close() -> int | None:
    """End the helper (its standard input closed, it exits) and return its exit status."""
    global _PROC
    proc, _PROC = _PROC, None
    if proc is None:
        return None
    for pipe in (proc.stdin, proc.stdout):
        try:
            pipe.close()
        except OSError:  # the helper is gone: nothing left to flush
            pass
    return proc.wait()


_PINNED: list = []


def cell_visit(
    algorithm: str,
    size: dict,
    dtype: str,
    seed: int,
    settings,
    threads: int | None,
    check_cpu: bool,
    memory: bool,
) -> dict:
    """In the helper: one visit of one cell (:func:`measure.measure_visit`, its timed
    rounds and, with ``memory``, the traced call after them), as a local sweep makes it."""
    import bpttbench
    from bpttbench.bench.measure import measure_visit

    pin_threads(threads)
    spec = bpttbench.ALGORITHMS[algorithm]
    return measure_visit(spec, dict(size), dtype, seed, settings, check_cpu, memory=memory)


def pin_threads(threads: int | None) -> None:
    """Pin the helper's threads as the worker pins its own (once per count)."""
    from bpttbench.bench.measure import set_threads

    if _PINNED != [threads]:
        set_threads(threads)
        _PINNED[:] = [threads]


def _die_with(parent: int) -> None:
    """End with the worker: on Linux, the kernel kills this process when the thread
    that started it ends (the worker killed, or closed); elsewhere it ends when its
    standard input closes, after the call in progress."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the worker ended before the line above
        os._exit(1)


def main(argv: list[str]) -> int:
    from .faults import one_line

    if argv:
        _die_with(int(argv[0]))
    # Answers go down the pipe that was standard output; anything else written to
    # standard output (by Python or a library) goes to standard error instead.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    while (request := _read(sys.stdin.buffer)) is not None:
        fn, args = request
        try:
            reply = (True, fn(*args))
        except Exception as exc:  # the worker reports it as the job's error
            reply = (False, one_line(exc))
        _write(answers, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
