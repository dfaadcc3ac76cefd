"""Backpropagation through time (epochwise BPTT), for every cell.

Run the whole sequence forward storing every state h_1 .. h_T (and what the
cell's backward step needs), then one backward pass from T to 1. The error at
h_t is the sum of the error from the readout at t and the error flowing back
from h_{t+1}; for the Elman cell:

    dh_t  = W_out^T (yhat_t - y_t) + W_hh^T da_{t+1}
    da_t  = dh_t * (1 - h_t^2)
    dL/dW_hh = sum_t da_t h_{t-1}^T,  dL/dW_ih = sum_t da_t x_t^T,  dL/db_h = sum_t da_t

and for a gated cell the same with its G gate blocks of pre-activation errors
(kernels/cells/gru.py, lstm.py). The schedule is kernels/_sweeps.py's forward
and backward sweeps, once each over the whole sequence.

Costs: time Theta(T n^2 B) for every cell (G^2-fold constants, same
exponents); memory Theta(T n B + P), the stored states: (1 + K) n B numbers a
step, K = 0 (Elman), 4 (GRU: r, z, g, hn), 5 (LSTM: c, i, f, g, o). (Werbos
1990; Williams & Zipser 1995, "Gradient-based learning algorithms for
recurrent networks and their computational complexity".)
"""

from __future__ import annotations

import math

from . import _batch_parallel, cells
from ._batch_parallel import batch_parts
from ._jit import jit
from ._sweeps import (
    Buffers,
    backward_flops,
    backward_sweep,
    chunk_bytes,
    chunk_powers,
    chunk_steps,
    forward_flops,
    forward_sweep,
    gradient_bytes,
    make_buffers,
    state_bytes,
    zero_grads,
)
from ._validate import all_finite, check_result
from .cells import Weights
from .costs import Term


@jit
def _bptt(cell, alpha, xs, ys, w, buf, g):
    w, buf, g = Weights(*w), Buffers(*buf), Weights(*g)  # named again (see _sweeps.py)
    T = xs.shape[0]
    # H[0] = h_0 = 0 (and c_0 = 0); the forward sweep fills H[1..T]. buf.D doubles
    # as the forward sweep's input-projection scratch: the two sweeps never overlap.
    buf.H[0] = 0.0
    buf.X[0] = 0.0
    forward_sweep(cell, alpha, xs, w, buf, 0, 0, T)
    loss = backward_sweep(cell, alpha, xs, ys, w, buf, g, 0, 0, T, 0)
    return loss, all_finite(g)


def bptt(params, xs, ys):
    """Loss and exact gradient by backpropagation through time.

    Parameters
    ----------
    params : RNNParams, GRUParams or LSTMParams
        The cell is the parameters' type (an RNNParams's ``alpha`` is its leak).
    xs : array (T, B, m) or (T, m)
    ys : array (T, B, p) or (T, p)

    Returns
    -------
    loss : float
        1/2 sum_t sum_b ||yhat_t,b - y_t,b||^2
    grads : the type of ``params``
        dL/dtheta, same shapes and dtype as ``params``.
    """
    cell, w, xs, ys = cells.check_problem(params, xs, ys)
    T, B, m = xs.shape
    # threads > 1: batch blocks in parallel (kernels/_batch_parallel.py)
    if (parts := batch_parts(B, w.W_out.shape[1], m, w.W_out.shape[0])) > 1:
        return _batch_parallel.bptt(parts, cell, w, xs, ys)
    p, n = w.W_out.shape
    dt = w.W_out.dtype
    # Every state: the Theta(T n B) memory of BPTT.
    buf = make_buffers(cell, T + 1, B, n, m, p, chunk_steps(B, T), dt)
    g = zero_grads(w)
    loss, finite = _bptt(cell.id, cell.alpha, xs, ys, tuple(w), tuple(buf), tuple(g))
    grads = cells.as_params(g, cell)
    if not (finite and math.isfinite(loss)):
        check_result("bptt", loss, grads, dt)  # raises, naming what overflowed
    return float(loss), grads


def _cell(size) -> cells.Cell:
    return cells.cell_named(size.get("cell", "elman"))


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``bptt`` call (``size["cell"]``: elman, gru or lstm; default elman)."""
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    cell = _cell(size)
    sweeps = forward_flops(cell, T, B, n, m)
    sweeps += backward_flops(cell, T, T, B, n, m, p, chunk_steps(B, T))
    # One sweep of T steps, every step an error step.
    return [
        t.substitute("steps", {"T": 1}).substitute("err_steps", {"T": 1}).substitute("sweeps", {})
        for t in sweeps
    ]


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``bptt`` call: stored states, chunk scratch, gradients."""
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    cell = _cell(size)
    per_state = state_bytes(cell, B, n, itemsize)
    return [
        Term(T * per_state, {"T": 1, "B": 1, "n": 1}),  # h_1 .. h_T and the cell's values
        Term(per_state, {"B": 1, "n": 1}),  # h_0 (c_0)
        *chunk_bytes(cell, B, n, m, p, chunk_steps(B, T), chunk_powers(B, T, {"T": 1}), itemsize),
        *gradient_bytes(cell, n, m, p, itemsize),
    ]
