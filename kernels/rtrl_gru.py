"""Real-time recurrent learning for the GRU cell (Williams & Zipser 1989; Cho et al. 2014).

The cell is PyTorch's ``torch.nn.GRU`` (one layer, h_0 = 0), gate rows r|z|n:

    r_t    = sig(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t    = sig(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    u_t    = W_hn h_{t-1} + b_hn
    g_t    = tanh(W_in x_t + b_in + r_t * u_t)
    h_t    = (1 - z_t) * g_t + z_t * h_{t-1}
    yhat_t = W_out h_t + b_out
    L      = 1/2 sum_t sum_b || yhat_t,b - y_t,b ||^2

weight_ih (3n, m) stacks (W_ir; W_iz; W_in), weight_hh (3n, n) stacks
(W_hr; W_hz; W_hn), bias_ih and bias_hh (3n,) are kept apart: b_hn sits
inside r * (...), so the two n-gate biases get different gradients.

RTRL carries the influence J_t = dh_t / dtheta (n x P) over the recurrent
parameters theta = (weight_ih, weight_hh, bias_ih, bias_hh), P = 3n (n + m + 2):

    J_t = A_t J_{t-1} + M_t,      J_0 = 0,      A_t = dh_t / dh_{t-1}
    dL/dtheta += c_t^T J_t,       c_t = W_out^T (yhat_t - y_t)

The readout parameters get their gradient directly at every step
(e_t h_t^T and e_t). No state history is kept: the algorithm is online.

The state Jacobian is dense (sig' = sig (1 - sig), tanh' = 1 - tanh^2, all
at step t, and diag(v) W means row i of W scaled by v_i):

    beta    = (1 - z) (1 - g^2)                  dh/da_n
    alpha_n = beta r                             dh/du
    alpha_r = beta u r (1 - r)                   dh/da_r
    alpha_z = (h_{t-1} - g) z (1 - z)            dh/da_z
    A_t     = diag(z) + diag(alpha_r) W_hr + diag(alpha_z) W_hz + diag(alpha_n) W_hn

Structure of the immediate Jacobian M_t = dh_t / dtheta at fixed h_{t-1}: a
parameter row k of any gate (row k of weight_hh and weight_ih, entry k of
bias_ih and bias_hh) feeds the pre-activation of unit k only, so it moves h_t,k
only and M_t has one non-zero row per parameter row. With the z-vector
z_t = (h_{t-1}, x_t, 1, 1) of length r = n + m + 2 (columns: the weight_hh row,
the weight_ih row, the bias_ih entry, the bias_hh entry), the non-zero row of
the block of gate row k of unit i = k mod n is

    r gate:  alpha_r,i (h_{t-1}, x_t, 1, 1)
    z gate:  alpha_z,i (h_{t-1}, x_t, 1, 1)
    n gate:  (alpha_n,i h_{t-1}, beta_i x_t, beta_i, alpha_n,i)

(the n gate's recurrent row and b_hn are gated by r_i, its input row and b_in
are not). So J is stored as 3n blocks, one per parameter row k, each an
(n x r) matrix, exactly as the Elman RTRL of ``rtrl.py`` stores it:

    J[k][i, c] = dh_t,i / dtheta[k, c]
    J[k] <- A_t J[k] + e_i (coefficients * z_t)^T,      i = k mod n

M_t is never materialised. K blocks are stored side by side as an (n x K r)
slab; each slab update is one GEMM A_t @ slab into a scratch slab, then the
non-zero rows of M_t are added to the scratch, then one fused pass, while the
slab is in cache, writes it back and accumulates the gradient rows
c_t^T J[k]. The scratch is one slab per thread, so the memory is the
influence matrix itself (n P numbers per sequence) plus a fraction. A_t (n x n)
is formed once per step and sequence, O(n^2), against the O(n^2 P) of the slab
products.

Passes: the influence matrix (3 n^3 numbers per sequence, 24 n^3 bytes in
float64) outgrows a 32 MiB last-level cache from n ~ 110; updated whole at
every step, it would be read and written at the memory's rate once a step. A
slab's update needs only what the forward step computed, never another slab,
so the steps run in passes of up to ``STEPS_PER_PASS`` (kernels/_slabs.py):
the pass's forward steps first, each keeping A_t, the work vectors and z_t at
its index in the pass, then each slab of each sequence runs through all the
pass's steps while it is in cache, and J crosses the memory bus once a pass.
The updates are the same; only the gradient rows sum their terms sequence by
sequence, step by step within each, rather than step by step, so the result
equals the step-by-step order (``steps_per_pass=1``) to rounding.

Threads: as in kernels/rtrl.py, a pass's slab updates run in parallel over
Numba's threads (one launch a pass), each a fixed run of slabs for every
sequence and step, with its own scratch slab and BLAS held to one thread;
every gradient row sums over the batch and the steps in one order, so the
result is the same bit for bit at every thread count. What the slab updates
read is therefore kept for every sequence of the batch and every step of a
pass: S B n^2 numbers of A_t, S = min(STEPS_PER_PASS, T), against the
influence matrix's 3 B n^3.

Costs per step and sequence: the GEMMs make 2 n^2 P = 6 n^4 + O(n^3 m) FLOPs
(THEORY.md, "Gated cells": about 3 n^4 multiply-adds), the rest O(n^2 r), in
passes or not; time Theta(T n^4 B); memory Theta(n^3 B), independent of T once
T reaches a pass (below, the pass's keep is T steps long). FLOP convention of
``costs.py``; sig(a) = 1 / (1 + exp(-a)) counts 3 (exp, add, divide; the sign
flip is free), tanh counts 1.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import jit
from ._math import sigmoid, tanh
from ._parallel import one_blas_thread, parallel_parts
from ._slabs import blocks_per_slab, pass_length
from .costs import Term, monomial
from .model import readout_step

# Rows of the work vectors ``v`` (n each) of one sequence at one step.
_R, _Z, _U, _G, _BETA, _AN, _AR, _AZ, _C = range(9)


@jit(inline=True)
def _slab_step(A, Jg, Gg, scratch, vb, zv, grp, n, K, r):
    """One slab of one sequence: Jg <- A_t Jg + M_t, and Gg += c_t^T Jg."""
    Kr = K * r
    an, beta, ar, az, c = vb[_AN], vb[_BETA], vb[_AR], vb[_AZ], vb[_C]
    Js = Jg.reshape(n, Kr)
    Gs = Gg.reshape(Kr)
    S = scratch.reshape(n, Kr)
    # K blocks at once: A_t (n x n) times an (n x K r) slab, the n^4 work.
    np.dot(A, Js, S)
    # + M_t: the one non-zero row of each block (gate row k feeds unit k mod n).
    for kk in range(K):
        k = grp * K + kk
        gate, i = k // n, k % n
        if gate == 2:  # n gate: r gates the recurrent row and b_hn
            for col in range(n):
                scratch[i, kk, col] += an[i] * zv[col]
            for col in range(n, r - 1):  # x_t and b_in
                scratch[i, kk, col] += beta[i] * zv[col]
            scratch[i, kk, r - 1] += an[i] * zv[r - 1]
        else:
            coef = ar[i] if gate == 0 else az[i]
            for col in range(r):
                scratch[i, kk, col] += coef * zv[col]
    # Fused pass while the slab is in cache: store it, and accumulate
    # the gradient rows c_t^T J[k].
    for i in range(n):
        c_i = c[i]
        for col in range(Kr):
            val = S[i, col]
            Js[i, col] = val
            Gs[col] += c_i * val


@jit(inline=True)
def _slab_pass(A, J, G, scratch, v, zv, grp, n_steps):
    """Slab ``grp`` of every sequence through the pass's n_steps steps, while it is in cache."""
    B, _, n, K, r = J.shape
    for b in range(B):
        for j in range(n_steps):
            _slab_step(A[j, b], J[b, grp], G[grp], scratch, v[j, b], zv[j, b], grp, n, K, r)


@jit(inline=True)
def _state_jacobian(vb, h_prev, W_hh, Ab):
    """The derivatives of h_t through each gate into ``vb``, and A_t = dh_t / dh_{t-1} into
    ``Ab``, from the gates in ``vb`` (module docstring)."""
    n = Ab.shape[0]
    rg, zg, ug, gg = vb[_R], vb[_Z], vb[_U], vb[_G]
    beta, an, ar, az = vb[_BETA], vb[_AN], vb[_AR], vb[_AZ]
    W_hr, W_hz, W_hn = W_hh[:n], W_hh[n : 2 * n], W_hh[2 * n :]
    for i in range(n):
        omz = 1.0 - zg[i]
        beta[i] = omz * (1.0 - gg[i] * gg[i])
        an[i] = beta[i] * rg[i]
        ar[i] = beta[i] * ug[i] * rg[i] * (1.0 - rg[i])
        az[i] = (h_prev[i] - gg[i]) * zg[i] * omz
    # A_t = diag(z) + diag(alpha_r) W_hr + diag(alpha_z) W_hz + diag(alpha_n) W_hn.
    for i in range(n):
        for jj in range(n):
            Ab[i, jj] = ar[i] * W_hr[i, jj] + az[i] * W_hz[i, jj] + an[i] * W_hn[i, jj]
        Ab[i, i] += zg[i]


@jit(parallel=True)
def _rtrl_gru(
    xs, ys, W_ih, W_hh, b_ih, b_hh, W_out, b_out, J, G, scratch, A, h_prev, h, gi, gh, v, zv, e,
    grads,
):  # fmt: skip
    T, B, m = xs.shape
    n = W_hh.shape[1]
    n_groups = J.shape[1]
    n_parts = scratch.shape[0]
    g_W_out, g_b_out = grads
    per_pass = A.shape[0]  # steps a pass (kernels/_slabs.py)
    loss = 0.0
    h_prev[:] = 0.0
    J[:] = 0.0
    for s0 in range(0, T, per_pass):
        n_steps = min(per_pass, T - s0)  # the last pass may be shorter
        # Phase 1: the pass's forward steps, each keeping at index j what its slab
        # updates read (A_t, the work vectors, z_t); h rolls on from step to step.
        for j in range(n_steps):
            s = s0 + j
            # Gate inputs of the whole batch: W_i. x_t and W_h. h_{t-1}, rows r|z|n.
            np.dot(xs[s], W_ih.T, gi)
            np.dot(h_prev, W_hh.T, gh)
            for b in range(B):
                vb = v[j, b]
                rg, zg, ug, gg = vb[_R], vb[_Z], vb[_U], vb[_G]
                c = vb[_C]
                for i in range(n):
                    a_r = gi[b, i] + b_ih[i] + gh[b, i] + b_hh[i]
                    a_z = gi[b, n + i] + b_ih[n + i] + gh[b, n + i] + b_hh[n + i]
                    rg[i] = sigmoid(a_r)
                    zg[i] = sigmoid(a_z)
                    ug[i] = gh[b, 2 * n + i] + b_hh[2 * n + i]
                    gg[i] = tanh(gi[b, 2 * n + i] + b_ih[2 * n + i] + rg[i] * ug[i])
                    h[b, i] = (1.0 - zg[i]) * gg[i] + zg[i] * h_prev[b, i]
                # Readout error e_t and the error at the state, c_t = W_out^T e_t.
                loss = readout_step(W_out, b_out, h[b], ys[s, b], e, c, g_W_out, g_b_out, loss)
                _state_jacobian(vb, h_prev[b], W_hh, A[j, b])
                # z_t = (h_{t-1}, x_t, 1, 1).
                zv[j, b, :n] = h_prev[b]
                zv[j, b, n : n + m] = xs[s, b]
                zv[j, b, n + m] = 1.0
                zv[j, b, n + m + 1] = 1.0
            h_prev[:] = h
        # Phase 2: the n^4 work. Each slab runs through all the pass's steps while it
        # sits in cache, so J crosses the memory bus once a pass, not once a step
        # (kernels/_slabs.py). The sequence loop is outside the step loop: one slab
        # of one sequence is the working set. In parallel over slabs, as in
        # kernels/rtrl.py: a slab's blocks and gradient rows are its own, so the
        # parts never share a write and each gradient row sums in the same order
        # at every thread count.
        if n_parts == 1:  # one thread: a plain loop, without a thread-pool launch per pass
            for grp in range(n_groups):
                _slab_pass(A, J, G, scratch[0], v, zv, grp, n_steps)
        else:
            for t in prange(n_parts):
                for grp in range(t * n_groups // n_parts, (t + 1) * n_groups // n_parts):
                    _slab_pass(A, J, G, scratch[t], v, zv, grp, n_steps)
    return 0.5 * loss


def blocks_per_gemm(n: int, m: int, slab_cols: int | None = None) -> int:
    """Influence blocks updated by one GEMM: the largest divisor K of 3n with K r <= slab_cols.

    r = n + m + 2 columns per block. As in ``rtrl.py``: one block makes a GEMM
    too thin for BLAS to reach its peak, all 3n blocks at once would need a
    scratch as large as J; a slab of about ``slab_cols`` columns is wide enough
    for the GEMM and small enough to stay in cache for the fused pass.
    """
    return blocks_per_slab(3 * n, n + m + 2, SLAB_COLS if slab_cols is None else slab_cols)


def slab_count(n: int, m: int, slab_cols: int | None = None) -> int:
    """Slabs (GEMMs per step and sequence) of the influence matrix."""
    return 3 * n // blocks_per_gemm(n, m, slab_cols)


# Columns of the slab one GEMM updates (see blocks_per_gemm). At 512 the scratch
# (n x 512, 0.25 MB in float64 at n = 64) is at most 1 MB, an L2 cache, up to n = 128;
# widths from 256 to 1024 measured within a few percent of each other at n = 64..128.
SLAB_COLS = 512


def rtrl_gru(
    weight_ih, weight_hh, bias_ih, bias_hh, W_out, b_out, xs, ys, *, slab_cols=None,
    steps_per_pass=None,
):  # fmt: skip
    """Loss and exact gradient of a one-layer GRU with a linear readout, by RTRL.

    Parameters
    ----------
    weight_ih : (3n, m), weight_hh : (3n, n), bias_ih, bias_hh : (3n,)
        The GRU's arrays as ``torch.nn.GRU`` holds them, gate rows r|z|n.
    W_out : (p, n), b_out : (p,)
        The readout.
    xs : (T, B, m), ys : (T, B, p)
        Inputs and targets. All arrays C-contiguous, one dtype (float32 or
        float64); checking them is the caller's job, only shapes are asserted.
    slab_cols : int, optional
        Columns of the slab one GEMM updates (default ``SLAB_COLS``).
    steps_per_pass : int, optional
        Steps each slab runs through while it is in cache (default
        ``_slabs.STEPS_PER_PASS``; 1 updates every slab at every step). The
        result equals the default's to rounding.

    Returns
    -------
    loss : float
        1/2 sum_t sum_b ||yhat_t,b - y_t,b||^2
    grads : tuple
        (g_weight_ih, g_weight_hh, g_bias_ih, g_bias_hh, g_W_out, g_b_out), the
        shapes and dtype of the parameters.
    """
    T, B, m = xs.shape
    n3, n = weight_hh.shape
    p = W_out.shape[0]
    assert n3 == 3 * n and weight_ih.shape == (n3, m) and bias_ih.shape == bias_hh.shape == (n3,)
    assert W_out.shape == (p, n) and b_out.shape == (p,) and ys.shape == (T, B, p)
    r = n + m + 2
    dt = weight_hh.dtype
    K = blocks_per_gemm(n, m, slab_cols)
    per_pass = pass_length(T, steps_per_pass)
    # The influence matrix, n x P per sequence, as 3n / K slabs of K blocks:
    # J[b, g, i, kk, c] = dh_i / dtheta[g K + kk, c].
    J = np.empty((B, n3 // K, n, K, r), dt)
    G = np.zeros((n3 // K, K, r), dt)  # gradient of (weight_hh | weight_ih | bias_ih | bias_hh)
    grads = (np.zeros_like(W_out), np.zeros_like(b_out))
    # Per step of a pass and sequence: A_t, the work vectors and z_t; per parallel
    # part: a scratch slab.
    parts = parallel_parts(n3 // K)
    with one_blas_thread(parts):
        loss = _rtrl_gru(
            xs, ys, weight_ih, weight_hh, bias_ih, bias_hh, W_out, b_out, J, G,
            np.empty((parts, n, K, r), dt), np.empty((per_pass, B, n, n), dt),
            np.empty((B, n), dt), np.empty((B, n), dt), np.empty((B, n3), dt),
            np.empty((B, n3), dt), np.empty((per_pass, B, 9, n), dt),
            np.empty((per_pass, B, r), dt), np.empty(p, dt), grads,
        )  # fmt: skip
    del J  # freed before the gradient arrays are copied out of G: they add nothing to the peak
    G = G.reshape(n3, r)
    return float(loss), (
        G[:, n : n + m].copy(), G[:, :n].copy(), G[:, n + m].copy(), G[:, n + m + 1].copy(),
        grads[0], grads[1],
    )  # fmt: skip


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``rtrl_gru`` call, as monomials in T, B, n, m, p.

    Per step and sequence, with r = n + m + 2 and P = 3 n r:

    - slab GEMMs A_t @ slab: 2 n^2 P = 6 n^3 r
    - fused pass, store and c_i * J: 2 n P = 6 n^2 r
    - + M_t, coefficient times z_t on one row of r per block: 2 r per block, 6 n r
    - A_t: 5 per entry (three products, two sums) and z on the diagonal: 5 n^2 + n
    - gate inputs W_ih x_t and W_hh h_{t-1}: 6 n m + 6 n^2
    - gates and h_t: 21 n (3 sums and a sigmoid for r and for z; u: 1; g: 2 sums,
      a product and tanh; h: 4)
    - gate derivatives beta, alpha_n, alpha_r, alpha_z with 1 - z: 12 n
    - readout, loss, g_W_out, g_b_out and c_t: 6 p n + 4 p
    and 1 for the final 0.5 * loss.
    """
    TB = {"T": 1, "B": 1}

    def t(coef, **powers):
        return monomial(size, coef, **TB, **powers)

    return [
        t(6, n=4), t(6, n=3, m=1), t(12, n=3),  # GEMMs, 6 n^3 r
        t(6, n=3), t(6, n=2, m=1), t(12, n=2),  # fused pass, 6 n^2 r
        t(6, n=2), t(6, n=1, m=1), t(12, n=1),  # + M_t, 6 n r
        t(5 + 6, n=2), t(1 + 21 + 12, n=1),  # A_t, W_hh h; diag(z), gates, derivatives
        t(6, n=1, m=1),  # W_ih x
        t(6, n=1, p=1), t(4, p=1),  # readout
        Term(1),  # loss * 0.5
    ]  # fmt: skip


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``rtrl_gru`` call at the default slab width and pass length:
    the influence matrix and little else (array objects, a few KB, not counted).

    What the slab updates read is kept for every step of a pass: S = min(STEPS_PER_PASS,
    T) steps, since a pass is never longer than the sequence. S enters the terms as a
    coefficient, so they carry no power of T (the model is exact at every T, a power
    law in T only from T = STEPS_PER_PASS on, where it is flat).
    """
    n, m = size["n"], size["m"]
    r = n + m + 2
    S = pass_length(size["T"])

    def b(coef, **powers):
        return monomial(size, coef * itemsize, **powers)

    return [
        b(3, B=1, n=3), b(3, B=1, n=2, m=1), b(6, B=1, n=2),  # J: B n 3 n r
        # G, 3 n r; the four arrays returned are copied out of it once J and the
        # scratch are freed.
        b(3, n=2), b(3, n=1, m=1), b(6, n=1),
        # The scratch slab, for one thread (see kernels/rtrl.py's memory).
        Term(n * blocks_per_gemm(n, m) * r * itemsize, {"n": 2}),
        b(S, B=1, n=2),  # A_t of each step of a pass and sequence
        # vectors: h_{t-1}, h_t and the gate inputs per sequence, 2 B n + 2 B 3 n; the
        # work vectors and z_t per step of a pass and sequence, S (9 B n + B r); e, p
        b(8 + 10 * S, B=1, n=1), b(S, B=1, m=1), b(2 * S, B=1), b(1, p=1),
        b(1, n=1, p=1), b(1, p=1),  # readout gradients
    ]  # fmt: skip
