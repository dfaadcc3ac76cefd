"""The budget guard: a cell predicted to need more memory or time than allowed is not run.

Memory. A cell holds, at its peak, everything it allocated (:func:`cell_bytes`):

- the problem data, ``make_problem``'s arrays (parameters, xs, ys), computed from
  the sizes without allocating them (:func:`problem_arrays`); each array is drawn
  in float64 and then cast to the cell's dtype, a copy, so while the last one is
  built the process also holds its float64 draw;
- the copies the gradient function's input checks make: none, as the problem's
  arrays are C-contiguous and of one dtype (the checks return them as they are;
  ``tests/test_budget.py`` holds the kernels to that);
- the kernel's working memory and the gradients it returns: the registry's
  analytic model (``AlgorithmSpec.memory``);
- what the memory pass adds: tracemalloc's tables, and the allocator's and the
  runtime's slack, ``RUNTIME_BYTES``.

``tests/test_budget.py`` runs cells of 100-300 MB in fresh processes and checks
that the estimate bounds the growth of their peak resident memory, and exceeds
it by less than half. Not counted: Numba's JIT compile (once per kernel and
process, before the cell) and BLAS's internal buffers.

Time. A cell's call time is predicted by scaling the measured call time of the
cell nearest in FLOPs (of the same algorithm, machine, threads and dtype) by the
FLOP ratio; the cell's time adds the warm-up, calibration and memory-pass calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from bpttbench.bench import BenchError, fmt
from bpttbench.bench.grid import Cell
from bpttbench.bench.measure import TimingSettings

RUNTIME_BYTES = 32 * 2**20
DRAW_ITEMSIZE = 8  # make_problem draws every array in float64, then casts it
# Gates per cell type: a GRU has three weight blocks per matrix, an LSTM four.
GATES = {"elman": 1, "rnn": 1, "gru": 3, "lstm": 4}


def problem_arrays(spec, size: Mapping[str, object]) -> list[float]:
    """Element counts of ``spec.make_problem(size, ...)``'s arrays, in the order it builds them.

    A spec may say it itself (an attribute ``problem_arrays(size)``); otherwise the
    layout follows the spec's family: ``rnn`` (parameters of the cell, then xs
    (T, B, m) and ys (T, B, p)) or ``mlp`` (depth layers of width x width weights
    and width biases, then x and y, (B, width) each).
    """
    own = getattr(spec, "problem_arrays", None)
    if callable(own):
        return [float(c) for c in own(size)]
    if spec.family == "rnn":
        T, B, n, m, p = (float(size[k]) for k in ("T", "B", "n", "m", "p"))
        g = GATES.get(str(size.get("cell", "elman")), 4)
        params = [g * n * m, g * n * n, g * n] + ([g * n] if g > 1 else []) + [p * n, p]
        return [*params, T * B * m, T * B * p]
    if spec.family == "mlp":
        L, w, B = (float(size[k]) for k in ("depth", "width", "B"))
        layers = [c for _ in range(int(L)) for c in (w * w, w)] if L <= 10_000 else [L * w * w]
        return [*layers, B * w, B * w]
    return []


def problem_bytes(spec, size: Mapping[str, object], itemsize: int) -> tuple[float, float]:
    """(bytes the problem holds, bytes at the peak of building it)."""
    held = peak = 0.0
    for count in problem_arrays(spec, size):
        peak = max(peak, held + count * (DRAW_ITEMSIZE + itemsize))
        held += count * itemsize
    return held, peak


def cell_bytes(spec, size: Mapping[str, object], dtype: str) -> float:
    """Peak bytes a cell allocates: problem data, kernel, memory pass (module docstring)."""
    itemsize = np.dtype(dtype).itemsize
    held, building = problem_bytes(spec, size, itemsize)
    working = float(spec.memory_bytes(size, itemsize))
    return max(building, held + working) + RUNTIME_BYTES


def predicted_cell_seconds(call_s: float, timing: TimingSettings, visits: int = 1) -> float:
    """Wall time of a cell whose call takes ``call_s``: per visit a warm-up and a
    calibration call, then the rounds, and one memory pass."""
    return (2 * visits + 1) * call_s + max(timing.min_time, timing.min_rounds * call_s)


def predict_call_seconds(
    spec, size: Mapping[str, object], refs: Sequence[Mapping]
) -> tuple[float, Mapping] | None:
    """Scale the measured call time of the cell nearest in FLOPs by the FLOP ratio."""
    if not refs:
        return None
    flops = spec.flop_count(size)
    if not flops > 0:
        return None
    ref = min(refs, key=lambda r: abs(math.log(flops / r["flops"])))
    return ref["median_s"] * flops / ref["flops"], ref


def budget_check(
    spec,
    cell: Cell,
    refs: Sequence[Mapping],
    max_memory: float,
    max_cell_seconds: float,
    timing: TimingSettings,
    visits: int = 1,
) -> str | None:
    """The reason a cell is over budget, or None if it may run."""
    mem = cell_bytes(spec, cell.size, cell.dtype)
    if mem > max_memory:
        return (
            f"predicted memory {fmt.nbytes(mem)} (problem data, kernel and memory pass) > "
            f"limit {fmt.nbytes(max_memory)} (--max-memory)"
        )
    pred = predict_call_seconds(spec, cell.size, refs)
    if pred is not None:
        call_s, _ref_cell = pred
        cell_s = predicted_cell_seconds(call_s, timing, visits)
        if cell_s > max_cell_seconds:
            return (
                f"predicted {fmt.seconds(cell_s)} for the cell ({fmt.seconds(call_s)} per call, "
                f"scaled by FLOPs from a measured cell) > limit {fmt.seconds(max_cell_seconds)} "
                f"(--max-cell-seconds)"
            )
    return None


def parse_bytes(text: str, what: str = "--max-memory") -> int:
    """``4GiB``, ``512M``, ``2.5GB``, ``1e9`` -> bytes (K/M/G/T and KiB.. are powers of 1024).

    Infinite, NaN, zero, negative and absurd values (above 2^63 bytes, which no
    machine has and SQLite could not store) are refused with a one-line
    :class:`BenchError`.
    """
    s = text.strip().upper().replace(" ", "")
    units = {"": 1, "B": 1}
    for i, p in enumerate("KMGT", 1):
        units[p] = units[p + "IB"] = 1024**i
        units[p + "B"] = 1000**i
    num = s.rstrip("KMGTIB")
    unit = s[len(num) :]
    try:
        value = float(num) * units[unit]
    except (ValueError, KeyError, OverflowError):
        raise BenchError(f"{what} {text!r}: expected bytes like 4GiB, 512M or 2e9") from None
    if not math.isfinite(value):
        raise BenchError(f"{what} {text!r}: must be a finite number of bytes")
    if not value >= 1:
        raise BenchError(f"{what} {text!r}: must be at least one byte")
    if value >= 2**63:
        raise BenchError(f"{what} {text!r}: out of range (at most 2^63 - 1 bytes)")
    return int(value)


def reference(spec, cell: Cell, samples: Sequence[float]) -> dict:
    """A measured point for the time prediction."""
    return {
        "algorithm": cell.algorithm,
        "flops": spec.flop_count(cell.size),
        "median_s": float(np.median(samples)),
    }
