"""SnAp-1 on the GRU and the LSTM: the kernel against a NumPy reference and exact RTRL.

The reference (``naive_online.gated_snap1``) runs RTRL with the influence matrix
masked to SnAp-1's pattern, its Jacobians taken by central differences of one
step of the cell, so it shares no derivative with the kernel; unmasked it is
exact RTRL, checked here against ``bpttbench.rtrl``. The identities where
SnAp-1 is exact (every gate's block of weight_hh diagonal; weight_hh = 0; a
single step) are checked against ``bpttbench.rtrl`` to rounding.
"""

from __future__ import annotations

import bpttbench
import numpy as np
import pytest
from bpttbench.cells import init_gru, init_lstm
from naive_online import gated_snap1

INIT = {"gru": init_gru, "lstm": init_lstm}
M, N, P, T, B = 2, 3, 2, 5, 2


def problem(kind, seed=3, T=T):
    params = INIT[kind](M, N, P, seed=seed)
    rng = np.random.default_rng(seed)
    return params, rng.normal(size=(T, B, M)), rng.normal(size=(T, B, P))


def diagonal(params):
    """The parameters with every gate's block of weight_hh reduced to its diagonal."""
    W = params.weight_hh
    keep = np.zeros_like(W, dtype=bool)
    for g in range(W.shape[0] // N):
        keep[g * N : (g + 1) * N] = np.eye(N, dtype=bool)
    return params._replace(weight_hh=np.where(keep, W, 0.0))


def assert_close(got, want, rtol):
    (l1, g1), (l2, g2) = got, want
    assert l1 == pytest.approx(l2, rel=1e-12)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_kernel_equals_the_reference_written_from_the_paper(kind):
    params, xs, ys = problem(kind)
    loss, grads = bpttbench.snap1(params, xs, ys)
    ref_loss, ref = gated_snap1(kind, params, xs, ys)
    exact = bpttbench.rtrl(params, xs, ys)[1]
    assert_close((loss, list(grads)), (ref_loss, ref), 1e-6)
    # the dense weight_hh makes SnAp-1 an approximation: far from exact, near the reference
    assert max(np.abs(a - b).max() for a, b in zip(grads, exact, strict=True)) > 1e-3


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_the_unmasked_reference_is_exact_rtrl(kind):
    params, xs, ys = problem(kind, T=3)
    exact = bpttbench.rtrl(params, xs, ys)
    assert_close(gated_snap1(kind, params, xs, ys, masked=False), (exact[0], list(exact[1])), 1e-6)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("case", ["diagonal", "zero", "one step"])
def test_snap1_is_exact_where_the_paper_says(kind, case):
    params, xs, ys = problem(kind)
    if case == "diagonal":
        params = diagonal(params)
    elif case == "zero":
        params = params._replace(weight_hh=np.zeros_like(params.weight_hh))
    else:
        xs, ys = xs[:1], ys[:1]
    loss, grads = bpttbench.snap1(params, xs, ys)
    exact_loss, exact = bpttbench.rtrl(params, xs, ys)
    assert type(grads) is type(params)
    assert_close((loss, list(grads)), (exact_loss, list(exact)), 1e-12)


def test_gated_snap1_rejects_what_rtrl_rejects():
    params, xs, ys = problem("gru")
    with pytest.raises(ValueError, match="xs"):
        bpttbench.snap1(params, xs[:, :, :1], ys)
    with pytest.raises(ValueError):
        bpttbench.rtrl(params, xs[:, :, :1], ys)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_cost_terms_scale_by_their_declared_powers(cell):
    from bpttbench.snap1 import flops, memory

    size = {"T": 8, "B": 2, "n": 16, "m": 4, "p": 2, "cell": cell}
    for model in (flops, lambda s: memory(s, 8)):
        base = model(size)
        for var in ("T", "B", "n", "m", "p"):
            for a, b in zip(base, model({**size, var: 2 * size[var]}), strict=True):
                assert b.value / a.value == pytest.approx(2.0 ** a.powers.get(var, 0)), (var, a)
        assert model(size)[0].powers.get("n") == 2  # O(n^2) per step, the leading term


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_memory_is_flat_in_T_and_within_5_percent_of_the_model(cell):
    import tracemalloc

    from bpttbench.registry import with_cells

    spec = with_cells(bpttbench.ALGORITHMS)["snap1"]
    peaks = []
    for T in (4, 64):
        size = {"T": T, "B": 2, "n": 48, "m": 4, "p": 2, "cell": cell}
        problem = spec.make_problem(size, np.float64, 0)
        tracemalloc.start()
        spec.func(*problem)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert peaks[-1] == pytest.approx(spec.memory_bytes(size, 8), rel=0.05)
    assert peaks[1] == pytest.approx(peaks[0], rel=0.01)  # nothing kept per step


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_gated_stream_in_chunks_equals_the_one_shot_call(kind):
    params, xs, ys = problem(kind)
    s = bpttbench.stream("snap1", params, B=B)
    parts = [s.step(xs[a:b], ys[a:b]) for a, b in ((0, 2), (2, 3), (3, T))]
    assert s.steps == T and all(type(g) is type(params) for _, g in parts)
    loss = sum(part[0] for part in parts)
    grads = [sum(fields) for fields in zip(*(list(g) for _, g in parts), strict=True)]
    assert_close((loss, grads), (bpttbench.snap1(params, xs, ys)[0],
                                 list(bpttbench.snap1(params, xs, ys)[1])), 1e-12)  # fmt: skip


def test_gated_stream_refuses_other_weights_and_batches():
    params, xs, ys = problem("gru")
    s = bpttbench.stream("snap1", params, B=B)
    with pytest.raises(ValueError, match="weight_ih"):
        s.params = init_gru(M, N + 1, P)
    with pytest.raises(TypeError, match="LSTMParams"):
        s.params = init_lstm(M, N, P)
    with pytest.raises(ValueError, match="batch"):
        s.step(xs[:, :1], ys[:, :1])
    s.params = init_gru(M, N, P, seed=9)  # same shapes: taken
    with pytest.raises(NotImplementedError, match="Elman cell only"):
        bpttbench.stream("uoro", params, B=B)
