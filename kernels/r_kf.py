"""Reverse KF-RTRL, R-KF (Marschall, Cho & Savin 2020).

KF-RTRL with the roles of the factors swapped: J_t[j, i, c] ~ a[i] K[j, c],
a vector over the parameter rows a (n) and a matrix K (n x r) over units and
parameter columns (notation of ``_online.py``). The propagated term is
a (x) (A_t K); the immediate one, M_t = sum_i e_i (x) (d_t,i e_i z_t^T), is
a sum of n Kronecker products, folded into one with a sign per unit,
nu in {-1, +1}^n (the random protocol of ``_online.py``):

    p0  = ratio(|A_t K|, |a|)
    p1  = ratio(|(nu * d_t) z_t^T|, |nu|) = ratio(|d_t| |z_t|, sqrt(n))
    a  <- p0 a + p1 nu
    K  <- (A_t K) / p0 + (nu * d_t) z_t^T / p1,      A_t K = (1 - alpha) K + d_t * (W_hh K)
    dL/dtheta += outer(a, c_t^T K)

E[nu nu^T] = I keeps the estimate unbiased. Flipping every sign flips a and K
together and leaves the estimate unchanged.

The kernel: W_hh K is one (n x n) x (n x r) GEMM per batch element, the n^2 r
work; one fused pass forms A_t K and its norm, a second rescales it into K,
adds the rank-one term and accumulates c_t^T K; the gradient's rank-one term
is a last n r pass.

Costs: time Theta(n^2 r B) = Theta(n^3 B) per step, memory Theta(n r B) =
Theta(n^2 B) (Marschall, Cho & Savin 2020, "A unified framework of online
learning algorithms for training recurrent neural networks", JMLR 21(135),
sec. 4.3 and Table 1).
"""

from __future__ import annotations

import math

import numpy as np

from . import _online
from ._jit import jit
from ._online import cell_step, draw_signs, fill_z, ratio
from ._validate import check_rnn_problem
from .costs import Term


@jit
def _r_kf(xs, ys, weights, alpha, rng, h, a, K, scratch, G, grads):
    W_ih, W_hh, b_h, W_out, b_out = weights
    h_new, d, c, e, AK, nu, v, z, sq = scratch
    g_W_out, g_b_out = grads
    T, B, _ = xs.shape
    n, r = K.shape[1], K.shape[2]
    nu_norm = math.sqrt(n)
    leak = 1.0 - alpha
    loss = 0.0
    G[:] = 0.0
    for t in range(T):
        loss += cell_step(
            xs[t], ys[t], W_ih, W_hh, b_h, W_out, b_out, alpha, h, h_new, d, c, e, g_W_out, g_b_out
        )
        for b in range(B):
            draw_signs(rng, nu)
            fill_z(h[b], xs[t, b], z)
            Kb = K[b]
            ab = a[b]
            # A_t K = (1 - alpha) K + d * (W_hh K): the GEMM, then one pass with the norm.
            np.dot(W_hh, Kb, AK)
            d_sq = 0.0
            a_sq = 0.0
            sq[:] = (
                0.0  # squares summed per column: a vector of partial sums, so the pass vectorises
            )
            for i in range(n):
                d_i = d[b, i]
                d_sq += d_i * d_i
                a_sq += ab[i] * ab[i]
                for col in range(r):
                    x = leak * Kb[i, col] + d_i * AK[i, col]
                    AK[i, col] = x
                    sq[col] += x * x
            AK_sq = np.sum(sq)
            z_sq = 0.0
            for col in range(r):
                z_sq += z[col] * z[col]
            p0 = ratio(math.sqrt(AK_sq), math.sqrt(a_sq))
            p1 = ratio(math.sqrt(d_sq) * math.sqrt(z_sq), nu_norm)
            # a <- p0 a + p1 nu;  K <- (A K) / p0 + (nu * d) z^T / p1, and v = c_t^T K
            inv_p0 = 1.0 / p0
            v[:] = 0.0
            for i in range(n):
                ab[i] = p0 * ab[i] + p1 * nu[i]
                w = nu[i] * d[b, i] / p1
                c_i = c[b, i]
                for col in range(r):
                    x = AK[i, col] * inv_p0 + w * z[col]
                    Kb[i, col] = x
                    v[col] += c_i * x
            # dL/dtheta += outer(a, c^T K)
            for i in range(n):
                g = G[i]
                a_i = ab[i]
                for col in range(r):
                    g[col] += a_i * v[col]
        h[:] = h_new
    return 0.5 * loss


class RKFState:
    """What R-KF carries across steps: h_t, a (B, n), K (B, n, r), the rng."""

    def __init__(self, B, n, m, dtype, seed):
        self.h = np.zeros((B, n), dtype)
        self.a = np.zeros((B, n), dtype)
        self.K = np.zeros((B, n, n + m + 1), dtype)
        self.rng = _online.pcg_words(seed)  # PCG64's words (_online.pcg_next)


def start(arrays, B, seed=0) -> RKFState:
    """R-KF's state at t = 0 for ``B`` sequences: zeros, the generator at ``seed``."""
    W_ih = arrays[0]
    return RKFState(B, W_ih.shape[0], W_ih.shape[1], W_ih.dtype, _online.check_seed(seed))


def advance(state: RKFState, arrays, alpha, xs, ys):
    """Run R-KF over the checked chunk ``xs``, ``ys`` from ``state``; return (loss, grads)."""
    _, B, m = xs.shape
    n, p = arrays[1].shape[0], arrays[3].shape[0]
    r = n + m + 1
    dt = arrays[1].dtype

    def make(_):
        scratch = (
            np.empty((B, n), dt), np.empty((B, n), dt), np.empty((B, n), dt), np.empty((B, p), dt),
            np.empty((n, r), dt), np.empty(n, dt), *(np.empty(r, dt) for _ in range(3)),
        )  # fmt: skip
        return scratch, np.empty((n, r), dt)

    scratch, G = _online.kept_scratch(state, 1, make)
    grads = (np.zeros((p, n), dt), np.zeros(p, dt))
    loss = _r_kf(xs, ys, arrays, alpha, state.rng, state.h, state.a, state.K, scratch, G, grads)
    return float(loss), _online.gradients(G, *grads, m)


def r_kf(params, xs, ys, seed=0):
    """Loss and R-KF's unbiased estimate of the gradient of the (leaky) Elman RNN.

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
        The sum over steps of R-KF's estimate (readout gradients exact).
    """
    arrays, xs, ys = check_rnn_problem(params, xs, ys)
    alpha = _online.leak(params)
    return advance(start(arrays, xs.shape[1], seed), arrays, alpha, xs, ys)


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``r_kf`` call."""
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    TB = {"T": 1, "B": 1}
    return [
        *_online.cell_flops(T, B, n, m, p),
        *_online.times_r(T * B * 2 * n * n, {**TB, "n": 2}, n, m),  # W_hh K
        # A K (3) and its norm (2); K <- (3) and c^T K (2); G += outer (2)
        *_online.times_r(T * B * 12 * n, {**TB, "n": 1}, n, m),
        Term(T * B * 9 * n, {**TB, "n": 1}),  # |d|^2, |a|^2; a <- (3); (nu d) / p1 (2)
        *_online.times_r(T * B * 3, TB, n, m),  # |z|^2, summing the squares of A K
        Term(T * B * 14, TB),  # p0, p1, 1 / p0
        Term(2),  # 1 - alpha, |nu| = sqrt(n)
    ]


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``r_kf`` call: K and its product A K; nothing grows with T."""
    B, n, m, p = (size[k] for k in ("B", "n", "m", "p"))
    return [
        *_online.times_r(B * n * itemsize, {"B": 1, "n": 1}, n, m),  # K
        *_online.times_r(n * itemsize, {"n": 1}, n, m),  # A K
        *_online.gradient_bytes(n, m, itemsize),
        *_online.cell_bytes(B, n, m, p, itemsize),
        Term(2 * B * n * itemsize, {"B": 1, "n": 1}),  # h_{t-1}, a
        Term(n * itemsize, {"n": 1}),  # nu
        *_online.times_r(3 * itemsize, {}, n, m),  # v, z, the squares of A K
    ]
