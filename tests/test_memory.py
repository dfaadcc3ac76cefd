"""Memory shape with tracemalloc, which sees NumPy's and Numba's allocations.

tracemalloc counts bytes, not time, so these tests are deterministic. Each
measurement makes a warm-up call (compilation, caches), then traces one call
with ``reset_peak``; the result is the peak minus what was already traced.
Inputs are built before tracing starts, so they are not counted.

THEORY.md: truncated BPTT holds Theta(k2 n B + P) and RTRL Theta(n^3 B),
neither depending on T; BPTT holds every state, Theta(T n B + P). Per cell:
the gated cells and the leaky cell keep more per step (kernels/cells/), but
the shape in T is the same.
"""

from __future__ import annotations

import gc
import tracemalloc

import bpttbench
import numba
import numpy as np
import pytest
from helpers import rnn_arrays, sequence

# Under NUMBA_DISABLE_JIT (the coverage run) the kernels are Python loops: their
# allocations are not the compiled kernels' and T = 32768 takes many minutes.
pytestmark = pytest.mark.skipif(
    numba.config.DISABLE_JIT, reason="memory shape is measured on the compiled kernels"
)

# Peak bytes at two lengths of a T-independent algorithm may differ by Python
# bookkeeping (a few small objects), never by a per-step buffer. Measured: the
# peaks at T = 4096 .. 65536 are equal and 32 B above the peak at T = 64 (Python
# bookkeeping), for tbptt and rtrl alike. 512 B over T_LONG - T_SHORT = 32704 steps is
# 1/64 B a step: a bool per step (32 KB) fails by 64x, even a bit per step (4 KB)
# by 8x, while the bookkeeping noise has 16x room.
MEMORY_FLAT_BYTES = 512

# BPTT's peak is affine in T; the constant part cancels in a ratio of
# increments, which must match the ratio of T up to small fixed-size noise.
MEMORY_LINEAR_RTOL = 0.15

T_SHORT, T_LONG = 64, 32768
BPTT_LENGTHS = (256, 512, 1024)

# Small state, so that any O(T) allocation stands out against the working set
# (peaks of about 9 KB for tbptt and 20 to 30 KB for rtrl at T_SHORT).
SIZE = {"B": 4, "m": 4, "n": 6, "p": 4}
K = 8


def peak_bytes(call) -> int:
    """Peak traced bytes of one ``call()`` after a warm-up call, above the baseline."""
    call()
    gc.collect()
    assert not tracemalloc.is_tracing(), "tracemalloc already running: the peak would be shared"
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = call()
        _, peak = tracemalloc.get_traced_memory()
        del result
    finally:
        tracemalloc.stop()
    return peak - baseline


CELLS = ["elman", "leaky", "gru", "lstm"]


def cell_params(rng, cell):
    """Parameters of ``cell`` at SIZE: the leaky cell stores tanh(a) too, the gated ones
    their gates (and the LSTM's c), so each has its own bytes per step."""
    m, n, p = SIZE["m"], SIZE["n"], SIZE["p"]
    if cell in ("elman", "leaky"):
        return bpttbench.RNNParams(*rnn_arrays(rng, m, n, p), alpha=0.5 if cell == "leaky" else 1)
    return getattr(bpttbench, f"init_{cell}")(m, n, p, seed=1)


@pytest.fixture
def memory_problem(rng):
    """``problem(T, cell="elman") -> (params, xs, ys)`` with the same parameters for every T."""
    params = {}

    def problem(T, cell="elman"):
        if cell not in params:
            params[cell] = cell_params(rng, cell)
        xs, ys = sequence(rng, T, SIZE["B"], SIZE["m"], SIZE["p"])
        return params[cell], xs, ys

    return problem


CONSTANT_IN_T = {
    "tbptt-k=8": lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, K),
    "tbptt-k1=4-k2=8": lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, K // 2, K),
    "rtrl": bpttbench.rtrl,
    "ckpt-c=8": lambda p, xs, ys: bpttbench.checkpointed_bptt(p, xs, ys, 8),
}


@pytest.mark.parametrize(
    ("algorithm", "cell"),
    [(a, "elman") for a in CONSTANT_IN_T]
    + [(a, c) for a in CONSTANT_IN_T if a.startswith(("tbptt", "ckpt")) for c in CELLS[1:]]
    + [("rtrl", "leaky")],
)
def test_peak_memory_does_not_grow_with_T(memory_problem, algorithm, cell):
    call = CONSTANT_IN_T[algorithm]
    problem = memory_problem(T_LONG, cell)
    long = peak_bytes(lambda: call(*problem))
    t_short = SHORT_FOR.get(algorithm, T_SHORT)
    problem = memory_problem(t_short, cell)
    short = peak_bytes(lambda: call(*problem))
    assert short > 0
    assert abs(long - short) <= MEMORY_FLAT_BYTES, (
        f"{algorithm} {cell}: peak {short} B at T={t_short} but {long} B at T={T_LONG}"
    )


# Checkpointed BPTT fills its c slots once the sequence has more than c segments of
# 128 / B = 32 steps: at T = 64 (two segments) it stores one state, not 8.
SHORT_FOR = {"ckpt-c=8": 16 * 32}


# Numbers a step stores beside h: the leaky cell tanh(a), the GRU r, z, g, W_hn h + b_hn,
# the LSTM c, i, f, g, o.
STORED_PER_STEP = {"elman": 1, "leaky": 2, "gru": 5, "lstm": 6}


@pytest.mark.parametrize("cell", CELLS)
def test_bptt_peak_memory_grows_linearly_with_T(memory_problem, cell):
    peaks = []
    for T in BPTT_LENGTHS:
        problem = memory_problem(T, cell)
        peaks.append(peak_bytes(lambda problem=problem: bpttbench.bptt(*problem)))
    T0, T1, T2 = BPTT_LENGTHS
    growth = (peaks[2] - peaks[0]) / (peaks[1] - peaks[0])
    expected = (T2 - T0) / (T1 - T0)
    assert growth == pytest.approx(expected, rel=MEMORY_LINEAR_RTOL), (
        f"peaks {dict(zip(BPTT_LENGTHS, peaks, strict=True))}: increments grow {growth:.3f}x, "
        f"T grows {expected:.3f}x"
    )
    # The stored states alone are T n B floats (times what the cell keeps per step),
    # and nothing else grows with T: the increment is that, up to the fixed noise.
    per_step = (peaks[2] - peaks[0]) / (T2 - T0)
    stored = STORED_PER_STEP[cell] * SIZE["n"] * SIZE["B"] * 8
    assert stored <= per_step <= 1.05 * stored, (cell, per_step, stored)


@pytest.mark.parametrize("cell", CELLS)
def test_checkpointed_peak_memory_grows_with_slots_by_the_state_size(memory_problem, cell):
    """Each slot holds one state: n B numbers, 2 n B for the LSTM's (h, c); nothing else
    in the kernel depends on the slot count (while the slots are fewer than the segments:
    T = 2048 makes 64 segments of 32 steps)."""
    problem = memory_problem(2048, cell)
    few = peak_bytes(lambda: bpttbench.checkpointed_bptt(*problem, 4))
    many = peak_bytes(lambda: bpttbench.checkpointed_bptt(*problem, 36))
    state = (2 if cell == "lstm" else 1) * SIZE["n"] * SIZE["B"] * 8
    assert abs((many - few) - 32 * state) <= MEMORY_FLAT_BYTES, (cell, few, many, state)


def test_tbptt_peak_memory_grows_with_k2_not_T(memory_problem):
    """The window, not the sequence, is what truncated BPTT stores."""
    problem = memory_problem(T_SHORT)
    small = peak_bytes(lambda: bpttbench.tbptt(*problem, 4, 4))
    large = peak_bytes(lambda: bpttbench.tbptt(*problem, 4, 32))
    stored_states = (32 - 4) * SIZE["n"] * SIZE["B"] * 8
    assert large - small >= stored_states // 2, (small, large)


# The registry's analytic memory model (kernels/*.memory) is what the report
# draws as the theory line; the measured peak adds only Python objects (result
# tuples, array headers, Numba typed lists for the MLP): at most a few KB.
MEMORY_MODEL_RTOL = 0.05
MEMORY_OVERHEAD_BYTES = 16384

MODEL_SIZES = {
    "bptt": {"T": 512, "B": 8, "n": 32, "m": 8, "p": 4, "k1": 32, "k2": 32},
    "tbptt": {"T": 512, "B": 8, "n": 32, "m": 8, "p": 4, "k1": 16, "k2": 64},
    "rtrl": {"T": 8, "B": 4, "n": 24, "m": 8, "p": 4, "k1": 1, "k2": 1},
    "backprop": {"depth": 4, "width": 64, "B": 16},
    "bptt-gru": {"T": 512, "B": 8, "n": 32, "m": 8, "p": 4, "cell": "gru"},
    "bptt-lstm": {"T": 512, "B": 8, "n": 32, "m": 8, "p": 4, "cell": "lstm"},
    "tbptt-gru": {"T": 512, "B": 8, "n": 32, "m": 8, "p": 4, "k1": 16, "k2": 64, "cell": "gru"},
    "tbptt-lstm": {"T": 512, "B": 8, "n": 32, "m": 8, "p": 4, "k1": 16, "k2": 64, "cell": "lstm"},
    "checkpointed_bptt": {"T": 512, "B": 8, "n": 32, "m": 8, "p": 4, "c": 16},
    "checkpointed_bptt-c=100": {"T": 512, "B": 8, "n": 32, "m": 8, "p": 4, "c": 100},
    "checkpointed_bptt-gru": {"T": 512, "B": 8, "n": 32, "m": 8, "p": 4, "c": 16, "cell": "gru"},
    "checkpointed_bptt-lstm": {"T": 512, "B": 8, "n": 32, "m": 8, "p": 4, "c": 16, "cell": "lstm"},
    # spare slots (32 segments of 16 steps, 300 slots): 15 head starts and a kept tail
    # of 272 states
    "checkpointed_bptt-c=300": {"T": 512, "B": 8, "n": 32, "m": 8, "p": 4, "c": 300},
    "checkpointed_bptt-gru-c=300": {
        "T": 512,
        "B": 8,
        "n": 32,
        "m": 8,
        "p": 4,
        "c": 300,
        "cell": "gru",
    },
    "checkpointed_bptt-lstm-c=300": {
        "T": 512,
        "B": 8,
        "n": 32,
        "m": 8,
        "p": 4,
        "c": 300,
        "cell": "lstm",
    },
    "checkpointed_bptt-lstm-B=32": {
        "T": 256,
        "B": 32,
        "n": 16,
        "m": 3,
        "p": 2,
        "c": 7,
        "cell": "lstm",
    },
    # windows, chunks and B where the gated models' chunk buffers outweigh the states
    "tbptt-lstm-B=32": {
        "T": 256,
        "B": 32,
        "n": 16,
        "m": 3,
        "p": 2,
        "k1": 3,
        "k2": 7,
        "cell": "lstm",
    },
}


def test_checkpointed_peak_at_sqrt_T_slots_is_a_tenth_of_bptts():
    """The issue's point: T = 1000, n = 64, B = 8, ceil(sqrt(T)) = 32 slots, at most 10% of
    BPTT's peak (measured 8.1%, the model 8.0%)."""
    size = {"T": 1000, "B": 8, "n": 64, "m": 1, "p": 1}
    problem = bpttbench.ALGORITHMS["bptt"].make_problem(size, np.float64, 0)
    full = peak_bytes(lambda: bpttbench.bptt(*problem))
    checkpointed = peak_bytes(lambda: bpttbench.checkpointed_bptt(*problem))
    assert checkpointed <= 0.1 * full, (checkpointed, full)


@pytest.mark.parametrize("case", sorted(MODEL_SIZES))
def test_analytic_memory_model_matches_the_measured_peak(case):
    name = case.split("-")[0]
    spec = bpttbench.ALGORITHMS[name]
    size = MODEL_SIZES[case]
    problem = spec.make_problem(size, np.float64, 0)
    # On one Numba thread, as a sweep measures: RTRL's model counts one thread's
    # scratch slab, and each further thread adds one (kernels/rtrl.py, "Threads").
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        measured = peak_bytes(lambda: spec.func(*problem))
    finally:
        numba.set_num_threads(before)
    model = spec.memory_bytes(size, 8)
    assert abs(measured - model) <= MEMORY_MODEL_RTOL * model + MEMORY_OVERHEAD_BYTES, (
        f"{name} {size}: measured {measured} B, model {model:.0f} B"
    )
