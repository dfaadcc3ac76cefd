"""Validation and initialisation shared by the gated cells (PyTorch's parameter layout).

A gated cell with G gate blocks has ``weight_ih`` (G n, m), ``weight_hh``
(G n, n), ``bias_ih`` and ``bias_hh`` (G n,), and the readout ``W_out`` (p, n),
``b_out`` (p,): six arrays, in that order, in the cell's own NamedTuple.
"""

from __future__ import annotations

import numpy as np

from .._validate import check_array, check_dtype, check_shape, check_size
from ._common import Weights

FIELDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "W_out", "b_out")
LAYOUTS = {1: "Elman (n rows)", 3: "GRU (3n rows r|z|n)", 4: "LSTM (4n rows i|f|g|o)"}


def init_gated(G, n_in, n_hidden, n_out, seed, dtype):
    """Six arrays, every weight and bias U(-1/sqrt(n), 1/sqrt(n)) as ``torch.nn.GRU``/``LSTM``
    and ``torch.nn.Linear(n, p)`` draw them, in field order from one seeded stream."""
    m = check_size("n_in", n_in)
    n = check_size("n_hidden", n_hidden)
    p = check_size("n_out", n_out)
    dtype = check_dtype("dtype", dtype)
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(n)

    def draw(*shape):
        return rng.uniform(-bound, bound, size=shape).astype(dtype)

    return draw(G * n, m), draw(G * n, n), draw(G * n), draw(G * n), draw(p, n), draw(p)


def check_gated(params, params_type, G, gate_names):
    """The six arrays of a gated cell, checked against each other; returns (Weights, dtype)."""
    name = params_type.__name__
    if not isinstance(params, params_type):
        raise TypeError(f"params must be bpttbench.{name}, got {type(params).__name__}")
    W_hh = check_array("params.weight_hh", params.weight_hh, 2)
    dtype = W_hh.dtype
    W_ih, _, b_ih, b_hh, W_out, b_out = (
        check_array(f"params.{f}", a, 1 if f.startswith("b") else 2, dtype)
        for f, a in zip(FIELDS, params, strict=True)
    )
    rows, n = W_hh.shape
    if rows != G * n:
        other = next((g for g in LAYOUTS if g != G and rows == g * n), None)
        hint = f"; {rows} x {n} is the {LAYOUTS[other]} layout" if other else ""
        raise ValueError(
            f"params.weight_hh must have shape ({G}n, n) with the gates {gate_names} stacked "
            f"in rows ({name}), got {W_hh.shape}{hint}"
        )
    if W_ih.shape[0] != G * n:
        raise ValueError(
            f"params.weight_ih must have shape ({G * n}, m): {G}n rows, gates {gate_names}, "
            f"to match weight_hh {W_hh.shape}; got {W_ih.shape}"
        )
    check_shape("params.bias_ih", b_ih, (G * n,))
    check_shape("params.bias_hh", b_hh, (G * n,))
    if W_out.shape[1] != n:
        raise ValueError(
            f"params.W_out must have shape (p, {n}) to match weight_hh {W_hh.shape}, "
            f"got {W_out.shape}"
        )
    check_shape("params.b_out", b_out, (W_out.shape[0],))
    if min(W_ih.shape + W_out.shape) < 1:
        raise ValueError("params must have at least one input, hidden and output unit")
    return Weights(W_ih, W_hh, b_ih, b_hh, W_out, b_out), dtype
