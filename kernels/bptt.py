"""Backpropagation through time (epochwise BPTT).

Run the whole sequence forward storing every state h_1 .. h_T, then one
backward pass from T to 1. The error at h_t is the sum of the error from the
readout at t and the error flowing back from h_{t+1}:

    dh_t  = W_out^T (yhat_t - y_t) + W_hh^T da_{t+1}
    da_t  = dh_t * (1 - h_t^2)
    dL/dW_hh = sum_t da_t h_{t-1}^T,  dL/dW_ih = sum_t da_t x_t^T,  dL/db_h = sum_t da_t

Costs: time Theta(T n^2 B); memory Theta(T n B + P), the stored states.
(Werbos 1990; Williams & Zipser 1995, "Gradient-based learning algorithms for
recurrent networks and their computational complexity".)
"""

from __future__ import annotations

import numpy as np

from ._jit import jit
from ._sweeps import backward_flops, backward_sweep, chunk_steps, forward_flops, forward_sweep
from ._validate import check_result, check_rnn_problem
from .costs import Term
from .model import RNNParams


@jit
def _bptt(xs, ys, W_ih, W_hh, b_h, W_out, b_out, H, D, E, delta, tmp_nn, tmp_nm, tmp_pn, grads):
    T = xs.shape[0]
    g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out = grads
    # H[0] = h_0 = 0; the forward sweep fills H[1..T]. D doubles as the
    # forward sweep's input-projection scratch: the two sweeps never overlap.
    H[0] = 0.0
    forward_sweep(xs, W_ih, W_hh, b_h, H, 0, 0, T, D)
    return backward_sweep(
        xs, ys, W_hh, W_out, b_out, H, 0, 0, T, 0,
        g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out, D, E, delta, tmp_nn, tmp_nm, tmp_pn,
    )  # fmt: skip


def bptt(params, xs, ys):
    """Loss and exact gradient of the Elman RNN by backpropagation through time.

    Parameters
    ----------
    params : RNNParams
    xs : array (T, B, m) or (T, m)
    ys : array (T, B, p) or (T, p)

    Returns
    -------
    loss : float
        1/2 sum_t sum_b ||yhat_t,b - y_t,b||^2
    grads : RNNParams
        dL/dtheta, same shapes and dtype as ``params``.
    """
    (W_ih, W_hh, b_h, W_out, b_out), xs, ys = check_rnn_problem(params, xs, ys)
    T, B, m = xs.shape
    n, p = W_hh.shape[0], W_out.shape[0]
    dt = W_hh.dtype
    C = chunk_steps(B, T)
    grads = tuple(np.zeros_like(a) for a in (W_ih, W_hh, b_h, W_out, b_out))
    H = np.empty((T + 1, B, n), dt)  # every state: the Theta(T n B) memory of BPTT
    loss = _bptt(
        xs, ys, W_ih, W_hh, b_h, W_out, b_out, H,
        np.empty((C, B, n), dt), np.empty((C, B, p), dt), np.empty((B, n), dt),
        np.empty((n, n), dt), np.empty((n, m), dt), np.empty((p, n), dt), grads,
    )  # fmt: skip
    g = RNNParams(*grads)
    check_result("bptt", loss, zip(g._fields, g, strict=True), dt)
    return float(loss), g


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``bptt`` call."""
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    sweeps = forward_flops(T, B, n, m) + backward_flops(T, T, B, n, m, p, chunk_steps(B, T))
    return [t.substitute("steps", {"T": 1}).substitute("err_steps", {"T": 1}) for t in sweeps]


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``bptt`` call: stored states, chunk scratch, gradients."""
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    C = chunk_steps(B, T)
    return [
        Term(T * B * n * itemsize, {"T": 1, "B": 1, "n": 1}),  # h_1 .. h_T
        Term(B * n * itemsize, {"B": 1, "n": 1}),  # h_0
        Term(C * B * (n + p) * itemsize + B * n * itemsize, {"B": 1, "n": 1}),  # D, E, delta
        Term(2 * (n * n + n * m + n * p) * itemsize, {"n": 2}),  # gradients and GEMM scratch
        Term((n + p) * itemsize, {"n": 1}),  # bias gradients
    ]
