"""Checkpointed BPTT: the exact BPTT gradient holding at most ``slots`` states.

BPTT stores all T states; this kernel stores at most ``slots`` of them and
recomputes the others forward from the nearest stored one during the backward
pass, following the optimal binomial schedule of Griewank & Walther's revolve
(kernels/checkpoint_schedule.py; THEORY.md, "Checkpointed BPTT"). The schedule
is an int array of actions (ADVANCE, STORE, RESTORE, REVERSE) that the jitted
kernel runs with one loop; the cell steps are those of every other schedule
(kernels/_sweeps.py), so one compiled kernel serves every cell.

What the executor holds (numbers, B the batch, n the state size):

- the slots: ``slots`` states, n B numbers each, 2 n B for the LSTM (its state
  is the pair (h, c)); the leaky Elman cell and the GRU keep h only;
- the current state and the step after it (two states, with the cell's
  values): an ADVANCE projects the inputs of up to C steps as one GEMM, as
  BPTT's forward sweep does, then steps through the two rows; the step
  evaluated inside a reverse step (the "turn") uses them too, since after a
  REVERSE the schedule always restores before it advances or stores;
- the reverse chunk: h_s of the last C reversed steps and their pre-activation
  and readout errors, so that the weight gradients are GEMMs over C steps
  (``dW_hh += D^T H``, ``dW_ih += DX^T X``, ``dW_out += E^T H``) as in
  BPTT's backward sweep, not an outer product per step. Buffering costs
  C (G + 1) n B numbers, a constant (C = ``chunk(B, T)`` <= 64 / B steps), so
  the memory stays flat in T, and the gradient FLOPs run at BLAS speed.

So nothing grows with T but the inputs xs, ys and the schedule itself,
12 (3T - 2) bytes (36 bytes a step, against BPTT's 8 n B or more). The schedule
depends only on (T, slots): like an FFT plan it is built once and cached
(:func:`plan`), outside the measured call.

Forward evaluations of the cell (checked by tests/test_checkpointed_bptt.py
with the counter this kernel fills). Revolve counts F = ``forward_steps(T,
slots)`` advances: the first pass included, the step evaluated inside each
reverse step not. Reversing step s needs h_s (from a slot or the current
state) and what the cell's backward step reads at h_{s+1}:

- plain Elman cell: h_{s+1} only. The first reverse step evaluates step T-1
  (the turn); every later one takes h_{s+1} from the previous reverse step,
  which read it. Evaluations: F + 1 (T for plain BPTT, slots >= T).
- leaky Elman cell, GRU, LSTM: the values the step computed beside h_{s+1}
  (u = tanh(a); the GRU's r, z, g, hn; the LSTM's c', i, f, g, o), which no
  slot keeps (that would multiply the slots' memory by 2, 5 or 6). Every
  reverse step evaluates step s again from h_s (and c_s): F + T evaluations
  (2T - 1 for plain BPTT, against BPTT's T).

Costs. Time: (F + turns) forward steps plus one BPTT backward sweep, so at
fixed slots about linear in T (F grows like T^(1 + 1/c) asymptotically and is
piecewise linear in T with slope r, the repetition number;
checkpoint_schedule.py). Memory: slots x n x B states (x 2 for the LSTM) plus
buffers of constant size plus the gradients: flat in T, linear in slots.

Sources: Griewank 1992; Griewank & Walther 2000 (revolve); Chen, Xu, Zhang &
Guestrin 2016, "Training deep nets with sublinear memory cost" (sqrt(T)
segments); Gruslys, Munos, Danihelka, Lanctot & Graves 2016,
"Memory-efficient backpropagation through time" (BPTT-HSM, the same schedule).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from . import cells
from ._jit import jit
from ._sweeps import (
    Buffers,
    _backward_step,
    _forward_step,
    backward_flops,
    chunk_bytes,
    chunk_powers,
    forward_flops,
    forward_sweep,
    gradient_bytes,
    make_buffers,
    zero_grads,
)
from ._validate import all_finite, check_result, check_size
from .cells import Weights, elman
from .cells._common import ELMAN, GRU, LEAKY, LSTM
from .checkpoint_schedule import (
    ADVANCE,
    CURRENT,
    RESTORE,
    STORE,
    forward_steps_closed_form,
    max_slots_used,
    revolve_schedule,
)
from .costs import Term

# Rows (steps x batch) of the chunk GEMMs: half of BPTT's (_sweeps.CHUNK_ROWS). The chunk
# buffers are the constant part of the memory, which here is what the slots save against:
# at T = 1000, n = 64, B = 8, 128 rows would put the peak with 32 slots at 11.7% of
# BPTT's instead of about 8%; 64-row GEMMs still run the weight gradients near the
# BLAS rate.
CHUNK_ROWS = 64


def chunk(B: int, T: int) -> int:
    """Steps per chunk for batch size ``B``, at most T."""
    return max(1, min(T, CHUNK_ROWS // B))


@lru_cache(maxsize=16)
def plan(T: int, slots: int) -> tuple[np.ndarray, int]:
    """The revolve schedule of (T, slots) and the slots it writes, built once and cached."""
    schedule = revolve_schedule(T, slots)
    schedule.setflags(write=False)
    return schedule, max_slots_used(schedule)


def default_slots(T: int) -> int:
    """ceil(sqrt(T)): Chen et al.'s sqrt(T) memory, and revolve does better with it."""
    return math.isqrt(T - 1) + 1


def turns(cell_id: int, T: int) -> int:
    """Steps evaluated inside the reverse steps: 1 for the plain Elman cell, T for the others."""
    return 1 if cell_id == ELMAN else T


def evaluations(cell_id: int, T: int, slots: int) -> int:
    """Cell forward evaluations of one call: revolve's advances plus the turns."""
    return forward_steps_closed_form(T, slots) + turns(cell_id, T)


@jit
def _advance(cell, alpha, xs, w, fb, a, b):
    """Steps a .. b-1 from the current state fb.H[0] (and fb.X[0]), which they overwrite.

    The input projections x W_ih^T of up to C steps are one GEMM (into fb.D), as in
    BPTT's forward sweep; the states go through two rows, the new one copied back to
    row 0 after each step (n B numbers, against the step's 2 G n^2 B FLOPs), so an
    advance holds two states, not C + 1.
    """
    B = xs.shape[1]
    m = xs.shape[2]
    H = fb.H
    X = fb.X
    A = fb.D
    W_hh = w.weight_hh
    Gn = W_hh.shape[0]
    n = H.shape[2]
    C = A.shape[0]
    for c0 in range(a, b, C):
        c = min(C, b - c0)
        np.dot(xs[c0 : c0 + c].reshape(c * B, m), w.weight_ih.T, A[:c].reshape(c * B, Gn))
        for j in range(c):
            if cell == ELMAN:
                np.dot(H[0], W_hh.T, H[1])
                elman.forward_step(A[j], w.bias_ih, H[1])
            else:
                _forward_step(cell, alpha, A, j, fb.R, W_hh, w.bias_ih, w.bias_hh, H, X, 0)
            H[0] = H[1]
            if cell == LSTM:  # the state is (h, c); the gates are not read again
                X[0, :, :n] = X[1, :, :n]
    return b - a


@jit
def _checkpointed(cell, alpha, xs, ys, w, schedule, SH, SC, fb, rb, g, count):
    w, fb, rb, g = Weights(*w), Buffers(*fb), Buffers(*rb), Weights(*g)
    T, B, m = xs.shape
    n = fb.H.shape[2]
    p = w.W_out.shape[0]
    Gn = w.weight_hh.shape[0]
    W_hh = w.weight_hh
    W_out = w.W_out
    b_out = w.b_out
    Hc = rb.H  # (C + 1, B, n): row j holds h_{c0 + j} of the reverse chunk
    D = rb.D
    DX = rb.DX
    DH = rb.DH
    E = rb.E
    delta = rb.delta
    delta_c = rb.delta_c
    carry = rb.carry
    g_W_hh = g.weight_hh
    g_W_ih = g.weight_ih
    g_b_ih = g.bias_ih
    g_b_hh = g.bias_hh
    g_W_out = g.W_out
    g_b_out = g.b_out
    tmp_hh = rb.tmp_hh
    tmp_ih = rb.tmp_ih
    tmp_pn = rb.tmp_pn
    C = D.shape[0]
    evals = 0
    loss = 0.0
    delta[:] = 0.0
    delta_c[:] = 0.0
    fb.H[0] = 0.0  # h_0 = 0 (and c_0 = 0)
    fb.X[0] = 0.0
    c1 = T  # the reverse chunk is steps c0 .. c1-1, cut from the top like BPTT's
    c0 = max(0, c1 - C)
    for row in range(schedule.shape[0]):
        op = schedule[row, 0]
        i = schedule[row, 1]
        k = schedule[row, 2]
        if op == ADVANCE:
            evals += _advance(cell, alpha, xs, w, fb, i, k)
        elif op == STORE:
            SH[k] = fb.H[0]
            if cell == LSTM:
                SC[k] = fb.X[0, :, :n]
        elif op == RESTORE:
            fb.H[0] = SH[k]
            if cell == LSTM:
                fb.X[0, :, :n] = SC[k]
        else:  # REVERSE step s = i from h_s in slot k or the current state
            s = i
            j = s - c0
            # h_s (and c_s) into the current state and the chunk's row j. A slot's state
            # may overwrite the current one: after a REVERSE the schedule always
            # RESTOREs before it advances or stores (tests/test_checkpointed_bptt.py).
            if k != CURRENT:
                fb.H[0] = SH[k]
                if cell == LSTM:
                    fb.X[0, :, :n] = SC[k]
            Hc[j] = fb.H[0]
            if cell != ELMAN or s == T - 1:
                # The turn: step s again, for h_{s+1} (first reverse step) and the
                # values the backward step reads (every cell but the plain Elman one).
                forward_sweep(cell, alpha, xs, w, fb, s, s, s + 1)
                evals += 1
                if s == T - 1:
                    Hc[j + 1] = fb.H[1]
            # else h_{s+1} is Hc[j + 1], put there by the previous reverse step.
            # Readout error e_s = W_out h_{s+1} + b_out - y_s and its error at h_{s+1}.
            e = E[j]
            np.dot(Hc[j + 1], W_out.T, e)
            for bb in range(B):
                for q in range(p):
                    v = e[bb, q] + b_out[q] - ys[s, bb, q]
                    e[bb, q] = v
                    loss += v * v
                    g_b_out[q] += v
            np.dot(e, W_out, DH[j])
            d = D[j]
            if cell == ELMAN:  # DH is D: d holds the readout error
                elman.backward_step(d, delta, Hc[j + 1])
            else:
                _backward_step(cell, alpha, DH, D, DX, j, delta, delta_c, carry, fb.H, fb.X, 0)
            if s > 0:  # the error at h_s: W_hh^T d, plus what bypasses W_hh
                np.dot(d, W_hh, delta)
                if cell == LEAKY or cell == GRU:
                    for bb in range(B):
                        for kk in range(n):
                            delta[bb, kk] += carry[bb, kk]
            if j == 0:
                # The chunk is complete: its weight gradients as GEMMs, as in BPTT.
                c = c1 - c0
                D_c = D[:c].reshape(c * B, Gn)
                np.dot(D_c.T, Hc[:c].reshape(c * B, n), tmp_hh)
                g_W_hh += tmp_hh
                DX_c = DX[:c].reshape(c * B, Gn)
                np.dot(DX_c.T, xs[c0:c1].reshape(c * B, m), tmp_ih)
                g_W_ih += tmp_ih
                for r in range(c * B):
                    for kk in range(Gn):
                        g_b_ih[kk] += DX_c[r, kk]
                if cell == GRU:
                    for r in range(c * B):
                        for kk in range(Gn):
                            g_b_hh[kk] += D_c[r, kk]
                E_c = E[:c].reshape(c * B, p)
                np.dot(E_c.T, Hc[1 : c + 1].reshape(c * B, n), tmp_pn)
                g_W_out += tmp_pn
                # The next chunk (steps below c0): its top state h_{c0} is Hc[0].
                c1 = c0
                c0 = max(0, c1 - C)
                Hc[c1 - c0] = Hc[0]
    count[0] = evals
    return 0.5 * loss, all_finite(g)


def _check_slots(slots, T: int) -> int:
    if slots is None:
        return default_slots(T)
    return check_size("slots", slots)


def _run(params, xs, ys, slots):
    cell, w, xs, ys = cells.check_problem(params, xs, ys)
    T, B, m = xs.shape
    slots = _check_slots(slots, T)
    p, n = w.W_out.shape
    dt = w.W_out.dtype
    schedule, used = plan(T, slots)
    C = chunk(B, T)
    # The reverse chunk keeps h_s only (its X is never allocated beyond 0 rows).
    rb = make_buffers(cell, C + 1, B, n, m, p, C, dt, stored_rows=0)
    fb = _advance_buffers(cell, rb, C, B, n, dt)  # the current state is row 0
    SH = np.empty((used, B, n), dt)
    SC = np.empty((used if cell.id == LSTM else 0, B, n), dt)
    g = zero_grads(w)
    count = np.zeros(1, np.int64)
    loss, finite = _checkpointed(
        cell.id, cell.alpha, xs, ys, tuple(w), schedule, SH, SC, tuple(fb), tuple(rb),
        tuple(g), count,
    )  # fmt: skip
    grads = cells.as_params(g, cell)
    if not (finite and math.isfinite(loss)):
        check_result("checkpointed_bptt", loss, grads, dt)  # raises, naming what overflowed
    return float(loss), grads, int(count[0])


def _advance_buffers(cell, rb: Buffers, C, B, n, dt) -> Buffers:
    """The current state and the step after it (H, and the cell's values X: two rows),
    the input projections of C steps (in D) and the gated cells' recurrent product R
    (the reverse chunk's, which only a forward step uses); the rest is left empty."""
    A = np.empty((C, B, cell.gates * n), dt)
    e3 = np.empty((0, 0, 0), dt)
    e2 = np.empty((0, 0), dt)
    return Buffers(
        H=np.empty((2, B, n), dt),
        X=np.empty((2, B, cell.stored * n), dt),
        D=A, DX=A, DH=A, E=e3, R=rb.R, delta=e2, delta_c=e2, carry=e2,
        tmp_hh=e2, tmp_ih=e2, tmp_pn=e2,
    )  # fmt: skip


def checkpointed_bptt(params, xs, ys, slots=None):
    """Loss and exact BPTT gradient, holding at most ``slots`` stored states.

    Parameters
    ----------
    params : RNNParams, GRUParams or LSTMParams
        The cell is the parameters' type (an RNNParams's ``alpha`` is its leak).
    xs : array (T, B, m) or (T, m)
    ys : array (T, B, p) or (T, p)
    slots : int >= 1, optional
        Most states stored at once, h_0's slot included (an LSTM state is (h, c));
        default ceil(sqrt(T)). slots >= T - 1 is plain BPTT without recomputation.

    Returns
    -------
    loss : float
        1/2 sum_t sum_b ||yhat_t,b - y_t,b||^2
    grads : the type of ``params``
        dL/dtheta, equal to ``bptt``'s up to rounding.
    """
    loss, grads, _ = _run(params, xs, ys, slots)
    return loss, grads


def checkpoint_forward_steps(T, slots) -> int:
    """Forward advances of the schedule ``checkpointed_bptt`` runs (revolve's count).

    The first forward pass is included, the step evaluated inside each reverse
    step is not: T = 1000 with 32 slots makes 2405; slots >= T makes T - 1
    (plain BPTT). THEORY.md's closed form F(T, c) = r T - C(c + r, c + 1).
    """
    return forward_steps_closed_form(check_size("T", T), check_size("slots", slots))


# --- costs -------------------------------------------------------------------------------


def _sizes(size):
    T, B, n, m, p = (int(size[k]) for k in ("T", "B", "n", "m", "p"))
    c = int(size["c"]) if "c" in size else default_slots(T)
    return T, B, n, m, p, c, cells.cell_named(size.get("cell", "elman"))


def flops(size) -> list[Term]:
    """Exact FLOPs of one call: (F + turns) forward steps and one BPTT backward sweep.

    F depends on T and c through the repetition number (no power law in c); its
    terms carry the power 1 in T, the slope at fixed c up to the factor r.
    """
    T, B, n, m, p, c, cell = _sizes(size)
    evals = evaluations(cell.id, T, c)
    sweeps = forward_flops(cell, evals, B, n, m)
    sweeps += backward_flops(cell, T, T, B, n, m, p, chunk(B, T))
    return [
        t.substitute("steps", {"T": 1}).substitute("err_steps", {"T": 1}).substitute("sweeps", {})
        for t in sweeps
    ]


def slots_used(T: int, c: int) -> int:
    """Slots the schedule writes: min(c, T - 1) (h_{T-1} is never stored, it is current)."""
    return min(c, T - 1)


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one call: the slots, the constant buffers, the gradients."""
    T, B, n, m, p, c, cell = _sizes(size)
    C = chunk(B, T)
    C_powers = chunk_powers(B, T, {"T": 1}, CHUNK_ROWS)
    rows_powers = {v: e for v, e in {**C_powers, "B": C_powers.get("B", 0) + 1}.items() if e}
    lstm = cell.id == LSTM
    state = n * B * itemsize  # one h (or c)
    per_row = (1 + cell.stored) * state  # h and the cell's values, as BPTT stores a step
    return [
        Term(slots_used(T, c) * state * (2 if lstm else 1), {"c": 1, "B": 1, "n": 1}),
        Term(2 * per_row, {"B": 1, "n": 1}),  # the current state and the next
        Term(C * state, {**rows_powers, "n": 1}),  # the reverse chunk's h_s ...
        Term(state, {"B": 1, "n": 1}),  # ... and the one below it
        # reverse chunk errors, GEMM scratch
        *chunk_bytes(cell, B, n, m, p, C, C_powers, itemsize),
        Term(C * cell.gates * n * B * itemsize, {**rows_powers, "n": 1}),  # C steps' W_ih x
        *gradient_bytes(cell, n, m, p, itemsize),
    ]  # (and the kernel's 8-byte evaluation counter, left in the fixed overhead)
