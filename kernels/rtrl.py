"""Real-time recurrent learning (Williams & Zipser 1989).

Forward-mode accumulation of the influence matrix J_t = dh_t / dtheta (n x P)
over the recurrent parameters theta = (W_hh, W_ih, b_h), P = n (n + m + 1):

    J_t   = diag(1 - h_t^2) (W_hh J_{t-1} + M_t),        J_0 = 0
    dL/dtheta += c_t^T J_t,                              c_t = W_out^T (yhat_t - y_t)

The readout parameters get their gradient directly at every step
(e_t h_t^T and e_t). No state history is kept: the algorithm is online.

Structure of the immediate Jacobian M_t = da_t / dtheta: a_t,i depends on
row i of (W_hh | W_ih | b_h) only, through z_t = (h_{t-1}, x_t, 1). So J is
stored as n blocks, one per parameter row k, each an (n x r) matrix with
r = n + m + 1:

    J[k][i, c] = dh_t,i / dtheta[k, c]
    J[k] <- diag(1 - h_t^2) (W_hh J[k] + e_k z_t^T)

M_t is never materialised: it adds z_t to row k of block k. Each block update
is one (n x n) x (n x r) GEMM into a scratch block, then one fused pass that
adds z_t, scales by 1 - h_t^2, writes the block back and accumulates the
gradient row c_t^T J[k]. The scratch is one block, so the memory is the
influence matrix itself (n P numbers per sequence), not twice it.

Costs: time Theta(n^4 B) per step, Theta(T n^4 B) per sequence; memory
Theta(n^3 B), independent of T (Williams & Zipser 1989, "A learning algorithm
for continually running fully recurrent neural networks"; Menick et al. 2021,
"Practical real time recurrent learning with a sparse approximation").
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit
from ._validate import check_rnn_problem
from .costs import Term
from .model import RNNParams


@jit
def _rtrl(xs, ys, W_ih, W_hh, b_h, W_out, b_out, J, G, scratch, h_prev, h, a, z, c, d, e, grads):
    T, B, m = xs.shape
    n = W_hh.shape[0]
    p = W_out.shape[0]
    g_W_out, g_b_out = grads
    loss = 0.0
    h_prev[:] = 0.0
    J[:] = 0.0
    for s in range(T):
        # Forward: a_t = W_ih x_t + W_hh h_{t-1} + b_h, h_t = tanh(a_t).
        np.dot(xs[s], W_ih.T, h)
        np.dot(h_prev, W_hh.T, a)
        for b in range(B):
            for i in range(n):
                h[b, i] = math.tanh(h[b, i] + a[b, i] + b_h[i])
        for b in range(B):
            # Readout error e_t and the error at the state, c_t = W_out^T e_t.
            for q in range(p):
                yhat = b_out[q]
                for j in range(n):
                    yhat += W_out[q, j] * h[b, j]
                e[q] = yhat - ys[s, b, q]
                loss += e[q] * e[q]
                g_b_out[q] += e[q]
            c[:] = 0.0
            for q in range(p):
                for j in range(n):
                    g_W_out[q, j] += e[q] * h[b, j]
                    c[j] += e[q] * W_out[q, j]
            # z_t = (h_{t-1}, x_t, 1): the non-zero row of each block of M_t.
            z[:n] = h_prev[b]
            z[n : n + m] = xs[s, b]
            z[n + m] = 1.0
            for i in range(n):
                d[i] = 1.0 - h[b, i] * h[b, i]  # tanh'(a_t)
            for k in range(n):
                block = J[b, k]
                np.dot(W_hh, block, scratch)  # W_hh J_{t-1}[k]: the n^4 work
                for col in range(z.shape[0]):
                    scratch[k, col] += z[col]  # + M_t[k]
                g_row = G[k]
                for i in range(n):
                    d_i = d[i]
                    c_i = c[i]
                    for col in range(block.shape[1]):
                        v = d_i * scratch[i, col]
                        block[i, col] = v
                        g_row[col] += c_i * v
        h_prev[:] = h
    return 0.5 * loss


def rtrl(params, xs, ys):
    """Loss and exact gradient of the Elman RNN by real-time recurrent learning.

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
        dL/dtheta, same shapes and dtype as ``params``; equal to BPTT's.
    """
    (W_ih, W_hh, b_h, W_out, b_out), xs, ys = check_rnn_problem(params, xs, ys)
    _, B, m = xs.shape
    n, p = W_hh.shape[0], W_out.shape[0]
    r = n + m + 1
    dt = W_hh.dtype
    J = np.empty((B, n, n, r), dt)  # the influence matrix, n x P per sequence
    G = np.zeros((n, r), dt)  # gradient of (W_hh | W_ih | b_h), row by row
    grads = (np.zeros_like(W_out), np.zeros_like(b_out))
    loss = _rtrl(
        xs, ys, W_ih, W_hh, b_h, W_out, b_out, J, G,
        np.empty((n, r), dt), np.empty((B, n), dt), np.empty((B, n), dt), np.empty((B, n), dt),
        np.empty(r, dt), np.empty(n, dt), np.empty(n, dt), np.empty(p, dt), grads,
    )  # fmt: skip
    g = RNNParams(
        W_ih=G[:, n : n + m].copy(), W_hh=G[:, :n].copy(), b_h=G[:, n + m].copy(),
        W_out=grads[0], b_out=grads[1],
    )  # fmt: skip
    return float(loss), g


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``rtrl`` call."""
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    r = n + m + 1
    TB = {"T": 1, "B": 1}
    return [
        # Influence update per step and sequence: n block GEMMs (2 n^2 r each),
        # + z (r), and the fused pass: scale, and accumulate the gradient (3 n r).
        Term(T * B * 2 * n**3 * n, {**TB, "n": 4}),
        Term(T * B * 2 * n**3 * (m + 1), {**TB, "n": 3, "m": 1}),
        Term(T * B * (3 * n * n * r + n * r), {**TB, "n": 3}),
        Term(T * B * (2 * n * m + 2 * n * n + 3 * n), {**TB, "n": 2}),  # forward
        Term(T * B * 2 * n, {**TB, "n": 1}),  # 1 - h^2
        Term(T * B * (6 * p * n + 4 * p), {**TB, "n": 1, "p": 1}),  # readout, g_W_out, c_t
        Term(1),  # loss * 0.5
    ]


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``rtrl`` call: the influence matrix and little else."""
    B, n, m, p = (size[k] for k in ("B", "n", "m", "p"))
    r = n + m + 1
    return [
        Term(B * n * n * n * itemsize, {"B": 1, "n": 3}),  # J, W_hh part
        Term(B * n * n * (m + 1) * itemsize, {"B": 1, "n": 2}),  # J, W_ih and b_h part
        Term(3 * n * r * itemsize, {"n": 2}),  # G, its copy returned as grads, scratch block
        Term((3 * B * n + r + 2 * n + p) * itemsize, {"B": 1, "n": 1}),  # states and vectors
        Term((p * n + p) * itemsize, {"n": 1}),  # readout gradients
    ]
