"""The gated recurrent unit, exactly as ``torch.nn.GRU`` defines it (Cho et al. 2014).

    r  = sig(W_ir x + b_ir + W_hr h + b_hr)
    z  = sig(W_iz x + b_iz + W_hz h + b_hz)
    g  = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * g + z * h                             h_0 = 0

Layout (PyTorch's, so weights copy one to one from ``torch.nn.GRU``'s
``weight_ih_l0`` etc.): ``weight_ih`` (3n, m) and ``weight_hh`` (3n, n) stack
the gates r|z|n in rows, ``bias_ih`` and ``bias_hh`` (3n) are kept apart
because b_hn sits inside r * (...) and gets its own gradient. Cho, van
Merrienboer, Gulcehre, Bahdanau, Bougares, Schwenk & Bengio 2014, "Learning
phrase representations using RNN encoder-decoder for statistical machine
translation", eqs. 5-8 (PyTorch applies r after W_hn, as above; THEORY.md,
"Gated cells"). The readout and loss are those of every cell (kernels/model.py).

Forward step (G = 3 gate blocks): the schedule hands the cell a = W_ih x
(3n wide, no bias) and r_hh = W_hh h (3n wide, no bias); the cell computes the
gates and h' = g + z (h - g), the same number as (1 - z) g + z h in one
multiply fewer. Stored per step beside h': r, z, g and hn = W_hn h + b_hn.

Backward step, from the error dh at h' (readout plus the future):

    dg   = dh (1 - z)           da_n = dg (1 - g^2)           (pre-tanh of g)
    dhn  = da_n r               da_r = da_n hn r (1 - r)
    da_z = dh (h - g) z (1 - z)
    error at h = z dh  +  W_hh^T (da_r | da_z | dhn)

so the pre-activation errors differ on the two sides: W_hh and b_hh see
(da_r | da_z | dhn), W_ih and b_ih see (da_r | da_z | da_n).

RTRL (the immediate Jacobian, for kernels/rtrl_gru.py): every gate row k of
every block (weights and both biases) reaches only unit k of h' in one step, so
dh'/dtheta (immediate) has one non-zero row per parameter row, as for the Elman
cell. With the pre-activations a_r = W_ir x + b_ir + W_hr h + b_hr, a_z alike,
a_n = W_in x + b_in and hn = W_hn h + b_hn, unit k's factors are

    dh'_k/da_r,k = (1 - z_k)(1 - g_k^2) hn_k r_k (1 - r_k)    rows k of W_ir, b_ir, W_hr, b_hr
    dh'_k/da_z,k = (h_k - g_k) z_k (1 - z_k)                   rows k of W_iz, b_iz, W_hz, b_hz
    dh'_k/da_n,k = (1 - z_k)(1 - g_k^2)                        rows k of W_in, b_in
    dh'_k/dhn_k  = (1 - z_k)(1 - g_k^2) r_k                    rows k of W_hn, b_hn

each times the row's input (x for a W_i. row, h for a W_h. row, 1 for a bias);
the state Jacobian is dense: dh'/dh = diag(z) + diag(dh'/da_r) W_hr +
diag(dh'/da_z) W_hz + diag(dh'/dhn) W_hn.
P = 3n (n + m + 2); exact RTRL costs ~ 3 n^4 per step (THEORY.md).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import jit
from .._math import sigmoid, tanh
from ..costs import Term
from ._common import GRU, Cell, Weights
from ._gated import check_gated, init_gated

NAME = "gru"
GATES = 3
STORED = 4  # r, z, g, hn
GATE_NAMES = "r|z|n"


class GRUParams(NamedTuple):
    """Parameters of the GRU network in ``torch.nn.GRU``'s layout; gradients come back in it."""

    weight_ih: np.ndarray  # (3n, m) gates r|z|n stacked in rows
    weight_hh: np.ndarray  # (3n, n)
    bias_ih: np.ndarray  # (3n,)
    bias_hh: np.ndarray  # (3n,)
    W_out: np.ndarray  # (p, n) readout
    b_out: np.ndarray  # (p,)


def init_gru(n_in, n_hidden, n_out, seed=0, dtype=np.float64) -> GRUParams:
    """Random GRU parameters: every weight and bias U(-1/sqrt(n), 1/sqrt(n)), as PyTorch draws them.

    Parameters
    ----------
    n_in, n_hidden, n_out : int
        Input size m, state size n and output size p; each must be >= 1.
    seed : int
        Seed of the ``numpy.random.default_rng`` stream.
    dtype : float32 or float64
    """
    return GRUParams(*init_gated(GATES, n_in, n_hidden, n_out, seed, dtype))


CELL = Cell(NAME, GRU, GATES, STORED, 1.0)


def check(params):
    """Validate GRU parameters; return ``(Cell, Weights, dtype)``."""
    weights, dtype = check_gated(params, GRUParams, GATES, GATE_NAMES)
    return CELL, weights, dtype


def as_params(g: Weights, cell: Cell) -> GRUParams:
    return GRUParams(*g)


@jit
def forward_step(a, r, b_ih, b_hh, h_prev, h_new, x_new):
    """Gates from a = W_ih x and r = W_hh h (3n wide each, no bias); h_new = h',
    x_new = (r, z, g, hn), the values the backward step reads. r is scratch: the
    schedule's GEMM refills it every step.

    Passes over a row, each reading some arrays and writing another, rather than
    one pass doing it all: LLVM vectorises kernels/_math.py's sigmoid and tanh only
    in a loop that writes a single array which it does not also read (a loop that
    writes two, or updates in place, runs them as scalar code), and every loop
    runs from 0 (``range(n, 2 * n)`` is not vectorised either: Numba wraps negative
    indices, and k could be one). Measured at n = 64, B = 16: 108 ns a unit in one
    pass, 5 ns in these.
    """
    B, n = h_new.shape
    for b in range(B):
        ab = a[b]
        rb = r[b]
        xb = x_new[b]
        for k in range(2 * n):  # r | z
            xb[k] = sigmoid(ab[k] + b_ih[k] + rb[k] + b_hh[k])
        for k in range(n):  # hn = W_hn h + b_hn
            xb[3 * n + k] = rb[2 * n + k] + b_hh[2 * n + k]
        for k in range(n):  # g's pre-activation W_in x + b_in + r hn, into r
            rb[2 * n + k] = ab[2 * n + k] + b_ih[2 * n + k] + xb[k] * xb[3 * n + k]
        for k in range(n):
            xb[2 * n + k] = tanh(rb[2 * n + k])
        hp = h_prev[b]
        hb = h_new[b]
        for k in range(n):  # h' = g + z (h - g)
            g = xb[2 * n + k]
            hb[k] = g + xb[n + k] * (hp[k] - g)


@jit
def backward_step(dh, delta, h_prev, x_new, d, dx, carry):
    """From the error dh + delta at h': d = (da_r | da_z | dhn) for W_hh and b_hh,
    dx = (da_r | da_z | da_n) for W_ih and b_ih, carry = z (dh + delta), the error at h
    that bypasses W_hh."""
    B, n = dh.shape
    for b in range(B):
        for k in range(n):
            e = dh[b, k] + delta[b, k]
            r_g = x_new[b, k]
            z_g = x_new[b, n + k]
            g = x_new[b, 2 * n + k]
            hn = x_new[b, 3 * n + k]
            da_n = e * (1.0 - z_g) * (1.0 - g * g)
            da_r = da_n * hn * r_g * (1.0 - r_g)
            da_z = e * (h_prev[b, k] - g) * z_g * (1.0 - z_g)
            d[b, k] = da_r
            d[b, n + k] = da_z
            d[b, 2 * n + k] = da_n * r_g
            dx[b, k] = da_r
            dx[b, n + k] = da_z
            dx[b, 2 * n + k] = da_n
            carry[b, k] = z_g * e


def forward_flops(cell: Cell, steps: int, B: int, n: int) -> list[Term]:
    """FLOPs of ``steps`` pointwise forward steps: r, z 4 each (3 adds, sigmoid), hn 1,
    g 4 (add, multiply, add, tanh), h' 3."""
    return [Term(16 * steps * B * n, {"steps": 1, "B": 1, "n": 1})]


def backward_flops(cell: Cell, steps: int, B: int, n: int) -> list[Term]:
    """FLOPs of ``steps`` pointwise backward steps: e 1, da_n 5, da_r 4, da_z 5, dhn 1, carry 1."""
    return [Term(17 * steps * B * n, {"steps": 1, "B": 1, "n": 1})]
