"""SnAp-2, the sparse n-step approximation of order two (Menick et al. 2021).

SnAp-n keeps the entries of the influence matrix that are non-zero within n
steps of a parameter's use. A parameter of row k moves unit k at its first
step and unit j one step after each hop k -> j (W_hh[j, k] != 0), so SnAp-2
keeps J_t[j, k, :] for the units within one hop of unit k,

    S_k = {k} + {j : W_hh[j, k] != 0}       (the mask I + [W_hh != 0], column k),

and runs RTRL on that pattern, dropping what falls outside it at every step
(notation of ``_online.py``):

    J[S_k, k, :] <- A_t[S_k, S_k] J[S_k, k, :] + [j == k] d_t,k z_t^T
                  = (1 - alpha) J + d_t[S_k] * (W_hh[S_k, S_k] J) + ...
    dL/dtheta[k, :] += c_t[S_k]^T J[S_k, k, :]

Only the kept entries are stored: row k's block is |S_k| x r per batch
element, so the influence takes sum_k |S_k| r B numbers and a step costs
2 sum_k |S_k|^2 r B for its products: a fraction density^2 of RTRL's time and
density of its memory for a W_hh whose columns hold a fraction ``density`` of
non-zeros. For a dense W_hh every S_k is every unit: SnAp-2 is RTRL, and costs
like it. For a sparse one it equals RTRL up to T = 2 and differs from T = 3 on
(once a two-hop path exists). The pattern is the zero pattern of the first
weights; a stream keeps it, and refuses later weights with non-zeros outside
it.

The kernel: per step, parameter row k and batch element b, the leak and d_t
are folded into the block's matrix, A = diag(d_t[S_k]) W_hh[S_k, S_k] + (1 - alpha)
I (W_hh[S_k, S_k] gathered once into a block of its own, then scaled per element and
step, since d_t differs between them), and c_t[S_k]^T A is
appended as one more row, so that one GEMM, (|S_k| + 1 x |S_k|) times the block
(|S_k| x r), gives the new block and its share c^T A J of the gradient row at once.
What is left per row is unit k's immediate term d_k z_t^T and c_k d_k z_t^T: O(r),
against the O(|S_k| r) pass over the block that scaling the product would take.

Blocks of steps (``_online.STEPS_PER_BLOCK``, as the other online rules): a row's
update at step t reads only what the cell computed at t (d_t, c_t, z_t), never
another row. So the kernel runs the cell over a block of steps first, keeping
those three vectors of each step, and then takes each row's blocks through all
the block's steps while they sit in cache: W_hh[S_k, S_k] is gathered once a
block, and the influence (density n^3 B numbers, past the 32 MiB last-level
cache from n ~ 200 at half density) crosses the memory bus once a block instead
of once a step. At the ~0.7 ns a number measured for exact RTRL's influence
(kernels/_slabs.py) that stream is 10 to 16% of a step over n = 320..576 at half
density, falling with n, which would bend the time exponent along n below 4.
The product cannot write over its own input:
a row's steps alternate between two scratch blocks, the first reading J and the
last copied back into it (s r numbers a block, against 2 (s + 1) s r FLOPs a
step). Each gradient row sums over (b, t).

Costs: time Theta(density^2 n^4 B) per step, memory Theta(density n^3 B)
(Menick, Elsen, Evci, Osindero, Simonyan & Graves 2021, "Practical Real Time
Recurrent Learning with a Sparse Approximation", ICLR, sec. 3.1 and Table 1;
the counts here follow from the kept pattern).
"""

from __future__ import annotations

import numpy as np

from . import _online
from ._jit import jit
from ._online import cell_step, fill_z
from ._validate import check_rnn_problem
from .costs import Term


@jit
def _snap2(xs, ys, weights, alpha, ptr, idx, h, J, scratch, G, grads):
    W_ih, W_hh, b_h, W_out, b_out = weights
    h_new, D, C, e, Z, W_S, A, pair = scratch
    g_W_out, g_b_out = grads
    T, B, _ = xs.shape
    n = W_hh.shape[0]
    k_max = Z.shape[0]
    loss = 0.0
    G[:] = 0.0
    for t0 in range(0, T, k_max):
        steps = min(k_max, T - t0)
        # The cell over the block; d_t, c_t (written in place by cell_step) and z_t kept.
        for j in range(steps):
            t = t0 + j
            loss += cell_step(
                xs[t], ys[t], W_ih, W_hh, b_h, W_out, b_out, alpha, h, h_new, D[j], C[j], e,
                g_W_out, g_b_out,
            )  # fmt: skip
            for b in range(B):
                fill_z(h[b], xs[t, b], Z[j, b])
            h[:] = h_new
        # Each row's blocks through the block's steps, while they are in cache.
        for k in range(n):
            _row_over_steps(k, steps, alpha, W_hh, ptr, idx, J, D, C, Z, W_S, A, pair, G[k])
    return 0.5 * loss


@jit(inline=True)
def _row_over_steps(k, steps, alpha, W_hh, ptr, idx, J, D, C, Z, W_S, A, pair, g):
    """Row k's blocks J[S_k, k, :] of every batch element through ``steps`` steps; adds
    their shares c_t[S_k]^T J_t to the gradient row ``g``."""
    B, r = Z.shape[1], Z.shape[2]
    n = W_hh.shape[0]
    leak = 1.0 - alpha
    k0 = ptr[k]
    s = ptr[k + 1] - k0
    S = idx[k0 : k0 + s]
    W_kk = W_hh  # every unit kept: W_hh[S_k, S_k] is W_hh
    if s < n:  # W_hh[S_k, S_k], gathered once for the block's B x steps products
        W_kk = W_S[: s * s].reshape(s, s)
        for jj in range(s):
            src = W_hh[S[jj]]
            for ll in range(s):
                W_kk[jj, ll] = src[S[ll]]
    kk = 0  # unit k's place in S_k: the row of its immediate term
    while S[kk] != k:
        kk += 1
    Ax = A[: (s + 1) * s].reshape(s + 1, s)
    vrow = Ax[s]
    half = pair.shape[0] // 2
    for b in range(B):
        lo = (k0 * B + b * s) * r
        block = J[lo : lo + s * r].reshape(s, r)
        src_block = block
        for j in range(steps):
            # [A; c^T A] with A = diag(d[S_k]) W_hh[S_k, S_k] + (1 - alpha) I: its A rows
            # times the block are the new block, its c^T A row the block's share of the
            # gradient row c[S_k]^T J.
            d, c = D[j, b], C[j, b]
            vrow[:] = 0.0
            for jj in range(s):
                sj = S[jj]
                dj = d[sj]
                cj = c[sj]
                row = Ax[jj]
                w = W_kk[jj]
                for ll in range(s):
                    x = dj * w[ll]
                    row[ll] = x
                    vrow[ll] += cj * x
                row[jj] += leak
                vrow[jj] += cj * leak
            off = (j % 2) * half
            out = pair[off : off + (s + 1) * r].reshape(s + 1, r)
            np.dot(Ax, src_block, out)
            # + M_t on unit k: d_k z_t^T, and its share of the gradient row, c_k d_k z_t^T
            d_k = d[k]
            cd_k = c[k] * d_k
            z = Z[j, b]
            Jk = out[kk]
            gk = out[s]
            for col in range(r):
                Jk[col] += d_k * z[col]
                g[col] += gk[col] + cd_k * z[col]
            src_block = pair[off : off + s * r].reshape(s, r)
        block[:] = src_block


def index_dtype(dtype):
    """Indices as wide as the floats: int32 beside float32, int64 beside float64.

    Either holds any n a float kernel can afford, and a float32 run then halves
    every buffer, the pattern's too.
    """
    return np.int32 if np.dtype(dtype).itemsize == 4 else np.int64


def kept_pattern(W_hh):
    """(ptr, idx): row k keeps the units ``idx[ptr[k]:ptr[k + 1]]``: k and its out-neighbours."""
    keep = W_hh.T != 0  # keep[k, j]: W_hh[j, k] != 0, a hop k -> j
    np.fill_diagonal(keep, True)
    n = keep.shape[0]
    index = index_dtype(W_hh.dtype)
    ptr = np.zeros(n + 1, index)
    np.cumsum(keep.sum(axis=1), out=ptr[1:])
    idx = np.ascontiguousarray(np.nonzero(keep)[1], dtype=index)  # row-major: by k, ascending j
    return ptr, idx


class SnAp2State:
    """What SnAp-2 carries across steps: h_t (B, n), the kept influence entries, and their pattern.

    ``J`` holds row k's block J[S_k, k, :] of every batch element, (B, |S_k|, r),
    at row ``ptr[k] B``, rows of r numbers in a flat array of ptr[n] B rows.
    """

    def __init__(self, W_hh, B, m, dtype):
        n = W_hh.shape[0]
        self.ptr, self.idx = kept_pattern(W_hh)
        self.h = np.zeros((B, n), dtype)
        self.J = np.zeros(self.idx.shape[0] * B * (n + m + 1), dtype)

    def check_weights(self, W_hh) -> None:
        """Refuse a W_hh with a non-zero outside the kept pattern (the pattern is fixed)."""
        n = W_hh.shape[0]
        kept = np.zeros((n, n), bool)  # kept[j, k]: unit j is in S_k
        kept[self.idx, np.repeat(np.arange(n), np.diff(self.ptr))] = True
        if np.any((W_hh != 0) & ~kept):
            raise ValueError(
                "params.W_hh has non-zeros outside the sparsity pattern of the stream's first "
                "weights; SnAp-2 keeps that pattern, so keep W_hh zero where it was"
            )


def start(arrays, B) -> SnAp2State:
    """SnAp-2's state at t = 0 for ``B`` sequences: zeros on the pattern of ``W_hh``."""
    W_ih, W_hh = arrays[0], arrays[1]
    return SnAp2State(W_hh, B, W_ih.shape[1], W_hh.dtype)


def advance(state: SnAp2State, arrays, alpha, xs, ys):
    """Run SnAp-2 over the checked chunk ``xs``, ``ys`` from ``state``; return (loss, grads)."""
    T, B, m = xs.shape
    n, p = arrays[1].shape[0], arrays[3].shape[0]
    r = n + m + 1
    dt = arrays[1].dtype
    s_max = int(np.diff(state.ptr).max())

    def make(k):
        # h_t, then d_t, c_t and z_t of each of a block's k steps; e_t; W_hh[S_k, S_k];
        # [A; c^T A]; the two scratch blocks a row's steps alternate between
        scratch = (
            np.empty((B, n), dt), np.empty((k, B, n), dt), np.empty((k, B, n), dt),
            np.empty((B, p), dt), np.empty((k, B, r), dt),
            np.empty(s_max * s_max if s_max < n else 0, dt), np.empty((s_max + 1) * s_max, dt),
            np.empty(2 * (s_max + 1) * r, dt),
        )  # fmt: skip
        return scratch, np.empty((n, r), dt)

    scratch, G = _online.kept_scratch(state, _online.block_steps(T), make)
    grads = (np.zeros((p, n), dt), np.zeros(p, dt))
    loss = _snap2(xs, ys, arrays, alpha, state.ptr, state.idx, state.h, state.J, scratch, G, grads)
    return float(loss), _online.gradients(G, *grads, m)


def snap2(params, xs, ys):
    """Loss and the SnAp-2 approximation of the gradient of the (leaky) Elman RNN.

    Parameters
    ----------
    params : RNNParams
        Its ``alpha`` attribute, when present, is the leak (0 < alpha <= 1; 1 by
        default). The zero pattern of ``W_hh`` decides what SnAp-2 keeps.
    xs : array (T, B, m) or (T, m)
    ys : array (T, B, p) or (T, p)

    Returns
    -------
    loss : float
        1/2 sum_t sum_b ||yhat_t,b - y_t,b||^2
    grads : RNNParams
        The sum over steps of SnAp-2's estimate (readout gradients exact); the
        exact gradient when W_hh is dense.
    """
    arrays, xs, ys = check_rnn_problem(params, xs, ys)
    alpha = _online.leak(params)
    return advance(start(arrays, xs.shape[1]), arrays, alpha, xs, ys)


# --- costs ---------------------------------------------------------------------------
# The models count a W_hh with the same number of non-zeros in every column, as the
# registry's problems draw it (sparse_W_hh): density percent of the n - 1 other units.
# A size without "density" means this.
DEFAULT_DENSITY = 25


def hops(n: int, density: int) -> int:
    """Out-neighbours per unit in a W_hh of ``density`` percent: round(density (n - 1) / 100)."""
    return (density * (n - 1) + 50) // 100


def sparse_W_hh(W_hh, density: int, rng) -> np.ndarray:
    """A copy of ``W_hh`` keeping its diagonal and ``hops(n, density)`` random entries a column."""
    if not 1 <= density <= 100:
        raise ValueError(f"density is a percentage of non-zeros, 1 to 100, got {density}")
    n = W_hh.shape[0]
    q = hops(n, density)
    keep = np.eye(n, dtype=bool)
    for k in range(n):
        others = np.delete(np.arange(n), k)
        keep[rng.choice(others, size=q, replace=False), k] = True
    return np.where(keep, W_hh, 0).astype(W_hh.dtype)


def _kept(size):
    n = size["n"]
    return n, hops(n, size.get("density", DEFAULT_DENSITY))


# The terms count q, the out-neighbours of a unit, as density * n (up to rounding):
# power 1 in n and 1 in density, so the same terms serve the n axis (at a fixed
# density) and the density axis (at a fixed n). The work grows with the number of
# non-zeros of the mask I + [W_hh != 0] per column, s = q + 1: density^2 n^4 time
# and density n^3 memory (THEORY.md, "Online approximations").


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``snap2`` call on a W_hh of ``size["density"]`` percent."""
    T, B, m, p = (size[k] for k in ("T", "B", "m", "p"))
    n, q = _kept(size)
    TB = {"T": 1, "B": 1}
    # Per step, batch element and row k (s = q + 1 kept units, r = n + m + 1): the product
    # [A; c^T A] J_k, 2 (s + 1) s r; building A = diag(d) W_hh[S_k, S_k] + (1 - alpha) I
    # and c^T A, 3 s^2 + 3 s; unit k's immediate term and the gradient row, 5 r + 1:
    # n ((2 q^2 + 6 q + 9) r + 3 q^2 + 9 q + 7) in all.
    return [
        *_online.cell_flops(T, B, n, m, p),
        *_online.times_r(T * B * n * 2 * q * q, {**TB, "n": 3, "density": 2}, n, m),
        *_online.times_r(T * B * n * 6 * q, {**TB, "n": 2, "density": 1}, n, m),
        *_online.times_r(T * B * n * 9, {**TB, "n": 1}, n, m),
        Term(T * B * n * 3 * q * q, {**TB, "n": 3, "density": 2}),
        Term(T * B * n * 9 * q, {**TB, "n": 2, "density": 1}),
        Term(T * B * n * 7, {**TB, "n": 1}),
        Term(1),  # 1 - alpha
    ]


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``snap2`` call: the kept entries; nothing grows with T.

    The pattern's indices take the floats' width (``index_dtype``).
    """
    T, B, m, p = (size[k] for k in ("T", "B", "m", "p"))
    n, q = _kept(size)
    k = _online.block_steps(T)
    # W_hh[S_k, S_k] is gathered into a block of its own, unless S_k is every unit
    gathered = q + 1 < n
    return [
        *_online.times_r(B * n * q * itemsize, {"B": 1, "n": 2, "density": 1}, n, m),  # J, hops
        *_online.times_r(B * n * itemsize, {"B": 1, "n": 1}, n, m),  # J, unit k itself
        # the two scratch blocks a row's steps alternate between, 2 (s + 1) r
        *_online.times_r(2 * q * itemsize, {"n": 1, "density": 1}, n, m),
        *_online.times_r(4 * itemsize, {}, n, m),
        Term(q * q * itemsize, {"n": 2, "density": 2}),  # [A; c^T A], (s + 1) x s
        Term(3 * q * itemsize, {"n": 1, "density": 1}),
        Term(2 * itemsize),
        Term(q * q * itemsize * gathered, {"n": 2, "density": 2}),  # W_hh[S_k, S_k]
        Term(2 * q * itemsize * gathered, {"n": 1, "density": 1}),
        Term(itemsize * gathered),
        Term(n * q * itemsize, {"n": 2, "density": 1}),  # pattern: idx (n (q + 1)), ptr (n + 1)
        Term(2 * n * itemsize, {"n": 1}),
        Term(itemsize),
        *_online.gradient_bytes(n, m, itemsize),
        *_online.cell_bytes(B, n, m, p, itemsize),
        Term(B * n * itemsize, {"B": 1, "n": 1}),  # h_{t-1}
        # d_t and c_t of a block's k = min(STEPS_PER_BLOCK, T) steps (cell_bytes counts
        # one step's), and z_t of every element at each of them
        Term(2 * (k - 1) * B * n * itemsize, {"B": 1, "n": 1}),
        *_online.times_r(k * B * itemsize, {"B": 1}, n, m),
    ]
