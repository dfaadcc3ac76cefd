"""Every kernel against central finite differences of its own loss (float64).

The loss differentiated is the one the kernel returns, so these tests need no
reference implementation: a gradient that is not the derivative of the loss
fails here whatever naive.py says. Truncated BPTT is checked with k2 >= T,
where truncation is a no-op and its (full) loss is the function it
differentiates; its truncated gradients are held to naive.py elsewhere.
"""

from __future__ import annotations

import bpttbench
import naive
import numpy as np
import pytest
from helpers import EXACT_RTOL, FD_RTOL, FD_STEP, assert_grads_close

# name -> call(params, xs, ys); every tbptt form here is untruncated (k2 >= T = 7).
RNN_ALGORITHMS = {
    "bptt": bpttbench.bptt,
    "rtrl": bpttbench.rtrl,
    "tbptt-k1=1-k2=T": lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, 1, xs.shape[0]),
    "tbptt-k1=3-k2=T": lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, 3, xs.shape[0]),
    "tbptt-k1=T": lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, xs.shape[0]),
    "tbptt-k1=2-k2=T+4": lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, 2, xs.shape[0] + 4),
}


def rnn_finite_differences(call, params, xs, ys):
    def loss(theta):
        return call(bpttbench.RNNParams(*theta), xs, ys)[0]

    return naive.finite_difference(loss, params, FD_STEP)


@pytest.mark.parametrize("algorithm", list(RNN_ALGORITHMS))
def test_rnn_gradient_matches_finite_differences(rnn_problem, algorithm):
    call = RNN_ALGORITHMS[algorithm]
    params, xs, ys = rnn_problem
    _, g = call(params, xs, ys)
    fd = rnn_finite_differences(call, params, xs, ys)
    assert_grads_close(g, fd, FD_RTOL, f"{algorithm} vs FD")


@pytest.mark.parametrize("algorithm", ["bptt", "rtrl", "tbptt-k1=1-k2=T"])
def test_rnn_gradient_matches_finite_differences_for_2d_sequence(make_rnn_problem, algorithm):
    call = RNN_ALGORITHMS[algorithm]
    params, xs, ys = make_rnn_problem(B=1)
    xs, ys = xs[:, 0, :], ys[:, 0, :]  # (T, m): B = 1
    _, g = call(params, xs, ys)
    fd = rnn_finite_differences(call, params, xs, ys)
    assert_grads_close(g, fd, FD_RTOL, f"{algorithm} (2-D input) vs FD")


@pytest.mark.parametrize("algorithm", list(RNN_ALGORITHMS))
def test_rnn_loss_is_the_half_sum_of_squares(rnn_problem, algorithm):
    params, xs, ys = rnn_problem
    loss, _ = RNN_ALGORITHMS[algorithm](params, xs, ys)
    assert isinstance(loss, float)
    assert loss == pytest.approx(naive.loss(params, xs, ys), rel=EXACT_RTOL)


MLP_SHAPES = [[3, 2], [3, 5, 2], [3, 5, 4, 2]]


@pytest.mark.parametrize("sizes", MLP_SHAPES, ids=lambda s: "sizes=" + "-".join(map(str, s)))
def test_backprop_matches_finite_differences(make_mlp_problem, sizes):
    params, x, y = make_mlp_problem(sizes=sizes)

    def loss(theta):
        return bpttbench.backprop(theta, x, y)[0]

    fd = naive.finite_difference(loss, params, FD_STEP)
    value, g = bpttbench.backprop(params, x, y)
    assert value == pytest.approx(naive.mlp_loss(params, x, y), rel=EXACT_RTOL)
    assert_grads_close(g, fd, FD_RTOL, f"backprop {sizes} vs FD")
    assert isinstance(g, bpttbench.MLPParams)
    assert [w.shape for w in g.weights] == [w.shape for w in params.weights]
    assert [b.shape for b in g.biases] == [b.shape for b in params.biases]
    assert all(isinstance(a, np.ndarray) for a in (*g.weights, *g.biases))
