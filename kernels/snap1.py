"""SnAp-1, the sparse n-step approximation of order one (Menick et al. 2021).

SnAp-n keeps the entries of the influence matrix that are non-zero within n
steps of a parameter's use, and drops the rest at every step. A parameter of
row i (W_hh[i, :], W_ih[i, :], b_h[i]) moves unit i at its first step, so
SnAp-1 keeps J_t[j, i, :] for j = i only: one (n x r) matrix S, row i the
influence of row i's parameters on unit i (notation of ``_online.py``):

    S   <- diag(A_t)[:, None] * S + d_t z_t^T,      diag(A_t) = (1 - alpha) + d_t * diag(W_hh)
    dL/dtheta += c_t[:, None] * S

It is RTRL with every off-diagonal entry of A_t J_{t-1} dropped, so it is
exact when W_hh is diagonal (and when W_hh = 0). RFLO (``rflo.py``) is the
same recursion without the self-connection d_t * diag(W_hh) in the decay, so
both run the one kernel here, :func:`_diagonal_trace`, which takes the
self-connections as an argument.

The kernel, blocked (``_online.STEPS_PER_BLOCK`` = k steps): within a block
the trace is never touched. Each step only records z_t, d_t, c_t and the
decay lambda_t = diag(A_t); at the block's end, for the trace S_0 at its start
and row i (products over an empty range are 1),

    S_k      = (prod_u lambda_u) S_0 + sum_tau (prod_{u > tau} lambda_u) d_tau z_tau^T
    sum_t c_t S_t = (lambda_0 Q_0) S_0 + sum_tau d_tau Q_tau z_tau^T,
    Q_tau    = c_tau + lambda_{tau+1} Q_{tau+1},    Q_{k-1} = c_{k-1},

so both are one (2n x k) x (k x r) GEMM of the coefficients with the block's
z's, and one fused pass over S and G. That reads and writes S and G once per
block instead of once per step, which keeps a step inside the cache at the
sizes where the three n x n arrays (W_hh, S, G) no longer fit in it together;
the coefficients come from a backward recursion without division (RFLO at
alpha = 1 has lambda = 0).

Costs: time Theta(n r B) = Theta(n^2 B) per step, memory Theta(n r B) =
Theta(n^2 B) (Menick, Elsen, Evci, Osindero, Simonyan & Graves 2021,
"Practical Real Time Recurrent Learning with a Sparse Approximation", ICLR,
sec. 3 and Table 1).
"""

from __future__ import annotations

import numpy as np

from . import _batch_parallel, _online, cells, snap1_gated
from ._batch_parallel import batch_parts
from ._jit import jit
from ._online import carve, cell_step, fill_z, grad_views
from ._validate import check_rnn_problem
from .cells import GRUParams, LSTMParams
from .costs import Term


@jit
def _diagonal_trace(xs, ys, weights, alpha, self_connected, h, S, work, k, g):
    """S <- ((1 - alpha) + d * w_self)[:, None] * S + d z^T;  G += c[:, None] * S.

    SnAp-1 passes self_connected = True (w_self = diag(W_hh), read here so that
    the caller copies nothing), RFLO False (w_self = 0). ``work`` (at least
    :func:`work_size` elements) holds the cell's scratch, the block's z_t
    (B, k, r), lambda_t, d_t, c_t (B, k, n), and the scratch of its end
    (:func:`_fold_block`), for blocks of ``k`` steps. Fills the flat ``g``
    (``_online.grad_views``) with the five gradient arrays, G being the first
    three, and returns the loss.
    """
    W_ih, W_hh, b_h, W_out, b_out = weights
    T, B, m = xs.shape
    n, p = W_hh.shape[0], W_out.shape[0]
    r = n + m + 1
    h_new, at = carve(work, 0, (B, n))
    d, at = carve(work, at, (B, n))
    c, at = carve(work, at, (B, n))
    e, at = carve(work, at, (B, p))
    Z, at = carve(work, at, (B, k, r))
    lam, at = carve(work, at, (B, k, n))
    D, at = carve(work, at, (B, k, n))
    C, at = carve(work, at, (B, k, n))
    coef, at = carve(work, at, (k, 2 * n))
    ends, at = carve(work, at, (2, n))
    out, at = carve(work, at, (2 * n, r))
    g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out = grad_views(g, n, m, p)
    G = (g_W_hh, g_W_ih, g_b_h)  # not yet cleared: the call's first fold does it row by row
    fresh = True
    leak = 1.0 - alpha
    loss = 0.0
    j = 0  # steps recorded in the current block
    for t in range(T):
        loss += cell_step(
            xs[t], ys[t], W_ih, W_hh, b_h, W_out, b_out, alpha, h, h_new, d, c, e, g_W_out, g_b_out
        )
        for b in range(B):
            fill_z(h[b], xs[t, b], Z[b, j])
            for i in range(n):
                w_self = W_hh[i, i] if self_connected else 0.0
                lam[b, j, i] = leak + d[b, i] * w_self  # the diagonal of A_t
                D[b, j, i] = d[b, i]
                C[b, j, i] = c[b, i]
        h[:] = h_new
        j += 1
        if j == k or t == T - 1:
            for b in range(B):
                _fold_block(
                    S[b], lam[b, :j], D[b, :j], C[b, :j], Z[b, :j], coef, ends, out, G, fresh
                )
                fresh = False
            j = 0
    return 0.5 * loss


@jit
def _fold_block(S, lam, D, C, Z, coef, ends, out, G, fresh):
    """Fold a block of j steps into one trace S (n, r) and into G.

    coef (k, 2n) receives the coefficients of the block's z's, transposed
    (rows 0..n-1 of the GEMM: the gradient's, rows n..2n-1: the trace's);
    ends (2, n) the coefficients of S_0; out (2n, r) the GEMM. ``fresh``: G
    holds garbage, and each entry is written as 0.0 plus its term (while the row
    is in L1, instead of a pass over all of G to clear it before the call).
    """
    n, r = S.shape
    j = Z.shape[0]
    for i in range(n):
        Q = 0.0  # sum over t >= tau of c_t prod_{tau < u <= t} lambda_u
        R = 1.0  # prod_{tau < u < j} lambda_u
        lam_next = 0.0
        for tau in range(j - 1, -1, -1):
            Q = C[tau, i] + lam_next * Q
            coef[tau, i] = D[tau, i] * Q
            coef[tau, n + i] = D[tau, i] * R
            lam_next = lam[tau, i]
            R = lam_next * R
        ends[0, i] = lam_next * Q
        ends[1, i] = R
    np.dot(coef[:j].T, Z, out)
    g_hh, g_ih, g_b = G
    n_ih = g_ih.shape[1]
    for i in range(n):
        s = S[i]
        o_g = out[i]
        o_s = out[n + i]
        gamma = ends[0, i]
        L = ends[1, i]
        # G's row i is (g_W_hh[i], g_W_ih[i], g_b_h[i]): the returned arrays themselves.
        # A fresh G adds to 0.0 in place of what it holds: the sum a cleared row would
        # give, without a pass to clear it (the branch is the loop's, hoisted by LLVM).
        g = g_hh[i]
        for col in range(n):
            x = s[col]
            g[col] = (0.0 if fresh else g[col]) + (gamma * x + o_g[col])
            s[col] = L * x + o_s[col]
        g = g_ih[i]
        for col in range(n_ih):
            x = s[n + col]
            g[col] = (0.0 if fresh else g[col]) + (gamma * x + o_g[n + col])
            s[n + col] = L * x + o_s[n + col]
        x = s[r - 1]
        g_b[i] = (0.0 if fresh else g_b[i]) + (gamma * x + o_g[r - 1])
        s[r - 1] = L * x + o_s[r - 1]


def trace_flops(T, B, n, m, p) -> list[Term]:
    """Exact FLOPs of one ``_diagonal_trace`` call (SnAp-1 and RFLO alike)."""
    blocks = -(-T // _online.STEPS_PER_BLOCK)
    TB = {"T": 1, "B": 1}
    return [
        *_online.cell_flops(T, B, n, m, p),
        Term(T * B * 2 * n, {**TB, "n": 1}),  # lambda_t
        # per step folded: the GEMM's 2 (2n) r, and the coefficients (5 per unit)
        *_online.times_r(T * B * 4 * n, {**TB, "n": 1}, n, m),
        Term(T * B * 5 * n, {**TB, "n": 1}),
        # per block: the pass over S and G (5 per entry), and gamma
        *_online.times_r(blocks * B * 5 * n, {**TB, "n": 1}, n, m),
        Term(blocks * B * n, {**TB, "n": 1}),
        Term(1),  # 1 - alpha
    ]


def trace_bytes(T, B, n, m, p, itemsize) -> list[Term]:
    """Working bytes of one ``_diagonal_trace`` call: the trace, G and the block's buffers."""
    k = min(_online.STEPS_PER_BLOCK, T)
    return [
        *_online.times_r(B * n * itemsize, {"B": 1, "n": 1}, n, m),  # S
        *_online.times_r(2 * n * itemsize, {"n": 1}, n, m),  # the block's GEMM
        *_online.returned_gradient_bytes(n, m, itemsize),
        *_online.cell_bytes(B, n, m, p, itemsize),
        # z (r), lambda, d, c (3 n) of each step of a block
        *_online.times_r(B * k * itemsize, {"B": 1}, n, m),
        Term(B * k * 3 * n * itemsize, {"B": 1, "n": 1}),
        Term((2 * k + 2) * n * itemsize, {"n": 1}),  # the block's coefficients
        Term(B * n * itemsize, {"B": 1, "n": 1}),  # h_{t-1}
    ]


def work_size(B, n, m, p, k) -> int:
    """Elements of ``_diagonal_trace``'s ``work`` for blocks of ``k`` steps (its carving order)."""
    r = n + m + 1
    return _online.space(
        B * n, B * n, B * n, B * p, B * k * r, B * k * n, B * k * n, B * k * n, k * 2 * n,
        2 * n, 2 * n * r,
    )  # fmt: skip


class TraceState:
    """What SnAp-1 and RFLO carry across steps: h_t (B, n) and the trace S (B, n, r).

    ``self_connected``: SnAp-1's trace (True) or RFLO's (False). The kernel's flat
    scratch is kept on it too (``_online.kept_work``), so that a stream allocates it
    once (again only for a chunk that needs longer blocks).
    """

    def __init__(self, B, n, m, p, dtype, self_connected):
        self.self_connected = self_connected
        self.h = np.zeros((B, n), dtype)
        self.S = np.zeros((B, n, n + m + 1), dtype)
        self.sizes = (B, n, m, p)
        self.grad_size, self.cuts = _online.grad_size(n, m, p), _online.grad_cuts(n, m, p)


def start(arrays, B) -> TraceState:
    """SnAp-1's state at t = 0 for ``B`` sequences: zeros."""
    W_ih = arrays[0]
    return TraceState(B, W_ih.shape[0], W_ih.shape[1], arrays[3].shape[0], W_ih.dtype, True)


def advance(state: TraceState, arrays, alpha, xs, ys):
    """Run SnAp-1 (or RFLO: the state says) over the checked chunk ``xs``, ``ys`` from
    ``state``; return (loss, grads)."""
    dt = state.h.dtype
    k, work = _online.kept_work(state, xs.shape[0], work_size, state.sizes, dt)
    g = np.empty(state.grad_size, dt)
    loss = _diagonal_trace(
        xs, ys, arrays, alpha, state.self_connected, state.h, state.S, work, k, g
    )
    return loss, _online.grads_of(g, *state.cuts)


def snap1(params, xs, ys):
    """Loss and the SnAp-1 approximation of the gradient of the (leaky) Elman RNN.

    Parameters
    ----------
    params : RNNParams, GRUParams or LSTMParams
        An RNNParams' ``alpha`` attribute, when present, is the leak (0 < alpha <= 1;
        1 by default). The gated cells run ``snap1_gated`` (SnAp-1 as Menick et al.
        define it for them: each parameter row's influence on its own unit's state).
    xs : array (T, B, m) or (T, m)
    ys : array (T, B, p) or (T, p)

    Returns
    -------
    loss : float
        1/2 sum_t sum_b ||yhat_t,b - y_t,b||^2
    grads : the parameters' type
        The sum over steps of SnAp-1's estimate (readout gradients exact); the
        exact gradient when W_hh (every gate's block of weight_hh) is diagonal.
    """
    if isinstance(params, GRUParams | LSTMParams):
        cell, w, xs, ys = cells.check_problem(params, xs, ys)
        loss, grads = snap1_gated.KERNELS[cell.name](*w, xs, ys)
        return loss, cells.as_params(cells.Weights(*grads), cell)
    arrays, xs, ys = check_rnn_problem(params, xs, ys)
    alpha = _online.leak(params)
    # threads > 1: batch blocks in parallel (kernels/_batch_parallel.py)
    _, B, m = xs.shape
    if (parts := batch_parts(B, arrays[1].shape[0], m, arrays[3].shape[0])) > 1:
        return _batch_parallel.online(parts, start, advance, arrays, alpha, xs, ys)
    return advance(start(arrays, xs.shape[1]), arrays, alpha, xs, ys)


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``snap1`` call (a gated cell's where size["cell"] names one)."""
    if size.get("cell", "elman") != "elman":
        return snap1_gated.flops(size)
    return trace_flops(*(size[k] for k in ("T", "B", "n", "m", "p")))


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``snap1`` call (a gated cell's where size["cell"] names one)."""
    if size.get("cell", "elman") != "elman":
        return snap1_gated.memory(size, itemsize)
    return trace_bytes(*(size[k] for k in ("T", "B", "n", "m", "p")), itemsize)
