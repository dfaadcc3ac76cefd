"""The models: recurrent networks with a linear readout, and a tanh MLP.

A recurrent network is a cell (kernels/cells/: Elman with its leak, GRU,
LSTM) and a linear readout of its state h, under one loss:

    yhat_t = W_out h_t + b_out
    L      = 1/2 sum_t sum_b || yhat_t,b - y_t,b ||^2

The Elman cell, a_t = W_ih x_t + W_hh h_{t-1} + b_h, h_t = tanh(a_t), is
``torch.nn.RNN(nonlinearity="tanh")`` followed by ``torch.nn.Linear``, with the
two PyTorch biases summed into ``b_h``; ``RNNParams`` and ``init_rnn`` live
with it in kernels/cells/elman.py and are re-exported here. The MLP of
``sizes = [w_0, ..., w_L]`` has tanh on its hidden layers, a linear output
and the same half sum of squares over the batch.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from ._jit import jit
from ._validate import check_dtype, check_size
from .cells.elman import RNNParams, init_rnn

__all__ = ["MLPParams", "RNNParams", "init_mlp", "init_rnn"]


@jit(inline=True)
def readout_step(W_out, b_out, h, y, e, c, g_W_out, g_b_out, sq):
    """The readout at one step of one sequence, for the kernels that run forward in time.

    yhat = W_out h + b_out and e = yhat - y (written into ``e``); adds e h^T and e to
    the readout's gradients, writes c = W_out^T e (the loss's error at the state, what
    forward-mode gradients contract with) and returns sq + |e|^2, added in the order of
    the outputs so that a kernel's running loss keeps its bits.
    """
    p, n = W_out.shape
    for q in range(p):
        yhat = b_out[q]
        for i in range(n):
            yhat += W_out[q, i] * h[i]
        e[q] = yhat - y[q]
        sq += e[q] * e[q]
        g_b_out[q] += e[q]
    for i in range(n):
        c[i] = 0.0
    for q in range(p):
        for i in range(n):
            g_W_out[q, i] += e[q] * h[i]
            c[i] += e[q] * W_out[q, i]
    return sq


class MLPParams(NamedTuple):
    """Parameters of the MLP: ``weights[l]`` is (w_{l+1}, w_l), ``biases[l]`` is (w_{l+1},)."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]


def init_mlp(sizes, seed=0, dtype=np.float64) -> MLPParams:
    """Random MLP parameters for layer widths ``sizes = [w_0, ..., w_L]`` (L >= 1).

    Each layer is uniform in +-1/sqrt(fan_in), as ``torch.nn.Linear`` draws it.
    """
    try:
        widths = [check_size(f"sizes[{i}]", w) for i, w in enumerate(sizes)]
    except TypeError as err:
        if "sizes[" in str(err):
            raise
        raise TypeError(f"sizes must be a sequence of positive ints, got {sizes!r}") from None
    if len(widths) < 2:
        raise ValueError(f"sizes must hold at least 2 widths (input and output), got {sizes!r}")
    dtype = check_dtype("dtype", dtype)
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for fan_in, fan_out in itertools.pairwise(widths):
        bound = 1.0 / np.sqrt(fan_in)
        weights.append(rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(dtype))
        biases.append(rng.uniform(-bound, bound, size=fan_out).astype(dtype))
    return MLPParams(tuple(weights), tuple(biases))
