"""The exact identities of THEORY.md, kernel against kernel (float64, EXACT_RTOL).

1. RTRL == BPTT.
2. BPTT(k2 >= T; 1) == BPTT and BPTT(T; T) == BPTT.
3. BPTT(k; k) == "detach the hidden state every k steps" when k divides T; at
   a ragged end the last update still reaches back k steps (through
   h_T .. h_{T-k+1}), so there it equals the Williams & Peng window reference
   and not the detach idiom, whose last chunk stops at the previous boundary.

Each "equal" test is paired with one showing the compared quantities differ
from something they must not equal, so that none is vacuous.
"""

from __future__ import annotations

import bpttbench
import naive
import pytest
from helpers import (
    DIFFERENT_AT_LEAST,
    EXACT_RTOL,
    assert_grads_close,
    assert_loss_close,
    max_grad_difference,
    truncations,
)

T_LONG = 12


@pytest.fixture
def long_problem(make_rnn_problem):
    return make_rnn_problem(T=T_LONG)


def test_rtrl_equals_bptt(long_problem):
    params, xs, ys = long_problem
    loss_bptt, g_bptt = bpttbench.bptt(params, xs, ys)
    loss_rtrl, g_rtrl = bpttbench.rtrl(params, xs, ys)
    assert_loss_close(loss_rtrl, loss_bptt, EXACT_RTOL, "rtrl loss vs bptt loss")
    assert_grads_close(g_rtrl, g_bptt, EXACT_RTOL, "rtrl vs bptt")


@pytest.mark.parametrize("k2", [T_LONG, T_LONG + 1, 4 * T_LONG], ids=lambda k: f"k2={k}")
def test_tbptt_k1_1_with_k2_at_least_T_equals_bptt(long_problem, k2):
    params, xs, ys = long_problem
    loss_bptt, g_bptt = bpttbench.bptt(params, xs, ys)
    loss, g = bpttbench.tbptt(params, xs, ys, 1, k2)
    assert_loss_close(loss, loss_bptt, EXACT_RTOL, f"tbptt(1, {k2}) loss")
    assert_grads_close(g, g_bptt, EXACT_RTOL, f"tbptt(1, {k2}) vs bptt")


@pytest.mark.parametrize("explicit_k2", [False, True], ids=["k2=default", "k2=T"])
def test_tbptt_T_T_equals_bptt(long_problem, explicit_k2):
    params, xs, ys = long_problem
    _, g_bptt = bpttbench.bptt(params, xs, ys)
    if explicit_k2:
        _, g = bpttbench.tbptt(params, xs, ys, T_LONG, T_LONG)
    else:
        _, g = bpttbench.tbptt(params, xs, ys, T_LONG)
    assert_grads_close(g, g_bptt, EXACT_RTOL, "tbptt(T, T) vs bptt")


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6], ids=lambda k: f"k={k}")
def test_tbptt_k_k_equals_detach_every_k_when_k_divides_T(long_problem, k):
    params, xs, ys = long_problem
    assert T_LONG % k == 0
    loss, g = bpttbench.tbptt(params, xs, ys, k, k)
    ref_loss, ref = naive.detach_every_k(params, xs, ys, k)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"tbptt({k}, {k}) loss")
    assert_grads_close(g, ref, EXACT_RTOL, f"tbptt({k}, {k}) vs detach every {k}")


@pytest.mark.parametrize("k", [5, 7, 8], ids=lambda k: f"k={k}")
def test_tbptt_k_k_ragged_end_reaches_back_k_steps(long_problem, k):
    """T = 12, k = 5: updates at t = 5, 10 and 12; the last runs through h_12 .. h_8."""
    params, xs, ys = long_problem
    assert T_LONG % k != 0
    _, g = bpttbench.tbptt(params, xs, ys, k, k)
    _, windows = naive.tbptt(params, xs, ys, k, k)
    _, chunks = naive.detach_every_k(params, xs, ys, k)
    assert_grads_close(g, windows, EXACT_RTOL, f"tbptt({k}, {k}) ragged vs window reference")
    assert max_grad_difference(g, chunks) > DIFFERENT_AT_LEAST, (
        "the last update of a ragged BPTT(k; k) stopped at the previous boundary"
    )


def test_tbptt_ragged_last_update_is_a_full_window_explicitly(long_problem):
    """The same fact without naive.tbptt: BPTT(5; 5) over T = 12 is the detach-every-5
    gradient of steps 1..10 plus the gradient of the steps 11, 12 back-propagated from
    h_12 to h_8 with h_7 constant."""
    params, xs, ys = long_problem
    k = 5
    _, g = bpttbench.tbptt(params, xs, ys, k, k)
    _, first_two = naive.detach_every_k(params, xs[:10], ys[:10], k)
    hs, _ = naive.forward(params, xs)
    weights = [0.0, 0.0, 0.0, 1.0, 1.0]  # window h_8..h_12; errors of steps 11 and 12 only
    last = naive.bptt_segment(naive.RNNParams(*params), xs[7:12], ys[7:12], hs[7], weights)
    expected = naive.RNNParams(*(a + b for a, b in zip(first_two, last, strict=True)))
    assert_grads_close(g, expected, EXACT_RTOL, "tbptt(5, 5) over T = 12 vs explicit windows")


@pytest.mark.parametrize(("k1", "k2"), truncations((1, 2), (2, 5), (3, 7), (4, 10), (5, 8)))
def test_tbptt_k1_below_k2_below_T_equals_recomputed_windows(long_problem, k1, k2):
    params, xs, ys = long_problem
    _, g = bpttbench.tbptt(params, xs, ys, k1, k2)
    _, ref = naive.tbptt(params, xs, ys, k1, k2)
    assert_grads_close(g, ref, EXACT_RTOL, f"tbptt({k1}, {k2}) vs recomputed windows")
    _, same_k1_k2 = naive.tbptt(params, xs, ys, k1, k1)
    assert max_grad_difference(g, same_k1_k2) > DIFFERENT_AT_LEAST, "k2 was ignored"


@pytest.mark.parametrize(("k1", "k2"), truncations((1, 1), (3, 3), (2, 5)))
def test_truncated_gradient_differs_from_bptt(long_problem, k1, k2):
    params, xs, ys = long_problem
    _, g_bptt = bpttbench.bptt(params, xs, ys)
    _, g = bpttbench.tbptt(params, xs, ys, k1, k2)
    assert max_grad_difference(g, g_bptt) > DIFFERENT_AT_LEAST
    # Readout gradients are local in time: truncation never changes them.
    assert naive.relative_error(g.W_out, g_bptt.W_out) <= EXACT_RTOL
    assert naive.relative_error(g.b_out, g_bptt.b_out) <= EXACT_RTOL
