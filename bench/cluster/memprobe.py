"""A worker's memory pass, made in a quiet process of its own.

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
threads as the worker does, builds the problem with the same seed, calls the
kernel twice (loading it from Numba's on-disk cache and making any first-call
allocations), then makes the traced call with the very function a local sweep
uses (:func:`measure.peak_memory`, which also empties Python's free lists
first). So a cell's peak measured on a worker equals the peak a local sweep
measures, byte for byte (``tests/test_cluster.py`` holds them to that).

The helper lives as long as its worker: it reads requests until its standard
input closes, which happens when the worker exits or is killed. A helper that
died is started again on the next request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

_PROC: subprocess.Popen | None = None


def _helper() -> subprocess.Popen:
    global _PROC
    if _PROC is None or _PROC.poll() is not None:
        _PROC = subprocess.Popen(
            [sys.executable, "-m", "bpttbench.bench.cluster.memprobe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
    return _PROC


def peak_bytes(algorithm: str, size: dict, dtype: str, seed: int, threads: int | None) -> int:
    """The cell's peak bytes, measured in this worker's quiet helper process."""
    global _PROC
    request = {
        "algorithm": algorithm,
        "size": dict(size),
        "dtype": str(dtype),
        "seed": int(seed),
        "threads": threads,
    }
    proc = _helper()
    try:
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
    except OSError:
        line = ""
    if not line:
        code = proc.wait()
        _PROC = None
        raise RuntimeError(f"the memory helper process ended (exit status {code})")
    reply = json.loads(line)
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return int(reply["peak_bytes"])


def measure(request: dict, pinned: list) -> dict:
    """One request in the helper: ``{"peak_bytes": n}`` or ``{"error": reason}``."""
    import bpttbench
    import numpy as np
    from bpttbench.bench.measure import peak_memory, set_threads

    from .faults import one_line

    try:
        if not pinned or pinned[0] != request["threads"]:
            set_threads(request["threads"])
            pinned[:] = [request["threads"]]
        spec = bpttbench.ALGORITHMS[request["algorithm"]]
        args = spec.make_problem(
            dict(request["size"]), np.dtype(request["dtype"]).type, request["seed"]
        )

        def call():
            return spec.func(*args)

        call()  # compile, or load from Numba's cache
        call()  # any allocation a kernel makes once, on a later call
        return {"peak_bytes": peak_memory(call)}
    except Exception as exc:  # the worker stores it as the visit's error
        return {"error": one_line(exc)}


def main() -> int:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # nothing but answers may go down the pipe
    pinned: list = []
    for line in sys.stdin:
        if line.strip():
            answers.write(json.dumps(measure(json.loads(line), pinned)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
