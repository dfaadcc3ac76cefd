"""The models: an Elman tanh RNN with a linear readout, and a tanh MLP.

    a_t    = W_ih x_t + W_hh h_{t-1} + b_h        h_0 = 0
    h_t    = tanh(a_t)
    yhat_t = W_out h_t + b_out
    L      = 1/2 sum_t sum_b || yhat_t,b - y_t,b ||^2

This is ``torch.nn.RNN(nonlinearity="tanh")`` followed by ``torch.nn.Linear``,
with the two PyTorch biases summed into ``b_h``. The MLP of ``sizes =
[w_0, ..., w_L]`` has tanh on its hidden layers, a linear output and the same
half sum of squares over the batch.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from ._validate import check_dtype, check_size


class RNNParams(NamedTuple):
    """Parameters of the Elman RNN; gradients come back in the same type."""

    W_ih: np.ndarray  # (n, m) input to hidden
    W_hh: np.ndarray  # (n, n) hidden to hidden
    b_h: np.ndarray  # (n,)   hidden bias
    W_out: np.ndarray  # (p, n) hidden to output
    b_out: np.ndarray  # (p,)   output bias


class MLPParams(NamedTuple):
    """Parameters of the MLP: ``weights[l]`` is (w_{l+1}, w_l), ``biases[l]`` is (w_{l+1},)."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]


def init_rnn(n_in, n_hidden, n_out, seed=0, dtype=np.float64) -> RNNParams:
    """Random RNN parameters, uniform in +-1/sqrt(n_hidden) as ``torch.nn.RNN`` draws them.

    Parameters
    ----------
    n_in, n_hidden, n_out : int
        Input size m, state size n and output size p; each must be >= 1.
    seed : int
        Seed of the ``numpy.random.default_rng`` stream.
    dtype : float32 or float64
    """
    m = check_size("n_in", n_in)
    n = check_size("n_hidden", n_hidden)
    p = check_size("n_out", n_out)
    dtype = check_dtype("dtype", dtype)
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(n)

    def draw(*shape):
        return rng.uniform(-bound, bound, size=shape).astype(dtype)

    return RNNParams(draw(n, m), draw(n, n), draw(n), draw(p, n), draw(p))


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
