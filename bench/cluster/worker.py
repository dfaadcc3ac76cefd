"""Worker side: what runs in a Dask worker process, and the machine fingerprint.

Owns :func:`fingerprint` (machine name, CPU model and count, Python, Numba,
NumPy and SciPy versions, commit, the Numba and BLAS thread counts in effect,
available memory), which every result a worker sends carries, and the jobs a
sweep sends: :func:`run_visit` pins the worker's threads as a local sweep does
(:func:`measure.set_threads`) and makes one visit of one cell
(:func:`measure.measure_visit`) in the worker's quiet helper process
(:mod:`.memprobe`: tracemalloc would count the worker's other threads, and they
would take the GIL between the timed calls);
:func:`machine_peaks` measures the machine's
GEMM/GEMV peaks. :data:`FINGERPRINT_KEYS` are the fields of a fingerprint that
go into a run row, one run row per distinct fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass

from .faults import one_line

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
    "blas_kernels",
)

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
    from . import memprobe

    worker = fingerprint(task.threads)
    single = worker["numba_threads"] == 1 and worker["blas_threads"] == 1
    out = {"worker": worker}
    try:
        # The whole visit, timing and memory pass, in the helper process: this one's
        # other threads would be counted by tracemalloc and take the GIL between calls.
        out["visit"] = memprobe.call(
            memprobe.cell_visit,
            task.algorithm,
            dict(task.size),
            task.dtype,
            task.seed,
            task.settings,
            task.threads,
            single,
            task.memory,
        )
    except memprobe.Failed as exc:
        out.pop("visit", None)
        out["error"] = str(exc)
    except Exception as exc:  # a kernel failing on one cell must not end the sweep
        out["error"] = one_line(exc)
    return out
