"""Truncated BPTT against an autograd reference built window by window (float64).

test_torch.py compares BPTT(k; k) with the "detach every k steps" idiom, which
agrees with it only where k divides T. Here the reference is
``torch_reference.truncated_gradient``: written from THEORY.md's definition
(updates at the multiples of k1 and at T; each reaches back k2 steps from a
detached h_{t-k2}), one torch.nn.RNN graph per update, sharing no update-time
or window logic with the kernel or naive.py. So ragged ends, k1 < k2, k2 >= T
and k1 = 1 are checked against something independent.
"""

from __future__ import annotations

import bpttbench
import pytest
import torch_reference
from helpers import (
    DIFFERENT_AT_LEAST,
    EXACT_RTOL,
    assert_grads_close,
    assert_loss_close,
    max_grad_difference,
)

# (T, B, k1, k2): every case names what it exercises in its id.
CASES = [
    pytest.param(13, 3, 5, 5, id="k1=k2-ragged-T=13-B=3-k=5"),
    pytest.param(14, 2, 4, 4, id="k1=k2-ragged-T=14-B=2-k=4"),
    pytest.param(12, 2, 4, 4, id="k1=k2-divides-T=12-B=2-k=4"),
    pytest.param(17, 3, 3, 7, id="k1<k2<T-ragged-T=17-B=3-k1=3-k2=7"),
    pytest.param(18, 2, 3, 8, id="k1<k2<T-T=18-B=2-k1=3-k2=8"),
    pytest.param(20, 2, 6, 9, id="k1<k2<T-ragged-T=20-B=2-k1=6-k2=9"),
    pytest.param(11, 3, 4, 11, id="k2=T-T=11-B=3-k1=4-k2=11"),
    pytest.param(11, 2, 3, 40, id="k2>T-T=11-B=2-k1=3-k2=40"),
    pytest.param(9, 3, 1, 1, id="k1=k2=1-T=9-B=3"),
    pytest.param(10, 2, 1, 4, id="k1=1-T=10-B=2-k2=4"),
    pytest.param(10, 2, 1, 10, id="k1=1-k2=T-T=10-B=2"),
    pytest.param(6, 3, 8, 8, id="k1>T-T=6-B=3-k=8"),
    pytest.param(9, 1, 4, 6, id="B=1-ragged-T=9-k1=4-k2=6"),
    # Windows longer than a chunk (chunk_steps(4, .) = 32 steps): ragged chunks too.
    pytest.param(100, 4, 20, 45, id="chunks-T=100-B=4-k1=20-k2=45"),
    pytest.param(100, 4, 35, 35, id="chunks-ragged-T=100-B=4-k=35"),
]


@pytest.mark.parametrize(("T", "B", "k1", "k2"), CASES)
def test_tbptt_equals_autograd_window_by_window(make_rnn_problem, T, B, k1, k2):
    params, xs, ys = make_rnn_problem(T=T, B=B)
    loss, g = bpttbench.tbptt(params, xs, ys, k1, k2)
    ref_loss, ref = torch_reference.truncated_gradient(params, xs, ys, k1, k2)
    what = f"tbptt(k1={k1}, k2={k2}) T={T} B={B}"
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"{what} loss (the full loss) vs torch")
    assert_grads_close(g, ref, EXACT_RTOL, f"{what} vs torch autograd window by window")


def test_update_times_follow_the_definition():
    """Multiples of k1 and T: a short last update when k1 does not divide T."""
    assert torch_reference.update_times(13, 5) == [5, 10, 13]
    assert torch_reference.update_times(12, 4) == [4, 8, 12]
    assert torch_reference.update_times(3, 1) == [1, 2, 3]
    assert torch_reference.update_times(6, 8) == [6]


def test_window_reference_equals_full_autograd_when_nothing_is_truncated(make_rnn_problem):
    """BPTT(T; 1) is BPTT (THEORY.md identity 2): the reference reproduces full autograd."""
    params, xs, ys = make_rnn_problem(T=9, B=2)
    ref_loss, ref = torch_reference.rnn_gradient(params, xs, ys)
    loss, g = torch_reference.truncated_gradient(params, xs, ys, 1, 9)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, "window reference loss vs full autograd")
    assert_grads_close(g, ref, EXACT_RTOL, "window reference BPTT(T; 1) vs full autograd")


@pytest.mark.parametrize(("T", "k"), [(13, 5), (100, 35)], ids=["T=13-k=5", "T=100-k=35"])
def test_ragged_end_differs_from_the_detach_idiom(make_rnn_problem, T, k):
    """At a ragged end BPTT(k; k) still reaches back k steps; "detach every k steps"
    stops at the last chunk boundary. The two must differ there, or the window
    comparison above could not tell a kernel that did the idiom instead."""
    params, xs, ys = make_rnn_problem(T=T, B=2)
    _, window = torch_reference.truncated_gradient(params, xs, ys, k, k)
    _, idiom = torch_reference.detach_every_k_gradient(params, xs, ys, k)
    assert max_grad_difference(window, idiom) >= DIFFERENT_AT_LEAST


def test_window_reference_equals_the_detach_idiom_where_k_divides_T(make_rnn_problem):
    params, xs, ys = make_rnn_problem(T=12, B=2)
    loss, window = torch_reference.truncated_gradient(params, xs, ys, 4, 4)
    idiom_loss, idiom = torch_reference.detach_every_k_gradient(params, xs, ys, 4)
    assert_loss_close(loss, idiom_loss, EXACT_RTOL, "window reference loss vs detach idiom")
    assert_grads_close(window, idiom, EXACT_RTOL, "window reference BPTT(4; 4) vs detach idiom")
