"""Fixtures of the pytest-benchmark suite (``pytest bench/ --benchmark-only``).

Every benchmark builds its problem through the registry, makes one warm-up
call first (its time, JIT compile included on a cold kernel, goes to
``extra_info["compile_s"]``), measures the peak memory of one call with
tracemalloc outside the timing, and stores the registry's FLOPs and analytic
bytes beside pytest-benchmark's statistics, so a saved JSON
(``--benchmark-autosave``, ``--benchmark-json``) carries everything the
report needs. Groups are "<algorithm> vs <axis>": ``--benchmark-group-by=group``
gives one table per algorithm and axis.

Threads: 1 for Numba and BLAS unless ``BPTTBENCH_THREADS`` says otherwise, set
once per session (single-threaded timings are not disturbed by other programs).
"""

from __future__ import annotations

import os
import time

import bpttbench
import numpy as np
import pytest
from bpttbench.bench.measure import peak_memory, set_threads


@pytest.fixture(scope="session")
def threads():
    """(numba_threads, blas_threads) in effect for the whole suite."""
    return set_threads(int(os.environ.get("BPTTBENCH_THREADS", "1")))


@pytest.fixture
def run_cell(benchmark, threads):
    """``run_cell(algorithm, axis, size, dtype=np.float64)``: warm up, trace memory, then time."""

    def run(name: str, axis: str, size: dict, dtype=np.float64):
        spec = bpttbench.ALGORITHMS[name]
        args = spec.make_problem(dict(size), dtype, 0)
        t0 = time.perf_counter()
        spec.func(*args)  # warm-up: JIT compile on a cold kernel, first touch of buffers
        first_call = time.perf_counter() - t0
        peak = peak_memory(lambda: spec.func(*args))  # untimed
        fixed = ", ".join(f"{k}={v}" for k, v in size.items() if k not in spec.axis_vars[axis])
        benchmark.group = f"{name} vs {axis} ({fixed})"
        benchmark.extra_info.update(
            algorithm=name,
            axis=axis,
            size=dict(size),
            dtype=np.dtype(dtype).name,
            flops=spec.flop_count(size),
            model_bytes=spec.memory_bytes(size, np.dtype(dtype).itemsize),
            peak_bytes=peak,
            compile_s=first_call,
            numba_threads=threads[0],
            blas_threads=threads[1],
        )
        return benchmark(spec.func, *args)

    return run
