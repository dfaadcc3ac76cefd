"""The references in naive.py checked against central finite differences.

The kernels are held to naive.py at 1e-10, so the references must be right on
their own: each is compared with central differences of the loss it claims to
differentiate. For the truncated algorithms that loss is a surrogate: the same
window losses, with each window's starting state frozen at its value under the
unperturbed weights (THEORY.md: "h_{t-k2} is treated as a constant"). None of
these tests imports kernels.
"""

from __future__ import annotations

import helpers
import naive
import numpy as np
import pytest
from helpers import (
    DIFFERENT_AT_LEAST,
    EXACT_RTOL,
    FD_RTOL,
    FD_STEP,
    assert_grads_close,
    truncations,
)


def full_loss(xs, ys):
    return lambda theta: naive.loss(theta, xs, ys)


def williams_peng_surrogate(base, xs, ys, k1, k2):
    """The loss whose gradient BPTT(k2; k1) is, spelled out from THEORY.md.

    At every t multiple of k1 and at t = T, the steps since the previous update
    are run from the constant state h_{t-k2} (h_0 when t <= k2), which is taken
    from the forward pass under ``base`` and does not move with theta.
    """
    T = xs.shape[0]
    frozen, _ = naive.forward(base, xs)
    times = sorted(set(range(k1, T + 1, k1)) | {T})

    def surrogate(theta):
        total, previous = 0.0, 0
        for t in times:
            start = max(t - k2, 0)
            _, yhat = naive.forward(theta, xs[start:t], frozen[start])
            total += 0.5 * float(np.sum((yhat[previous - start :] - ys[previous:t]) ** 2))
            previous = t
        return total

    return surrogate


def detach_surrogate(base, xs, ys, k):
    """Chunks of k steps (a short last one if k does not divide T), each from a frozen state."""
    T = xs.shape[0]
    frozen, _ = naive.forward(base, xs)

    def surrogate(theta):
        total = 0.0
        for start in range(0, T, k):
            stop = min(start + k, T)
            _, yhat = naive.forward(theta, xs[start:stop], frozen[start])
            total += 0.5 * float(np.sum((yhat - ys[start:stop]) ** 2))
        return total

    return surrogate


def test_naive_forward_and_loss_follow_the_model_equations(naive_rnn_problem):
    p, xs, ys = naive_rnn_problem
    T, B, _ = xs.shape
    expected = 0.0
    for b in range(B):
        h = np.zeros(p.W_hh.shape[0])
        for t in range(T):
            h = np.tanh(p.W_ih @ xs[t, b] + p.W_hh @ h + p.b_h)
            e = p.W_out @ h + p.b_out - ys[t, b]
            expected += 0.5 * e @ e
    assert naive.loss(p, xs, ys) == pytest.approx(expected, rel=EXACT_RTOL)


def test_naive_bptt_matches_finite_differences(naive_rnn_problem):
    p, xs, ys = naive_rnn_problem
    fd = naive.finite_difference(full_loss(xs, ys), p, FD_STEP)
    loss, g = naive.bptt(p, xs, ys)
    assert loss == pytest.approx(naive.loss(p, xs, ys), rel=EXACT_RTOL)
    assert_grads_close(g, fd, FD_RTOL, "naive bptt vs FD")


def test_naive_rtrl_matches_finite_differences(naive_rnn_problem):
    p, xs, ys = naive_rnn_problem
    fd = naive.finite_difference(full_loss(xs, ys), p, FD_STEP)
    loss, g = naive.rtrl(p, xs, ys)
    assert loss == pytest.approx(naive.loss(p, xs, ys), rel=EXACT_RTOL)
    assert_grads_close(g, fd, FD_RTOL, "naive rtrl vs FD")


def test_naive_immediate_jacobian_is_da_dtheta(rng):
    n, m = 3, 2
    x, h_prev = rng.normal(size=m), rng.normal(size=n)
    W_ih, W_hh, b_h = rng.normal(size=(n, m)), rng.normal(size=(n, n)), rng.normal(size=n)
    theta = np.concatenate([W_ih.ravel(), W_hh.ravel(), b_h])

    def a(theta):
        Wi = theta[: n * m].reshape(n, m)
        Wh = theta[n * m : n * m + n * n].reshape(n, n)
        return Wi @ x + Wh @ h_prev + theta[n * m + n * n :]

    # a is linear in theta, so a single-sided difference of step 1 is exact.
    numeric = np.stack([a(theta + e) - a(theta) for e in np.eye(theta.size)], axis=1)
    np.testing.assert_allclose(naive.immediate_jacobian(x, h_prev, n), numeric, atol=1e-12)


@pytest.mark.parametrize(("k1", "k2"), truncations((1, 7), (1, 10), (7, 7), (3, 7), (9, 9)))
def test_naive_tbptt_without_truncation_matches_finite_differences(naive_rnn_problem, k1, k2):
    p, xs, ys = naive_rnn_problem
    assert xs.shape[0] == 7
    fd = naive.finite_difference(full_loss(xs, ys), p, FD_STEP)
    loss, g = naive.tbptt(p, xs, ys, k1, k2)
    assert loss == pytest.approx(naive.loss(p, xs, ys), rel=EXACT_RTOL)
    assert_grads_close(g, fd, FD_RTOL, f"naive tbptt({k1}, {k2}) vs FD")


@pytest.mark.parametrize(("k1", "k2"), truncations((1, 1), (2, 2), (3, 3), (1, 3), (2, 5), (3, 4)))
def test_naive_tbptt_matches_finite_differences_of_frozen_window_losses(naive_rnn_problem, k1, k2):
    p, xs, ys = naive_rnn_problem
    surrogate = williams_peng_surrogate(p, xs, ys, k1, k2)
    fd = naive.finite_difference(surrogate, p, FD_STEP)
    _, g = naive.tbptt(p, xs, ys, k1, k2)
    assert_grads_close(g, fd, FD_RTOL, f"naive tbptt({k1}, {k2}) vs FD of the window losses")


@pytest.mark.parametrize("k", [1, 2, 3, 7], ids=lambda k: f"k={k}")
def test_naive_detach_every_k_matches_finite_differences_of_chunk_losses(naive_rnn_problem, k):
    p, xs, ys = naive_rnn_problem
    fd = naive.finite_difference(detach_surrogate(p, xs, ys, k), p, FD_STEP)
    loss, g = naive.detach_every_k(p, xs, ys, k)
    assert loss == pytest.approx(naive.loss(p, xs, ys), rel=EXACT_RTOL)
    assert_grads_close(g, fd, FD_RTOL, f"naive detach every {k} vs FD of the chunk losses")


def test_naive_truncation_is_not_a_no_op(naive_rnn_problem):
    """Guards the surrogate tests above: truncated gradients really differ from BPTT."""
    p, xs, ys = naive_rnn_problem
    _, full = naive.bptt(p, xs, ys)
    _, truncated = naive.tbptt(p, xs, ys, 2, 3)
    assert naive.relative_error(truncated.W_hh, full.W_hh) > DIFFERENT_AT_LEAST


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 12], ids=lambda k: f"k={k}")
def test_naive_tbptt_k_k_equals_detach_every_k_when_k_divides_T(rng, k):
    p = naive.RNNParams(*helpers.rnn_arrays(rng, 3, 4, 2))
    xs, ys = helpers.sequence(rng, 12, 2, 3, 2)
    _, windows = naive.tbptt(p, xs, ys, k, k)
    _, chunks = naive.detach_every_k(p, xs, ys, k)
    assert_grads_close(windows, chunks, EXACT_RTOL, f"naive tbptt({k}, {k}) vs detach")


def test_naive_backprop_matches_finite_differences(rng):
    sizes = [3, 5, 4, 2]
    q = naive.MLPParams(*helpers.mlp_arrays(rng, sizes))
    x, y = rng.normal(size=(4, sizes[0])), rng.normal(size=(4, sizes[-1]))
    fd = naive.finite_difference(lambda theta: naive.mlp_loss(theta, x, y), q, FD_STEP)
    loss, g = naive.backprop(q, x, y)
    assert loss == pytest.approx(naive.mlp_loss(q, x, y), rel=EXACT_RTOL)
    assert_grads_close(g, fd, FD_RTOL, "naive backprop vs FD")


def test_naive_finite_difference_does_not_modify_params(naive_rnn_problem):
    p, xs, ys = naive_rnn_problem
    before = [a.copy() for a in p]
    naive.finite_difference(full_loss(xs, ys), p, FD_STEP)
    for a, b in zip(p, before, strict=True):
        np.testing.assert_array_equal(a, b)
