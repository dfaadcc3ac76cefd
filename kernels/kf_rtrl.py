"""Kronecker-factored RTRL, KF-RTRL (Mujika, Meier & Steger 2018).

The influence of the recurrent parameters is a Kronecker product of a vector
over the parameters' columns and a matrix over units: J_t[j, i, c] ~ K[j, i]
u[c], u (r), K (n x n) (the paper's u_t and A_t; here A_t is the Jacobian
dh_t / dh_{t-1}, notation of ``_online.py``). The immediate Jacobian is
exactly such a product, M_t[j, i, c] = [j == i] d_t,i z_t,c = diag(d_t) (x) z_t,
so each step folds the propagated product and the new one into one, with two
random signs c1, c2 in {-1, +1} (the random protocol of ``_online.py``, c1
drawn first):

    p1  = ratio(|A_t K|, |u|),      p2 = ratio(|diag(d_t)|, |z_t|) = ratio(|d_t|, |z_t|)
    u  <- c1 p1 u + c2 p2 z_t
    K  <- c1 (A_t K) / p1 + c2 diag(d_t) / p2,       A_t K = (1 - alpha) K + d_t * (W_hh K)
    dL/dtheta += outer(c_t^T K, u)

E[c1 c2] = 0 removes the cross terms on average, so u K is unbiased; p1, p2
minimise its variance. With W_hh = 0 and alpha = 1 the estimate is exact up to
a cross term of relative size EPS (tests/test_naive_online.py).

The kernel: W_hh K is one (n x n) GEMM per batch element, the n^3 work; one
fused pass forms A_t K and its norm, a second rescales it into K, adds the
diagonal and accumulates c_t^T K; the gradient's rank-one term is a last n r
pass.

Costs: time Theta(n^3 B) per step, memory Theta(n^2 B) (Mujika, Meier &
Steger 2018, "Approximating Real-Time Recurrent Learning with Random Kronecker
Factors", NeurIPS, sec. 4 and Table 1; Marschall, Cho & Savin 2020, JMLR
21(135), sec. 4.2).
"""

from __future__ import annotations

import math

import numpy as np

from . import _online
from ._jit import jit
from ._online import bit_sign, cell_step, fill_z, pcg_next, ratio
from ._validate import check_rnn_problem
from .costs import Term


@jit
def _kf_rtrl(xs, ys, weights, alpha, rng, h, u, K, scratch, G, grads):
    W_ih, W_hh, b_h, W_out, b_out = weights
    h_new, d, c, e, AK, v, z, sq = scratch
    g_W_out, g_b_out = grads
    T, B, _ = xs.shape
    n, r = K.shape[1], u.shape[1]
    leak = 1.0 - alpha
    loss = 0.0
    G[:] = 0.0
    for t in range(T):
        loss += cell_step(
            xs[t], ys[t], W_ih, W_hh, b_h, W_out, b_out, alpha, h, h_new, d, c, e, g_W_out, g_b_out
        )
        for b in range(B):
            word = pcg_next(rng)  # c1 and c2: its lowest two bits
            c1, c2 = bit_sign(word, 0), bit_sign(word, 1)
            fill_z(h[b], xs[t, b], z)
            Kb = K[b]
            ub = u[b]
            # A_t K = (1 - alpha) K + d * (W_hh K): the GEMM, then one pass with the norm.
            np.dot(W_hh, Kb, AK)
            d_sq = 0.0
            sq[:] = (
                0.0  # squares summed per column: a vector of partial sums, so the pass vectorises
            )
            for i in range(n):
                d_i = d[b, i]
                d_sq += d_i * d_i
                for j in range(n):
                    x = leak * Kb[i, j] + d_i * AK[i, j]
                    AK[i, j] = x
                    sq[j] += x * x
            AK_sq = np.sum(sq)
            u_sq = 0.0
            z_sq = 0.0
            for col in range(r):
                u_sq += ub[col] * ub[col]
                z_sq += z[col] * z[col]
            p1 = ratio(math.sqrt(AK_sq), math.sqrt(u_sq))
            p2 = ratio(math.sqrt(d_sq), math.sqrt(z_sq))
            # u <- c1 p1 u + c2 p2 z
            f_u = c1 * p1
            f_z = c2 * p2
            for col in range(r):
                ub[col] = f_u * ub[col] + f_z * z[col]
            # K <- c1 (A K) / p1 + c2 diag(d) / p2, and v = c_t^T K
            f_K = c1 / p1
            f_d = c2 / p2
            v[:] = 0.0
            for i in range(n):
                c_i = c[b, i]
                for j in range(n):
                    x = f_K * AK[i, j]
                    Kb[i, j] = x
                    v[j] += c_i * x
                x = Kb[i, i] + f_d * d[b, i]
                Kb[i, i] = x
                v[i] += c_i * f_d * d[b, i]
            # dL/dtheta += outer(c^T K, u)
            for i in range(n):
                g = G[i]
                v_i = v[i]
                for col in range(r):
                    g[col] += v_i * ub[col]
        h[:] = h_new
    return 0.5 * loss


class KFRTRLState:
    """What KF-RTRL carries across steps: h_t, u (B, r), K (B, n, n), the rng."""

    def __init__(self, B, n, m, dtype, seed):
        self.h = np.zeros((B, n), dtype)
        self.u = np.zeros((B, n + m + 1), dtype)
        self.K = np.zeros((B, n, n), dtype)
        self.rng = _online.pcg_words(seed)  # PCG64's words (_online.pcg_next)


def start(arrays, B, seed=0) -> KFRTRLState:
    """KF-RTRL's state at t = 0 for ``B`` sequences: zeros, the generator at ``seed``."""
    W_ih = arrays[0]
    return KFRTRLState(B, W_ih.shape[0], W_ih.shape[1], W_ih.dtype, _online.check_seed(seed))


def advance(state: KFRTRLState, arrays, alpha, xs, ys):
    """Run KF-RTRL over the checked chunk ``xs``, ``ys`` from ``state``; return (loss, grads)."""
    _, B, m = xs.shape
    n, p = arrays[1].shape[0], arrays[3].shape[0]
    dt = arrays[1].dtype

    def make(_):
        scratch = (
            np.empty((B, n), dt), np.empty((B, n), dt), np.empty((B, n), dt), np.empty((B, p), dt),
            np.empty((n, n), dt), np.empty(n, dt), np.empty(n + m + 1, dt), np.empty(n, dt),
        )  # fmt: skip
        return scratch, np.empty((n, n + m + 1), dt)

    scratch, G = _online.kept_scratch(state, 1, make)
    grads = (np.zeros((p, n), dt), np.zeros(p, dt))
    loss = _kf_rtrl(xs, ys, arrays, alpha, state.rng, state.h, state.u, state.K, scratch, G, grads)
    return float(loss), _online.gradients(G, *grads, m)


def kf_rtrl(params, xs, ys, seed=0):
    """Loss and KF-RTRL's unbiased estimate of the gradient of the (leaky) Elman RNN.

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
        The sum over steps of KF-RTRL's estimate (readout gradients exact).
    """
    arrays, xs, ys = check_rnn_problem(params, xs, ys)
    alpha = _online.leak(params)
    return advance(start(arrays, xs.shape[1], seed), arrays, alpha, xs, ys)


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``kf_rtrl`` call."""
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    TB = {"T": 1, "B": 1}
    return [
        *_online.cell_flops(T, B, n, m, p),
        Term(T * B * 2 * n**3, {**TB, "n": 3}),  # W_hh K
        # A K (3) and its norm (2); K <- (1) and c^T K (2)
        Term(T * B * 8 * n * n, {**TB, "n": 2}),
        # |d|^2 (2), summing the squares (1); the diagonal: add (2) and c^T K (3) per unit
        Term(T * B * 8 * n, {**TB, "n": 1}),
        *_online.times_r(T * B * 7, TB, n, m),  # |u|^2, |z|^2 (4); u <- (3)
        Term(T * B * 16, TB),  # p1, p2 (three square roots each) and the four factors
        Term(1),  # 1 - alpha
        *_online.times_r(T * B * 2 * n, {**TB, "n": 1}, n, m),  # G += outer(c^T K, u)
    ]


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``kf_rtrl`` call: K and its product A K; nothing grows with T."""
    B, n, m, p = (size[k] for k in ("B", "n", "m", "p"))
    return [
        Term(B * n * n * itemsize, {"B": 1, "n": 2}),  # K
        Term(n * n * itemsize, {"n": 2}),  # A K
        *_online.gradient_bytes(n, m, itemsize),
        *_online.cell_bytes(B, n, m, p, itemsize),
        Term(B * n * itemsize, {"B": 1, "n": 1}),  # h_{t-1}
        *_online.times_r(B * itemsize, {"B": 1}, n, m),  # u
        *_online.times_r(itemsize, {}, n, m),  # z
        Term(2 * n * itemsize, {"n": 1}),  # c^T K, the squares of A K
    ]
