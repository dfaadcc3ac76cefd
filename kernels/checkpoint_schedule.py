"""Optimal binomial checkpoint schedules (revolve), as data for a kernel to execute.

Checkpointed BPTT reverses the T steps of a recurrence while holding at most
``slots`` states h_s at once, recomputing the others forward from the stored
ones. This module decides *when* to advance, store, restore and reverse; it
returns that plan as a small integer array, so that a jitted kernel runs it
with one loop and a test can count what it does.

Indexing is the one of ``_sweeps.py``: steps are 0-based, step ``s`` maps h_s
to h_{s+1} (it reads ``xs[s]``); the forward states are h_0 .. h_T and the
reverse steps go s = T-1 down to 0.

Cost of the optimal schedule (Griewank 1992; THEORY.md, "Checkpointed BPTT")
----------------------------------------------------------------------------
Let F(t, c) be the fewest forward steps that reverse t steps with c slots,
where the slot count c *includes* the slot of the starting state (h_0 at the
top level). Reversing with one slot restores h_0 and re-advances for every
step; with more, advance y steps, store h_y, reverse the last t - y steps with
the c - 1 slots left, then the first y with all c:

    F(1, c) = 0,   F(t, 1) = t (t - 1) / 2,
    F(t, c) = min_{1 <= y < t} [ y + F(y, c) + F(t - y, c - 1) ].

With beta(c, r) = C(c + r, c), the largest t that c slots reverse when no step
is advanced more than r times, the minimum has the closed form

    r = min{ r : beta(c, r) >= t },    F(t, c) = r t - C(c + r, c + 1),

and F(t+1, c) - F(t, c) = r(t+1, c): F is piecewise linear and convex in t.
An optimal first split (checked against the recurrence for all t <= 200,
c <= 10) is the smallest optimal one,

    y = max(1, beta(c, r - 2), t - beta(c - 1, r)),     beta(c, -1) = 0:

it leaves the right part t - y <= beta(c - 1, r) steps (reversed with c - 1
slots and at most r advances per step) and the left part at least
beta(c, r - 2) steps, so the marginal costs of the two parts balance.

What is counted. ``forward steps`` counts every step evaluated forward to
produce a state that is then stored or used, the first pass included. It does
not count the step evaluated *inside* a reverse step: reversing step s of the
Elman cell needs h_s and h_{s+1}, and h_{s+1} is either computed there from
h_s (revolve's "youturn") or carried over from the previous reverse step,
which read it (see "Executing a schedule"). With this convention plain BPTT
(slots >= T - 1) makes T - 1 forward steps: h_1 .. h_{T-1}, while h_T is
produced by the first reverse step. Checked values (THEORY.md): F(10, 1) = 45,
F(10, 3) = 15, F(50, 4) = 144, F(100, 5) = 316, F(200, 10) = 522, and at
t = 1000: 3636 with 10 slots, 2405 with 32, 1934 with 64.

Growth (the theory the benchmark fits against). ``forward_steps`` is the
multiplier of the forward-sweep FLOPs; the backward sweep's stay those of one
BPTT pass. At fixed c the time is linear in T up to the factor r: each step is
advanced at most r times, and F = r T - r beta(c, r) / (c + 1), which lies
between c (r - 1) T / (c + 1) and c r T / (c + 1). Since
beta(c, r) = C(c + r, c) ~ r^c / c!, r ~ (c! T)^(1/c) and
F ~ c / (c + 1) (c!)^(1/c) T^(1 + 1/c): as T grows at fixed c the exponent of
forward steps in T is 1 + 1/c (2 for c = 1, where F = T (T - 1) / 2). At finite r the
log-log slope T F'/F = r T / F swings between 1 + 1/c (at T = beta(c, r)) and
(1 + 1/c) r / (r - 1) (just past it), so a fit over a decade of T with small r
reads high; compare exact counts, not exponents. At fixed T there is no power
law in c: F falls from T (T - 1) / 2 at c = 1 to T - 1 at c >= T - 1, and
while 1 << c the repetition number is r ~ ln T / ln c, so F ~ T ln T / ln c,
a local exponent d ln F / d ln c ~ -1 / ln c that tends to 0 (at T = 1000:
3636, 2405, 1934 forward steps for c = 10, 32, 64). With c ~ log_4 T slots
both the memory and the recomputation factor grow like log T (Griewank's
logarithmic regime). Memory: ``slots`` stored states, slots x n x B numbers,
plus the working state and the carried h_{s+1} (two more n x B), instead of
BPTT's T x n x B.

Encoding
--------
A schedule is an ``int32`` array of shape (K, 3); row ``(op, i, j)`` is one
action on an executor that holds a *current state* (initially h_0, of step
index 0) and ``slots`` numbered slots:

======================  ==========================================================
``(ADVANCE, a, b)``     current is h_a; evaluate steps a .. b-1 (b - a >= 1 forward
                        steps, stored nowhere); current becomes h_b.
``(STORE, i, k)``       current is h_i; copy it into slot k (0 <= k < slots).
``(RESTORE, i, k)``     slot k holds h_i; copy it into the current state.
``(REVERSE, s, k)``     back-propagate step s; h_s is read from slot k, or from the
                        current state when k == CURRENT (-1).
======================  ==========================================================

The step and state indices in STORE, RESTORE and REVERSE are redundant for
execution and there so that an executor (or a test) can check them. Slots are
used as a stack: the state that starts a segment nested d right parts deep
goes to slot d, so slots 0 .. max_slots_used - 1 are the only ones written. A
STORE is emitted only for a state that is read back later, a RESTORE only when
the current state is not already the one needed: plain BPTT never restores.

Executing a schedule. REVERSE rows come in the order s = T-1, ..., 0. The
first one needs h_T: the executor evaluates step T-1 from h_s (one step, the
"turn", not in ``forward_steps``). Each later REVERSE of step s needs h_{s+1},
which is the state the previous REVERSE read; an executor keeps a copy of it
(its slot may be overwritten before the next reverse step), so over the whole
schedule it evaluates ``forward_steps + 1`` steps. An ADVANCE of several steps
can be run as one chunked forward sweep.

Size. Every schedule (T >= 2) has exactly 3T - 2 rows whatever ``slots`` is:
T REVERSE rows and 2 (T - 1) others, since each split costs two rows (STORE or
RESTORE, then ADVANCE) and a one-slot segment of t steps costs 2 (t - 1) (t - 1
ADVANCEs, t - 1 STOREs or RESTOREs). So it takes 12 (3T - 2) bytes: O(T), not
O(T log T). It depends only on (T, slots): build it once outside the timed and
traced region, like an FFT plan, or count it in the kernel's memory. Each
split costs O(r) integer operations; T = 100000 with 300 slots takes 0.06 s
on the shared 2-core machine when idle, 0.2 s when loaded.

Sources: A. Griewank, "Achieving logarithmic growth of temporal and spatial
complexity in reverse automatic differentiation", Optim. Methods Softw. 1
(1992); A. Griewank and A. Walther, "Algorithm 799: revolve", ACM TOMS 26
(2000); A. Gruslys et al., "Memory-efficient backpropagation through time",
NeurIPS 2016 (the same recurrence, BPTT-HSM); the action lists of Firedrake's
``checkpoint_schedules`` (Forward, Reverse, Copy).
"""

from __future__ import annotations

import math

import numpy as np

from ._validate import check_size

# Action codes: the first column of a schedule row.
ADVANCE = 0
STORE = 1
RESTORE = 2
REVERSE = 3
# Slot index of a REVERSE row that reads the current state instead of a slot.
CURRENT = -1

SCHEDULE_DTYPE = np.int32


def _check(T, slots) -> tuple[int, int]:
    return check_size("T", T), check_size("slots", slots)


def _split(t: int, c: int) -> int:
    """An optimal first split y of t >= 2 steps with c >= 2 slots (module docstring)."""
    # r = min{r : beta(c, r) >= t}; beta(c, r) = C(c + r, c) grows by (c + r) / r.
    r, beta_r = 0, 1
    while beta_r < t:
        r += 1
        beta_r = beta_r * (c + r) // r
    beta_rm1 = beta_r * r // (c + r)  # beta(c, r - 1)
    beta_rm2 = beta_rm1 * (r - 1) // (c + r - 1)  # beta(c, r - 2); 0 when r == 1
    right = beta_r * c // (c + r)  # beta(c - 1, r)
    return max(1, beta_rm2, t - right)


def revolve_schedule(T: int, slots: int) -> np.ndarray:
    """The optimal binomial checkpoint schedule for reversing T steps with ``slots`` states.

    Parameters
    ----------
    T : int
        Steps to reverse, >= 1.
    slots : int
        Most states held at once, >= 1, counting the slot of h_0 (THEORY.md's c).

    Returns
    -------
    schedule : int32 array (K, 3)
        Rows ``(op, i, j)`` as described in the module docstring; K = 3T - 2
        for T >= 2, and K = 1 for T = 1. Its ADVANCE rows make exactly
        ``forward_steps_closed_form(T, slots)`` forward steps.

    Notes
    -----
    The forward steps are the optimum F(T, slots), as in Griewank & Walther's
    revolve (ACM TOMS 2000); the splits here are the smallest optimal ones. The recursion runs on an
    explicit stack (the right spine is ``min(slots, T)`` deep).
    """
    T, slots = _check(T, slots)
    rows: list[int] = []
    emit = rows.extend
    cur = 0  # step index of the executor's current state
    # Pending segments (a, t, c, k, stored): reverse steps a .. a+t-1 starting
    # from h_a, which is in slot k if ``stored`` and is the current state if
    # not; slots k .. k+c-1 are free for this segment.
    stack = [(0, T, slots, 0, False)]
    while stack:
        a, t, c, k, stored = stack.pop()
        while True:
            if t == 1:
                emit((REVERSE, a, k if stored else CURRENT))
                break
            if not stored:
                emit((STORE, a, k))
                stored = True
            if c == 1:
                # One slot: restore h_a and re-advance for every step, last first.
                for s in range(a + t - 1, a, -1):
                    if cur != a:
                        emit((RESTORE, a, k))
                    emit((ADVANCE, a, s))
                    emit((REVERSE, s, CURRENT))
                    cur = s
                emit((REVERSE, a, k))
                break
            y = _split(t, c)
            if cur != a:
                emit((RESTORE, a, k))
            emit((ADVANCE, a, a + y))
            cur = a + y
            # Reverse the right part first (c - 1 slots above slot k), then the left.
            stack.append((a, y, c, k, True))
            a, t, c, k, stored = a + y, t - y, c - 1, k + 1, False
    return np.array(rows, dtype=SCHEDULE_DTYPE).reshape(-1, 3)


def count_forward_steps(schedule: np.ndarray) -> int:
    """Forward steps made by the ADVANCE rows of a schedule (sum of b - a)."""
    adv = schedule[schedule[:, 0] == ADVANCE]
    return int(np.sum(adv[:, 2].astype(np.int64) - adv[:, 1]))


def max_slots_used(schedule: np.ndarray) -> int:
    """Slots an executor must allocate: 1 + the highest slot a STORE writes (0 if none)."""
    stores = schedule[schedule[:, 0] == STORE]
    return int(stores[:, 2].max()) + 1 if len(stores) else 0


def forward_steps(T: int, slots: int) -> int:
    """Forward steps of ``revolve_schedule(T, slots)``, counted from the schedule itself."""
    return count_forward_steps(revolve_schedule(T, slots))


def repetitions(T: int, slots: int) -> int:
    """r = min{r : C(c + r, c) >= T}: the most times the schedule advances any one step.

    Plain BPTT (slots >= T - 1) has r = 1 for T >= 2; T = 1 has r = 0.
    """
    T, c = _check(T, slots)
    c = min(c, T)  # more slots than steps change nothing
    r, beta_r = 0, 1
    while beta_r < T:
        r += 1
        beta_r = beta_r * (c + r) // r
    return r


def forward_steps_closed_form(T: int, slots: int) -> int:
    """F(T, c) = r T - C(c + r, c + 1) with r = ``repetitions(T, slots)`` (Griewank 1992).

    O(r) integer arithmetic: the cost model to use for any T.
    """
    T, c = _check(T, slots)
    c = min(c, T)
    r = repetitions(T, c)
    return r * T - math.comb(c + r, c + 1)


def forward_steps_dp(T: int, slots: int) -> int:
    """F(T, c) from the recurrence itself, every F(t, c') memoised for the session.

    O(T^2 c) time on first use: a reference for T up to a few hundred, not a
    cost model. More slots than steps change nothing (the right parts lose a
    slot per split and a step or more with it), so c is capped at T.
    """
    T, c = _check(T, slots)
    c = min(c, T)
    for cc in range(1, c + 1):
        col = _RECURRENCE.setdefault(cc, [0, 0])  # [unused F(0, cc), F(1, cc) = 0, ...]
        left = _RECURRENCE.get(cc - 1)
        for t in range(len(col), T + 1):
            if cc == 1:
                col.append(t * (t - 1) // 2)
            else:
                col.append(min(y + col[y] + left[t - y] for y in range(1, t)))
    return _RECURRENCE[c][T]


# c -> [F(0, c), F(1, c), ..., F(t_max, c)], filled bottom-up by forward_steps_dp.
_RECURRENCE: dict[int, list[int]] = {}
