"""The algorithm registry: what the harness, the benchmark suite and the report know.

Each entry pairs a gradient function with its exact FLOP count, its analytic
working memory and its theoretical exponents per axis (THEORY.md, "Costs").
A new algorithm is one file in ``kernels/`` plus one entry here.
"""

from __future__ import annotations

import numpy as np

# Names, not modules: the package re-exports each function under its module's name.
from .backprop import backprop
from .backprop import flops as backprop_flops
from .backprop import memory as backprop_memory
from .bptt import bptt
from .bptt import flops as bptt_flops
from .bptt import memory as bptt_memory
from .costs import AlgorithmSpec, Exponent
from .model import init_mlp, init_rnn
from .rtrl import flops as rtrl_flops
from .rtrl import memory as rtrl_memory
from .rtrl import rtrl
from .tbptt import flops as tbptt_flops
from .tbptt import memory as tbptt_memory
from .tbptt import tbptt

RNN_AXES = {"T": ("T",), "n": ("n",), "B": ("B",), "k": ("k1", "k2")}
MLP_AXES = {"depth": ("depth",), "width": ("width",), "B": ("B",)}

_WZ95 = "Williams & Zipser 1995"
_WP90 = "Williams & Peng 1990; Williams & Zipser 1995"
_WZ89 = "Williams & Zipser 1989; Menick et al. 2021 (quartic in the state size)"
_STD = "standard (Rumelhart, Hinton & Williams 1986)"


def _rnn_data(size, dtype, seed):
    T, B, n, m, p = (int(size[k]) for k in ("T", "B", "n", "m", "p"))
    params = init_rnn(m, n, p, seed=seed, dtype=dtype)
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


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "bptt": AlgorithmSpec(
        name="bptt",
        title="BPTT",
        family="rnn",
        func=bptt,
        make_problem=_rnn_data,
        flops=bptt_flops,
        memory=bptt_memory,
        # memory vs n is 1 while the T n B states dominate P ~ n^2
        exponents=_exponents(_WZ95, T=(1, 1), n=(2, 1), B=(1, 1)),
        axis_vars=RNN_AXES,
    ),
    "tbptt": AlgorithmSpec(
        name="tbptt",
        title="Truncated BPTT",
        family="rnn",
        func=tbptt,
        make_problem=_tbptt_problem,
        flops=tbptt_flops,
        memory=tbptt_memory,
        # axis k moves k1 = k2 together: T / k updates of k steps each, so time is flat in k
        exponents=_exponents(_WP90, T=(1, 0), n=(2, 1), B=(1, 1), k=(0, 1)),
        axis_vars=RNN_AXES,
    ),
    "rtrl": AlgorithmSpec(
        name="rtrl",
        title="RTRL",
        family="rnn",
        func=rtrl,
        make_problem=_rnn_data,
        flops=rtrl_flops,
        memory=rtrl_memory,
        exponents=_exponents(_WZ89, T=(1, 0), n=(4, 3), B=(1, 1)),
        axis_vars=RNN_AXES,
    ),
    "backprop": AlgorithmSpec(
        name="backprop",
        title="Backprop (MLP)",
        family="mlp",
        func=backprop,
        make_problem=_mlp_problem,
        flops=backprop_flops,
        memory=backprop_memory,
        # memory vs width is 2 once the L w^2 gradients dominate the L w B activations
        exponents=_exponents(_STD, depth=(1, 1), width=(2, 2), B=(1, 1)),
        axis_vars=MLP_AXES,
    ),
}
