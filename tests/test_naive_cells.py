"""The cell references in naive_cells.py checked on their own (no bpttbench import).

Each reference gradient is held to central finite differences of the loss it
claims to differentiate: the full loss for BPTT, the Williams & Peng window
surrogate (each window from its start state frozen under the unperturbed
weights, the LSTM's c included) for truncated BPTT. The leaky cell with
alpha = 1 must be naive.py's plain cell.
"""

from __future__ import annotations

import naive
import naive_cells
import numpy as np
import pytest
from helpers import EXACT_RTOL, FD_RTOL, FD_STEP, assert_grads_close

CELLS = {
    "gru": naive_cells.GRU,
    "lstm": naive_cells.LSTM,
    "leaky-0.3": naive_cells.leaky(0.3),
}
SIZE = {"T": 6, "B": 2, "m": 2, "n": 3, "p": 2}


@pytest.fixture(params=list(CELLS))
def cell_problem(request, rng):
    cell = CELLS[request.param]
    s = SIZE
    params = naive_cells.draw_params(cell, rng, s["m"], s["n"], s["p"])
    xs = rng.normal(size=(s["T"], s["B"], s["m"]))
    ys = rng.normal(size=(s["T"], s["B"], s["p"]))
    return request.param, cell, params, xs, ys


def test_naive_cell_bptt_matches_finite_differences(cell_problem):
    name, cell, params, xs, ys = cell_problem
    _, g = naive_cells.bptt(cell, params, xs, ys)
    fd = naive.finite_difference(lambda th: naive_cells.loss(cell, th, xs, ys), params, FD_STEP)
    assert_grads_close(g, fd, FD_RTOL, f"naive_cells.bptt {name} vs FD")


def window_surrogate(cell, base, xs, ys, k1, k2):
    """The loss whose gradient BPTT(k2; k1) is: windows from start states frozen under ``base``."""
    T = xs.shape[0]
    frozen, _ = naive_cells.forward(cell, base, xs)

    def surrogate(theta):
        total, previous = 0.0, 0
        for t in naive.update_times(T, k1):
            start = max(t - k2, 0)
            _, yhat = naive_cells.forward(cell, theta, xs[start:t], frozen[start])
            total += 0.5 * float(np.sum((yhat[previous - start :] - ys[previous:t]) ** 2))
            previous = t
        return total

    return surrogate


@pytest.mark.parametrize(("k1", "k2"), [(2, 2), (2, 3), (4, 5)], ids=lambda k: f"{k}")
def test_naive_cell_tbptt_matches_finite_differences_of_the_window_surrogate(cell_problem, k1, k2):
    name, cell, params, xs, ys = cell_problem
    _, g = naive_cells.tbptt(cell, params, xs, ys, k1, k2)
    surrogate = window_surrogate(cell, params, xs, ys, k1, k2)
    fd = naive.finite_difference(surrogate, params, FD_STEP)
    assert_grads_close(g, fd, FD_RTOL, f"naive_cells.tbptt({k1}, {k2}) {name} vs FD")


def test_naive_cell_detach_every_k_is_tbptt_k_k_when_k_divides_T(cell_problem):
    name, cell, params, xs, ys = cell_problem
    _, windows = naive_cells.tbptt(cell, params, xs, ys, 3, 3)
    _, chunks = naive_cells.detach_every_k(cell, params, xs, ys, 3)
    assert_grads_close(chunks, windows, EXACT_RTOL, f"{name}: detach every 3 vs BPTT(3; 3)")


def test_leaky_cell_with_alpha_1_is_the_plain_cell(naive_rnn_problem):
    params, xs, ys = naive_rnn_problem
    loss, g = naive_cells.bptt(naive_cells.leaky(1.0), params, xs, ys)
    ref_loss, ref = naive.bptt(params, xs, ys)
    assert loss == pytest.approx(ref_loss, rel=EXACT_RTOL)
    assert_grads_close(g, ref, EXACT_RTOL, "leaky(1) vs naive.bptt")


def test_gru_step_follows_the_equations_unit_by_unit(rng):
    """h' = (1 - z) g + z h with b_hn inside r * (...), written out for one sequence."""
    cell = naive_cells.GRU
    p = naive_cells.draw_params(cell, rng, 2, 3, 1)
    x, h = rng.normal(size=(1, 2)), rng.normal(size=(1, 3))
    n = 3
    Wi = [p.weight_ih[k * n : (k + 1) * n] for k in range(3)]
    Wh = [p.weight_hh[k * n : (k + 1) * n] for k in range(3)]
    bi = [p.bias_ih[k * n : (k + 1) * n] for k in range(3)]
    bh = [p.bias_hh[k * n : (k + 1) * n] for k in range(3)]
    r = naive_cells.sig(Wi[0] @ x[0] + bi[0] + Wh[0] @ h[0] + bh[0])
    z = naive_cells.sig(Wi[1] @ x[0] + bi[1] + Wh[1] @ h[0] + bh[1])
    g = np.tanh(Wi[2] @ x[0] + bi[2] + r * (Wh[2] @ h[0] + bh[2]))
    np.testing.assert_allclose(cell.step(p, x, h)[0][0], (1 - z) * g + z * h[0], rtol=1e-14)


def test_lstm_step_follows_the_equations_unit_by_unit(rng):
    cell = naive_cells.LSTM
    p = naive_cells.draw_params(cell, rng, 2, 3, 1)
    x, h, c = rng.normal(size=(1, 2)), rng.normal(size=(1, 3)), rng.normal(size=(1, 3))
    n = 3
    pre = [
        p.weight_ih[k * n : (k + 1) * n] @ x[0]
        + p.bias_ih[k * n : (k + 1) * n]
        + p.weight_hh[k * n : (k + 1) * n] @ h[0]
        + p.bias_hh[k * n : (k + 1) * n]
        for k in range(4)
    ]
    i, f, g, o = (
        naive_cells.sig(pre[0]),
        naive_cells.sig(pre[1]),
        np.tanh(pre[2]),
        naive_cells.sig(pre[3]),
    )
    (h_new, c_new), _ = cell.step(p, x, (h, c))
    np.testing.assert_allclose(c_new[0], f * c[0] + i * g, rtol=1e-14)
    np.testing.assert_allclose(h_new[0], o * np.tanh(f * c[0] + i * g), rtol=1e-14)
