"""Real-time recurrent learning (Williams & Zipser 1989), on the Elman cell with its leak.

Forward-mode accumulation of the influence matrix J_t = dh_t / dtheta (n x P)
over the recurrent parameters theta = (W_hh, W_ih, b_h), P = n (n + m + 1).
With the leak alpha (kernels/cells/elman.py; alpha = 1 is the plain cell) and
D_t = diag(1 - u_t^2), u_t = tanh(a_t):

    J_t   = ((1 - alpha) I + alpha D_t W_hh) J_{t-1} + alpha D_t M_t,      J_0 = 0
    dL/dtheta += c_t^T J_t,                              c_t = W_out^T (yhat_t - y_t)

(alpha = 1: J_t = diag(1 - h_t^2) (W_hh J_{t-1} + M_t)). The readout
parameters get their gradient directly at every step (e_t h_t^T and e_t). No
state history is kept: the algorithm is online.

Structure of the immediate Jacobian M_t = da_t / dtheta: a_t,i depends on
row i of (W_hh | W_ih | b_h) only, through z_t = (h_{t-1}, x_t, 1). So J is
stored as n blocks, one per parameter row k, each an (n x r) matrix with
r = n + m + 1:

    J[k][i, c] = dh_t,i / dtheta[k, c]
    J[k] <- alpha diag(1 - u_t^2) (W_hh J[k] + e_k z_t^T) + (1 - alpha) J[k]

M_t is never materialised: it adds z_t to row k of block k. K blocks are
stored side by side as an (n x K r) slab; each slab update is one GEMM
W_hh @ slab into a scratch slab, then one fused pass, while the slab is in
cache, that adds z_t, scales by alpha (1 - u_t^2), adds the leak's share of
the old slab, writes the slab back and accumulates the gradient rows
c_t^T J[k]. The scratch is one slab, so the memory is the influence matrix
itself (n P numbers per sequence) plus a fraction, not twice it.

Passes (kernels/_slabs.py): a slab's update needs only z_t, d_t and c_t of its
step. So the kernel runs the cell over a pass of up to STEPS_PER_PASS steps,
keeping those three vectors of each step, and then takes each slab through all
the pass's steps while it is in cache. Once n P B numbers outgrow the
32 MiB last-level cache (n ~ 160 at B = 1 on the reference machine), the influence
matrix crosses the memory bus once a pass instead of once a step. Within a
slab the steps run outside and the sequences inside, so each gradient row sums
over (t, b) in the order of the per-step kernel: the results are the same to
the bit.

The gated cells' exact RTRL (an influence of n x P for the GRU's h, 2n x P for
the LSTM's (h, c), P = G n (n + m + 2)) is other kernels, at the array level
(kernels/rtrl_gru.py, kernels/rtrl_lstm.py), to which ``rtrl`` dispatches
GRUParams and LSTMParams.

Threads: a pass's slab updates are independent of one another (slab g writes
J[:, g] and the gradient rows of its own blocks), so they run in parallel over
Numba's threads, each thread taking a fixed run of slabs for every sequence of
the batch, with a scratch slab of its own (kernels/_parallel.py: BLAS is then
held to one thread, so that the two levels do not oversubscribe the cores).
Each gradient row still sums over the batch in order: the result is the same,
bit for bit, at every thread count. The forward step and the readout, n^2 work,
stay serial.

Costs: time Theta(n^4 B) per step, Theta(T n^4 B) per sequence; memory
Theta(n^3 B), independent of T (a pass keeps 3 n + m + 1 numbers a step and
sequence, for at most STEPS_PER_PASS steps) (Williams & Zipser 1989, "A learning algorithm
for continually running fully recurrent neural networks"; Menick et al. 2021,
"Practical real time recurrent learning with a sparse approximation").
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import prange

from . import cells, rtrl_gru, rtrl_lstm
from ._jit import jit
from ._math import tanh
from ._parallel import one_blas_thread, parallel_parts
from ._slabs import blocks_per_slab, pass_length
from ._validate import check_result
from .costs import Term, monomial
from .model import readout_step


class Buffers(NamedTuple):
    """What the RTRL kernel writes besides the gradients."""

    J: np.ndarray  # (B, n / K, n, K, r) the influence matrix, as slabs of K blocks
    scratch: np.ndarray  # (parts, n, K, r) one slab per parallel part: W_hh @ J[b, g]
    h_prev: np.ndarray  # (B, n)
    h: np.ndarray  # (B, n)
    a: np.ndarray  # (B, n) W_hh h_{t-1}, then (leaky cell) u_t = tanh(a_t)
    z: np.ndarray  # (P, B, r) z_t = (h_{t-1}, x_t, 1), for each step of a pass
    c: np.ndarray  # (P, B, n) c_t = W_out^T e_t
    d: np.ndarray  # (P, B, n) alpha (1 - u_t^2)
    e: np.ndarray  # (p,) readout error


class Grads(NamedTuple):
    G: np.ndarray  # (n, r) gradient of (W_hh | W_ih | b_h), row by row
    W_out: np.ndarray  # (p, n)
    b_out: np.ndarray  # (p,)


@jit(inline=True)
def _slab_step(leaky, beta, W_hh, Jg, scratch, z, d, c, G, g, n, K, r):
    """One slab of one sequence: Jg <- alpha D (W_hh Jg + M_t) + (1 - alpha) Jg, G += c^T Jg."""
    # K blocks at once: W_hh (n x n) times an (n x K r) slab, the n^4 work.
    np.dot(W_hh, Jg.reshape(n, K * r), scratch.reshape(n, K * r))
    for kk in range(K):
        k = g * K + kk
        for col in range(r):
            scratch[k, kk, col] += z[col]  # + M_t: row k of block k
    # Fused pass while the slab is in cache: scale by tanh' (plus the
    # leak's share of the old slab), store, and accumulate c_t^T J[k].
    if leaky:
        for i in range(n):
            d_i = d[i]
            c_i = c[i]
            for kk in range(K):
                g_row = G[g * K + kk]
                for col in range(r):
                    v = d_i * scratch[i, kk, col] + beta * Jg[i, kk, col]
                    Jg[i, kk, col] = v
                    g_row[col] += c_i * v
    else:
        for i in range(n):
            d_i = d[i]
            c_i = c[i]
            for kk in range(K):
                g_row = G[g * K + kk]
                for col in range(r):
                    v = d_i * scratch[i, kk, col]
                    Jg[i, kk, col] = v
                    g_row[col] += c_i * v


@jit(parallel=True)
def _rtrl(alpha, xs, ys, w, buf, grads):
    # Plain tuples across the Python boundary, named again here (see kernels/_sweeps.py).
    w, buf, grads = cells.Weights(*w), Buffers(*buf), Grads(*grads)
    T = xs.shape[0]
    W_hh, G, scratch = w.weight_hh, grads.G, buf.scratch
    n_groups = buf.J.shape[1]
    n_parts = scratch.shape[0]
    n_steps_max = buf.z.shape[0]
    loss = 0.0
    # h_prev and J come in holding the state to start from (zero for a whole
    # sequence) and go out holding the final state, for a stream's next chunk.
    for s0 in range(0, T, n_steps_max):
        n_steps = min(n_steps_max, T - s0)
        # loss runs through the passes as one sum, in the order of the steps
        loss = _forward_pass(
            alpha, xs[s0 : s0 + n_steps], ys[s0 : s0 + n_steps], w, buf, grads, loss
        )
        # The n^4 work, in parallel over slabs: slab g writes J[:, g] and the
        # gradient rows of its own K blocks only, so the parts never share a
        # write, and each gradient row sums over (t, b) in the same order: the
        # result is the same, bit for bit, for every thread count. Part t takes a
        # contiguous run of slabs and its own scratch slab.
        if n_parts == 1:  # one thread: a plain loop, without a thread-pool launch per pass
            for g in range(n_groups):
                _slab_pass(alpha, W_hh, buf, G, scratch[0], g, n_steps)
        else:
            for t in prange(n_parts):
                for g in range(t * n_groups // n_parts, (t + 1) * n_groups // n_parts):
                    _slab_pass(alpha, W_hh, buf, G, scratch[t], g, n_steps)
    return 0.5 * loss


@jit(inline=True)
def _forward_pass(alpha, xs, ys, w, buf, grads, sq):
    """The cell and readout over a pass's steps; keeps z_t, d_t and c_t of each step.

    Returns ``sq`` plus the pass's squared errors; h_prev goes out holding the last h_t.
    """
    T, B, m = xs.shape
    W_ih, W_hh, b_h, W_out, b_out = w.weight_ih, w.weight_hh, w.bias_ih, w.W_out, w.b_out
    h_prev, h, a, e = buf.h_prev, buf.h, buf.a, buf.e
    g_W_out, g_b_out = grads.W_out, grads.b_out
    n = W_hh.shape[0]
    leaky = alpha != 1.0
    beta = 1.0 - alpha
    for j in range(T):
        z, c, d = buf.z[j], buf.c[j], buf.d[j]
        # Forward: a_t = W_ih x_t + W_hh h_{t-1} + b_h, h_t = tanh(a_t) (or the leaky update).
        np.dot(xs[j], W_ih.T, h)
        np.dot(h_prev, W_hh.T, a)
        if leaky:
            for b in range(B):
                for i in range(n):
                    u = tanh(h[b, i] + a[b, i] + b_h[i])
                    a[b, i] = u
                    h[b, i] = beta * h_prev[b, i] + alpha * u
        else:
            for b in range(B):
                for i in range(n):
                    h[b, i] = tanh(h[b, i] + a[b, i] + b_h[i])
        for b in range(B):
            # Readout error e_t and the error at the state, c_t = W_out^T e_t.
            sq = readout_step(W_out, b_out, h[b], ys[j, b], e, c[b], g_W_out, g_b_out, sq)
            # z_t = (h_{t-1}, x_t, 1): the non-zero row of each block of M_t.
            for i in range(n):
                z[b, i] = h_prev[b, i]
            for i in range(m):
                z[b, n + i] = xs[j, b, i]
            z[b, n + m] = 1.0
            if leaky:
                for i in range(n):
                    d[b, i] = alpha * (1.0 - a[b, i] * a[b, i])  # alpha tanh'(a_t)
            else:
                for i in range(n):
                    d[b, i] = 1.0 - h[b, i] * h[b, i]  # tanh'(a_t)
        for b in range(B):
            for i in range(n):
                h_prev[b, i] = h[b, i]
    return sq


@jit(inline=True)
def _slab_pass(alpha, W_hh, buf, G, scratch, g, n_steps):
    """Slab g of every sequence through the pass's n_steps steps, while it is in cache
    (B slabs, n K r numbers each)."""
    J, z, d, c = buf.J, buf.z, buf.d, buf.c
    B, _, n, K, r = J.shape
    leaky = alpha != 1.0
    beta = 1.0 - alpha
    # Steps outside, sequences inside: each gradient row sums over (t, b) in the
    # order of a kernel without passes, so the results are the same to the bit.
    for j in range(n_steps):
        for b in range(B):
            _slab_step(
                leaky, beta, W_hh, J[b, g], scratch, z[j, b], d[j, b], c[j, b], G, g, n, K, r
            )


def _blocks_per_gemm(n: int, r: int) -> int:
    """Influence blocks updated by one GEMM: the largest divisor K of n with K r <= SLAB_COLS
    (kernels/_slabs.py says why a slab)."""
    return blocks_per_slab(n, r, SLAB_COLS)


# Columns of the slab one GEMM updates (see _blocks_per_gemm).
SLAB_COLS = 256


def rtrl(params, xs, ys):
    """Loss and exact gradient of the Elman RNN (with its leak) by real-time recurrent learning.

    Parameters
    ----------
    params : RNNParams, GRUParams or LSTMParams
        An RNNParams' ``alpha`` is the leak. The gated cells run their own
        kernels (kernels/rtrl_gru.py, kernels/rtrl_lstm.py), whose influence
        matrices are n x 3n(n + m + 2) and 2n x 4n(n + m + 2).
    xs : array (T, B, m) or (T, m)
    ys : array (T, B, p) or (T, p)

    Returns
    -------
    loss : float
        1/2 sum_t sum_b ||yhat_t,b - y_t,b||^2
    grads : the parameters' type
        dL/dtheta, same shapes and dtype as ``params``; equal to BPTT's.
    """
    cell, w, xs, ys = cells.check_problem(params, xs, ys)
    if cell.name in GATED:
        loss, grads = GATED[cell.name].rtrl(*w, xs, ys)
        g = cells.as_params(cells.Weights(*grads), cell)
        check_result("rtrl", loss, g, xs.dtype)
        return float(loss), g
    arrays = (w.weight_ih, w.weight_hh, w.bias_ih, w.W_out, w.b_out)
    return advance(start(arrays, xs.shape[1]), arrays, xs, ys, cell.alpha)


def start(arrays, B):
    """The state at t = 0 of ``B`` sequences: h_0 = 0 (B, n) and J_0 = 0 in the kernel's layout."""
    W_ih = arrays[0]
    n, m = W_ih.shape
    r = n + m + 1
    K = _blocks_per_gemm(n, r)
    # The influence matrix, n x P per sequence, as n / K slabs of K blocks:
    # J[b, g, i, kk, c] = dh_i / dtheta[g K + kk, c].
    return np.zeros((B, n), W_ih.dtype), np.zeros((B, n // K, n, K, r), W_ih.dtype)


def advance(state, arrays, xs, ys, alpha=1.0, steps_per_pass=None):
    """Run RTRL over checked ``xs``, ``ys`` from ``state`` = (h, J), left holding the final one.

    ``arrays`` are the five Elman arrays (W_ih, W_hh, b_h, W_out, b_out) and
    ``alpha`` the cell's leak; the gradient comes back as an RNNParams with it.
    ``steps_per_pass`` (default ``STEPS_PER_PASS``) is how many steps each slab
    runs through while it is in cache (kernels/_slabs.py).
    """
    W_ih, W_hh, b_h, W_out, b_out = arrays
    h_prev, J = state
    T, B, m = xs.shape
    n, p = W_hh.shape[0], W_out.shape[0]
    P = pass_length(T, steps_per_pass)
    r = n + m + 1
    dt = W_hh.dtype
    K = J.shape[3]
    parts = parallel_parts(J.shape[1])
    w = cells.Weights(W_ih, W_hh, b_h, np.empty(0, dt), W_out, b_out)
    buf = Buffers(
        J=J, scratch=np.empty((parts, n, K, r), dt), h_prev=h_prev,
        h=np.empty((B, n), dt), a=np.empty((B, n), dt),
        z=np.empty((P, B, r), dt), c=np.empty((P, B, n), dt), d=np.empty((P, B, n), dt),
        e=np.empty(p, dt),
    )  # fmt: skip
    grads = Grads(np.zeros((n, r), dt), np.zeros_like(W_out), np.zeros_like(b_out))
    with one_blas_thread(parts):
        loss = _rtrl(alpha, xs, ys, tuple(w), tuple(buf), tuple(grads))
    G = grads.G
    g = cells.RNNParams(
        W_ih=G[:, n : n + m].copy(), W_hh=G[:, :n].copy(), b_h=G[:, n + m].copy(),
        W_out=grads.W_out, b_out=grads.b_out, alpha=alpha,
    )  # fmt: skip
    check_result("rtrl", loss, g, dt)
    return float(loss), g


# The gated cells' exact RTRL: ``rtrl(weight_ih, ..., xs, ys)``, ``flops``, ``memory``.
class _Gated(NamedTuple):
    rtrl: object
    flops: object
    memory: object


GATED = {
    "gru": _Gated(rtrl_gru.rtrl_gru, rtrl_gru.flops, rtrl_gru.memory),
    "lstm": _Gated(rtrl_lstm.rtrl_lstm, rtrl_lstm.flops, rtrl_lstm.memory),
}


def _gated(size):
    """The gated cell's kernel module for ``size["cell"]``, or None for the Elman cell."""
    name = size.get("cell", "elman")
    cells.cell_named(name)  # an unknown name is a ValueError
    return GATED.get(name)


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``rtrl`` call, as monomials in T, B, n, m, p.

    Per step and sequence, with r = n + m + 1:

    - influence update: n block GEMMs, 2 n^2 r each: 2 n^3 r
    - + z (r per block) and the fused pass (scale, accumulate the gradient, 3 n r):
      3 n^2 r + n r
    - forward: W_ih x, W_hh h (2 n m + 2 n^2), two adds and tanh (3 n)
    - 1 - h^2: 2 n
    - readout, g_W_out, g_b_out and c_t: 6 p n + 4 p
    and 1 for the final 0.5 * loss.
    """
    if (gated := _gated(size)) is not None:
        return gated.flops(size)
    TB = {"T": 1, "B": 1}

    def t(coef, **powers):
        return monomial(size, coef, **TB, **powers)

    return [
        t(2, n=4), t(2, n=3, m=1), t(2, n=3),  # GEMMs, 2 n^3 r
        t(3, n=3), t(3, n=2, m=1), t(3, n=2),  # fused pass, 3 n^2 r
        t(1, n=2), t(1, n=1, m=1), t(1, n=1),  # + z, n r
        t(2, n=1, m=1), t(2, n=2), t(3, n=1),  # forward
        t(2, n=1),  # 1 - h^2
        t(6, n=1, p=1), t(4, p=1),  # readout, g_W_out, c_t
        Term(1),  # loss * 0.5
    ]  # fmt: skip


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``rtrl`` call: the influence matrix and little else."""
    if (gated := _gated(size)) is not None:
        return gated.memory(size, itemsize)
    n, m = size["n"], size["m"]
    r = n + m + 1
    P = pass_length(size["T"])

    def b(coef, **powers):
        return monomial(size, coef * itemsize, **powers)

    return [
        b(1, B=1, n=3), b(1, B=1, n=2, m=1), b(1, B=1, n=2),  # J: B n^2 r
        b(2, n=2), b(2, n=1, m=1), b(2, n=1),  # G and its copy returned as grads: 2 n r
        # The scratch slab: one per parallel part, counted here for one thread (each
        # further thread adds a slab, n K r numbers; the model must not depend on
        # the thread count of the process that reads it, a report's say).
        Term(n * _blocks_per_gemm(n, r) * r * itemsize, {"n": 2}),
        # states and vectors per sequence, 3 B n, and what a pass keeps of each of
        # its P = min(STEPS_PER_PASS, T) steps, P B (2 n + r); and e, p numbers
        b(3 + 3 * P, B=1, n=1), b(P, B=1, m=1), b(P, B=1), b(1, p=1),
        b(1, n=1, p=1), b(1, p=1),  # readout gradients
    ]  # fmt: skip
