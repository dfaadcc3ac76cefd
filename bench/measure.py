"""Measuring one cell: a timing pass, then a separate untimed tracemalloc pass.

Timing (THEORY.md, "Measuring"): the first call is timed on its own (it
includes Numba's JIT compile on a cold kernel); then the number of calls per
round is calibrated so that a round lasts at least ``round_time``, and rounds
are repeated until ``min_time`` has been spent (and at least ``min_rounds``
rounds). Each round gives one per-call time; the cell reports their median,
quartiles, IQR and coefficient of variation. The garbage collector is off
while timing, as in ``timeit``. A sweep times each cell in several *visits*
spread over the sweep (``bpttbench.bench.sweep``); the statistics are over the rounds of
all visits (:func:`combine`), and the first visit's first call is the one
reported as compile time.

Memory: after timing, ``tracemalloc`` is started, the peak reset, the traced
baseline read, one call made, and the peak above the baseline recorded. It sees
NumPy's and Numba's runtime allocations (not BLAS's internal buffers). No call
is ever timed while tracing is on.
"""

from __future__ import annotations

import gc
import math
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class TimingSettings:
    """How long to time a cell. ``quick`` and ``full`` presets set these."""

    min_time: float = 0.3  # seconds of timed rounds per cell (at least)
    round_time: float = 0.005  # a round lasts at least this long
    min_rounds: int = 5
    max_rounds: int = 1000
    # Single-threaded, a round whose CPU time (of the calling thread) falls short of
    # its wall time by more than this fraction was descheduled (another process had
    # the core): it is timed again while less than ``retry_factor`` x min_time has
    # been spent, or fewer than ``max_retries`` rounds were dropped (so a cell whose
    # single call outlasts that time still gets its retries).
    disturbed: float = 0.10
    retry_factor: float = 4.0
    max_retries: int = 3


@dataclass
class Timing:
    first_call_s: float  # the warm-up call, JIT compile included on a cold kernel
    compile_s: float  # first call minus the steady-state median, >= 0
    median_s: float
    q25_s: float
    q75_s: float
    iqr_s: float
    cv: float  # standard deviation / mean of the per-call times
    rounds: int
    calls_per_round: int
    disturbed_rounds: int  # rounds dropped because the process was descheduled
    samples: list[float]  # per-call time of each kept round


class _Rounds:
    """The timed rounds of one function: calibration, the descheduling check, when to stop.

    :func:`time_call` runs one to completion; :func:`time_interleaved` alternates two.
    """

    def __init__(self, fn: Callable[[], object], settings: TimingSettings, check_cpu: bool):
        self.fn, self.settings, self.check_cpu = fn, settings, check_cpu
        self.samples: list[float] = []
        self.first = math.nan
        self.number = 1
        self.dropped = 0
        self.kept = 0.0
        self.spent = 0.0

    def warm_up(self) -> None:
        """The first call, timed on its own (it includes a cold kernel's JIT compile)."""
        t0 = time.perf_counter()
        self.fn()
        self.first = time.perf_counter() - t0

    def calibrate(self) -> None:
        """One timed call tells how many calls fill a round; a call that fills a round on
        its own is the first round."""
        s = self.settings
        elapsed, cpu = _run(self.fn, 1)
        if elapsed >= s.round_time:
            self.number = 1
            self._keep(elapsed, cpu)
            return
        self.number = math.ceil(s.round_time / max(elapsed, 1e-9))
        elapsed, _ = _run(self.fn, self.number)
        if elapsed < s.round_time:  # the single call was slow: recalibrate
            self.number = max(self.number + 1, math.ceil(self.number * s.round_time / elapsed))

    @property
    def done(self) -> bool:
        s = self.settings
        return len(self.samples) >= s.max_rounds or (
            self.kept >= s.min_time and len(self.samples) >= s.min_rounds
        )

    def round(self) -> None:
        self._keep(*_run(self.fn, self.number))

    def _keep(self, elapsed: float, cpu: float) -> None:
        s = self.settings
        self.spent += elapsed
        retry = self.spent < s.retry_factor * s.min_time or self.dropped < s.max_retries
        if self.check_cpu and cpu < (1.0 - s.disturbed) * elapsed and retry:
            self.dropped += 1
        else:
            self.samples.append(elapsed / self.number)
            self.kept += elapsed

    def timing(self) -> Timing:
        return summarize(self.samples, self.first, self.number, self.dropped)


@contextmanager
def _gc_off():
    """The garbage collector off while timing, as in ``timeit``."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def time_call(
    fn: Callable[[], object],
    settings: TimingSettings = TimingSettings(),
    check_cpu: bool = False,
) -> Timing:
    """Time ``fn()``: warm-up call, calibration, then rounds until ``min_time``.

    Rounds are timed with ``time.perf_counter``. With ``check_cpu`` (for a
    single-threaded run only), each round's CPU time of the calling thread is read too,
    and a round whose CPU time is more than ``settings.disturbed`` short of its
    wall time is dropped and timed again: the process was descheduled, so the
    round measured another program. The test compares two clocks of the same
    round, not the round with the others, so a round that is slow because of
    the code itself is kept. Once ``retry_factor`` x ``min_time`` is spent and
    ``max_retries`` rounds were dropped, the remaining rounds are kept whatever
    happened.
    """
    rounds = _Rounds(fn, settings, check_cpu)
    rounds.warm_up()
    with _gc_off():
        rounds.calibrate()
        while not rounds.done:
            rounds.round()
    return rounds.timing()


def time_interleaved(
    fa: Callable[[], object],
    fb: Callable[[], object],
    settings: TimingSettings = TimingSettings(),
    check_cpu: tuple[bool, bool] = (False, False),
) -> tuple[Timing, Timing]:
    """Time ``fa`` and ``fb`` as :func:`time_call` does, in alternating rounds (A, B, A, ...).

    A slow spell of the machine then falls on both alike. Rounds go on until both
    have had their ``min_time`` and ``min_rounds`` (each at most ``max_rounds``);
    ``check_cpu`` applies the descheduling check to each (only to a function that
    runs in the calling thread, single-threaded).
    """
    a = _Rounds(fa, settings, check_cpu[0])
    b = _Rounds(fb, settings, check_cpu[1])
    a.warm_up()
    b.warm_up()
    with _gc_off():
        a.calibrate()
        b.calibrate()
        while not (a.done and b.done):
            for r in (a, b):
                if len(r.samples) < settings.max_rounds:
                    r.round()
    return a.timing(), b.timing()


def summarize(
    samples: Sequence[float], first_call_s: float, calls_per_round: int, disturbed: int
) -> Timing:
    """Median, quartiles, IQR and coefficient of variation of per-call round times."""
    arr = np.asarray(samples, dtype=float)
    q25, median, q75 = (float(v) for v in np.percentile(arr, [25, 50, 75]))
    mean = float(arr.mean())
    cv = float(arr.std(ddof=1) / mean) if len(arr) > 1 and mean > 0 else 0.0
    return Timing(
        first_call_s=first_call_s,
        compile_s=max(first_call_s - median, 0.0),
        median_s=median,
        q25_s=q25,
        q75_s=q75,
        iqr_s=q75 - q25,
        cv=cv,
        rounds=len(arr),
        calls_per_round=calls_per_round,
        disturbed_rounds=disturbed,
        samples=[float(x) for x in arr],
    )


def _run(fn: Callable[[], object], number: int) -> tuple[float, float]:
    """Wall seconds and the calling thread's CPU seconds of ``number`` calls."""
    c0 = time.thread_time()
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    t1 = time.perf_counter()
    c1 = time.thread_time()
    return t1 - t0, c1 - c0


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes traced by tracemalloc above the baseline during one call of ``fn``.

    The call's result (the gradients) is alive at the peak, so it is counted,
    as the analytic models count it. tracemalloc counts the allocations of every
    thread of the process: call it where no other Python thread runs (a Dask
    worker makes its memory pass in a helper process, ``bench.cluster.memprobe``).
    """
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
        del out
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(int(peak - base), 0)


def measure_visit(
    spec,
    size: Mapping[str, int],
    dtype: str = "float64",
    seed: int = 0,
    settings: TimingSettings = TimingSettings(),
    check_cpu: bool = False,
    memory: bool = True,
) -> dict:
    """One visit to a cell: build the problem, time it (:func:`time_call`), and,
    with ``memory``, one untimed tracemalloc pass (:func:`peak_memory`) after the timing.

    Returns the raw figures of the visit: ``samples`` (per-call seconds of each
    round), ``first_call_s``, ``calls_per_round``, ``disturbed_rounds`` and
    ``peak_bytes`` (None without ``memory``).
    """
    args = spec.make_problem(dict(size), np.dtype(dtype).type, seed)

    def call():
        return spec.func(*args)

    timing = time_call(call, settings, check_cpu)
    return {
        "samples": timing.samples,
        "first_call_s": timing.first_call_s,
        "calls_per_round": timing.calls_per_round,
        "disturbed_rounds": timing.disturbed_rounds,
        "peak_bytes": peak_memory(call) if memory else None,
    }


def combine(visits: Sequence[Mapping], spec, size: Mapping[str, int], dtype: str) -> dict:
    """The figures of a cell from its visits: statistics over the rounds of all visits,
    the first visit's first call (JIT compile), the measured peak, the model's FLOPs
    and bytes, and achieved GFLOP/s."""
    samples = [x for v in visits for x in v["samples"]]
    timing = summarize(
        samples,
        visits[0]["first_call_s"],
        max(int(v["calls_per_round"]) for v in visits),
        sum(int(v["disturbed_rounds"] or 0) for v in visits),
    )
    peaks = [v["peak_bytes"] for v in visits if v.get("peak_bytes") is not None]
    flops = float(spec.flop_count(size))
    out = asdict(timing)
    out.update(
        visits=len(visits),
        peak_bytes=int(max(peaks)) if peaks else None,
        model_bytes=float(spec.memory_bytes(size, np.dtype(dtype).itemsize)),
        flops=flops,
        gflops=flops / timing.median_s / 1e9 if timing.median_s > 0 else float("nan"),
    )
    return out


def measure_cell(
    spec,
    size: Mapping[str, int],
    dtype: str = "float64",
    seed: int = 0,
    settings: TimingSettings = TimingSettings(),
    check_cpu: bool = False,
    visits: int = 1,
) -> dict:
    """Measure one cell of ``spec`` (an ``AlgorithmSpec``) at ``size`` in one go.

    ``visits`` back-to-back visits share ``settings.min_time`` between them; the
    memory pass is made in the first. (A sweep spreads the visits of a cell
    over the whole sweep instead; see ``bpttbench.bench.sweep``.)
    """
    per_visit = visit_settings(settings, visits)
    got = [
        measure_visit(spec, size, dtype, seed, per_visit, check_cpu, memory=i == 0)
        for i in range(visits)
    ]
    return combine(got, spec, size, dtype)


def visit_settings(settings: TimingSettings, visits: int) -> TimingSettings:
    """Timing settings of one of ``visits`` visits: the minimum time and rounds shared out."""
    if visits <= 1:
        return settings
    return replace(
        settings,
        min_time=settings.min_time / visits,
        min_rounds=max(1, math.ceil(settings.min_rounds / visits)),
    )


# --- threads -----------------------------------------------------------------------

_blas_limiter = None


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_threads(threads: int | None, cpus: int) -> None:
    """Refuse fewer than one thread, or more than the CPUs this process may use."""
    from bpttbench.bench import BenchError

    if threads is None:
        return
    if threads < 1:
        raise BenchError(f"--threads must be >= 1, got {threads}")
    if threads > cpus:
        raise BenchError(
            f"--threads {threads}: this process may use {cpus} CPU(s); more threads than "
            "CPUs would time the scheduler, not the kernels"
        )


def set_threads(n: int | None) -> tuple[int, int]:
    """Set Numba's and the BLAS thread counts to ``n`` (all CPUs if None).

    Returns the counts in effect afterwards, ``(numba_threads, blas_threads)``.
    Numba cannot go above the pool size it started with (NUMBA_NUM_THREADS).
    """
    global _blas_limiter
    import numba

    # Numba's np.dot calls SciPy's BLAS, a second OpenBLAS that is loaded only on the
    # first jitted BLAS call; load it now, or the limit below would miss it and its
    # idle workers would spin beside a single-threaded kernel.
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    want = available_cpus() if n is None else int(n)
    numba.set_num_threads(max(1, min(want, numba.config.NUMBA_NUM_THREADS)))
    _blas_limiter = threadpool_limits(limits=max(1, want), user_api="blas")
    return numba.get_num_threads(), blas_threads()


def blas_threads() -> int:
    """The BLAS thread count in effect (the largest over loaded BLAS libraries)."""
    from threadpoolctl import threadpool_info

    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else 1


# --- the machine's roof ------------------------------------------------------------


def machine_peak(
    dtype: str = "float64",
    gemm_n: int = 512,
    gemv_n: int = 1024,
    settings: TimingSettings = TimingSettings(min_time=0.2, round_time=0.02),
    check_cpu: bool = False,
) -> tuple[float, float]:
    """GFLOP/s of a square GEMM (``gemm_n``) and GEMV (``gemv_n``) through NumPy's BLAS.

    The GEMM is the compute roof the kernels' efficiency is quoted against; the
    GEMV is the memory-bound roof a batch of one meets. Sizes match the
    matrices the kernels multiply in a sweep (n up to a few hundred).
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((gemm_n, gemm_n)).astype(dtype)
    b = rng.standard_normal((gemm_n, gemm_n)).astype(dtype)
    c = np.empty_like(a)
    t_gemm = time_call(lambda: np.matmul(a, b, out=c), settings, check_cpu).median_s
    v = rng.standard_normal((gemv_n, gemv_n)).astype(dtype)
    x = rng.standard_normal(gemv_n).astype(dtype)
    y = np.empty(gemv_n, dtype=dtype)
    t_gemv = time_call(lambda: np.matmul(v, x, out=y), settings, check_cpu).median_s
    return 2.0 * gemm_n**3 / t_gemm / 1e9, 2.0 * gemv_n**2 / t_gemv / 1e9


# --- run metadata ------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The commit of the bpttbench checkout that runs, with ``+dirty`` if modified.

    An editable install runs from its checkout; a ``pip install .`` runs from
    site-packages, so the working directory is tried next when it is a
    bpttbench checkout (the README's quick start runs from the clone).
    """
    package_root = Path(__file__).resolve().parent.parent
    for root in (package_root, Path.cwd()):
        if (root / "kernels" / "registry.py").is_file():
            commit = _commit_at(root)
            if commit:
                return commit
    return None


def _commit_at(root: Path) -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit + ("+dirty" if dirty.stdout.strip() else "")


def machine_name() -> str:
    """The machine's fingerprint: host name, CPU model and CPU count.

    The host name alone repeats across machines (virtual machines and containers
    called 'vm' or 'localhost'), and cells of two machines under one name would
    be fitted together.
    """
    cpu = cpu_model().replace("|", "/")  # '|' separates the parts of a cell key
    return f"{platform.node() or 'unknown'} ({cpu}, {os.cpu_count() or '?'} CPUs)"


def openblas_kernels() -> str | None:
    """The kernels of the OpenBLAS libraries loaded (``"Haswell"``, ``"SkylakeX"``), if any.

    Every run records them: the same CPU runs GEMMs about 1.5x faster with
    OpenBLAS's AVX-512 kernels than with its Haswell ones (AMD EPYC, float64, one
    thread), and ``OPENBLAS_CORETYPE`` in the environment overrides OpenBLAS's
    own choice."""
    from threadpoolctl import threadpool_info

    found = [
        str(i["architecture"])
        for i in threadpool_info()
        if i.get("internal_api") == "openblas" and i.get("architecture")
    ]
    return ",".join(dict.fromkeys(found)) or None


def blas_kernels() -> str | None:
    """What a run records in ``runs.blas_kernels``: the OpenBLAS kernels, and the
    ``OPENBLAS_CORETYPE`` that forced them where it is set (``"Haswell
    (OPENBLAS_CORETYPE=Haswell)"``); None without OpenBLAS."""
    found = openblas_kernels()
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if found and forced:
        return f"{found} (OPENBLAS_CORETYPE={forced})"
    return found


def run_metadata() -> dict:
    """Machine, CPU and library versions recorded with every run."""
    import numba
    import scipy

    return {
        "machine": machine_name(),
        "cpu": cpu_model(),
        "python": sys.version.split()[0],
        "numba": numba.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "commit": git_commit(),
        "blas_kernels": blas_kernels(),
    }


def available_memory() -> int:
    """Bytes of RAM available now (MemAvailable), or total RAM where that is unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30
