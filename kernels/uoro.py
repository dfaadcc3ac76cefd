"""Unbiased Online Recurrent Optimization, UORO (Tallec & Ollivier 2018).

UORO keeps a rank-one estimate of the influence matrix, J_t ~ s~_t theta~_t^T,
with s~ (n) and theta~ (n x r) for the recurrent parameters of the leaky cell
(notation of ``_online.py``: d_t, z_t, A_t, c_t). Per step and batch element,
with nu in {-1, +1}^n drawn fresh (the random protocol of ``_online.py``) and
nu^T M_t = (nu * d_t) z_t^T the immediate Jacobian contracted with nu:

    rho0     = ratio(|theta~|, |A_t s~|),     rho1 = ratio(|nu^T M_t|, |nu|)
    s~      <- rho0 A_t s~ + rho1 nu,         A_t s~ = (1 - alpha) s~ + d_t * (W_hh s~)
    theta~  <- theta~ / rho0 + (nu * d_t) z_t^T / rho1
    dL/dtheta += (c_t . s~) theta~

E[nu nu^T] = I makes s~ theta~^T an unbiased estimate of J_t whatever the
positive factors rho0, rho1; these minimise its variance. Norms are Frobenius,
|nu^T M_t| = |d_t| |z_t| and |nu| = sqrt(n).

The kernel: A_t s~ of the whole batch is one GEMV (GEMM for B > 1); theta~ is
touched once per step, in one fused pass that rescales it, adds the rank-one
term and computes |theta~| for the next step's rho0 (kept in the state). The
gradient is blocked (``_online.STEPS_PER_BLOCK`` = k steps): with lambda_t =
1 / rho0_t and v_t = (nu_t * d_t) / rho1_t, theta~_t = lambda_t theta~_{t-1} +
v_t z_t^T, so over a block that starts from theta~_0

    sum_t (c_t . s~_t) theta~_t = (lambda_0 Q_0) theta~_0 + sum_tau Q_tau v_tau z_tau^T,
    Q_tau = (c_tau . s~_tau) + lambda_{tau+1} Q_{tau+1},    Q_{k-1} = (c . s~)_{k-1},

one (n x k) x (k x r) GEMM and one pass over G per block instead of a pass
over G at every step (a copy of theta~_0 is kept for it).

Costs: time Theta(n^2 B) per step (the W_hh products and the n r pass),
memory Theta(n^2 B): theta~ is n r numbers per batch element (Tallec &
Ollivier 2018, "Unbiased Online Recurrent Optimization", ICLR, sec. 3 and
Algorithm 1; Marschall, Cho & Savin 2020, JMLR 21(135), sec. 4.1).
"""

from __future__ import annotations

import math

import numpy as np

from . import _online
from ._jit import jit
from ._online import (
    carve,
    cell_step,
    fill_z,
    new_grads,
    pcg_random,
    ratio,
    rows_times_transpose,
    sign,
)
from ._validate import check_rnn_problem
from .costs import Term


@jit
def _uoro(
    xs, ys, weights, alpha, rng, h, s_tilde, theta_tilde, theta_0, theta_norm, scratch, block,
):  # fmt: skip
    W_ih, W_hh, b_h, W_out, b_out = weights
    h_new, d, c, e, As, nu, sq = scratch
    V, Z, lam, w, out = block
    T, B, m = xs.shape
    grads = new_grads(W_hh.shape[0], m, W_out.shape[0], W_hh.dtype)
    g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out = grads
    G = (g_W_hh, g_W_ih, g_b_h)  # G's row i: (g_W_hh[i], g_W_ih[i], g_b_h[i])
    fresh = True  # G not yet cleared: the call's first fold does it row by row
    n, r = theta_tilde.shape[1], theta_tilde.shape[2]
    k = Z.shape[1]
    nu_norm = math.sqrt(n)
    leak = 1.0 - alpha
    loss = 0.0
    j = 0  # steps recorded in the current block
    for t in range(T):
        loss += cell_step(
            xs[t], ys[t], W_ih, W_hh, b_h, W_out, b_out, alpha, h, h_new, d, c, e, g_W_out, g_b_out
        )
        rows_times_transpose(s_tilde, W_hh, As)  # W_hh s~ for every batch element
        for b in range(B):
            for i in range(n):
                nu[i] = sign(pcg_random(rng))
            z = Z[b, j]
            fill_z(h[b], xs[t, b], z)
            As_sq = 0.0
            d_sq = 0.0
            for i in range(n):
                x = leak * s_tilde[b, i] + d[b, i] * As[b, i]
                As[b, i] = x
                As_sq += x * x
                d_sq += d[b, i] * d[b, i]
            z_sq = 0.0
            for col in range(r):
                z_sq += z[col] * z[col]
            rho0 = ratio(theta_norm[b], math.sqrt(As_sq))
            rho1 = ratio(math.sqrt(d_sq) * math.sqrt(z_sq), nu_norm)
            c_dot_s = 0.0
            for i in range(n):
                s_tilde[b, i] = rho0 * As[b, i] + rho1 * nu[i]
                c_dot_s += c[b, i] * s_tilde[b, i]
            # theta~ <- theta~ / rho0 + (nu * d) z^T / rho1, and |theta~|: the squares are
            # summed per column (a vector of r partial sums) so that the pass vectorises.
            inv_rho0 = 1.0 / rho0
            v = V[b, j]
            sq[:] = 0.0
            for i in range(n):
                v[i] = nu[i] * d[b, i] / rho1
                th = theta_tilde[b, i]
                v_i = v[i]
                for col in range(r):
                    x = th[col] * inv_rho0 + v_i * z[col]
                    th[col] = x
                    sq[col] += x * x
            theta_norm[b] = math.sqrt(np.sum(sq))
            lam[b, j] = inv_rho0
            w[b, j] = c_dot_s
        h[:] = h_new
        j += 1
        if j == k or t == T - 1:
            for b in range(B):
                _fold_block(
                    theta_tilde[b], theta_0[b], V[b, :j], Z[b, :j], lam[b, :j], w[b, :j], out, G,
                    fresh,
                )  # fmt: skip
                fresh = False
            j = 0
    return 0.5 * loss, grads


@jit
def _fold_block(theta, theta_0, V, Z, lam, w, out, G, fresh):
    """G += sum over the block's j steps of w_t theta~_t; theta_0 <- theta~ for the next block.

    Scales the rows of Z (the block's z's) by Q_tau in place. ``fresh``: G holds
    garbage, and each row is cleared just before it is added to.
    """
    n, r = theta.shape
    j = Z.shape[0]
    Q = 0.0  # sum over t >= tau of w_t prod_{tau < u <= t} lambda_u
    lam_next = 0.0
    for tau in range(j - 1, -1, -1):
        Q = w[tau] + lam_next * Q
        for col in range(r):
            Z[tau, col] *= Q
        lam_next = lam[tau]
    gamma = lam_next * Q
    np.dot(V.T, Z, out)
    g_hh, g_ih, g_b = G
    n_ih = g_ih.shape[1]
    for i in range(n):
        th = theta[i]
        th_0 = theta_0[i]
        o = out[i]
        if fresh:
            g_hh[i] = 0.0
            g_ih[i] = 0.0
            g_b[i] = 0.0
        g = g_hh[i]
        for col in range(n):
            g[col] += gamma * th_0[col] + o[col]
            th_0[col] = th[col]
        g = g_ih[i]
        for col in range(n_ih):
            g[col] += gamma * th_0[n + col] + o[n + col]
            th_0[n + col] = th[n + col]
        g_b[i] += gamma * th_0[r - 1] + o[r - 1]
        th_0[r - 1] = th[r - 1]


@jit
def _uoro_flat(xs, ys, weights, alpha, rng, state, work, k):
    """``_uoro`` on the state and scratch carved from two flat arrays (:class:`UOROState`).

    One dispatch of eight arguments instead of ``_uoro``'s twenty-five arrays, most of
    them in tuples: a stream's chunk pays Numba for every array it passes.
    """
    _, B, m = xs.shape
    n, p = weights[1].shape[0], weights[3].shape[0]
    r = n + m + 1
    h, at = carve(state, 0, (B, n))
    s_tilde, at = carve(state, at, (B, n))
    theta_tilde, at = carve(state, at, (B, n, r))
    theta_0, at = carve(state, at, (B, n, r))
    theta_norm, at = carve(state, at, (B,))
    h_new, at = carve(work, 0, (B, n))
    d, at = carve(work, at, (B, n))
    c, at = carve(work, at, (B, n))
    e, at = carve(work, at, (B, p))
    As, at = carve(work, at, (B, n))
    nu, at = carve(work, at, (n,))
    sq, at = carve(work, at, (r,))
    V, at = carve(work, at, (B, k, n))
    Z, at = carve(work, at, (B, k, r))
    lam, at = carve(work, at, (B, k))
    w, at = carve(work, at, (B, k))
    out, at = carve(work, at, (n, r))
    return _uoro(
        xs, ys, weights, alpha, rng, h, s_tilde, theta_tilde, theta_0, theta_norm,
        (h_new, d, c, e, As, nu, sq), (V, Z, lam, w, out),
    )  # fmt: skip


def work_size(B, n, m, p, k) -> int:
    """Elements of ``_uoro_flat``'s ``work`` for blocks of ``k`` steps (its carving order)."""
    r = n + m + 1
    return _online.space(
        B * n, B * n, B * n, B * p, B * n, n, r, B * k * n, B * k * r, B * k, B * k, n * r
    )


class UOROState:
    """What UORO carries across steps: h_t, s~ (B, n), theta~ (B, n, r), |theta~| (B,), the rng
    (``rng``: the four uint64 words of its PCG64, ``_online.pcg_words``).

    ``theta_0`` is theta~ as the current block began (every call ends a block). All
    five are views of the one array ``buf``; ``work`` is the kernel's scratch for
    blocks of ``k`` steps, kept so that a stream allocates it once.
    """

    def __init__(self, B, n, m, p, dtype, seed):
        r = n + m + 1
        sizes = (B * n, B * n, B * n * r, B * n * r, B)  # as _uoro_flat carves them
        self.buf = np.zeros(_online.space(*sizes), dtype)
        starts = np.cumsum([0, *(_online.space(s) for s in sizes[:-1])])
        h, s_tilde, theta_tilde, theta_0, self.theta_norm = (
            self.buf[a : a + s] for a, s in zip(starts, sizes, strict=True)
        )
        self.h, self.s_tilde = h.reshape(B, n), s_tilde.reshape(B, n)
        self.theta_tilde, self.theta_0 = theta_tilde.reshape(B, n, r), theta_0.reshape(B, n, r)
        self.rng = _online.pcg_words(seed)
        self.sizes = (B, n, m, p)
        self.k = 0
        self.work = None

    def grow(self, k):
        """Scratch for blocks of ``k`` steps."""
        self.k = k
        self.work = np.empty(work_size(*self.sizes, k), self.buf.dtype)


def start(arrays, B, seed=0) -> UOROState:
    """UORO's state at t = 0 for ``B`` sequences: everything zero, the generator at ``seed``."""
    W_ih = arrays[0]
    return UOROState(
        B, W_ih.shape[0], W_ih.shape[1], arrays[3].shape[0], W_ih.dtype, _online.check_seed(seed)
    )


def advance(state: UOROState, arrays, alpha, xs, ys):
    """Run UORO over the checked chunk ``xs``, ``ys`` from ``state``; return (loss, grads)."""
    T = xs.shape[0]
    if state.k < T and state.k < _online.STEPS_PER_BLOCK:  # blocks of block_steps(T) steps
        state.grow(_online.block_steps(T))
    loss, grads = _uoro_flat(xs, ys, arrays, alpha, state.rng, state.buf, state.work, state.k)
    return loss, _online.as_params(grads)


def uoro(params, xs, ys, seed=0):
    """Loss and UORO's unbiased estimate of the gradient of the (leaky) Elman RNN.

    Parameters
    ----------
    params : RNNParams
        Its ``alpha`` attribute, when present, is the leak (0 < alpha <= 1; 1 by default).
    xs : array (T, B, m) or (T, m)
    ys : array (T, B, p) or (T, p)
    seed : int
        Seed of the random signs; the same seed gives the same estimate.

    Returns
    -------
    loss : float
        1/2 sum_t sum_b ||yhat_t,b - y_t,b||^2
    grads : RNNParams
        The sum over steps of UORO's estimate (readout gradients exact).
    """
    arrays, xs, ys = check_rnn_problem(params, xs, ys)
    alpha = _online.leak(params)
    return advance(start(arrays, xs.shape[1], seed), arrays, alpha, xs, ys)


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``uoro`` call."""
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    blocks = -(-T // _online.STEPS_PER_BLOCK)
    TB = {"T": 1, "B": 1}
    return [
        *_online.cell_flops(T, B, n, m, p),
        Term(T * B * 2 * n * n, {**TB, "n": 2}),  # W_hh s~
        # A s~ (3) and its norm (2), |d|^2 (2), s~ update (3) and c . s~ (2), v (2) per unit
        Term(T * B * 14 * n, {**TB, "n": 1}),
        # |z|^2 (2 r), summing theta~'s squares (r), the scaled z_tau (r)
        *_online.times_r(T * B * 4, TB, n, m),
        Term(T * B * 16, TB),  # rho0, rho1, 1 / rho0, |theta~|; Q_tau (2)
        # the theta~ pass: rescale and add (3), its squares (2); the block's GEMM (2)
        *_online.times_r(T * B * 7 * n, {**TB, "n": 1}, n, m),
        # per block: G += gamma theta~_0 + the GEMM's product (3), and gamma
        *_online.times_r(blocks * B * 3 * n, {**TB, "n": 1}, n, m),
        Term(blocks * B, TB),
        Term(2),  # 1 - alpha, |nu| = sqrt(n)
    ]


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``uoro`` call: theta~, its copy and G lead; nothing grows with T."""
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    k = min(_online.STEPS_PER_BLOCK, T)
    return [
        *_online.times_r(2 * B * n * itemsize, {"B": 1, "n": 1}, n, m),  # theta~, theta~_0
        *_online.times_r(n * itemsize, {"n": 1}, n, m),  # the block's GEMM
        *_online.returned_gradient_bytes(n, m, itemsize),
        *_online.cell_bytes(B, n, m, p, itemsize),
        # v (n), z (r), lambda and c . s~ of each step of a block
        Term(B * k * 2 * n * itemsize, {"B": 1, "n": 1}),
        Term(B * k * m * itemsize, {"B": 1, "m": 1}),
        Term(B * k * 3 * itemsize, {"B": 1}),
        Term(3 * B * n * itemsize, {"B": 1, "n": 1}),  # h_{t-1}, s~, A s~
        Term(B * itemsize, {"B": 1}),  # |theta~|
        *_online.times_r(itemsize, {}, n, m),  # the squares of theta~
        Term(n * itemsize, {"n": 1}),  # nu
    ]
