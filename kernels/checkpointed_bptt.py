"""Checkpointed BPTT: the exact BPTT gradient holding at most ``slots`` states.

BPTT stores all T states; this kernel stores at most ``slots`` of them and
recomputes the others forward from the nearest stored one during the backward
pass, following the optimal binomial schedule of Griewank & Walther's revolve
(kernels/checkpoint_schedule.py; THEORY.md, "Checkpointed BPTT").

Segments. The schedule is revolve's over *segments* of L steps, L = BPTT's
chunk (``_sweeps.chunk_steps``: 128 / B steps), not over single steps: the
sequence is cut into ceil(T / L) segments from h_0, the slots hold segment
start states, and the int array of actions (ADVANCE, STORE, RESTORE, REVERSE)
is revolve's for ceil(T / L) steps. Every action is BPTT's own machinery:

- ADVANCE of whole segments: BPTT's forward sweep over each segment (its input
  projection one GEMM, the recurrent GEMMs step by step), in a buffer of L + 1
  states whose last row is then copied to row 0, the current state;
- REVERSE of segment i: BPTT on the segment, from its start state (a slot or
  the current state): the forward sweep storing its L states and the cell's
  values, then the backward sweep (``_sweeps.backward_steps``) from the error
  at the segment's top that the segment above left in ``delta``, with the
  readout, the weight gradients as GEMMs over the segment's stored states, and
  the error passed down to the segment below.

Spare slots. Revolve over S = ceil(T / L) segments uses at most S - 1 slots; when
slots exceed that, the slots past the segment starts keep the top of the sequence
(``head_segments``): H segments of L steps below a tail of R = T - H L steps, H + R
<= slots, the tail's states kept from the first pass and never recomputed (its R
states, with the cell's values, count as R slots). The schedule is then the plain
one over H + 1 coarse steps, the last (the tail) running to T.

So recomputation runs at BPTT's forward speed, the backward pass is BPTT's
with the same chunk and GEMM shapes, and with slots >= T the segment is the
whole sequence: one REVERSE, exactly BPTT (its memory too), no recomputation.
Why not revolve over single steps: a step-level reverse loop evaluates the
readout, the errors and the turn one step at a time (GEMVs), and a gated cell
must evaluate every step twice anyway (its backward step reads the gate values
that no slot keeps); the reference run measured that executor at +73% over BPTT
for c = 35 at T = 1000 against +43% predicted, +17% with c = T, and 9.45x the
Elman time for the GRU against BPTT's 4.3x.

What the executor holds (numbers, B the batch, n the state size): the slots,
``slots`` states n B each (2 n B for the LSTM, whose state is (h, c)); one
segment, L + 1 states with the cell's values ((1 + K) n B numbers a state,
K = 0 Elman, 1 leaky, 4 GRU, 5 LSTM); BPTT's chunk buffers (pre-activation and
readout errors of L steps) and the gradients. Nothing grows with T but the
inputs and the schedule (12 (3 ceil(T / L) - 2) bytes, built once per
(T, slots, B) and cached, :func:`plan`, outside the measured call).

Forward evaluations of the cell (every cell the same; counted by the kernel,
tests/test_checkpointed_bptt.py): the advances, L F(ceil(T / L), slots) with
F = ``checkpoint_forward_steps`` (revolve never advances into the last
segment, so every advanced segment is whole), plus each step once more in its
segment's reversal: L F(ceil(T / L), slots) + T; with a kept tail T + H L (about
2 T - slots); T for slots >= T.

Costs. Time: those evaluations times one forward step plus one BPTT backward
sweep; at fixed slots the count grows like T^(1 + 1/c) (revolve's repetition
number r ~ (c! T / L)^(1/c)), piecewise linear in T with slope r. Memory:
slots x n x B states (x 2 for the LSTM) plus a segment and buffers of constant
size plus the gradients: flat in T, linear in slots while slots < ceil(T / L),
then again once the kept tail starts (the tail's rows replace the segment's).

Sources: Griewank 1992; Griewank & Walther 2000 (revolve); Chen, Xu, Zhang &
Guestrin 2016, "Training deep nets with sublinear memory cost" (sqrt(T)
segments; here revolve places the segment checkpoints); Gruslys, Munos,
Danihelka, Lanctot & Graves 2016, "Memory-efficient backpropagation through
time" (BPTT-HSM, the same schedule).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from . import cells
from ._jit import jit
from ._sweeps import (
    Buffers,
    backward_flops,
    backward_steps,
    chunk_bytes,
    chunk_powers,
    chunk_steps,
    forward_flops,
    forward_sweep,
    gradient_bytes,
    make_buffers,
    state_bytes,
    zero_grads,
)
from ._validate import all_finite, check_result, check_size
from .cells import Weights
from .cells._common import LSTM
from .checkpoint_schedule import (
    ADVANCE,
    CURRENT,
    RESTORE,
    REVERSE,
    STORE,
    forward_steps_closed_form,
    max_slots_used,
    revolve_schedule,
)
from .costs import Term


def segment(B: int, T: int, slots: int) -> int:
    """Steps per segment: BPTT's chunk (``_sweeps.chunk_steps``), or all T when the
    slots hold every state (slots >= T: plain BPTT, one segment, no recomputation)."""
    return T if slots >= T else chunk_steps(B, T)


def segments(T: int, L: int) -> int:
    """ceil(T / L): the coarse steps revolve reverses."""
    return -(-T // L)


def head_segments(T: int, slots: int, B: int) -> int | None:
    """Segments of L steps below a kept tail when the slots outnumber the segments, else None.

    With ceil(T / L) <= slots < T revolve stores every segment start and the slots past
    them would lie idle; they keep the top of the sequence instead. The first H segments
    (L steps each, their starts in H slots, h_0's included) are then reversed as before,
    and the tail above them, R = T - H L steps, is one segment whose R states (with the
    cell's values) stay from the first pass and are never recomputed; its R states count
    as R slots. H is the fewest with H + R <= slots: H = ceil((T - slots) / (L - 1)). The
    tail is used only where it saves a recomputation (H <= ceil(T / L) - 2); elsewhere
    (and with L = 1) the plain revolve schedule is the optimum.
    """
    if slots >= T:
        return 0
    L = chunk_steps(B, T)
    if L == 1:
        return None
    H = -(-(T - slots) // (L - 1))
    return H if H <= segments(T, L) - 2 else None


@lru_cache(maxsize=16)
def plan(T: int, slots: int, B: int) -> tuple[np.ndarray, int, int]:
    """(schedule, slots it writes, segment length L) of (T, slots, B), built once and cached.

    The schedule is revolve's over the ceil(T / L) segments with ``slots`` slots, or, with
    a kept tail (``head_segments``), the plain one over H segments and the tail: its last
    REVERSE segment always runs to T."""
    L = segment(B, T, slots)
    H = head_segments(T, slots, B)
    if H:
        schedule = revolve_schedule(H + 1, H)  # every head start stored, the tail current
    else:
        schedule = revolve_schedule(segments(T, L), slots)
    schedule.setflags(write=False)
    return schedule, max_slots_used(schedule), L


def segment_rows(T: int, slots: int, B: int) -> int:
    """States the segment buffer holds besides the current one: the longest segment,
    L, or the kept tail's T - H L steps."""
    L = segment(B, T, slots)
    H = head_segments(T, slots, B)
    return max(L, T - H * L) if H else L


def default_slots(T: int) -> int:
    """ceil(sqrt(T)): Chen et al.'s sqrt(T) memory, and revolve does better with it."""
    return math.isqrt(T - 1) + 1


def advanced_steps(T: int, slots: int, B: int) -> int:
    """Steps the schedule's advances evaluate: L F(ceil(T / L), slots) (every advanced
    segment is a whole one: revolve never advances past the last segment's start), or
    H L with a kept tail of T - H L steps (``head_segments``: each head segment once)."""
    L = segment(B, T, slots)
    H = head_segments(T, slots, B)
    if H is not None:
        return H * L
    return L * forward_steps_closed_form(segments(T, L), slots)


def evaluations(T: int, slots: int, B: int) -> int:
    """Cell forward evaluations of one call, every cell: the advances plus each step once
    more inside its segment's reversal (T for plain BPTT, slots >= T; T + H L, about
    2 T - slots, with a kept tail)."""
    return advanced_steps(T, slots, B) + T


@jit
def _checkpointed(cell, alpha, xs, ys, w, schedule, L, SH, SC, buf, g, count):
    w, buf, g = Weights(*w), Buffers(*buf), Weights(*g)
    T = xs.shape[0]
    H = buf.H  # (L + 1, B, n): row 0 is the current state h_a; rows 1 .. L a segment's
    X = buf.X  # the cell's values beside them (the LSTM's c_a: row 0's first n columns)
    n = H.shape[2]
    evals = 0
    loss = 0.0
    last = 0  # the top segment, reversed first: it runs to T (a kept tail may exceed L)
    for row in range(schedule.shape[0]):
        if schedule[row, 0] == REVERSE:
            last = schedule[row, 1]
            break
    buf.delta[:] = 0.0  # the error at h_T, then at each reversed segment's first state
    buf.delta_c[:] = 0.0
    H[0] = 0.0  # h_0 = 0 (and c_0 = 0)
    X[0] = 0.0
    for row in range(schedule.shape[0]):
        op = schedule[row, 0]
        i = schedule[row, 1]
        k = schedule[row, 2]
        if op == ADVANCE:  # segments i .. k-1, whole ones, each as BPTT's forward sweep
            for seg in range(i, k):
                a = seg * L
                forward_sweep(cell, alpha, xs, w, buf, a, a, a + L)
                H[0] = H[L]
                if cell == LSTM:  # the state is (h, c); the gates are not read again
                    X[0, :, :n] = X[L, :, :n]
                evals += L
        elif op == STORE:
            SH[k] = H[0]
            if cell == LSTM:
                SC[k] = X[0, :, :n]
        elif op == RESTORE:
            H[0] = SH[k]
            if cell == LSTM:
                X[0, :, :n] = SC[k]
        else:  # REVERSE segment i from its first state, in slot k or current
            if k != CURRENT:
                H[0] = SH[k]
                if cell == LSTM:
                    X[0, :, :n] = SC[k]
            a = i * L
            b = T if i == last else a + L
            # BPTT on the segment: its states and the cell's values, then the backward
            # sweep from the error at h_b that the segment above left in buf.delta.
            forward_sweep(cell, alpha, xs, w, buf, a, a, b)
            evals += b - a
            loss = backward_steps(cell, alpha, xs, ys, w, buf, g, a, a, b, a, 0, loss)
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
    schedule, used, L = plan(T, slots, B)
    # One segment's states and values (the longest: L, or a kept tail), and BPTT's
    # chunk buffers (chunks of C <= L steps).
    buf = make_buffers(cell, segment_rows(T, slots, B) + 1, B, n, m, p, chunk_steps(B, T), dt)
    SH = np.empty((used, B, n), dt)
    SC = np.empty((used if cell.id == LSTM else 0, B, n), dt)
    g = zero_grads(w)
    count = np.zeros(1, np.int64)
    loss, finite = _checkpointed(
        cell.id, cell.alpha, xs, ys, tuple(w), schedule, L, SH, SC, tuple(buf), tuple(g), count
    )
    grads = cells.as_params(g, cell)
    if not (finite and math.isfinite(loss)):
        check_result("checkpointed_bptt", loss, grads, dt)  # raises, naming what overflowed
    return float(loss), grads, int(count[0])


def checkpointed_bptt(params, xs, ys, slots=None):
    """Loss and exact BPTT gradient, holding at most ``slots`` stored states.

    Parameters
    ----------
    params : RNNParams, GRUParams or LSTMParams
        The cell is the parameters' type (an RNNParams's ``alpha`` is its leak).
    xs : array (T, B, m) or (T, m)
    ys : array (T, B, p) or (T, p)
    slots : int >= 1, optional
        Most segment start states stored at once, h_0's slot included (an LSTM
        state is (h, c)), beside one segment of 128 / B steps that is being
        reversed; default ceil(sqrt(T)). Slots beyond the ceil(T / L) segments
        keep a tail of steps from the first pass, each kept step one slot (its
        state with the cell's values). slots >= T is plain BPTT, every state
        stored, no recomputation.

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
    """Forward advances of revolve's schedule reversing T steps with ``slots`` slots.

    The first forward pass is included, the step evaluated inside each reverse
    step is not: T = 1000 with 32 slots makes 2405; slots >= T makes T - 1
    (plain BPTT). THEORY.md's closed form F(T, c) = r T - C(c + r, c + 1).
    ``checkpointed_bptt`` runs this schedule over its ceil(T / L) segments of L
    steps: L F(ceil(T / L), slots) advanced steps (``advanced_steps``); where the
    slots outnumber the segments it keeps a tail instead and advances H L
    (``head_segments``), and its cell evaluations are those plus T (``evaluations``).
    """
    return forward_steps_closed_form(check_size("T", T), check_size("slots", slots))


# --- costs -------------------------------------------------------------------------------


def _sizes(size):
    T, B, n, m, p = (int(size[k]) for k in ("T", "B", "n", "m", "p"))
    c = int(size["c"]) if "c" in size else default_slots(T)
    return T, B, n, m, p, c, cells.cell_named(size.get("cell", "elman"))


def flops(size) -> list[Term]:
    """Exact FLOPs of one call: ``evaluations`` forward steps and one BPTT backward sweep.

    The advances depend on T and c through the repetition number (no power law in c);
    their terms carry the power 1 in T, the slope at fixed c up to the factor r.
    """
    T, B, n, m, p, c, cell = _sizes(size)
    sweeps = forward_flops(cell, evaluations(T, c, B), B, n, m)
    sweeps += backward_flops(cell, T, T, B, n, m, p, chunk_steps(B, T))
    return [
        t.substitute("steps", {"T": 1}).substitute("err_steps", {"T": 1}).substitute("sweeps", {})
        for t in sweeps
    ]


def slots_used(T: int, c: int) -> int:
    """Slots a schedule of T (coarse) steps writes: min(c, T - 1) (the last start is current)."""
    return min(c, T - 1)


def memory(size, itemsize: int) -> list[Term]:
    """Working bytes of one call: the slots, one segment's states, BPTT's chunk buffers and
    the gradients. With c >= T the segment is the whole sequence: BPTT's own memory."""
    T, B, n, m, p, c, cell = _sizes(size)
    C = chunk_steps(B, T)
    C_powers = chunk_powers(B, T, {"T": 1})
    per_state = state_bytes(cell, B, n, itemsize)  # h and the cell's values, a step
    H = head_segments(T, c, B)
    if c >= T:
        L, L_powers, used = T, {"T": 1}, 0
    elif H is not None:  # H head starts in slots; the kept tail's T - H L states
        # Together H + R ~ c states: linear in c only where a tail row is one slot's size
        # (the Elman cell); a gated cell's rows carry its values, and there the sum is no
        # power of c (no exponent claimed, the fits leave these sizes out).
        L, used = T - H * C, H
        L_powers = {"c": 1} if state_bytes(cell, B, n, itemsize) == n * B * itemsize else {}
    else:
        L, L_powers = C, C_powers
        used = slots_used(segments(T, L), c)
    h = n * B * itemsize * (2 if cell.id == LSTM else 1)  # one slot: h (and c)
    rows = {v: e for v, e in {**L_powers, "B": L_powers.get("B", 0) + 1}.items() if e}
    return [
        Term(used * h, {"c": 1 if H is None or L_powers else 0, "B": 1, "n": 1}),  # the slots
        Term(L * per_state, {**rows, "n": 1}),  # a segment's states and values (or the tail)
        Term(per_state, {"B": 1, "n": 1}),  # ... and the state below it (current state)
        *chunk_bytes(cell, B, n, m, p, C, C_powers, itemsize),
        *gradient_bytes(cell, n, m, p, itemsize),
    ]  # (and the kernel's 8-byte evaluation counter, left in the fixed overhead)
