"""Every kernel equals its plain-NumPy reference in naive.py (float64, EXACT_RTOL).

naive.py is written from THEORY.md alone and checked against finite
differences in test_naive.py; here the kernels are held to it on problems with
a batch, with 2-D (B = 1) sequences, and over a grid of truncation lengths that
covers k dividing T, ragged ends, k1 < k2, and k1 or k2 beyond T.
"""

from __future__ import annotations

import bpttbench
import naive
import numpy as np
import pytest
from helpers import EXACT_RTOL, assert_grads_close, assert_loss_close

# The sequence length the truncation grid is built around.
T_GRID = 12

# (k1, k2); None means k2 defaults to k1.
TRUNCATIONS = [
    (1, None),  # BPTT(1; 1): every step its own window
    (3, None),  # k divides T
    (4, 4),
    (5, None),  # ragged: the last update at t = 12 reaches back to h_8
    (7, 7),  # ragged, one full window and one short error span
    (1, 3),  # k1 < k2 < T
    (2, 5),
    (3, 7),
    (5, 8),  # k1 < k2 < T with a ragged end
    (4, 11),
    (1, 12),  # k2 = T: no truncation
    (12, 12),
    (2, 30),  # k2 > T
    (15, None),  # k1 > T: one update at t = T
]


def truncation_id(k):
    k1, k2 = k
    return f"k1={k1}-k2={'default' if k2 is None else k2}"


def test_bptt_equals_naive(rnn_problem):
    params, xs, ys = rnn_problem
    loss, g = bpttbench.bptt(params, xs, ys)
    ref_loss, ref = naive.bptt(params, xs, ys)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, "bptt loss")
    assert_grads_close(g, ref, EXACT_RTOL, "bptt vs naive")


def test_rtrl_equals_naive(rnn_problem):
    params, xs, ys = rnn_problem
    loss, g = bpttbench.rtrl(params, xs, ys)
    ref_loss, ref = naive.rtrl(params, xs, ys)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, "rtrl loss")
    assert_grads_close(g, ref, EXACT_RTOL, "rtrl vs naive")


@pytest.mark.parametrize("k", TRUNCATIONS, ids=truncation_id)
def test_tbptt_equals_naive_window_reference(make_rnn_problem, k):
    k1, k2 = k
    params, xs, ys = make_rnn_problem(T=T_GRID)
    if k2 is None:  # exercise the default k2 = k1 of the public signature
        loss, g = bpttbench.tbptt(params, xs, ys, k1)
    else:
        loss, g = bpttbench.tbptt(params, xs, ys, k1, k2)
    ref_loss, ref = naive.tbptt(params, xs, ys, k1, k2)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"tbptt({k1}, {k2}) loss (the full loss)")
    assert_grads_close(g, ref, EXACT_RTOL, f"tbptt({k1}, {k2}) vs naive windows")


PAIRS_2D = {
    "bptt": (bpttbench.bptt, naive.bptt),
    "rtrl": (bpttbench.rtrl, naive.rtrl),
    "tbptt-k1=2-k2=3": (
        lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, 2, 3),
        lambda p, xs, ys: naive.tbptt(p, xs, ys, 2, 3),
    ),
}


@pytest.mark.parametrize("name", list(PAIRS_2D))
def test_rnn_kernel_equals_naive_for_2d_sequence(make_rnn_problem, name):
    call, reference = PAIRS_2D[name]
    params, xs, ys = make_rnn_problem(B=1)
    loss, g = call(params, xs[:, 0, :], ys[:, 0, :])
    ref_loss, ref = reference(params, xs, ys)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"{name} 2-D loss")
    assert_grads_close(g, ref, EXACT_RTOL, f"{name} 2-D vs naive")


@pytest.mark.parametrize(
    "size",
    [{"T": 1}, {"n": 1}, {"m": 1, "p": 1}, {"B": 5, "n": 6}],
    ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()),
)
@pytest.mark.parametrize("algorithm", ["bptt", "rtrl", "tbptt"])
def test_rnn_kernel_equals_naive_at_edge_sizes(make_rnn_problem, size, algorithm):
    params, xs, ys = make_rnn_problem(**size)
    if algorithm == "tbptt":
        loss, g = bpttbench.tbptt(params, xs, ys, 2, 3)
        ref_loss, ref = naive.tbptt(params, xs, ys, 2, 3)
    else:
        loss, g = getattr(bpttbench, algorithm)(params, xs, ys)
        ref_loss, ref = getattr(naive, algorithm)(params, xs, ys)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"{algorithm} {size} loss")
    assert_grads_close(g, ref, EXACT_RTOL, f"{algorithm} {size} vs naive")


def test_rnn_gradients_come_back_as_rnn_params_of_param_shapes(rnn_problem):
    params, xs, ys = rnn_problem
    for _, g in (
        bpttbench.bptt(params, xs, ys),
        bpttbench.rtrl(params, xs, ys),
        bpttbench.tbptt(params, xs, ys, 2),
    ):
        assert isinstance(g, bpttbench.RNNParams)
        for got, want in zip(g, params, strict=True):
            assert isinstance(got, np.ndarray)
            assert got.shape == want.shape
            assert got.dtype == want.dtype


MLP_SHAPES = [[3, 2], [3, 5, 2], [4, 6, 5, 3], [1, 1, 1]]


@pytest.mark.parametrize("sizes", MLP_SHAPES, ids=lambda s: "sizes=" + "-".join(map(str, s)))
@pytest.mark.parametrize("B", [1, 4], ids=lambda B: f"B={B}")
def test_backprop_equals_naive(make_mlp_problem, sizes, B):
    params, x, y = make_mlp_problem(sizes=sizes, B=B)
    loss, g = bpttbench.backprop(params, x, y)
    ref_loss, ref = naive.backprop(params, x, y)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"backprop {sizes} loss")
    assert_grads_close(g, ref, EXACT_RTOL, f"backprop {sizes} vs naive")


def test_calls_do_not_modify_their_inputs(rnn_problem, mlp_problem):
    params, xs, ys = rnn_problem
    before = [a.copy() for a in (*params, xs, ys)]
    bpttbench.bptt(params, xs, ys)
    bpttbench.tbptt(params, xs, ys, 2, 3)
    bpttbench.rtrl(params, xs, ys)
    for a, b in zip((*params, xs, ys), before, strict=True):
        np.testing.assert_array_equal(a, b)
    q, x, y = mlp_problem
    before = [a.copy() for a in (*q.weights, *q.biases, x, y)]
    bpttbench.backprop(q, x, y)
    for a, b in zip((*q.weights, *q.biases, x, y), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_repeated_calls_give_identical_results(rnn_problem):
    """The kernels write into buffers they are handed: no state leaks between calls."""
    params, xs, ys = rnn_problem
    for call in (bpttbench.bptt, bpttbench.rtrl, lambda p, x, y: bpttbench.tbptt(p, x, y, 3, 5)):
        first_loss, first = call(params, xs, ys)
        second_loss, second = call(params, xs, ys)
        assert first_loss == second_loss
        for a, b in zip(first, second, strict=True):
            np.testing.assert_array_equal(a, b)
