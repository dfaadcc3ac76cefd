"""Checkpointed BPTT (kernels/checkpointed_bptt.py) on every cell.

- The gradient and loss equal ``bpttbench.bptt``'s (1e-12 relative) for many
  (T, slots, B): one slot, slots >= T, T = 1, the binomial breakpoints (in
  segments), T that is not a multiple of the segment (ragged last segments),
  advances longer than a segment, segments of one step, the default slots; and
  central finite differences of its own loss on a small case per cell.
  PyTorch autograd: tests/test_cells_torch.py.
- The cell forward evaluations the compiled kernel really makes (its counter)
  equal the segment schedule's advanced steps plus T (every cell), and
  revolve's advances equal ``checkpoint_forward_steps``, the closed form and
  the recurrence.
- The slots the kernel allocates are the ones the memory model counts.
- Bad input: slots < 1, non-integer slots, and everything BPTT rejects.
Memory (tracemalloc): tests/test_memory.py.
"""

from __future__ import annotations

import importlib
import itertools
import math

import bpttbench
import naive
import numpy as np
import pytest
from bpttbench import checkpoint_schedule as cs
from helpers import FD_RTOL, FD_STEP, assert_grads_close, assert_loss_close, rnn_arrays, sequence

# The module (``bpttbench.checkpointed_bptt`` is the function, as bptt is).
ck = importlib.import_module("bpttbench.checkpointed_bptt")

# Both sides run the same cell steps and the same chunked readout and gradient GEMMs;
# only the order of some sums differs (the readout per step rather than per chunk):
# measured <= 2e-15 relative on these problems. The issue asks for 1e-12.
CHECKPOINT_RTOL = 1e-12

CELLS = ["elman", "leaky", "gru", "lstm"]
M, N, P = 3, 4, 2


def make_params(rng, cell, m=M, n=N, p=P):
    if cell in ("elman", "leaky"):
        return bpttbench.RNNParams(*rnn_arrays(rng, m, n, p), alpha=0.4 if cell == "leaky" else 1)
    G = {"gru": 3, "lstm": 4}[cell]
    shapes = [(G * n, m), (G * n, n), (G * n,), (G * n,), (p, n), (p,)]
    params_type = bpttbench.GRUParams if cell == "gru" else bpttbench.LSTMParams
    return params_type(*(rng.normal(0.0, 0.6, s) for s in shapes))


# (T, B, slots). The kernel runs revolve over segments of L = 128 // B steps (one segment
# when T <= L, or slots >= T: plain BPTT). slots = 1; slots >= T and = T - 1; T = 1
# and 2; B = 5 gives segments of 25 steps, so T = 60 has a ragged last segment and T = 90
# with 3 slots advances more than a segment at once; B = 64 gives segments of 2 steps,
# B = 43 of 2, B = 26 of 4, B = 22 of 5 (ragged last segments of 1); B = 128 of one
# step, revolve step by step: the segment counts at and around the breakpoints
# beta(c, r) (beta(2, 3) = 10, beta(3, 2) = 10, beta(3, 3) = 20).
CASES = [
    (1, 1, 1), (1, 3, 5), (2, 1, 1), (2, 2, 2), (3, 2, 1), (5, 1, 2), (9, 2, 3), (10, 2, 2),
    (11, 3, 3), (20, 1, 3), (21, 2, 3), (13, 4, 1), (16, 3, 15), (16, 2, 16), (16, 2, 40),
    (60, 5, 4), (90, 5, 3), (37, 64, 5), (50, 2, None), (31, 1, 2),
    (10, 128, 2), (11, 128, 3), (20, 128, 3), (21, 128, 3), (13, 128, 1), (16, 128, 15),
    (31, 43, 2), (45, 26, 1), (50, 22, 3), (49, 22, 3),
]  # fmt: skip
# More slots than segments (ceil(T / L) <= slots < T): the spare slots keep a tail of
# T - H L states from the first pass (ck.head_segments). B = 5, T = 90: 4 segments of 25,
# the tail from slots = 42 (H = 2, the boundary; 41 is revolve's) to T - 1 (H = 1);
# B = 22, T = 49: segments of 5, H = 5 below a tail of 24; B = 16, T = 77: segments of 8,
# a ragged tail; B = 64, T = 45: segments of 2 (L - 1 = 1 step saved a slot).
TAIL_CASES = [
    (90, 5, 41), (90, 5, 42), (90, 5, 50), (90, 5, 89), (49, 22, 30), (77, 16, 40),
    (77, 16, 76), (45, 64, 30), (45, 64, 44),
]  # fmt: skip


@pytest.mark.parametrize(("T", "B", "slots"), CASES + TAIL_CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("cell", CELLS)
def test_checkpointed_bptt_equals_bptt(rng, cell, T, B, slots):
    params = make_params(rng, cell)
    xs, ys = sequence(rng, T, B, M, P)
    loss, g = bpttbench.checkpointed_bptt(params, xs, ys, slots)
    ref_loss, ref = bpttbench.bptt(params, xs, ys)
    assert type(g) is type(params)
    assert getattr(g, "alpha", 1.0) == getattr(params, "alpha", 1.0)
    assert_loss_close(loss, ref_loss, CHECKPOINT_RTOL, f"{cell} T={T} slots={slots}")
    assert_grads_close(g, ref, CHECKPOINT_RTOL, f"{cell} T={T} B={B} slots={slots} vs bptt")


def test_2d_sequence_and_float32(rng):
    params = make_params(rng, "gru")
    xs, ys = sequence(rng, 12, 1, M, P)
    _, g = bpttbench.checkpointed_bptt(params, xs[:, 0], ys[:, 0], 2)
    _, ref = bpttbench.bptt(params, xs, ys)
    assert_grads_close(g, ref, CHECKPOINT_RTOL, "(T, m) input")
    p32 = type(params)(*(a.astype(np.float32) for a in params))
    _, g32 = bpttbench.checkpointed_bptt(p32, xs.astype(np.float32), ys.astype(np.float32), 2)
    assert g32.weight_hh.dtype == np.float32
    assert_grads_close(g32, ref, 1e-4, "float32")


@pytest.mark.parametrize("cell", CELLS)
def test_checkpointed_bptt_matches_finite_differences(rng, cell):
    params = make_params(rng, cell, m=2, n=3, p=2)
    xs, ys = sequence(rng, 6, 2, 2, 2)
    alpha = getattr(params, "alpha", None)

    def loss(theta):
        rebuilt = type(params)(*theta, alpha=alpha) if alpha else type(params)(*theta)
        return bpttbench.checkpointed_bptt(rebuilt, xs, ys, 2)[0]

    _, g = bpttbench.checkpointed_bptt(params, xs, ys, 2)
    assert_grads_close(g, naive.finite_difference(loss, params, FD_STEP), FD_RTOL, f"{cell} FD")


# --- what the kernel evaluates ------------------------------------------------------------


# Every cell evaluates the steps of the schedule's advances (whole segments of L steps)
# and each step once more when its segment is reversed (the segment's BPTT forward
# sweep, which stores what the backward step reads): L F(ceil(T / L), slots) + T.
@pytest.mark.parametrize(
    ("T", "B", "slots"),
    [(1, 5, 1), (2, 5, 1), (10, 5, 3), (45, 64, 4), (90, 5, 3), (77, 16, 2), (64, 5, 64)],
)
@pytest.mark.parametrize("cell", CELLS)
def test_the_kernel_evaluates_the_schedules_steps(rng, cell, T, B, slots):
    params = make_params(rng, cell)
    xs, ys = sequence(rng, T, B, M, P)
    *_, evaluations = ck._run(params, xs, ys, slots)
    schedule, _, L = ck.plan(T, slots, B)
    advances = cs.count_forward_steps(schedule)  # segments
    assert evaluations == L * advances + T
    assert evaluations == ck.evaluations(T, slots, B)
    assert L == (T if slots >= T else min(T, 128 // B))  # BPTT's chunk
    if slots >= T:  # plain BPTT: each step once
        assert evaluations == T


@pytest.mark.parametrize(("T", "B", "slots"), TAIL_CASES)
def test_spare_slots_keep_a_tail_and_never_hold_more_than_the_slots(rng, T, B, slots):
    """With more slots than segments every head segment is advanced once and the tail
    never: T + H L evaluations (about 2 T - slots), and the head's stored starts plus the
    tail's states are at most ``slots``."""
    params = make_params(rng, "gru")
    xs, ys = sequence(rng, T, B, M, P)
    *_, evaluations = ck._run(params, xs, ys, slots)
    L = min(T, 128 // B)
    H = ck.head_segments(T, slots, B)
    if H is None:  # the boundary below the tail: revolve stores every segment start
        assert slots >= -(-T // L) - 1
        assert evaluations == T + L * (-(-T // L) - 1)
        return
    tail = T - H * L
    assert tail > L and H == -(-(T - slots) // (L - 1))
    assert H + tail <= slots  # the peak at c slots: H starts and the tail's states
    assert ck.plan(T, slots, B)[1] == H and ck.segment_rows(T, slots, B) == tail
    assert evaluations == T + H * L == ck.evaluations(T, slots, B)
    assert 2 * T - slots <= evaluations < 2 * T - slots + H + L  # H (L - 1) >= T - slots


def test_spare_slots_cost_fall_to_bptts_at_T():
    """Along slots at T = 1000, B = 8 (segments of 16): revolve's count down to its plain
    schedule at 62 slots, flat until the tail pays (85 slots: 61 starts and 24 steps kept),
    then falling to BPTT's T."""
    T, B = 1000, 8
    counts = [ck.evaluations(T, c, B) for c in range(1, T + 1)]
    assert all(a >= b for a, b in itertools.pairwise(counts))  # never worse
    assert counts[61] == T + 16 * 62 and counts[83] == counts[61] and counts[84] == counts[61] - 16
    assert counts[T - 2] == T + 16 and counts[T - 1] == T


def test_checkpoint_forward_steps_known_values():
    assert bpttbench.checkpoint_forward_steps(1000, 32) == 2405
    assert bpttbench.checkpoint_forward_steps(1000, 10) == 3636
    for T in (1, 2, 7, 100):
        for slots in (T, T + 1, 10 * T):
            assert bpttbench.checkpoint_forward_steps(T, slots) == T - 1
    assert bpttbench.checkpoint_forward_steps(10, 1) == 45


def test_checkpoint_forward_steps_is_the_schedules_count():
    for T in range(1, 201):
        for slots in range(1, 11):
            f = bpttbench.checkpoint_forward_steps(T, slots)
            assert f == cs.forward_steps_dp(T, slots), (T, slots)
            if T % 7 == 0 or T < 30:  # the schedules themselves: a sample
                assert f == cs.forward_steps(T, slots), (T, slots)


def test_slots_model_is_what_the_schedule_writes():
    for T in range(1, 120):
        for slots in (1, 2, 3, 5, 11, T - 1, T, T + 3):
            if slots >= 1:
                used = cs.max_slots_used(cs.revolve_schedule(T, slots))
                assert used == ck.slots_used(T, slots), (T, slots)


def test_default_slots_is_ceil_sqrt_T(rng):
    for T in (1, 2, 4, 5, 99, 100, 101, 1000):
        assert ck.default_slots(T) == math.ceil(math.sqrt(T))
    params = make_params(rng, "elman")
    xs, ys = sequence(rng, 30, 2, M, P)
    assert ck._run(params, xs, ys, None)[2] == ck.evaluations(30, 6, 2)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("slots", [0, -3])
def test_slots_below_one_are_refused(rng, slots):
    params = make_params(rng, "lstm")
    xs, ys = sequence(rng, 5, 1, M, P)
    with pytest.raises(ValueError, match="slots must be >= 1"):
        bpttbench.checkpointed_bptt(params, xs, ys, slots)


@pytest.mark.parametrize("slots", [2.0, 2.5, True, "3", np.float64(3)])
def test_non_integer_slots_are_refused(rng, slots):
    params = make_params(rng, "elman")
    xs, ys = sequence(rng, 5, 1, M, P)
    with pytest.raises(TypeError, match="slots must be a positive int"):
        bpttbench.checkpointed_bptt(params, xs, ys, slots)


def test_numpy_integer_slots_are_taken(rng):
    params = make_params(rng, "elman")
    xs, ys = sequence(rng, 5, 1, M, P)
    a = bpttbench.checkpointed_bptt(params, xs, ys, np.int64(2))
    b = bpttbench.checkpointed_bptt(params, xs, ys, 2)
    assert a[0] == b[0]


def _bad_inputs(rng):
    params = make_params(rng, "gru")
    xs, ys = sequence(rng, 5, 2, M, P)
    lstm = make_params(rng, "lstm")
    return {
        "xs 4-d": (params, xs[None], ys),
        "xs wrong m": (params, xs[..., :2], ys),
        "ys wrong T": (params, xs, ys[:3]),
        "T = 0": (params, xs[:0], ys[:0]),
        "nan in xs": (params, np.where(xs > 1, np.nan, xs), ys),
        "int xs": (params, xs.astype(int), ys),
        "gru layout given as lstm": (bpttbench.LSTMParams(*params), xs, ys),
        "lstm bias shape": (lstm._replace(bias_hh=lstm.bias_hh[:-1]), xs, ys),
        "not params": ((1, 2, 3), xs, ys),
    }


def test_everything_bptt_rejects_is_rejected_with_its_message(rng):
    for what, args in _bad_inputs(rng).items():
        with pytest.raises(Exception) as expected:
            bpttbench.bptt(*args)
        with pytest.raises(type(expected.value)) as got:
            bpttbench.checkpointed_bptt(*args, slots=2)
        assert str(got.value) == str(expected.value), what


def test_after_a_reverse_the_schedule_restores_before_it_advances_or_stores():
    """A reverse step may leave the current state behind (revolve's executors need not keep it)."""
    for T in range(1, 151):
        for slots in (1, 2, 3, 4, 6, 10, T):
            reversed_since_restore = False
            for op, _, _ in cs.revolve_schedule(T, slots).tolist():
                if op == cs.REVERSE:
                    reversed_since_restore = True
                elif op == cs.RESTORE:
                    reversed_since_restore = False
                else:
                    assert not reversed_since_restore, (T, slots, op)
