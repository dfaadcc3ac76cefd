"""Operation-count replicas of the online rules' kernels (UORO, KF-RTRL, R-KF, the
SnAp-1 / RFLO trace, SnAp-2), in the convention of flop_count.py.

Each function performs in NumPy the same sequence of products and elementwise
operations as one kernel (the same steps, the same blocks, the same norms and
scalar factors), counting every operation from the sizes it really operates
on. Its gradient must equal the kernel's and its count the kernel's analytic
model. Scalar arithmetic (the norm ratios, the blocks' recursions) is counted
with ``scalar``: one FLOP per add, subtract, multiply, divide or square root.
Only the block length is taken from the kernels (it is the schedule being
counted); the draws follow the random protocol of naive_online.py.
"""

from __future__ import annotations

import math

import naive
import naive_online
import numpy as np
from flop_count import Counter

EPS = 1e-7


class OnlineCounter(Counter):
    def scalar(self, k=1):
        """Count k scalar operations."""
        self.flops += k

    def ratio(self, num, den):
        """sqrt(num / (den + EPS)) + EPS: four operations."""
        self.scalar(4)
        return math.sqrt(num / (den + EPS)) + EPS

    def sqrt(self, x):
        self.scalar()
        return math.sqrt(x)

    def sum_sq(self, a, axis=None):
        """The kernels' running sum of squares: a multiply and an add per entry."""
        return self.accumulate(0.0, self.mul(a, a), axis=axis)


def _arrays(params):
    return tuple(np.asarray(a, dtype=np.float64) for a in params)


def _batched(xs, ys):
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    return (xs[:, None], ys[:, None]) if xs.ndim == 2 else (xs, ys)


class _Cell:
    """_online.cell_step over the batch, with the readout gradients and the loss."""

    def __init__(self, fc, params, alpha):
        self.fc = fc
        self.W_ih, self.W_hh, self.b_h, self.W_out, self.b_out = _arrays(params)
        self.alpha = alpha
        self.g_W_out = np.zeros_like(self.W_out)
        self.g_b_out = np.zeros_like(self.b_out)
        self.sq = 0.0

    def step(self, x, y, h_prev):
        fc, a = self.fc, self.alpha
        fc.scalar()  # leak = 1 - alpha, once per step
        pre = fc.add(fc.add(fc.dot(x, self.W_ih.T), fc.dot(h_prev, self.W_hh.T)), self.b_h)
        th = fc.tanh(pre)
        h = fc.add(fc.mul(1.0 - a, h_prev), fc.mul(a, th))
        d = fc.mul(a, fc.sub(1.0, fc.mul(th, th)))
        products = fc.mul(h[:, None, :], self.W_out[None])  # (B, p, n)
        yhat = fc.accumulate(self.b_out[None], products, axis=2)  # from b_out, n adds each
        e = fc.sub(yhat, y)
        self.sq = fc.accumulate(self.sq, fc.mul(e, e))
        self.g_b_out = fc.accumulate(self.g_b_out, e, axis=0)
        c = fc.accumulate(0.0, fc.mul(e[:, :, None], self.W_out[None]), axis=1)
        self.g_W_out = fc.accumulate(self.g_W_out, fc.mul(e[:, :, None], h[:, None, :]), axis=0)
        return h, d, c

    def result(self, G):
        self.fc.scalar()  # loss * 0.5
        n, m = self.W_ih.shape
        g = naive.RNNParams(G[:, n : n + m], G[:, :n], G[:, n + m], self.g_W_out, self.g_b_out)
        return 0.5 * self.sq, g


def _z(h_prev, x):
    return np.concatenate([h_prev, x, [1.0]])


def uoro(params, xs, ys, alpha, seed, block):
    """uoro._uoro: (loss, grads, FLOPs).

    Blocks of ``block`` steps in two passes: the cell with the draws, z_t, rho1_t
    and v_t; then s~ step by step, |theta~| from its recursion over the block
    (theta~ is only updated when the block is folded).
    """
    fc = OnlineCounter()
    xs, ys = _batched(xs, ys)
    T, B, m = xs.shape
    cell = _Cell(fc, params, alpha)
    W_hh = cell.W_hh
    n = W_hh.shape[0]
    r = n + m + 1
    rng = np.random.PCG64(seed)
    fc.scalar(2)  # |nu| = sqrt(n), 1 - alpha
    h, s, th = np.zeros((B, n)), np.zeros((B, n)), np.zeros((B, n, r))
    th_norm = np.zeros(B)
    G = np.zeros((n, r))
    for t0 in range(0, T, block):
        k = min(block, T - t0)
        V, Z, R = np.zeros((B, k, n)), np.zeros((B, k, r)), np.zeros((B, k, n))
        D, C = np.zeros((B, k, n)), np.zeros((B, k, n))
        for j in range(k):  # pass 1
            t = t0 + j
            h_new, d, c = cell.step(xs[t], ys[t], h)
            for b in range(B):
                z = _z(h[b], xs[t, b])
                d_sq, z_sq = fc.sum_sq(d[b]), fc.sum_sq(z)
                fc.scalar()  # sqrt(d_sq) sqrt(z_sq)
                rho1 = fc.ratio(fc.sqrt(d_sq) * fc.sqrt(z_sq), math.sqrt(n))
                fc.scalar()
                inv_rho1 = 1.0 / rho1
                nu = naive_online.signs(rng, n)
                V[b, j] = fc.mul(fc.mul(nu, d[b]), inv_rho1)
                R[b, j] = fc.mul(rho1, nu)
                Z[b, j], D[b, j], C[b, j] = z, d[b], c[b]
            h = h_new
        q, H, nsq = np.zeros((B, k)), np.zeros((B, k, k)), np.zeros(B)
        for b in range(B):  # pass 2: the block's products with theta~_0
            Y = fc.dot(Z[b], th[b].T)
            q[b] = [fc.accumulate(0.0, fc.mul(V[b, j], Y[j])) for j in range(k)]
            H[b] = fc.mul(fc.dot(V[b], V[b].T), fc.dot(Z[b], Z[b].T))
            fc.scalar()
            nsq[b] = th_norm[b] * th_norm[b]
        lam, w, a, L = np.zeros((B, k)), np.zeros((B, k)), np.zeros((B, k)), np.ones(B)
        for j in range(k):
            Ws = fc.dot(s, W_hh.T)
            for b in range(B):
                As = fc.add(fc.mul(1.0 - alpha, s[b]), fc.mul(D[b, j], Ws[b]))
                rho0 = fc.ratio(th_norm[b], fc.sqrt(fc.sum_sq(As)))
                s[b] = fc.add(fc.mul(rho0, As), R[b, j])
                w[b, j] = fc.accumulate(0.0, fc.mul(C[b, j], s[b]))
                fc.scalar()
                lam[b, j] = inv_rho0 = 1.0 / rho0
                fc.scalar()  # L q_j
                cross = fc.accumulate(L[b] * q[b, j], fc.mul(a[b, :j], H[b, j, :j]))
                fc.scalar(6)  # lambda^2 nsq + 2 lambda cross + H[j, j]: four products, two adds
                x = inv_rho0 * inv_rho0 * nsq[b] + 2.0 * inv_rho0 * cross + H[b, j, j]
                nsq[b] = max(x, 0.0)
                th_norm[b] = fc.sqrt(nsq[b])
                a[b, :j] = fc.mul(a[b, :j], inv_rho0)
                a[b, j] = 1.0
                fc.scalar()
                L[b] *= inv_rho0
        for b in range(B):  # the fold
            Q, lam_next = 0.0, 0.0
            ZQ = np.zeros((k, r))
            for tau in range(k - 1, -1, -1):
                fc.scalar(2)
                Q = w[b, tau] + lam_next * Q
                ZQ[tau] = fc.mul(Z[b, tau], Q)
                lam_next = lam[b, tau]
            fc.scalar()
            gamma = lam_next * Q
            G = fc.add(G, fc.add(fc.mul(gamma, th[b]), fc.dot(V[b].T, ZQ)))
            Za = fc.mul(a[b][:, None], Z[b])
            th[b] = fc.add(fc.mul(L[b], th[b]), fc.dot(V[b].T, Za))
            th_norm[b] = fc.sqrt(fc.accumulate(0.0, fc.sum_sq(th[b], axis=0)))
    return (*cell.result(G), fc.flops)


def kf_rtrl(params, xs, ys, alpha, seed):
    """kf_rtrl._kf_rtrl: (loss, grads, FLOPs)."""
    fc = OnlineCounter()
    xs, ys = _batched(xs, ys)
    T, B, m = xs.shape
    cell = _Cell(fc, params, alpha)
    W_hh = cell.W_hh
    n = W_hh.shape[0]
    r = n + m + 1
    rng = np.random.PCG64(seed)
    fc.scalar()  # 1 - alpha
    h, u, K = np.zeros((B, n)), np.zeros((B, r)), np.zeros((B, n, n))
    G = np.zeros((n, r))
    for t in range(T):
        h_new, d, c = cell.step(xs[t], ys[t], h)
        for b in range(B):
            c1, c2 = naive_online.signs(rng, 2)
            z = _z(h[b], xs[t, b])
            AK = fc.add(fc.mul(1.0 - alpha, K[b]), fc.mul(d[b][:, None], fc.dot(W_hh, K[b])))
            d_sq = fc.sum_sq(d[b])
            AK_sq = fc.accumulate(0.0, fc.sum_sq(AK, axis=0))
            u_sq, z_sq = fc.sum_sq(u[b]), fc.sum_sq(z)
            p1 = fc.ratio(fc.sqrt(AK_sq), fc.sqrt(u_sq))
            p2 = fc.ratio(fc.sqrt(d_sq), fc.sqrt(z_sq))
            fc.scalar(4)  # c1 p1, c2 p2, c1 / p1, c2 / p2
            u[b] = fc.add(fc.mul(c1 * p1, u[b]), fc.mul(c2 * p2, z))
            K[b] = fc.mul(c1 / p1, AK)
            v = fc.accumulate(0.0, fc.mul(c[b][:, None], K[b]), axis=0)
            diag = fc.mul(c2 / p2, d[b])
            K[b][np.arange(n), np.arange(n)] = fc.add(np.diag(K[b]), diag)
            v = fc.add(v, fc.mul(fc.mul(c[b], c2 / p2), d[b]))  # c_i f_d d_i, added
            G = fc.add(G, fc.mul(v[:, None], u[b][None]))
        h = h_new
    return (*cell.result(G), fc.flops)


def r_kf(params, xs, ys, alpha, seed):
    """r_kf._r_kf: (loss, grads, FLOPs)."""
    fc = OnlineCounter()
    xs, ys = _batched(xs, ys)
    T, B, m = xs.shape
    cell = _Cell(fc, params, alpha)
    W_hh = cell.W_hh
    n = W_hh.shape[0]
    r = n + m + 1
    rng = np.random.PCG64(seed)
    fc.scalar(2)  # |nu| = sqrt(n), 1 - alpha
    h, a, K = np.zeros((B, n)), np.zeros((B, n)), np.zeros((B, n, r))
    G = np.zeros((n, r))
    for t in range(T):
        h_new, d, c = cell.step(xs[t], ys[t], h)
        for b in range(B):
            nu = naive_online.signs(rng, n)
            z = _z(h[b], xs[t, b])
            AK = fc.add(fc.mul(1.0 - alpha, K[b]), fc.mul(d[b][:, None], fc.dot(W_hh, K[b])))
            d_sq, a_sq = fc.sum_sq(d[b]), fc.sum_sq(a[b])
            AK_sq = fc.accumulate(0.0, fc.sum_sq(AK, axis=0))
            z_sq = fc.sum_sq(z)
            p0 = fc.ratio(fc.sqrt(AK_sq), fc.sqrt(a_sq))
            fc.scalar(2)  # sqrt(d_sq) sqrt(z_sq), 1 / p0
            p1 = fc.ratio(fc.sqrt(d_sq) * fc.sqrt(z_sq), math.sqrt(n))
            a[b] = fc.add(fc.mul(p0, a[b]), fc.mul(p1, nu))
            wv = fc.mul(fc.mul(nu, d[b]), 1.0 / p1)
            K[b] = fc.add(fc.mul(AK, 1.0 / p0), fc.mul(wv[:, None], z[None]))
            v = fc.accumulate(0.0, fc.mul(c[b][:, None], K[b]), axis=0)
            G = fc.add(G, fc.mul(a[b][:, None], v[None]))
        h = h_new
    return (*cell.result(G), fc.flops)


def diagonal_trace(params, xs, ys, alpha, w_self, block):
    """snap1._diagonal_trace (SnAp-1 with w_self = diag(W_hh), RFLO with zeros)."""
    fc = OnlineCounter()
    xs, ys = _batched(xs, ys)
    T, B, m = xs.shape
    cell = _Cell(fc, params, alpha)
    n = cell.W_hh.shape[0]
    r = n + m + 1
    fc.scalar()  # 1 - alpha
    h, S = np.zeros((B, n)), np.zeros((B, n, r))
    G = np.zeros((n, r))
    rec = [[] for _ in range(B)]
    for t in range(T):
        h_new, d, c = cell.step(xs[t], ys[t], h)
        for b in range(B):
            decay = fc.add(1.0 - alpha, fc.mul(d[b], w_self))
            rec[b].append((_z(h[b], xs[t, b]), decay, d[b], c[b]))
        h = h_new
        if len(rec[0]) == block or t == T - 1:
            for b in range(B):
                Z = np.array([z for z, _, _, _ in rec[b]])
                lam, D, C = (np.array([step[k] for step in rec[b]]) for k in (1, 2, 3))
                j = len(Z)
                coef = np.zeros((2 * n, j))
                Q, R, lam_next = np.zeros(n), np.ones(n), np.zeros(n)
                for tau in range(j - 1, -1, -1):
                    Q = fc.add(C[tau], fc.mul(lam_next, Q))
                    coef[:n, tau] = fc.mul(D[tau], Q)
                    coef[n:, tau] = fc.mul(D[tau], R)
                    lam_next = lam[tau]
                    R = fc.mul(lam_next, R)
                gamma = fc.mul(lam_next, Q)
                out = fc.dot(coef, Z)
                G = fc.add(G, fc.add(fc.mul(gamma[:, None], S[b]), out[:n]))
                S[b] = fc.add(fc.mul(R[:, None], S[b]), out[n:])
                rec[b] = []
    return (*cell.result(G), fc.flops)


def snap2(params, xs, ys, alpha):
    """snap2._snap2: per row k and batch element, one product [A; c^T A] J_k, with
    A = diag(d[S_k]) W_hh[S_k, S_k] + (1 - alpha) I, then unit k's immediate term."""
    fc = OnlineCounter()
    xs, ys = _batched(xs, ys)
    T, B, m = xs.shape
    cell = _Cell(fc, params, alpha)
    W_hh = cell.W_hh
    n = W_hh.shape[0]
    r = n + m + 1
    kept = [np.flatnonzero((W_hh[:, k] != 0) | (np.arange(n) == k)) for k in range(n)]
    leak = 1.0 - alpha
    fc.scalar()  # 1 - alpha
    h = np.zeros((B, n))
    J = [np.zeros((B, len(S), r)) for S in kept]
    G = np.zeros((n, r))
    for t in range(T):
        h_new, d, c = cell.step(xs[t], ys[t], h)
        Z = np.array([_z(h[b], xs[t, b]) for b in range(B)])
        for k, S in enumerate(kept):
            s = len(S)
            self_row = int(np.flatnonzero(S == k)[0])
            for b in range(B):
                A = fc.mul(d[b, S][:, None], W_hh[np.ix_(S, S)])
                v = fc.accumulate(0.0, fc.mul(c[b, S][:, None], A), axis=0)
                A[np.arange(s), np.arange(s)] = fc.add(np.diag(A), np.full(s, leak))
                v = fc.accumulate(v, fc.mul(c[b, S], np.full(s, leak)).reshape(1, s), axis=0)
                out = fc.dot(np.vstack([A, v]), J[k][b])
                new, g_row = out[:s], out[s]
                immediate = fc.mul(d[b, k], Z[b])
                new[self_row] = fc.add(new[self_row], immediate)
                cd = c[b, k] * d[b, k]
                fc.scalar()
                G[k] = fc.add(G[k], fc.add(g_row, fc.mul(cd, Z[b])))
                J[k][b] = new
        h = h_new
    return (*cell.result(G), fc.flops)
