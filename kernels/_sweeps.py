"""The two sweeps that reverse-mode algorithms are built from.

BPTT is one forward sweep over the whole sequence and one backward sweep over
it; truncated BPTT alternates short forward sweeps with backward sweeps over
windows. Both live here so that each algorithm file holds only its schedule.

Indexing: steps are 0-based, ``s = 0 .. T-1``; step ``s`` reads ``xs[s]`` and
the state h_s, and writes h_{s+1}. States live in a buffer ``H`` whose entry
``H[i]`` holds h_{i + h_base}, so a caller can keep only a window of states.

Why chunks: the work that does not depend on the recurrence (the input
projection W_ih x, the readout, and the weight gradients) is done as one GEMM
over a chunk of steps, which runs near the BLAS peak; only the recurrent
matrix product stays step by step. The chunk buffers hold ``chunk`` steps, so
they add a constant to the memory, not a term in T.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit
from .costs import Term

# Rows (steps x batch) per chunk GEMM: big enough for BLAS to reach its peak,
# small enough that the chunk buffers stay a fraction of the stored states.
CHUNK_ROWS = 128


def chunk_steps(B: int, limit: int) -> int:
    """Steps per chunk for batch size ``B``, at most ``limit``."""
    return max(1, min(limit, CHUNK_ROWS // B))


@jit
def forward_sweep(xs, W_ih, W_hh, b_h, H, h_base, s0, s1, A):
    """h_{s+1} = tanh(W_ih x_s + W_hh h_s + b_h) for steps s0 <= s < s1.

    ``A`` (chunk, B, n) is scratch for the chunk's input projections.
    """
    B = xs.shape[1]
    m = xs.shape[2]
    n = W_hh.shape[0]
    C = A.shape[0]
    for c0 in range(s0, s1, C):
        c = min(C, s1 - c0)
        # Input projection of the whole chunk: one (c*B, m) x (m, n) GEMM.
        np.dot(xs[c0 : c0 + c].reshape(c * B, m), W_ih.T, A[:c].reshape(c * B, n))
        for j in range(c):
            s = c0 + j
            h_new = H[s + 1 - h_base]
            np.dot(H[s - h_base], W_hh.T, h_new)  # the recurrence: W_hh h_s
            a = A[j]
            for b in range(B):
                for i in range(n):
                    h_new[b, i] = math.tanh(h_new[b, i] + a[b, i] + b_h[i])


@jit
def backward_sweep(
    xs, ys, W_hh, W_out, b_out, H, h_base, s_lo, s_hi, s_err,
    g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out, D, E, delta, tmp_nn, tmp_nm, tmp_pn,
):  # fmt: skip
    """Back-propagate through steps s_hi-1 down to s_lo; return the loss of the injected steps.

    The readout error e_s = yhat_s - y_s enters at the steps s >= s_err (each
    step's error is injected by exactly one sweep); h_{s_lo} is a constant.
    Gradients are accumulated into the ``g_*`` arrays:

        dh_s    = W_out^T e_s + W_hh^T da_{s+1}          (error at h_{s+1})
        da_s    = dh_s * (1 - h_{s+1}^2)
        g_W_hh += da_s h_s^T,  g_W_ih += da_s x_s^T,  g_b_h += da_s
        g_W_out += e_s h_{s+1}^T,  g_b_out += e_s

    ``D`` (chunk, B, n) and ``E`` (chunk, B, p) are chunk scratch, ``delta``
    (B, n) carries W_hh^T da between steps, ``tmp_*`` receive chunk GEMMs.
    """
    B = xs.shape[1]
    m = xs.shape[2]
    n = W_hh.shape[0]
    p = W_out.shape[0]
    C = D.shape[0]
    loss = 0.0
    delta[:] = 0.0
    c1 = s_hi
    while c1 > s_lo:
        c0 = max(s_lo, c1 - C)
        c = c1 - c0
        # Readout errors of the chunk's steps that carry them, as GEMMs.
        e0 = max(c0, s_err)
        ne = c1 - e0
        if ne > 0:
            H_out = H[e0 + 1 - h_base : c1 + 1 - h_base].reshape(ne * B, n)
            E_c = E[:ne].reshape(ne * B, p)
            Y_c = ys[e0:c1].reshape(ne * B, p)
            np.dot(H_out, W_out.T, E_c)
            for r in range(ne * B):
                for q in range(p):
                    e = E_c[r, q] + b_out[q] - Y_c[r, q]
                    E_c[r, q] = e
                    loss += e * e
                    g_b_out[q] += e
            np.dot(E_c.T, H_out, tmp_pn)
            g_W_out += tmp_pn
            np.dot(E_c, W_out, D[e0 - c0 : c].reshape(ne * B, n))
        D[: max(0, e0 - c0)] = 0.0
        # The recurrence, one step at a time from the top of the chunk.
        for s in range(c1 - 1, c0 - 1, -1):
            d = D[s - c0]
            h = H[s + 1 - h_base]
            for b in range(B):
                for i in range(n):
                    d[b, i] = (d[b, i] + delta[b, i]) * (1.0 - h[b, i] * h[b, i])
            if s > s_lo:
                np.dot(d, W_hh, delta)
        # Weight gradients of the whole chunk: one GEMM each.
        D_c = D[:c].reshape(c * B, n)
        np.dot(D_c.T, H[c0 - h_base : c1 - h_base].reshape(c * B, n), tmp_nn)
        g_W_hh += tmp_nn
        np.dot(D_c.T, xs[c0:c1].reshape(c * B, m), tmp_nm)
        g_W_ih += tmp_nm
        for r in range(c * B):
            for i in range(n):
                g_b_h[i] += D_c[r, i]
        c1 = c0
    return 0.5 * loss


def forward_flops(steps: int, B: int, n: int, m: int) -> list[Term]:
    """FLOPs of ``forward_sweep`` over ``steps`` steps (powers in the pseudo-variable ``steps``)."""
    return [
        Term(2 * steps * B * n * m, {"steps": 1, "B": 1, "n": 1, "m": 1}),  # input GEMM
        Term(2 * steps * B * n * n, {"steps": 1, "B": 1, "n": 2}),  # W_hh h_s
        Term(3 * steps * B * n, {"steps": 1, "B": 1, "n": 1}),  # two adds, tanh
    ]


def backward_flops(steps: int, err_steps: int, B: int, n: int, m: int, p: int, chunk: int):
    """FLOPs of one ``backward_sweep`` over ``steps`` steps, ``err_steps`` of them injecting errors.

    Powers are in the pseudo-variables ``steps`` and ``err_steps``, which the
    algorithm maps to its own schedule. Chunks are cut from the top of the
    window, so the error steps (the most recent) fill the first
    ``ceil(err_steps / chunk)`` chunks.
    """
    chunks = -(-steps // chunk)
    err_chunks = -(-err_steps // chunk)
    per_step = {"steps": 1, "B": 1}
    per_err = {"err_steps": 1, "B": 1}
    return [
        # readout: three GEMMs (yhat, g_W_out, W_out^T e) and +b -y, e^2, sum, g_b_out
        Term(err_steps * B * (6 * p * n + 5 * p), {**per_err, "n": 1, "p": 1}),
        Term(err_chunks * p * n, {**per_err, "n": 1, "p": 1}),  # g_W_out += chunk
        Term(1),  # loss * 0.5
        Term(4 * steps * B * n, {**per_step, "n": 1}),  # (d + delta) * (1 - h^2)
        Term(2 * (steps - 1) * B * n * n, {**per_step, "n": 2}),  # W_hh^T da
        Term(2 * steps * B * n * n + chunks * n * n, {**per_step, "n": 2}),  # g_W_hh
        Term(2 * steps * B * n * m + chunks * n * m, {**per_step, "n": 1, "m": 1}),  # g_W_ih
        Term(steps * B * n, {**per_step, "n": 1}),  # g_b_h
    ]
