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

The kernel works in blocks of k = ``_online.STEPS_PER_BLOCK`` steps (every
call ends one) and never touches theta~ inside a block. With lambda_t =
1 / rho0_t and v_t = (nu_t * d_t) / rho1_t, theta~_t = lambda_t theta~_{t-1}
+ v_t z_t^T, so from theta~_0, the value at the block's start,

    theta~_t = L_t theta~_0 + sum_{tau <= t} a_{tau,t} v_tau z_tau^T,
    L_t = prod_{u <= t} lambda_u,    a_{tau,t} = prod_{tau < u <= t} lambda_u.

Only |theta~_{t-1}| is needed at step t (for rho0), and it follows from the
squared norm of theta~_t = lambda_t theta~_{t-1} + v_t z_t^T:

    |theta~_t|^2 = lambda_t^2 |theta~_{t-1}|^2 + 2 lambda_t v_t^T theta~_{t-1} z_t
                   + |v_t|^2 |z_t|^2,
    v_t^T theta~_{t-1} z_t = L_{t-1} q_t + sum_{tau < t} a_{tau,t-1} H_{t,tau},
    q_t = v_t^T theta~_0 z_t,    H_{t,tau} = (v_t . v_tau)(z_tau . z_t).

Nothing in nu_t, z_t, d_t, c_t, rho1_t or v_t depends on theta~ or s~, so a
block runs in two passes. Pass 1 runs the cell over the block and records
them (the draws in the protocol's order). Then the q_t of the whole block are
one GEMM, Z theta~_0^T (k x r by r x n), and H the entry-by-entry product of
the Gram matrices V V^T and Z Z^T. Pass 2 runs s~ step by step (A_t s~ of
the whole batch is one product with W_hh, a GEMM for B > 1), and |theta~_t| from the
recursion above: O(k) scalar work a step. In exact arithmetic the sum is
>= 0 (|2 lambda v^T theta~ z| <= lambda^2 |theta~|^2 + |v|^2 |z|^2); its
rounding is relative to those two terms, so it holds |theta~_t| to rounding
unless theta~_t nearly cancels (a result rounded below zero is taken as zero),
and it restarts from the exact norm at every block. The fold at the block's end adds the
block's gradient and materialises theta~ with one GEMM on the block's v's,
V^T (Q Z | a Z):

    sum_t (c_t . s~_t) theta~_t = gamma theta~_0 + sum_tau Q_tau v_tau z_tau^T,
    Q_tau = (c_tau . s~_tau) + lambda_{tau+1} Q_{tau+1},  Q_{k-1} = (c . s~)_{k-1},
    gamma = lambda_0 Q_0,
    theta~_k = L_k theta~_0 + sum_tau a_{tau,k} v_tau z_tau^T,

and |theta~| afresh from the new theta~. Per step that is 6 n r FLOPs of GEMM
(q, G, theta~) and no pass over theta~ at every step: at B = 1 the earlier
scheme, which rescaled theta~, added the rank-one term and summed its squares
at each step, read and wrote all n r numbers of theta~ a step.

Pass 1 of a block needs nothing of pass 2 of the block before, so the kernel
runs them side by side: step j of pass 2 of block b and step j of pass 1 of
block b + 1 need W_hh s~ and W_hh h_{t-1}, and at B = 1 both come from one
read of W_hh (``_matvec.matvec2``; at n = 256 W_hh is 512 KiB, from L2). A call
of c blocks pairs c - 1 of them: pass 1 of its first block and pass 2 of its
last run alone, so a stream in chunks of one block (32 steps) pairs none and
pays two reads of W_hh a step, where the one-shot call pays about one.

Costs: time Theta(n^2 B) per step (the W_hh products and the GEMMs),
memory Theta(n^2 B): theta~ is n r numbers per batch element (Tallec &
Ollivier 2018, "Unbiased Online Recurrent Optimization", ICLR, sec. 3 and
Algorithm 1; Marschall, Cho & Savin 2020, JMLR 21(135), sec. 4.1).
"""

from __future__ import annotations

import math

import numpy as np

from . import _online
from ._jit import jit
from ._matvec import dot, matvec2
from ._online import (
    carve,
    cell_step_from,
    draw_signs,
    fill_z,
    grad_views,
    ratio,
    rows_times_transpose,
)
from ._validate import check_rnn_problem
from .costs import Term


@jit
def _uoro(xs, ys, weights, alpha, rng, h, s_tilde, theta_tilde, theta_norm, scratch, block, g):
    """UORO over xs, ys from the state (h, s~, theta~, |theta~|, rng), left in it at the end.

    Fills the flat ``g`` (``_online.grad_views``) with the five gradient arrays and
    returns the loss.

    ``block`` holds the records of one block, or at B = 1 of two (index 0 or 1,
    alternating: pass 1 of one block runs beside pass 2 of the one before): v_t
    (blocks, B, k, n), z_t (blocks, B, k, r); d_t, c_t and rho1_t nu_t as (blocks, k,
    B, n), so that step j's (B, n) rows are the cell's own d and c buffers; then, for
    the block in pass 2, lambda_t, c_t . s~_t,
    q_t and a_tau (B, k); H (B, k^2), Z Z^T (k^2), the product Z theta~_0^T (k, n),
    the scaled z's (k, 2r), and for the fold's rows at a time (:func:`fold_rows`) their
    V^T (rows * k) and their product (rows, 2r).
    """
    W_hh, W_out = weights[1], weights[3]
    h_new, e, Ws, As, sq, nsq, L = scratch
    V, Z, D, C, R, lam, w, q, a, Gv, Gz, Y, Zc, VT, out = block
    T, B, m = xs.shape
    g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out = grad_views(g, W_hh.shape[0], m, W_out.shape[0])
    G = (g_W_hh, g_W_ih, g_b_h)  # G's row i: (g_W_hh[i], g_W_ih[i], g_b_h[i])
    fresh = True  # G not yet cleared: the call's first fold does it row by row
    k = Z.shape[2]
    paired = V.shape[0] == 2  # B = 1: pass 1 runs a block ahead, beside pass 2
    leak = 1.0 - alpha
    loss = 0.0
    cur = 0
    for t0 in range(0, T, k):
        j_end = min(k, T - t0)
        t1 = t0 + j_end
        if t0 == 0 or not paired:  # pass 1 of this block, alone
            for j in range(j_end):
                rows_times_transpose(h, W_hh, D[cur, j])
                loss += _record(
                    xs[t0 + j], ys[t0 + j], j, weights, alpha, rng, h, h_new, e, V[cur],
                    Z[cur], D[cur], C[cur], R[cur], g_W_out, g_b_out,
                )  # fmt: skip
        j_next = min(k, T - t1) if paired else 0  # steps of the next block run beside
        nxt = 1 - cur if paired else cur
        _block_products(theta_tilde, theta_norm, j_end, V[cur], Z[cur], q, Gv, Gz, Y, nsq, L)
        for j in range(j_end):
            # Pass 2 of this block, and beside it pass 1 of the next: the next block's cell
            # step needs W_hh h_{t-1} and this step W_hh s~, both from one read of W_hh.
            if j < j_next:
                matvec2(W_hh, s_tilde[0], h[0], Ws[0], D[nxt, j, 0])
                loss += _record(
                    xs[t1 + j], ys[t1 + j], j, weights, alpha, rng, h, h_new, e, V[nxt],
                    Z[nxt], D[nxt], C[nxt], R[nxt], g_W_out, g_b_out,
                )  # fmt: skip
            else:
                rows_times_transpose(s_tilde, W_hh, Ws)
            _propagate(
                j, j_end, leak, s_tilde, Ws, As, theta_norm, D[cur, j], C[cur, j], R[cur, j],
                lam, w, q, a, Gv, nsq, L,
            )  # fmt: skip
        for b in range(B):
            _fold_block(
                theta_tilde[b], V[cur, b, :j_end], Z[cur, b, :j_end], lam[b, :j_end],
                w[b, :j_end], a[b, :j_end], L[b], Zc[:j_end], VT, out, sq, G, fresh,
            )  # fmt: skip
            theta_norm[b] = math.sqrt(np.sum(sq))
            fresh = False
        cur = nxt
    return 0.5 * loss


# _record and _propagate run at every step with some sixteen arrays each: inlined, so
# that the step pays no call that passes and reference-counts them (kernels/_jit.py).
@jit(inline=True)
def _record(x, y, j, weights, alpha, rng, h, h_new, e, V, Z, D, C, R, g_W_out, g_b_out):
    """Pass 1 at step j of a block, D[j] holding W_hh h_{t-1}: the cell step, and what of
    UORO does not depend on theta~: nu_t, z_t, rho1_t, v_t = (nu_t * d_t) / rho1_t and
    rho1_t nu_t (d_t and c_t kept as well). Returns sum_b |e_t|^2."""
    W_ih, _, b_h, W_out, b_out = weights
    d, c = D[j], C[j]
    sq = cell_step_from(x, y, W_ih, b_h, W_out, b_out, alpha, h, h_new, d, c, e, g_W_out, g_b_out)
    B, n = h.shape
    nu_norm = math.sqrt(n)
    for b in range(B):
        z = Z[b, j]
        fill_z(h[b], x[b], z)
        d_b = d[b]
        rho1 = ratio(math.sqrt(dot(d_b, d_b)) * math.sqrt(dot(z, z)), nu_norm)
        v = V[b, j]
        rn = R[j, b]
        inv_rho1 = 1.0 / rho1
        draw_signs(rng, rn)  # rn holds nu for a moment
        for i in range(n):
            nu = rn[i]
            v[i] = nu * d_b[i] * inv_rho1
            rn[i] = rho1 * nu
    h[:] = h_new
    return sq


@jit
def _block_products(theta_tilde, theta_norm, j_end, V, Z, q, Gv, Gz, Y, nsq, L):
    """Before pass 2 of a block of j_end steps (its v's and z's: V[:, :j_end], Z[:, :j_end]):
    q_j = v_j^T theta~_0 z_j, one GEMM for the block, and H[j, tau] = (v_j . v_tau)
    (z_tau . z_j), the Gram matrices' product entry by entry; |theta~_0|^2 and L = 1."""
    for b in range(V.shape[0]):
        Vb, Zb = V[b, :j_end], Z[b, :j_end]
        Yb = Y[:j_end]
        np.dot(Zb, theta_tilde[b].T, Yb)
        for j in range(j_end):
            q[b, j] = dot(Vb[j], Yb[j])
        H = Gv[b, : j_end * j_end]
        np.dot(Vb, Vb.T, H.reshape((j_end, j_end)))
        np.dot(Zb, Zb.T, Gz[: j_end * j_end].reshape((j_end, j_end)))
        for i in range(j_end * j_end):
            H[i] *= Gz[i]
        nsq[b] = theta_norm[b] * theta_norm[b]
        L[b] = 1.0


@jit(inline=True)
def _propagate(j, j_end, leak, s_tilde, Ws, As, theta_norm, D, C, R, lam, w, q, a, Gv, nsq, L):
    """Pass 2 at step j of a block, Ws holding W_hh s~ (B, n), D, C, R this step's (B, n):
    s~ and |theta~| (theta~ stays as the block began, theta~_0)."""
    B, n = s_tilde.shape
    for b in range(B):
        d_b, s = D[b], s_tilde[b]
        for i in range(n):
            As[i] = leak * s[i] + d_b[i] * Ws[b, i]
        rho0 = ratio(theta_norm[b], math.sqrt(dot(As, As)))
        rn = R[b]
        for i in range(n):
            s[i] = rho0 * As[i] + rn[i]
        w[b, j] = dot(C[b], s)
        inv_rho0 = 1.0 / rho0
        lam[b, j] = inv_rho0
        # |theta~_j|^2 = lambda^2 |theta~_{j-1}|^2 + 2 lambda v_j^T theta~_{j-1} z_j
        # + |v_j|^2 |z_j|^2, with theta~_{j-1} = L theta~_0 + sum_tau a_tau v_tau z_tau^T
        H, a_b = Gv[b, j * j_end : (j + 1) * j_end], a[b]  # row j of H
        cross = L[b] * q[b, j] + dot(a_b[:j], H[:j])
        x = inv_rho0 * inv_rho0 * nsq[b] + 2.0 * inv_rho0 * cross + H[j]
        nsq[b] = max(x, 0.0)  # rounding could take a near-zero norm below zero
        theta_norm[b] = math.sqrt(nsq[b])
        for tau in range(j):
            a_b[tau] *= inv_rho0
        a_b[j] = 1.0
        L[b] *= inv_rho0


@jit(inline=True)
def fold_rows(n, r):
    """Rows of theta~ that a fold takes at a time: its GEMM's (rows, 2r) product stays
    within 512 KiB, half the L2, beside the rows of theta~ and G it updates (at n = 728
    the whole product was 8.5 MiB, streamed out of the L3 and back); all n rows when
    that fits, at least 32 for the GEMM's sake, and panels as even as rows allow (at
    n = 256, 86 + 86 + 84 rows, not 127 + 127 + 2)."""
    cap = max(32, 32768 // r)
    panels = (n + cap - 1) // cap
    return (n + panels - 1) // panels  # the panels as even as rows allow


@jit
def _fold_block(theta, V, Z, lam, w, a, L, Zc, VT, out, sq, G, fresh):
    """G += sum over the block's j steps of w_t theta~_t; theta~ <- its value at the block's end.

    theta~ holds theta~_0 on entry; ``sq`` receives the column sums of the new
    theta~'s squares. A GEMM with the block's v's, V^T (Q Z | a Z), whose left half
    is G's term and right half theta~'s, for ``out.shape[0]`` rows of theta~ at a
    time (:func:`fold_rows`; ``VT`` holds those rows of V^T, contiguous). ``fresh``:
    G holds garbage, and each row is cleared just before it is added to.
    """
    n, r = theta.shape
    j = Z.shape[0]
    Q = 0.0  # sum over t >= tau of w_t prod_{tau < u <= t} lambda_u
    lam_next = 0.0
    for tau in range(j - 1, -1, -1):
        Q = w[tau] + lam_next * Q
        a_tau = a[tau]
        for col in range(r):
            Zc[tau, col] = Q * Z[tau, col]
            Zc[tau, r + col] = a_tau * Z[tau, col]
        lam_next = lam[tau]
    gamma = lam_next * Q
    g_hh, g_ih, g_b = G
    n_ih = g_ih.shape[1]
    sq[:] = 0.0
    for i0 in range(0, n, out.shape[0]):
        rows = min(out.shape[0], n - i0)
        Vp = VT[: rows * j].reshape((rows, j))
        for tau in range(j):
            for i in range(rows):
                Vp[i, tau] = V[tau, i0 + i]
        np.dot(Vp, Zc, out[:rows])
        _fold_rows(theta, i0, rows, out, gamma, L, sq, g_hh, g_ih, g_b, n_ih, fresh)


@jit(inline=True)
def _fold_rows(theta, i0, rows, out, gamma, L, sq, g_hh, g_ih, g_b, n_ih, fresh):
    """Rows i0 .. i0 + rows - 1 of the fold, ``out`` holding their part of the GEMM."""
    n, r = theta.shape
    for i in range(i0, i0 + rows):
        th = theta[i]
        o = out[i - i0]
        if fresh:
            g_hh[i] = 0.0
            g_ih[i] = 0.0
            g_b[i] = 0.0
        g = g_hh[i]
        for col in range(n):
            g[col] += gamma * th[col] + o[col]
        g = g_ih[i]
        for col in range(n_ih):
            g[col] += gamma * th[n + col] + o[n + col]
        g_b[i] += gamma * th[r - 1] + o[r - 1]
        for col in range(r):
            x = L * th[col] + o[r + col]
            th[col] = x
            sq[col] += x * x


@jit
def _uoro_flat(xs, ys, weights, alpha, rng, state, work, k, g):
    """``_uoro`` on the state and scratch carved from two flat arrays (:class:`UOROState`).

    One dispatch of nine arguments instead of ``_uoro``'s thirty-odd arrays, most of
    them in tuples: a stream's chunk pays Numba for every array it passes.
    """
    _, B, m = xs.shape
    n, p = weights[1].shape[0], weights[3].shape[0]
    r = n + m + 1
    h, at = carve(state, 0, (B, n))
    s_tilde, at = carve(state, at, (B, n))
    theta_tilde, at = carve(state, at, (B, n, r))
    theta_norm, at = carve(state, at, (B,))
    h_new, at = carve(work, 0, (B, n))
    e, at = carve(work, at, (B, p))
    Ws, at = carve(work, at, (B, n))
    As, at = carve(work, at, (n,))
    sq, at = carve(work, at, (r,))
    nsq, at = carve(work, at, (B,))
    L, at = carve(work, at, (B,))
    blocks = record_blocks(B)
    V, at = carve(work, at, (blocks, B, k, n))
    Z, at = carve(work, at, (blocks, B, k, r))
    D, at = carve(work, at, (blocks, k, B, n))
    C, at = carve(work, at, (blocks, k, B, n))
    R, at = carve(work, at, (blocks, k, B, n))
    lam, at = carve(work, at, (B, k))
    w, at = carve(work, at, (B, k))
    q, at = carve(work, at, (B, k))
    a, at = carve(work, at, (B, k))
    Gv, at = carve(work, at, (B, k * k))
    Gz, at = carve(work, at, (k * k,))
    Y, at = carve(work, at, (k, n))
    Zc, at = carve(work, at, (k, 2 * r))
    rows = fold_rows(n, r)
    VT, at = carve(work, at, (rows * k,))
    out, at = carve(work, at, (rows, 2 * r))
    return _uoro(
        xs, ys, weights, alpha, rng, h, s_tilde, theta_tilde, theta_norm,
        (h_new, e, Ws, As, sq, nsq, L), (V, Z, D, C, R, lam, w, q, a, Gv, Gz, Y, Zc, VT, out), g,
    )  # fmt: skip


@jit(inline=True)
def record_blocks(B):
    """Blocks of records the kernel keeps: two at B = 1, where pass 1 of the next block
    runs beside pass 2 and their products with W_hh share one read (``matvec2``); one
    above, where the products are GEMMs, which read W_hh once for the whole batch."""
    return 2 if B == 1 else 1


def work_size(B, n, m, p, k) -> int:
    """Elements of ``_uoro_flat``'s ``work`` for blocks of ``k`` steps (its carving order)."""
    r = n + m + 1
    kBn = record_blocks(B) * k * B * n
    return _online.space(
        B * n, B * p, B * n, n, r, B, B, kBn, record_blocks(B) * B * k * r, kBn, kBn, kBn,
        B * k, B * k, B * k, B * k, B * k * k, k * k, k * n, 2 * k * r,
        fold_rows(n, r) * k, fold_rows(n, r) * 2 * r,
    )  # fmt: skip


class UOROState:
    """What UORO carries across steps: h_t, s~ (B, n), theta~ (B, n, r), |theta~| (B,), the rng
    (``rng``: the four uint64 words of its PCG64, ``_online.pcg_words``).

    Every call ends a block, so theta~ is always held as it is, not as a block's terms.
    All four arrays are views of the one array ``buf``; the kernel's flat scratch is
    kept on it too (``_online.kept_work``), so that a stream allocates it once.
    """

    def __init__(self, B, n, m, p, dtype, seed):
        r = n + m + 1
        sizes = (B * n, B * n, B * n * r, B)  # as _uoro_flat carves them
        self.buf = np.zeros(_online.space(*sizes), dtype)
        starts = np.cumsum([0, *(_online.space(s) for s in sizes[:-1])])
        h, s_tilde, theta_tilde, self.theta_norm = (
            self.buf[a : a + s] for a, s in zip(starts, sizes, strict=True)
        )
        self.h, self.s_tilde = h.reshape(B, n), s_tilde.reshape(B, n)
        self.theta_tilde = theta_tilde.reshape(B, n, r)
        self.rng = _online.pcg_words(seed)
        self.sizes = (B, n, m, p)
        self.grad_size, self.cuts = _online.grad_size(n, m, p), _online.grad_cuts(n, m, p)


def start(arrays, B, seed=0) -> UOROState:
    """UORO's state at t = 0 for ``B`` sequences: everything zero, the generator at ``seed``."""
    W_ih = arrays[0]
    return UOROState(
        B, W_ih.shape[0], W_ih.shape[1], arrays[3].shape[0], W_ih.dtype, _online.check_seed(seed)
    )


def advance(state: UOROState, arrays, alpha, xs, ys):
    """Run UORO over the checked chunk ``xs``, ``ys`` from ``state``; return (loss, grads)."""
    k, work = _online.kept_work(state, xs.shape[0], work_size, state.sizes, state.buf.dtype)
    g = np.empty(state.grad_size, state.buf.dtype)
    loss = _uoro_flat(xs, ys, arrays, alpha, state.rng, state.buf, work, k, g)
    return loss, _online.grads_of(g, *state.cuts)


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


def _block_lengths(T: int) -> list[int]:
    """The kernel's blocks for a call of T steps: full blocks of k, the last one ragged."""
    k = _online.block_steps(T)
    return [min(k, T - t0) for t0 in range(0, T, k)]


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``uoro`` call."""
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    blocks = _block_lengths(T)
    squares = sum(j * j for j in blocks)
    pairs = sum(j * (j - 1) // 2 for j in blocks)  # (tau, j) with tau < j, within a block
    TB = {"T": 1, "B": 1}
    return [
        *_online.cell_flops(T, B, n, m, p),
        Term(T * B * 2 * n * n, {**TB, "n": 2}),  # W_hh s~
        # |d|^2 (2), v and rho1 nu (3); A s~ (3), its norm (2), s~ (2), c . s~ (2); q (2)
        Term(T * B * 16 * n, {**TB, "n": 1}),
        # |z|^2 (2 r); the z's scaled by Q and by a in the fold (2 r)
        *_online.times_r(T * B * 4, TB, n, m),
        # rho1 and 1 / rho1 (8), rho0 (5), 1 / rho0, |theta~|^2 (7) and its root, L; Q (2)
        Term(T * B * 25, TB),
        # the GEMMs: Z theta~_0^T for q, V^T (Q Z | a Z) for G and theta~
        *_online.times_r(T * B * 6 * n, {**TB, "n": 1}, n, m),
        # the Gram matrices V V^T, Z Z^T and their product entry by entry, per block
        Term(squares * B * 2 * n, {**TB, "n": 1}),
        *_online.times_r(squares * B * 2, TB, n, m),
        Term(squares * B, TB),
        Term(pairs * B * 3, TB),  # a_tau H[j, tau] summed, and a_tau scaled, per earlier step
        # per block: G += gamma theta~_0 + V^T (Q Z) (3), theta~ <- L theta~_0 + V^T (a Z)
        # and its squares (4); the column sums of the squares
        *_online.times_r(len(blocks) * B * 7 * n, {**TB, "n": 1}, n, m),
        *_online.times_r(len(blocks) * B, TB, n, m),
        Term(len(blocks) * B * 3, TB),  # |theta~|^2 from the norm, gamma, |theta~|
        Term(2),  # 1 - alpha, |nu| = sqrt(n)
    ]


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``uoro`` call: theta~, G and the fold's buffer lead; nothing
    grows with T."""
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    k = _online.block_steps(T)
    rows = fold_rows(n, n + m + 1)
    fold_powers = {"n": 1} if rows == n else {}  # all of theta~'s rows, or a fixed share
    return [
        *_online.times_r(B * n * itemsize, {"B": 1, "n": 1}, n, m),  # theta~
        # the fold's rows at a time: their GEMM product (rows, 2r) and V^T (rows, k)
        *_online.times_r(2 * rows * itemsize, fold_powers, n, m),
        Term(rows * k * itemsize, fold_powers),
        *_online.returned_gradient_bytes(n, m, itemsize),
        Term(p * n * itemsize, {"n": 1, "p": 1}),  # g_W_out
        Term(p * itemsize, {"p": 1}),  # g_b_out
        Term(B * p * itemsize, {"B": 1, "p": 1}),  # e_t
        Term(4 * B * n * itemsize, {"B": 1, "n": 1}),  # h_{t-1}, h_t, s~, W_hh s~
        # the records' v, d, c and rho1 nu (n each) and z (r), for record_blocks(B)
        # blocks; Q z and a z (2r, shared by the batch)
        Term(4 * record_blocks(B) * B * k * n * itemsize, {"B": 1, "n": 1}),
        *_online.times_r(record_blocks(B) * B * k * itemsize, {"B": 1}, n, m),
        *_online.times_r(2 * k * itemsize, {}, n, m),
        Term((k + 1) * n * itemsize, {"n": 1}),  # Z theta~_0^T (k, n) and A s~
        Term(B * k * (k + 4) * itemsize, {"B": 1}),  # H, and lambda, c . s~, q, a per step
        Term(k * k * itemsize),  # Z Z^T
        Term(3 * B * itemsize, {"B": 1}),  # |theta~|, |theta~|^2, L
        *_online.times_r(itemsize, {}, n, m),  # the squares of theta~
    ]
