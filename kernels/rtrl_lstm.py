"""Real-time recurrent learning for the LSTM cell (Williams & Zipser 1989; Hochreiter &
Schmidhuber 1997, with the forget gate of Gers, Schmidhuber & Cummins 2000).

The cell is PyTorch's ``torch.nn.LSTM`` (one layer, no peepholes, no projection,
h_0 = c_0 = 0), gate rows i|f|g|o:

    i_t    = sig(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
    f_t    = sig(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
    g_t    = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
    o_t    = sig(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
    c_t    = f_t * c_{t-1} + i_t * g_t
    h_t    = o_t * tanh(c_t)
    yhat_t = W_out h_t + b_out
    L      = 1/2 sum_t sum_b || yhat_t,b - y_t,b ||^2

weight_ih (4n, m), weight_hh (4n, n), bias_ih and bias_hh (4n,) as PyTorch
stacks them. Here both biases enter a gate's pre-activation alike, so their
gradients are equal.

The state is s_t = (h_t, c_t), 2n numbers. RTRL carries the influence
J_t = ds_t / dtheta (2n x P) over theta = (weight_ih, weight_hh, bias_ih,
bias_hh), P = 4n (n + m + 2):

    J_t = A_t J_{t-1} + M_t,      J_0 = 0,      A_t = ds_t / ds_{t-1} (2n x 2n)
    dL/dtheta += c_t^T J_t[h rows],   c_t = W_out^T (yhat_t - y_t)

The readout parameters get their gradient directly at every step.

The state Jacobian (sig' = sig (1 - sig), tanh' = 1 - tanh^2, all at step t;
diag(v) W scales row i of W by v_i). With the gate derivatives of c_t and h_t

    dc/da_i = g i (1 - i)    dc/da_f = c_{t-1} f (1 - f)    dc/da_g = i (1 - g^2)    dc/da_o = 0
    q = o (1 - tanh^2 c_t)   dh/da_o = tanh(c_t) o (1 - o)   dh/da_. = q dc/da_.   (. = i, f, g)

    dc_t/dh_{t-1} = diag(dc/da_i) W_hi + diag(dc/da_f) W_hf + diag(dc/da_g) W_hg
    dh_t/dh_{t-1} = diag(dh/da_o) W_ho + diag(q) dc_t/dh_{t-1}
    dc_t/dc_{t-1} = diag(f)
    dh_t/dc_{t-1} = diag(q f)

    A_t = [ dh_t/dh_{t-1}   diag(q f) ]
          [ dc_t/dh_{t-1}   diag(f)   ]

Its right half is diagonal, and the kernel uses that: the dense left half
(2n x n) multiplies the h rows of J in one GEMM, the diagonal right half is
applied to the c rows in the fused pass. That is 2 (2n) n P FLOPs of GEMM per
step, half of the 2 (2n)^2 P of a dense 2n x 2n product.

Structure of the immediate Jacobian M_t: a parameter row k of any gate
(row k of weight_hh and weight_ih, entry k of both biases) feeds the
pre-activation of unit i = k mod n only, so it moves c_t,i and h_t,i only:
each block of M_t has two non-zero rows. With z_t = (h_{t-1}, x_t, 1, 1) of
length r = n + m + 2 (columns: the weight_hh row, the weight_ih row, the
bias_ih entry, the bias_hh entry), the block of gate row k of gate . has

    row h_i:  dh/da_.,i z_t^T        row c_i:  dc/da_.,i z_t^T

So J is stored as 4n blocks, one per parameter row, each a (2n x r) matrix (h
rows, then c rows), exactly as ``rtrl.py`` stores the Elman influence. K blocks
side by side make a (2n x K r) slab; each slab update is one GEMM
[dh_t/dh_{t-1}; dc_t/dh_{t-1}] @ (h rows of the slab) into a scratch slab, then
the two non-zero rows of M_t per block are added to the scratch, then one
fused pass, while the slab is in cache, adds the diagonal terms
(q f) * J_c and f * J_c, writes both halves back and accumulates the gradient
rows c_t^T J_h. The scratch is one slab per thread: memory is the influence matrix
(2n P numbers per sequence) plus a fraction.

Passes: the influence matrix (8 n^3 numbers per sequence, 64 n^3 bytes in
float64) outgrows a 32 MiB last-level cache from n ~ 80; updated whole at
every step, it would be read and written at the memory's rate once a step. A
slab's update needs only what the forward step computed, never another slab,
so the steps run in passes of up to ``STEPS_PER_PASS`` (kernels/_slabs.py):
the pass's forward steps first, each keeping A_t's left half, the work vectors
and z_t at its index in the pass, then each slab of each sequence runs through
all the pass's steps while it is in cache, and J crosses the memory bus once a
pass. The updates are the same; only the gradient rows sum their terms
sequence by sequence, step by step within each, rather than step by step, so
the result equals the step-by-step order (``steps_per_pass=1``) to rounding.

Threads: as in kernels/rtrl.py, a pass's slab updates run in parallel over
Numba's threads (one launch a pass), each a fixed run of slabs for every
sequence and step, with its own scratch slab and BLAS held to one thread;
every gradient row sums over the batch and the steps in one order, so the
result is the same bit for bit at every thread count. What the slab updates
read is therefore kept for every sequence of the batch and every step of a
pass: 2 S B n^2 numbers of A_t's left half, S = min(STEPS_PER_PASS, T),
against the influence matrix's 8 B n^3.

Costs per step and sequence: the GEMMs make 4 n^2 P = 16 n^4 + O(n^3 m) FLOPs
(the dense 2 (2n)^2 P would be 32 n^4; THEORY.md, "Gated cells", counts about
16 n^4 multiply-adds for it), the rest O(n^2 r), in passes or not; time
Theta(T n^4 B); memory Theta(n^3 B), independent of T once T reaches a pass
(below, the pass's keep is T steps long). FLOP convention of ``costs.py``;
sig(a) = 1 / (1 + exp(-a)) counts 3 (exp, add, divide; the sign flip is free),
tanh counts 1.
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

# Rows of the work vectors ``v`` (n each) of one sequence at one step: the gates,
# tanh(c_t), q, q f, c_t = W_out^T e_t, and the gate derivatives of c and of h in
# gate order i|f|g|o (row _DC + gate and row _DH + gate).
_I, _F, _G, _O, _TC, _Q, _QF, _C = range(8)
_DC, _DH = 8, 12
N_WORK = 16


@jit(inline=True)
def _slab_step(A, Jg, Gg, scratch, vb, zv, grp, n, K, r):
    """One slab of one sequence: Jg <- A_t Jg + M_t, and Gg += c_t^T (Jg's h rows)."""
    Kr = K * r
    qf, fg, c = vb[_QF], vb[_F], vb[_C]
    Js = Jg.reshape(2 * n, Kr)
    Gs = Gg.reshape(Kr)
    S = scratch.reshape(2 * n, Kr)
    # K blocks at once: the (2n x n) left half of A_t times the h rows of
    # the slab (n x K r), the n^4 work.
    np.dot(A, Js[:n], S)
    # + M_t: rows h_i and c_i of each block (gate row k feeds unit k mod n).
    for kk in range(K):
        k = grp * K + kk
        gate, i = k // n, k % n
        coef_h = vb[_DH + gate, i]
        coef_c = vb[_DC + gate, i]
        for col in range(r):
            scratch[i, kk, col] += coef_h * zv[col]
            scratch[n + i, kk, col] += coef_c * zv[col]
    # Fused pass while the slab is in cache: the diagonal right half of
    # A_t on the c rows, store both halves, accumulate c_t^T J_h.
    for i in range(n):
        qf_i, f_i, c_i = qf[i], fg[i], c[i]
        for col in range(Kr):
            jc = Js[n + i, col]
            vh = S[i, col] + qf_i * jc
            Js[n + i, col] = S[n + i, col] + f_i * jc
            Js[i, col] = vh
            Gs[col] += c_i * vh


@jit(inline=True)
def _slab_pass(A, J, G, scratch, v, zv, grp, n_steps):
    """Slab ``grp`` of every sequence through the pass's n_steps steps, while it is in cache."""
    B, _, n2, K, r = J.shape
    n = n2 // 2
    for b in range(B):
        for j in range(n_steps):
            _slab_step(A[j, b], J[b, grp], G[grp], scratch, v[j, b], zv[j, b], grp, n, K, r)


@jit(inline=True)
def _state_jacobian(vb, c_prev, W_hh, Ab):
    """The derivatives of c_t and h_t through each gate into ``vb``, and A_t's dense left
    half into ``Ab``, from the gates and tanh(c_t) in ``vb`` (module docstring)."""
    n = Ab.shape[1]
    ig, fg, gg, og, tc, q, qf = vb[_I], vb[_F], vb[_G], vb[_O], vb[_TC], vb[_Q], vb[_QF]
    dci, dcf, dcg, dco = vb[_DC], vb[_DC + 1], vb[_DC + 2], vb[_DC + 3]
    dco[:] = 0.0  # the output gate does not touch c_t
    dhi, dhf, dhg, dho = vb[_DH], vb[_DH + 1], vb[_DH + 2], vb[_DH + 3]
    W_hi, W_hf, W_hg, W_ho = W_hh[:n], W_hh[n : 2 * n], W_hh[2 * n : 3 * n], W_hh[3 * n :]
    for i in range(n):
        q[i] = og[i] * (1.0 - tc[i] * tc[i])
        dci[i] = gg[i] * ig[i] * (1.0 - ig[i])
        dcf[i] = c_prev[i] * fg[i] * (1.0 - fg[i])
        dcg[i] = ig[i] * (1.0 - gg[i] * gg[i])
        dho[i] = tc[i] * og[i] * (1.0 - og[i])
        dhi[i] = q[i] * dci[i]
        dhf[i] = q[i] * dcf[i]
        dhg[i] = q[i] * dcg[i]
        qf[i] = q[i] * fg[i]
    # The dense left half of A_t: rows 0..n-1 dh_t/dh_{t-1}, n..2n-1 dc_t/dh_{t-1}.
    for i in range(n):
        for jj in range(n):
            dcdh = dci[i] * W_hi[i, jj] + dcf[i] * W_hf[i, jj] + dcg[i] * W_hg[i, jj]
            Ab[n + i, jj] = dcdh
            Ab[i, jj] = dho[i] * W_ho[i, jj] + q[i] * dcdh


@jit(parallel=True)
def _rtrl_lstm(
    xs, ys, W_ih, W_hh, b_ih, b_hh, W_out, b_out, J, G, scratch, A, h_prev, h, c_prev, c_new,
    gi, gh, v, zv, e, grads,
):  # fmt: skip
    T, B, m = xs.shape
    n = W_hh.shape[1]
    n_groups = J.shape[1]
    n_parts = scratch.shape[0]
    g_W_out, g_b_out = grads
    per_pass = A.shape[0]  # steps a pass (kernels/_slabs.py)
    loss = 0.0
    h_prev[:] = 0.0
    c_prev[:] = 0.0
    J[:] = 0.0
    for s0 in range(0, T, per_pass):
        n_steps = min(per_pass, T - s0)  # the last pass may be shorter
        # Phase 1: the pass's forward steps, each keeping at index j what its slab
        # updates read (A_t's left half, the work vectors, z_t); h and c roll on.
        for j in range(n_steps):
            s = s0 + j
            # Gate inputs of the whole batch: W_i. x_t and W_h. h_{t-1}, rows i|f|g|o.
            np.dot(xs[s], W_ih.T, gi)
            np.dot(h_prev, W_hh.T, gh)
            for b in range(B):
                vb = v[j, b]
                ig, fg, gg, og, tc, c = vb[_I], vb[_F], vb[_G], vb[_O], vb[_TC], vb[_C]
                for i in range(n):
                    a_i = gi[b, i] + b_ih[i] + gh[b, i] + b_hh[i]
                    a_f = gi[b, n + i] + b_ih[n + i] + gh[b, n + i] + b_hh[n + i]
                    a_g = gi[b, 2 * n + i] + b_ih[2 * n + i] + gh[b, 2 * n + i] + b_hh[2 * n + i]
                    a_o = gi[b, 3 * n + i] + b_ih[3 * n + i] + gh[b, 3 * n + i] + b_hh[3 * n + i]
                    ig[i] = sigmoid(a_i)
                    fg[i] = sigmoid(a_f)
                    gg[i] = tanh(a_g)
                    og[i] = sigmoid(a_o)
                    c_new[b, i] = fg[i] * c_prev[b, i] + ig[i] * gg[i]
                    tc[i] = tanh(c_new[b, i])
                    h[b, i] = og[i] * tc[i]
                # Readout error e_t and the error at the state, c_t = W_out^T e_t.
                loss = readout_step(W_out, b_out, h[b], ys[s, b], e, c, g_W_out, g_b_out, loss)
                _state_jacobian(vb, c_prev[b], W_hh, A[j, b])
                # z_t = (h_{t-1}, x_t, 1, 1).
                zv[j, b, :n] = h_prev[b]
                zv[j, b, n : n + m] = xs[s, b]
                zv[j, b, n + m] = 1.0
                zv[j, b, n + m + 1] = 1.0
            h_prev[:] = h
            c_prev[:] = c_new
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
    """Influence blocks updated by one GEMM: the largest divisor K of 4n with K r <= slab_cols.

    r = n + m + 2 columns per block; see ``rtrl_gru.blocks_per_gemm``.
    """
    return blocks_per_slab(4 * n, n + m + 2, SLAB_COLS if slab_cols is None else slab_cols)


def slab_count(n: int, m: int, slab_cols: int | None = None) -> int:
    """Slabs (GEMMs per step and sequence) of the influence matrix."""
    return 4 * n // blocks_per_gemm(n, m, slab_cols)


# Columns of the slab one GEMM updates (see blocks_per_gemm). At 512 the scratch
# (2n x 512, 0.5 MB in float64 at n = 64) is at most 1 MB, an L2 cache, up to n = 128;
# widths from 256 to 1024 measured within a few percent of each other at n = 64..128.
SLAB_COLS = 512


def rtrl_lstm(
    weight_ih, weight_hh, bias_ih, bias_hh, W_out, b_out, xs, ys, *, slab_cols=None,
    steps_per_pass=None,
):  # fmt: skip
    """Loss and exact gradient of a one-layer LSTM with a linear readout, by RTRL.

    Parameters
    ----------
    weight_ih : (4n, m), weight_hh : (4n, n), bias_ih, bias_hh : (4n,)
        The LSTM's arrays as ``torch.nn.LSTM`` holds them, gate rows i|f|g|o.
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
    n4, n = weight_hh.shape
    p = W_out.shape[0]
    assert n4 == 4 * n and weight_ih.shape == (n4, m) and bias_ih.shape == bias_hh.shape == (n4,)
    assert W_out.shape == (p, n) and b_out.shape == (p,) and ys.shape == (T, B, p)
    r = n + m + 2
    dt = weight_hh.dtype
    K = blocks_per_gemm(n, m, slab_cols)
    per_pass = pass_length(T, steps_per_pass)
    # The influence matrix, 2n x P per sequence, as 4n / K slabs of K blocks:
    # J[b, g, i, kk, c] = ds_i / dtheta[g K + kk, c], s = (h, c).
    J = np.empty((B, n4 // K, 2 * n, K, r), dt)
    G = np.zeros((n4 // K, K, r), dt)  # gradient of (weight_hh | weight_ih | bias_ih | bias_hh)
    grads = (np.zeros_like(W_out), np.zeros_like(b_out))
    # Per step of a pass and sequence: A_t's left half, the work vectors and z_t;
    # per parallel part: a scratch slab.
    parts = parallel_parts(n4 // K)
    with one_blas_thread(parts):
        loss = _rtrl_lstm(
            xs, ys, weight_ih, weight_hh, bias_ih, bias_hh, W_out, b_out, J, G,
            np.empty((parts, 2 * n, K, r), dt), np.empty((per_pass, B, 2 * n, n), dt),
            np.empty((B, n), dt), np.empty((B, n), dt), np.empty((B, n), dt), np.empty((B, n), dt),
            np.empty((B, n4), dt), np.empty((B, n4), dt), np.empty((per_pass, B, N_WORK, n), dt),
            np.empty((per_pass, B, r), dt), np.empty(p, dt), grads,
        )  # fmt: skip
    del J  # freed before the gradient arrays are copied out of G: they add nothing to the peak
    G = G.reshape(n4, r)
    return float(loss), (
        G[:, n : n + m].copy(), G[:, :n].copy(), G[:, n + m].copy(), G[:, n + m + 1].copy(),
        grads[0], grads[1],
    )  # fmt: skip


def flops(size) -> list[Term]:
    """Exact FLOPs of one ``rtrl_lstm`` call, as monomials in T, B, n, m, p.

    Per step and sequence, with r = n + m + 2 and P = 4 n r:

    - slab GEMMs, (2n x n) @ (n x P): 4 n^2 P = 16 n^3 r
    - fused pass, per entry of the n x P h rows: (q f) J_c + S, f J_c + S and
      c_i * J_h into the gradient, 6 n P = 24 n^2 r
    - + M_t, coefficient times z_t on two rows of r per block: 4 r per block, 16 n r
    - left half of A_t: 5 per entry of dc/dh, 3 per entry of dh/dh: 8 n^2
    - gate inputs W_ih x_t and W_hh h_{t-1}: 8 n m + 8 n^2
    - gates, c_t, tanh(c_t), h_t: 27 n (3 sums per gate, 3 sigmoids, 2 tanh, 3 for
      c_t, 1 for h_t)
    - gate derivatives q, dc/da_{i,f,g}, dh/da_{i,f,g,o}, q f: 19 n
    - readout, loss, g_W_out, g_b_out and c_t: 6 p n + 4 p
    and 1 for the final 0.5 * loss.
    """
    TB = {"T": 1, "B": 1}

    def t(coef, **powers):
        return monomial(size, coef, **TB, **powers)

    return [
        t(16, n=4), t(16, n=3, m=1), t(32, n=3),  # GEMMs, 16 n^3 r
        t(24, n=3), t(24, n=2, m=1), t(48, n=2),  # fused pass, 24 n^2 r
        t(16, n=2), t(16, n=1, m=1), t(32, n=1),  # + M_t, 16 n r
        t(8 + 8, n=2), t(27 + 19, n=1),  # A_t, W_hh h; gates, derivatives
        t(8, n=1, m=1),  # W_ih x
        t(6, n=1, p=1), t(4, p=1),  # readout
        Term(1),  # loss * 0.5
    ]  # fmt: skip


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one ``rtrl_lstm`` call at the default slab width and pass length:
    the influence matrix and little else (array objects, a few KB, not counted).

    What the slab updates read is kept for every step of a pass: S = min(STEPS_PER_PASS,
    T) steps, since a pass is never longer than the sequence. S enters the terms as a
    coefficient, so they carry no power of T (see ``rtrl_gru.memory``).
    """
    n, m = size["n"], size["m"]
    r = n + m + 2
    S = pass_length(size["T"])

    def b(coef, **powers):
        return monomial(size, coef * itemsize, **powers)

    return [
        b(8, B=1, n=3), b(8, B=1, n=2, m=1), b(16, B=1, n=2),  # J: B 2 n 4 n r
        # G, 4 n r; the four arrays returned are copied out of it once J and the
        # scratch are freed.
        b(4, n=2), b(4, n=1, m=1), b(8, n=1),
        # The scratch slab, for one thread (see kernels/rtrl.py's memory).
        Term(2 * n * blocks_per_gemm(n, m) * r * itemsize, {"n": 2}),
        b(2 * S, B=1, n=2),  # left half of A_t, of each step of a pass and sequence
        # vectors: h and c at t - 1 and t and the gate inputs per sequence, 4 B n + 2 B 4 n;
        # the work vectors and z_t per step of a pass and sequence, S (N_WORK B n + B r); e, p
        b(12 + (N_WORK + 1) * S, B=1, n=1), b(S, B=1, m=1), b(2 * S, B=1), b(1, p=1),
        b(1, n=1, p=1), b(1, p=1),  # readout gradients
    ]  # fmt: skip
