"""The two sweeps that reverse-mode algorithms are built from, written once over the cell interface.

BPTT is one forward sweep over the whole sequence and one backward sweep over
it; truncated BPTT alternates short forward sweeps with backward sweeps over
windows. Both live here so that each algorithm file holds only its schedule,
and each cell (kernels/cells/) only its pointwise step.

Indexing: steps are 0-based, ``s = 0 .. T-1``; step ``s`` reads ``xs[s]`` and
the state h_s, and writes h_{s+1}. States live in a buffer ``H`` whose entry
``H[i]`` holds h_{i + h_base}, so a caller can keep only a window of states;
``X[i]`` holds what the cell stored at the step that made ``H[i]`` (the GRU's
gates, the LSTM's c and gates, the leaky cell's tanh; nothing for the plain
Elman cell), and for the LSTM ``X[0]``'s c part is the window's c_{h_base}.

A step of a cell with G gate blocks (Elman 1, GRU 3, LSTM 4), in the layout of
``cells.Weights`` (gates stacked in rows):

    forward    A = x W_ih^T        one (chunk B, m) x (m, G n) GEMM per chunk of steps
               R = h W_hh^T        one (B, n) x (n, G n) GEMM per step
               h', X' = the cell's forward_step(A, R, biases, h, X)       pointwise
    backward   d, dx, carry = the cell's backward_step(dh, delta, h, X, X')   pointwise
               delta = d W_hh + carry                    one (B, G n) x (G n, n) GEMM per step
               dW_hh += d^T h,  dW_ih += dx^T x,  db += sum d, dx   GEMMs per chunk

The cell is an int id (cells/_common.py): one compiled kernel per dtype serves
every cell, and Numba's on-disk cache keeps it. The sweeps branch on the id
once per step: the plain Elman step is inlined into the loop, every other cell
goes through ``_forward_step`` / ``_backward_step``, which slice the rows their
cell reads and call its pointwise step. Measured (n = 16, B = 1, where the
per-step overhead shows most): inlining the gated steps as well, or making
their row views inside the loop even in a branch the plain cell never takes,
made the plain cell 13 to 20% slower; this way it is within noise of the
Elman-only kernels.

Kernel arguments: the parameters, the buffers and the gradients are three
NamedTuples (``cells.Weights``, :class:`Buffers`, ``cells.Weights``) between
jitted functions. Across the Python boundary the public wrappers pass them as
plain tuples and the kernel names them again on entry (``Weights(*w)``, free
in compiled code): Numba types a NamedTuple argument on a slow Python path,
about 3 us per argument per call (measured with Numba 0.68), where it types a
plain tuple of arrays in C in about 0.1 us.

Why chunks: the work that does not depend on the recurrence (the input
projection W_ih x, the readout, and the weight gradients) is done as one GEMM
over a chunk of steps, which runs near the BLAS peak; only the recurrent
matrix product stays step by step. The chunk buffers hold ``chunk`` steps, so
they add a constant to the memory, not a term in T.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._jit import jit
from .cells import elman, gru, lstm
from .cells._common import ELMAN, GRU, LEAKY, LSTM, Cell, Weights
from .costs import Term

# Rows (steps x batch) per chunk GEMM: big enough for BLAS to reach its peak,
# small enough that the chunk buffers stay a fraction of the stored states.
CHUNK_ROWS = 128


def chunk_steps(B: int, limit: int) -> int:
    """Steps per chunk for batch size ``B``, at most ``limit``."""
    return max(1, min(limit, CHUNK_ROWS // B))


class Buffers(NamedTuple):
    """Everything the sweeps write, allocated by the public wrapper (S states, chunk C)."""

    H: np.ndarray  # (S, B, n) states h_{h_base} ..
    X: np.ndarray  # (S, B, K n) what the cell stored at the same steps (plain Elman: K = 0)
    D: np.ndarray  # (C, B, G n) hidden-side pre-activation errors; forward: input projections
    DX: np.ndarray  # (C, B, G n) input-side pre-activation errors (GRU); else D itself
    DH: np.ndarray  # (C, B, n) readout errors at the states; Elman: D itself
    E: np.ndarray  # (C, B, p) readout errors yhat - y
    R: np.ndarray  # (B, G n) recurrent product of a gated step; Elman: empty (R is h')
    delta: np.ndarray  # (B, n) error at the state from the future
    delta_c: np.ndarray  # (B, n) LSTM: error at c from the future; else empty
    carry: np.ndarray  # (B, n) error at the previous state outside W_hh (leak, GRU); else empty
    tmp_hh: np.ndarray  # (G n, n) chunk GEMM results, before they are added
    tmp_ih: np.ndarray  # (G n, m)
    tmp_pn: np.ndarray  # (p, n)


# A buffer a cell does not use: empty, so never written (one per dtype, shared).
_UNUSED = {np.dtype(t): np.empty((0, 0), t) for t in (np.float32, np.float64)}


def make_buffers(
    cell: Cell, states: int, B: int, n: int, m: int, p: int, C: int, dtype, stored_rows=None
) -> Buffers:
    """Buffers for ``states`` stored states and chunks of ``C`` steps (see chunk_bytes).

    ``stored_rows`` (default ``states``) rows of the cell's stored values X: checkpointed
    BPTT's reverse chunk keeps h only (kernels/checkpointed_bptt.py).
    """
    Gn = cell.gates * n
    gated = cell.id in (GRU, LSTM)
    unused = _UNUSED[np.dtype(dtype)]
    D = np.empty((C, B, Gn), dtype)
    return Buffers(
        H=np.empty((states, B, n), dtype),
        X=np.empty((states if stored_rows is None else stored_rows, B, cell.stored * n), dtype),
        D=D,
        DX=np.empty((C, B, Gn), dtype) if cell.id == GRU else D,
        DH=np.empty((C, B, n), dtype) if gated else D,
        E=np.empty((C, B, p), dtype),
        R=np.empty((B, Gn), dtype) if gated else unused,
        delta=np.empty((B, n), dtype),
        delta_c=np.empty((B, n), dtype) if cell.id == LSTM else unused,
        carry=np.empty((B, n), dtype) if cell.id in (LEAKY, GRU) else unused,
        tmp_hh=np.empty((Gn, n), dtype),
        tmp_ih=np.empty((Gn, m), dtype),
        tmp_pn=np.empty((p, n), dtype),
    )


def zero_grads(w: Weights) -> Weights:
    """Gradient accumulators in the kernels' layout (the Elman cell's bias_hh stays empty)."""
    return Weights(*(np.zeros(a.shape, a.dtype) for a in w))


@jit
def forward_sweep(cell, alpha, xs, w, buf, h_base, s0, s1):
    """Run steps s0 <= s < s1 of ``cell`` from H[s0 - h_base] (and X), writing the states after.

    ``buf.D`` is the chunk's input-projection scratch (A = x W_ih^T, no bias).
    """
    B = xs.shape[1]
    m = xs.shape[2]
    H = buf.H
    X = buf.X
    A = buf.D
    R = buf.R
    W_ih = w.weight_ih
    W_hh = w.weight_hh
    b_ih = w.bias_ih
    b_hh = w.bias_hh
    Gn = W_hh.shape[0]
    C = A.shape[0]
    for c0 in range(s0, s1, C):
        c = min(C, s1 - c0)
        # Input projection of the whole chunk: one (c*B, m) x (m, G n) GEMM.
        np.dot(xs[c0 : c0 + c].reshape(c * B, m), W_ih.T, A[:c].reshape(c * B, Gn))
        for j in range(c):
            i = c0 + j - h_base  # step c0 + j reads H[i] (X[i]), writes H[i + 1] (X[i + 1])
            if cell == ELMAN:
                h_new = H[i + 1]
                np.dot(H[i], W_hh.T, h_new)  # the recurrence, W_hh h, in place
                elman.forward_step(A[j], b_ih, h_new)
            else:
                _forward_step(cell, alpha, A, j, R, W_hh, b_ih, b_hh, H, X, i)


@jit
def _forward_step(cell, alpha, A, j, R, W_hh, b_ih, b_hh, H, X, i):
    """Step c0 + j of a cell other than the plain Elman one: the recurrent GEMM, then the
    cell's pointwise step. Out of the sweep's loop, with buffers and indices rather than
    rows, so that the row views it makes cost nothing on the plain cell's path: made in
    the loop, even in a branch the plain cell never takes, they made its backward
    sweep 13 to 20% slower at n = 16, B = 1."""
    a = A[j]
    h_prev = H[i]
    h_new = H[i + 1]
    if cell == LEAKY:
        np.dot(h_prev, W_hh.T, h_new)  # W_hh h, in place
        elman.forward_step_leaky(a, b_ih, h_prev, h_new, X[i + 1], alpha)
    else:
        np.dot(h_prev, W_hh.T, R)  # all G gate blocks at once
        if cell == GRU:
            gru.forward_step(a, R, b_ih, b_hh, h_prev, h_new, X[i + 1])
        else:
            lstm.forward_step(a, R, b_ih, b_hh, X[i], h_new, X[i + 1])


@jit
def _backward_step(cell, alpha, DH, D, DX, j, delta, delta_c, carry, H, X, i):
    """The pointwise backward step of a cell other than the plain Elman one (see
    _forward_step for why it is a function of its own, called with buffers)."""
    d = D[j]
    if cell == LEAKY:
        elman.backward_step_leaky(d, delta, X[i + 1], carry, alpha)
    elif cell == GRU:
        gru.backward_step(DH[j], delta, H[i], X[i + 1], d, DX[j], carry)
    else:
        lstm.backward_step(DH[j], delta, delta_c, X[i], X[i + 1], d)


@jit
def backward_sweep(cell, alpha, xs, ys, w, buf, g, h_base, s_lo, s_hi, s_err):
    """Back-propagate through steps s_hi-1 down to s_lo; return the loss of the injected steps.

    The error at h_{s_hi} (``buf.delta``, and the LSTM's ``buf.delta_c``) starts at 0 and
    none is passed below h_{s_lo}: :func:`backward_steps` with ``s_stop = s_lo``, halved.
    """
    buf.delta[:] = 0.0
    buf.delta_c[:] = 0.0
    return 0.5 * backward_steps(
        cell, alpha, xs, ys, w, buf, g, h_base, s_lo, s_hi, s_err, s_lo, 0.0
    )


@jit
def backward_steps(cell, alpha, xs, ys, w, buf, g, h_base, s_lo, s_hi, s_err, s_stop, loss):
    """Back-propagate through steps s_hi-1 down to s_lo; return ``loss`` plus the squared
    errors of the injected steps (added one by one, as one sweep adds them).

    The error at h_{s_hi} is what ``buf.delta`` (and ``buf.delta_c``) hold on entry, so a
    caller can reverse a sequence piece by piece, top piece first (checkpointed BPTT's
    segments); on return they hold the error at h_{s_lo}, which is propagated through
    W_hh at every step s > s_stop (s_stop = s_lo: nothing below the window).

    The readout error e_s = yhat_s - y_s enters at the steps s >= s_err (each
    step's error is injected by exactly one sweep); below s_stop + 1 nothing is
    propagated (h_{s_lo} is a constant when s_stop = s_lo). Gradients are
    accumulated into ``g`` (a ``cells.Weights``):

        dh_s     = W_out^T e_s + delta                 (error at h_{s+1})
        d, dx    = the cell's pre-activation errors    (cell.backward_step)
        delta    = W_hh^T d + carry                    (error at h_s)
        g.weight_hh += d h_s^T,  g.weight_ih += dx x_s^T,  g.bias_ih += dx  (GRU: g.bias_hh += d)
        g.W_out += e_s h_{s+1}^T,  g.b_out += e_s
    """
    C = buf.D.shape[0]
    c1 = s_hi
    while c1 > s_lo:  # chunk by chunk, from the top
        c0 = max(s_lo, c1 - C)
        loss = _chunk_readout_errors(ys, w, buf, g, h_base, c0, c1, s_err, loss)
        _chunk_recurrence(cell, alpha, w, buf, h_base, c0, c1, s_stop)
        _chunk_weight_gradients(cell, xs, w, buf, g, h_base, c0, c1)
        c1 = c0
    return loss


@jit
def _chunk_readout_errors(ys, w, buf, g, h_base, c0, c1, s_err, loss):
    """The readout errors e_s of the chunk's steps c0 <= s < c1 that carry them (s >= s_err),
    as GEMMs: into ``buf.E``, ``g.W_out`` and ``g.b_out``, and ``buf.DH`` = e W_out (zero
    at the steps below s_err). Returns ``loss`` plus their squared errors."""
    B = ys.shape[1]
    H = buf.H
    E = buf.E
    DH = buf.DH
    tmp_pn = buf.tmp_pn
    W_out = w.W_out
    b_out = w.b_out
    g_W_out = g.W_out
    g_b_out = g.b_out
    n = H.shape[2]
    p = W_out.shape[0]
    c = c1 - c0
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
        np.dot(E_c, W_out, DH[e0 - c0 : c].reshape(ne * B, n))
    DH[: max(0, e0 - c0)] = 0.0
    return loss


@jit
def _chunk_recurrence(cell, alpha, w, buf, h_base, c0, c1, s_stop):
    """The recurrence through the chunk's steps, one at a time from the top: each step's
    pre-activation errors into ``buf.D`` (and ``buf.DX``), the error at h_s into
    ``buf.delta`` for every s > s_stop."""
    H = buf.H
    X = buf.X
    D = buf.D
    DX = buf.DX
    DH = buf.DH
    delta = buf.delta
    delta_c = buf.delta_c
    carry = buf.carry
    W_hh = w.weight_hh
    B = H.shape[1]
    n = H.shape[2]
    for s in range(c1 - 1, c0 - 1, -1):
        j = s - c0
        i = s - h_base  # step s read H[i] (X[i]) and wrote H[i + 1] (X[i + 1])
        d = D[j]
        if cell == ELMAN:  # DH is D: d holds the readout error
            elman.backward_step(d, delta, H[i + 1])
        else:
            _backward_step(cell, alpha, DH, D, DX, j, delta, delta_c, carry, H, X, i)
        if s > s_stop:  # the error at h_s: W_hh^T d, plus what bypasses W_hh
            np.dot(d, W_hh, delta)
            if cell == LEAKY or cell == GRU:
                for b in range(B):
                    for k in range(n):
                        delta[b, k] += carry[b, k]


@jit
def _chunk_weight_gradients(cell, xs, w, buf, g, h_base, c0, c1):
    """The weight gradients of the chunk's steps c0 <= s < c1: one GEMM each."""
    B = xs.shape[1]
    m = xs.shape[2]
    H = buf.H
    D = buf.D
    DX = buf.DX
    tmp_hh = buf.tmp_hh
    tmp_ih = buf.tmp_ih
    g_W_ih = g.weight_ih
    g_W_hh = g.weight_hh
    g_b_ih = g.bias_ih
    g_b_hh = g.bias_hh
    n = H.shape[2]
    Gn = w.weight_hh.shape[0]
    c = c1 - c0
    D_c = D[:c].reshape(c * B, Gn)
    np.dot(D_c.T, H[c0 - h_base : c1 - h_base].reshape(c * B, n), tmp_hh)
    g_W_hh += tmp_hh
    DX_c = DX[:c].reshape(c * B, Gn)
    np.dot(DX_c.T, xs[c0:c1].reshape(c * B, m), tmp_ih)
    g_W_ih += tmp_ih
    for r in range(c * B):
        for k in range(Gn):
            g_b_ih[k] += DX_c[r, k]
    if cell == GRU:  # b_hn's errors differ from b_in's; the LSTM copies b_ih's at the end
        for r in range(c * B):
            for k in range(Gn):
                g_b_hh[k] += D_c[r, k]


# --- costs -------------------------------------------------------------------------------
# Powers are in the pseudo-variables ``steps``, ``err_steps`` and ``sweeps`` (work done
# once per backward sweep), which each algorithm maps to its own schedule
# (kernels/bptt.py: one sweep of T steps; kernels/tbptt.py: T / k1 sweeps of k2 steps).
# Every term is a monomial (kernels/costs.py); an operation the sweep skips at the
# window's first step is the per-step term less a negative per-sweep one.


def _module(cell: Cell):
    return {ELMAN: elman, LEAKY: elman, GRU: gru, LSTM: lstm}[cell.id]


def forward_flops(cell: Cell, steps: int, B: int, n: int, m: int) -> list[Term]:
    """FLOPs of ``forward_sweep`` over ``steps`` steps."""
    Gn = cell.gates * n
    return [
        Term(2 * steps * B * Gn * m, {"steps": 1, "B": 1, "n": 1, "m": 1}),  # input GEMM
        Term(2 * steps * B * n * Gn, {"steps": 1, "B": 1, "n": 2}),  # W_hh h_s
        *_module(cell).forward_flops(cell, steps, B, n),  # the cell's pointwise step
    ]


def backward_flops(
    cell: Cell, steps: int, err_steps: int, B: int, n: int, m: int, p: int, chunk: int
) -> list[Term]:
    """FLOPs of one ``backward_sweep`` over ``steps`` steps, ``err_steps`` of them injecting errors.

    Chunks are cut from the top of the window, so the error steps (the most
    recent) fill the first ``ceil(err_steps / chunk)`` chunks.
    """
    Gn = cell.gates * n
    chunks = -(-steps // chunk)
    err_chunks = -(-err_steps // chunk)
    per_step = {"steps": 1, "B": 1}
    per_err = {"err_steps": 1, "B": 1}
    # Below the window's first step nothing is propagated: no W_hh^T d, no carry.
    skipped = {"sweeps": 1, "B": 1}
    terms = [
        # readout: three GEMMs (yhat, g_W_out, W_out^T e) and +b -y, e^2, sum, g_b_out
        Term(err_steps * B * 6 * p * n, {**per_err, "n": 1, "p": 1}),
        Term(err_steps * B * 5 * p, {**per_err, "p": 1}),
        Term(err_chunks * p * n, {**per_err, "n": 1, "p": 1}),  # g_W_out += chunk
        Term(1, {"sweeps": 1}),  # loss * 0.5
        *_module(cell).backward_flops(cell, steps, B, n),  # the cell's pointwise step
        Term(2 * steps * B * Gn * n, {**per_step, "n": 2}),  # W_hh^T d
        Term(-2 * B * Gn * n, {**skipped, "n": 2}),  # ... not at the first step
        Term(2 * steps * B * Gn * n + chunks * Gn * n, {**per_step, "n": 2}),  # g_weight_hh
        Term(2 * steps * B * Gn * m + chunks * Gn * m, {**per_step, "n": 1, "m": 1}),  # g_W_ih
        Term(steps * B * Gn, {**per_step, "n": 1}),  # g_bias_ih
    ]
    if cell.id in (LEAKY, GRU):
        terms.append(Term(steps * B * n, {**per_step, "n": 1}))  # delta += carry
        terms.append(Term(-B * n, {**skipped, "n": 1}))  # ... not at the first step
    if cell.id == GRU:
        terms.append(Term(steps * B * Gn, {**per_step, "n": 1}))  # g_bias_hh
    return terms


def state_bytes(cell: Cell, B: int, n: int, itemsize: int) -> int:
    """Bytes of one stored step: h and the cell's stored values, (1 + K) n B numbers."""
    return (1 + cell.stored) * B * n * itemsize


def chunk_powers(
    B: int, limit: int, limit_powers: dict[str, float], chunk_rows: int = CHUNK_ROWS
) -> dict[str, float]:
    """The powers of ``chunk_steps(B, limit)``: those of ``limit`` while the window
    bounds the chunk, B^-1 while ``chunk_rows`` does (exact where B divides it), none
    at one step a chunk (B > chunk_rows)."""
    rows = chunk_rows // B
    if rows < 1:
        return {}
    if limit <= rows:
        return dict(limit_powers)
    return {"B": -1}


def chunk_bytes(
    cell: Cell, B: int, n: int, m: int, p: int, C: int, powers: dict[str, float], itemsize: int
) -> list[Term]:
    """Bytes of the buffers that do not grow with the sequence (see make_buffers).

    ``powers`` are those of the chunk C (:func:`chunk_powers`): the C B rows of
    chunk scratch are constant in B while CHUNK_ROWS sets the chunk.
    """
    Gn = cell.gates * n
    gated = cell.id in (GRU, LSTM)
    rows_powers = {v: e for v, e in {**powers, "B": powers.get("B", 0) + 1}.items() if e != 0}
    per_row = Gn * (2 if cell.id == GRU else 1) + (n if gated else 0)  # D, DX, DH
    rows = B * (Gn if gated else 0) + B * n  # R, delta
    rows += B * n * ((cell.id == LSTM) + (cell.id in (LEAKY, GRU)))  # delta_c, carry
    return [
        Term(C * B * per_row * itemsize, {**rows_powers, "n": 1}),
        Term(C * B * p * itemsize, {**rows_powers, "p": 1}),  # E
        Term(rows * itemsize, {"B": 1, "n": 1}),
        *_matrix_bytes(Gn, n, m, p, itemsize),  # GEMM scratch tmp_hh, tmp_ih, tmp_pn
    ]


def _matrix_bytes(Gn: int, n: int, m: int, p: int, itemsize: int) -> list[Term]:
    """(G n, n), (G n, m) and (p, n) matrices, each term with its own powers."""
    return [
        Term(Gn * n * itemsize, {"n": 2}),
        Term(Gn * m * itemsize, {"n": 1, "m": 1}),
        Term(p * n * itemsize, {"n": 1, "p": 1}),
    ]


def gradient_bytes(cell: Cell, n: int, m: int, p: int, itemsize: int) -> list[Term]:
    """Bytes of the gradients returned (both gated biases; the Elman cell has one)."""
    Gn = cell.gates * n
    biases = Gn * (2 if cell.id in (GRU, LSTM) else 1)
    return [
        *_matrix_bytes(Gn, n, m, p, itemsize),
        Term(biases * itemsize, {"n": 1}),  # bias_ih (and bias_hh)
        Term(p * itemsize, {"p": 1}),  # b_out
    ]
