"""The sizes every family of the registry shares: the axes and default sizes with
their labels, the problem a size builds, and the exponent table per axis."""

from __future__ import annotations

import numpy as np

from ..cells import CELL_NAMES, INIT
from ..costs import Exponent
from ..model import init_mlp

RNN_AXES = {"T": ("T",), "n": ("n",), "B": ("B",), "k": ("k1", "k2")}
MLP_AXES = {"depth": ("depth",), "width": ("width",), "B": ("B",)}
# Default sizes where a sweep says nothing. Input and output sizes are kept at 1 so
# the n^2 (and n^4) terms lead the cost models from small n on.
RNN_SIZES = {"T": 64, "n": 32, "B": 1, "m": 1, "p": 1}
TRUNCATION_SIZES = {**RNN_SIZES, "k1": 16, "k2": 16}
MLP_SIZES = {"depth": 4, "width": 128, "B": 16}
# What each axis means, for chart axes and tables; a spec's own axis_labels come first.
AXIS_LABELS = {
    "T": "sequence length T (steps)",
    "n": "state size n (hidden units)",
    "B": "batch size B",
    "k": "truncation length k = k1 = k2 (steps)",
    "depth": "depth L (layers)",
    "width": "width w (units per layer)",
}


# The cell, a categorical size of the algorithms that take it (specs/gated.py): the
# Elman cell unless a sweep says otherwise.
CELLS = CELL_NAMES
CELL_SIZE = {"cell": "elman"}


def _rnn_data(size, dtype, seed):
    T, B, n, m, p = (int(size[k]) for k in ("T", "B", "n", "m", "p"))
    cell = size.get("cell", CELL_SIZE["cell"])
    if cell not in INIT:
        raise ValueError(f"unknown cell {cell!r}; cells are {', '.join(CELL_NAMES)}")
    params = INIT[cell](m, n, p, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    xs = rng.standard_normal((T, B, m)).astype(dtype)
    ys = rng.standard_normal((T, B, p)).astype(dtype)
    return params, xs, ys


def _tbptt_problem(size, dtype, seed):
    return (*_rnn_data(size, dtype, seed), int(size["k1"]), int(size["k2"]))


def _mlp_problem(size, dtype, seed):
    L, w, B = int(size["depth"]), int(size["width"]), int(size["B"])
    params = init_mlp([w] * (L + 1), seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((B, w)).astype(dtype)
    y = rng.standard_normal((B, w)).astype(dtype)
    return params, x, y


def _exponents(source, **by_axis):
    """``T=(time, memory)`` -> {(axis, metric): Exponent}; FLOPs follow time."""
    table = {}
    for axis, (time, mem) in by_axis.items():
        table[(axis, "time")] = Exponent(time, source)
        table[(axis, "flops")] = Exponent(time, source)
        table[(axis, "memory")] = Exponent(mem, source)
    return table
