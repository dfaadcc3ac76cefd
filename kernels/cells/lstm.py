"""The long short-term memory cell, exactly as ``torch.nn.LSTM`` defines it.

    i  = sig(W_ii x + b_ii + W_hi h + b_hi)       input gate
    f  = sig(W_if x + b_if + W_hf h + b_hf)       forget gate
    g  = tanh(W_ig x + b_ig + W_hg h + b_hg)      candidate
    o  = sig(W_io x + b_io + W_ho h + b_ho)       output gate
    c' = f * c + i * g
    h' = o * tanh(c')                             h_0 = c_0 = 0

The state is the pair (h, c); the readout sees h only. Layout (PyTorch's, so
weights copy one to one from ``torch.nn.LSTM``): ``weight_ih`` (4n, m) and
``weight_hh`` (4n, n) stack the gates i|f|g|o in rows; ``bias_ih`` and
``bias_hh`` (4n) are kept as two arrays as PyTorch keeps them, although they
enter the same sum and so get equal gradients. Hochreiter & Schmidhuber 1997,
"Long short-term memory" (the memory cell and its input and output gates);
Gers, Schmidhuber & Cummins 2000, "Learning to forget: continual prediction
with LSTM" (the forget gate); THEORY.md, "Gated cells".

Forward step (G = 4 gate blocks): from a = W_ih x and r = W_hh h (4n wide, no
bias), the gates, c' and h'. Stored per step beside h': c', i, f, g, o (c' is
the state; tanh(c') is recomputed in the backward step rather than stored).

Backward step, from the error dh at h' (readout plus the future) and dc, the
error at c' from the future:

    do  = dh tanh(c')                  dc  = dh o (1 - tanh(c')^2) + dc
    di  = dc g,  dg = dc i,  df = dc c         error at c = dc f
    da  = (di i (1 - i) | df f (1 - f) | dg (1 - g^2) | do o (1 - o))
    error at h = W_hh^T da

RTRL (the immediate Jacobian, for kernels/rtrl_lstm.py): the influence is of
the state (h, c), 2n x P. Gate row k of every block reaches only unit k of c'
and h' in one step: with the pre-activation errors above written per unit,

    dc'_k/da_i,k = g_k i_k (1 - i_k)     dc'_k/da_f,k = c_k f_k (1 - f_k)
    dc'_k/da_g,k = i_k (1 - g_k^2)       dh'_k/da_o,k = tanh(c'_k) o_k (1 - o_k)
    dh'_k/dc'_k  = o_k (1 - tanh(c'_k)^2)

each times the row's input (x for weight_ih, h for weight_hh, 1 for either
bias); the state Jacobian is dc'/dc = diag(f), dc'/dh = sum over i, f, g of
diag(dc'/da_.) W_h., and dh'/d(h, c) = diag(dh'/dc') dc'/d(h, c) plus
diag(dh'/da_o) W_ho for dh'/dh. P = 4n (n + m + 2); exact RTRL costs ~ 16 n^4
per step (THEORY.md).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import jit
from .._math import sigmoid, tanh
from ..costs import Term
from ._common import LSTM, Cell, Weights
from ._gated import check_gated, init_gated

NAME = "lstm"
GATES = 4
STORED = 5  # c, i, f, g, o
GATE_NAMES = "i|f|g|o"


class LSTMParams(NamedTuple):
    """Parameters of the LSTM network in ``torch.nn.LSTM``'s layout; gradients come back in it."""

    weight_ih: np.ndarray  # (4n, m) gates i|f|g|o stacked in rows
    weight_hh: np.ndarray  # (4n, n)
    bias_ih: np.ndarray  # (4n,)
    bias_hh: np.ndarray  # (4n,)
    W_out: np.ndarray  # (p, n) readout
    b_out: np.ndarray  # (p,)


def init_lstm(n_in, n_hidden, n_out, seed=0, dtype=np.float64) -> LSTMParams:
    """Random LSTM parameters: every weight and bias U(-1/sqrt(n), 1/sqrt(n)), as PyTorch does.

    Parameters
    ----------
    n_in, n_hidden, n_out : int
        Input size m, state size n and output size p; each must be >= 1.
    seed : int
        Seed of the ``numpy.random.default_rng`` stream.
    dtype : float32 or float64
    """
    return LSTMParams(*init_gated(GATES, n_in, n_hidden, n_out, seed, dtype))


CELL = Cell(NAME, LSTM, GATES, STORED, 1.0)


def check(params):
    """Validate LSTM parameters; return ``(Cell, Weights, dtype)``."""
    weights, dtype = check_gated(params, LSTMParams, GATES, GATE_NAMES)
    return CELL, weights, dtype


def as_params(g: Weights, cell: Cell) -> LSTMParams:
    """The kernels accumulate one bias gradient; both biases get it (they enter one sum)."""
    g.bias_hh[:] = g.bias_ih
    return LSTMParams(*g)


@jit
def forward_step(a, r, b_ih, b_hh, x_prev, h_new, x_new):
    """Gates from a = W_ih x and r = W_hh h (4n wide each, no bias) and c from x_prev;
    h_new = h', x_new = (c', i, f, g, o).

    Passes over a row, each reading some arrays and writing another, rather than
    one pass doing it all: LLVM vectorises kernels/_math.py's sigmoid and tanh only
    in a loop that writes a single array which it does not also read, and that runs
    from 0 (gru.py).
    """
    B, n = h_new.shape
    for b in range(B):
        ab = a[b]
        rb = r[b]
        xb = x_new[b]
        for k in range(2 * n):  # i | f
            xb[n + k] = sigmoid(ab[k] + b_ih[k] + rb[k] + b_hh[k])
        for k in range(n):  # g
            j = 2 * n + k
            xb[3 * n + k] = tanh(ab[j] + b_ih[j] + rb[j] + b_hh[j])
        for k in range(n):  # o
            j = 3 * n + k
            xb[4 * n + k] = sigmoid(ab[j] + b_ih[j] + rb[j] + b_hh[j])
        cp = x_prev[b]
        hb = h_new[b]
        for k in range(n):  # c' = f c + i g, first into h' (a loop that reads x_new
            hb[k] = xb[2 * n + k] * cp[k] + xb[n + k] * xb[3 * n + k]  # and writes it
        for k in range(n):  # is not vectorised)
            xb[k] = hb[k]
        for k in range(n):  # h' = o tanh(c')
            hb[k] = xb[4 * n + k] * tanh(xb[k])


@jit
def backward_step(dh, delta, delta_c, x_prev, x_new, d):
    """From the error dh + delta at h' and delta_c at c': d = (da_i | da_f | da_g | da_o)
    for both weight matrices and both biases; delta_c becomes the error at c.
    tanh(c') has a loop of its own that writes d's o block and reads x_new only, as in
    forward_step; in one pass with the rest it ran as scalar code (26 ns a unit at
    n = 256, B = 32, against 5 ns in these passes)."""
    B, n = dh.shape
    for b in range(B):
        xb = x_new[b]
        db = d[b]
        dcb = delta_c[b]
        dhb = dh[b]
        eb = delta[b]
        for k in range(n):  # tanh(c'), the forward step's bit for bit, in d's o block
            db[3 * n + k] = tanh(xb[k])
        for k in range(n):  # dc = e o (1 - tanh(c')^2) + delta_c, in d's i block
            tc = db[3 * n + k]
            db[k] = (dhb[k] + eb[k]) * xb[4 * n + k] * (1.0 - tc * tc) + dcb[k]
        for k in range(n):  # da_o = e tanh(c') o (1 - o)
            o_g = xb[4 * n + k]
            db[3 * n + k] = (dhb[k] + eb[k]) * db[3 * n + k] * o_g * (1.0 - o_g)
        for k in range(n):  # the error at c: dc f
            dcb[k] = db[k] * xb[2 * n + k]
        cp = x_prev[b]
        for k in range(n):  # da_f = dc c f (1 - f)
            f_g = xb[2 * n + k]
            db[n + k] = db[k] * cp[k] * f_g * (1.0 - f_g)
        for k in range(n):  # da_g = dc i (1 - g^2)
            g = xb[3 * n + k]
            db[2 * n + k] = db[k] * xb[n + k] * (1.0 - g * g)
        for k in range(n):  # da_i = dc g i (1 - i)
            i_g = xb[n + k]
            db[k] = db[k] * xb[3 * n + k] * i_g * (1.0 - i_g)


def forward_flops(cell: Cell, steps: int, B: int, n: int) -> list[Term]:
    """FLOPs of ``steps`` pointwise forward steps: four gates of 4 (3 adds, activation),
    c' 3, h' 2 (tanh, multiply)."""
    return [Term(21 * steps * B * n, {"steps": 1, "B": 1, "n": 1})]


def backward_flops(cell: Cell, steps: int, B: int, n: int) -> list[Term]:
    """FLOPs of ``steps`` pointwise backward steps: e 1, tanh(c') 1, dc 5, error at c 1,
    da_i 4, da_f 4, da_g 4, da_o 4."""
    return [Term(24 * steps * B * n, {"steps": 1, "B": 1, "n": 1})]
