"""The gated cells and the leaky Elman cell, kernel against independent references.

References: naive_cells.py (plain NumPy from the equations, itself held to
finite differences in test_naive_cells.py) and central finite differences of
the kernels' own loss; PyTorch autograd is in test_cells_torch.py. Every
algorithm accepts every cell (RTRL: the Elman cell, leaky or not; the gated
cells' exact RTRL is another kernel, refused until it lands).

Sizes: the small default problem for finite differences; T = 100 with B = 3
(chunks of 42 steps: two full ones and a ragged last one) for the comparisons
with naive_cells, with truncation windows that cross chunk boundaries.
"""

from __future__ import annotations

import copy
import pickle

import bpttbench
import naive
import naive_cells
import numpy as np
import pytest
from helpers import (
    DIFFERENT_AT_LEAST,
    EXACT_RTOL,
    FD_RTOL,
    FD_STEP,
    FLOAT32_RTOL,
    assert_grads_close,
    assert_loss_close,
    max_grad_difference,
    truncations,
)

ALPHA = 0.35  # a leak far from 1, so that the leak's terms are large
CELLS = {
    "gru": (naive_cells.GRU, bpttbench.GRUParams),
    "lstm": (naive_cells.LSTM, bpttbench.LSTMParams),
    "leaky": (naive_cells.leaky(ALPHA), lambda *a: bpttbench.RNNParams(*a, alpha=ALPHA)),
}
SMALL = {"T": 7, "B": 2, "m": 3, "n": 4, "p": 2}
LONG = {"T": 100, "B": 3, "m": 2, "n": 5, "p": 3}


@pytest.fixture
def make_cell_problem(rng):
    """``make(name, **size) -> (params for bpttbench, xs, ys)``, drawn by naive_cells."""

    def make(name, dtype=np.float64, **size):
        s = {**SMALL, **size}
        cell, make_params = CELLS[name]
        arrays = naive_cells.draw_params(cell, rng, s["m"], s["n"], s["p"])
        xs = rng.normal(size=(s["T"], s["B"], s["m"]))
        ys = rng.normal(size=(s["T"], s["B"], s["p"]))
        params = make_params(*(a.astype(dtype) for a in arrays))
        return params, xs.astype(dtype), ys.astype(dtype)

    return make


def reference(name):
    return CELLS[name][0]


# --- against naive_cells ------------------------------------------------------------------


@pytest.mark.parametrize("size", [SMALL, LONG], ids=["small", "T=100-B=3"])
@pytest.mark.parametrize("name", list(CELLS))
def test_bptt_equals_naive_cells(make_cell_problem, name, size):
    params, xs, ys = make_cell_problem(name, **size)
    loss, g = bpttbench.bptt(params, xs, ys)
    ref_loss, ref = naive_cells.bptt(reference(name), params, xs, ys)
    assert type(g) is type(params)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"{name} bptt loss")
    assert_grads_close(g, ref, EXACT_RTOL, f"{name} bptt vs naive_cells")


# (k1, k2) over T = 100 with chunks of 42 steps: windows inside a chunk, crossing one
# boundary (50, 60), spanning several (90); k dividing T and ragged ends; k1 < k2.
LONG_TRUNCATIONS = truncations((1, 1), (7, 7), (25, 25), (50, 50), (3, 10), (30, 60), (45, 90))


@pytest.mark.parametrize(("k1", "k2"), LONG_TRUNCATIONS)
@pytest.mark.parametrize("name", list(CELLS))
def test_tbptt_equals_naive_cells_windows(make_cell_problem, name, k1, k2):
    params, xs, ys = make_cell_problem(name, **LONG)
    loss, g = bpttbench.tbptt(params, xs, ys, k1, k2)
    ref_loss, ref = naive_cells.tbptt(reference(name), params, xs, ys, k1, k2)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"{name} tbptt({k1}, {k2}) loss")
    assert_grads_close(g, ref, EXACT_RTOL, f"{name} tbptt({k1}, {k2}) vs naive_cells")


@pytest.mark.parametrize("name", list(CELLS))
def test_truncation_changes_the_gradient(make_cell_problem, name):
    """So that the equalities above and below are not vacuous."""
    params, xs, ys = make_cell_problem(name, T=12)
    _, full = bpttbench.bptt(params, xs, ys)
    _, cut = bpttbench.tbptt(params, xs, ys, 3)
    assert max_grad_difference(cut, full) > DIFFERENT_AT_LEAST


@pytest.mark.parametrize("name", list(CELLS))
def test_2d_sequence_is_batch_of_one(make_cell_problem, name):
    params, xs, ys = make_cell_problem(name, B=1)
    for call in (bpttbench.bptt, lambda p, x, y: bpttbench.tbptt(p, x, y, 2, 3)):
        loss, g = call(params, xs[:, 0], ys[:, 0])
        ref_loss, ref = call(params, xs, ys)
        assert loss == ref_loss
        for a, b in zip(g, ref, strict=True):
            np.testing.assert_array_equal(a, b)


# --- exact identities, per cell -------------------------------------------------------------


@pytest.mark.parametrize("name", list(CELLS))
def test_tbptt_T_T_equals_bptt(make_cell_problem, name):
    params, xs, ys = make_cell_problem(name, T=12)
    loss_b, g_b = bpttbench.bptt(params, xs, ys)
    loss, g = bpttbench.tbptt(params, xs, ys, 12, 12)
    assert_loss_close(loss, loss_b, EXACT_RTOL, f"{name} tbptt(T, T) loss")
    assert_grads_close(g, g_b, EXACT_RTOL, f"{name} tbptt(T, T) vs bptt")


@pytest.mark.parametrize("k2", [12, 13, 40], ids=lambda k: f"k2={k}")
@pytest.mark.parametrize("name", list(CELLS))
def test_tbptt_1_k2_at_least_T_equals_bptt(make_cell_problem, name, k2):
    params, xs, ys = make_cell_problem(name, T=12)
    _, g_b = bpttbench.bptt(params, xs, ys)
    _, g = bpttbench.tbptt(params, xs, ys, 1, k2)
    assert_grads_close(g, g_b, EXACT_RTOL, f"{name} tbptt(1, {k2}) vs bptt")


@pytest.mark.parametrize("name", list(CELLS))
def test_tbptt_k_k_equals_detach_every_k(make_cell_problem, name):
    params, xs, ys = make_cell_problem(name, T=12)
    _, g = bpttbench.tbptt(params, xs, ys, 4)
    _, ref = naive_cells.detach_every_k(reference(name), params, xs, ys, 4)
    assert_grads_close(g, ref, EXACT_RTOL, f"{name} tbptt(4, 4) vs detach every 4")


@pytest.mark.parametrize("alpha", [0.01, ALPHA, 0.999], ids=lambda a: f"alpha={a}")
def test_leaky_rtrl_equals_leaky_bptt(rng, alpha):
    arrays = naive_cells.draw_params(naive_cells.leaky(alpha), rng, 3, 4, 2)
    params = bpttbench.RNNParams(*arrays, alpha=alpha)
    xs, ys = rng.normal(size=(12, 2, 3)), rng.normal(size=(12, 2, 2))
    loss_b, g_b = bpttbench.bptt(params, xs, ys)
    loss_r, g_r = bpttbench.rtrl(params, xs, ys)
    assert_loss_close(loss_r, loss_b, EXACT_RTOL, "leaky rtrl loss")
    assert_grads_close(g_r, g_b, EXACT_RTOL, f"leaky rtrl vs bptt (alpha={alpha})")
    _, ref = naive_cells.bptt(naive_cells.leaky(alpha), arrays, xs, ys)
    assert_grads_close(g_r, ref, EXACT_RTOL, f"leaky rtrl vs naive_cells (alpha={alpha})")
    assert g_r.alpha == g_b.alpha == alpha


def test_leak_changes_the_gradient(rng):
    arrays = naive_cells.draw_params(naive_cells.leaky(1.0), rng, 3, 4, 2)
    xs, ys = rng.normal(size=(7, 2, 3)), rng.normal(size=(7, 2, 2))
    _, plain = bpttbench.bptt(bpttbench.RNNParams(*arrays), xs, ys)
    _, leaky = bpttbench.bptt(bpttbench.RNNParams(*arrays, alpha=0.9), xs, ys)
    assert max_grad_difference(leaky, plain) > DIFFERENT_AT_LEAST


# --- central finite differences of the kernels' own loss --------------------------------------

FD_CALLS = {
    "bptt": bpttbench.bptt,
    "tbptt-k1=2-k2=T": lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, 2, xs.shape[0]),
    "tbptt-k1=T": lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, xs.shape[0]),
}


@pytest.mark.parametrize("algorithm", list(FD_CALLS))
@pytest.mark.parametrize("name", list(CELLS))
def test_gradient_matches_finite_differences(make_cell_problem, name, algorithm):
    """Every parameter of every cell; truncation is a no-op here (k2 >= T)."""
    call = FD_CALLS[algorithm]
    params, xs, ys = make_cell_problem(name)
    _, g = call(params, xs, ys)

    def loss(theta):  # theta comes as a fresh copy of the fields; _replace keeps the leak
        return call(params._replace(**theta._asdict()), xs, ys)[0]

    fd = naive.finite_difference(loss, params, FD_STEP)
    assert_grads_close(g, fd, FD_RTOL, f"{name} {algorithm} vs FD")


def test_leaky_rtrl_matches_finite_differences(make_cell_problem):
    params, xs, ys = make_cell_problem("leaky")
    _, g = bpttbench.rtrl(params, xs, ys)
    fd = naive.finite_difference(
        lambda th: bpttbench.rtrl(params._replace(**th._asdict()), xs, ys)[0], params, FD_STEP
    )
    assert_grads_close(g, fd, FD_RTOL, "leaky rtrl vs FD")


# --- float32 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CELLS))
def test_float32_agrees_with_float64(make_cell_problem, name):
    params, xs, ys = make_cell_problem(name, T=20)
    as32 = type(params)._make(a.astype(np.float32) for a in params)
    if name == "leaky":
        as32 = bpttbench.RNNParams(*as32, alpha=ALPHA)
    for call in (bpttbench.bptt, lambda p, x, y: bpttbench.tbptt(p, x, y, 3, 5)):
        loss64, g64 = call(params, xs, ys)
        loss32, g32 = call(as32, xs.astype(np.float32), ys.astype(np.float32))
        assert loss32 == pytest.approx(loss64, rel=FLOAT32_RTOL)
        assert all(a.dtype == np.float32 for a in g32)
        assert_grads_close(g32, g64, FLOAT32_RTOL, f"{name} float32 vs float64")


# --- the parameter types --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("init", "G", "fields"),
    [
        (bpttbench.init_gru, 3, bpttbench.GRUParams._fields),
        (bpttbench.init_lstm, 4, bpttbench.LSTMParams._fields),
    ],
    ids=["gru", "lstm"],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_init_gated_shapes_dtype_bounds_and_seed(init, G, fields, dtype):
    p = init(3, 5, 2, seed=7, dtype=dtype)
    assert p._fields == fields == ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "W_out", "b_out")
    assert [a.shape for a in p] == [(G * 5, 3), (G * 5, 5), (G * 5,), (G * 5,), (2, 5), (2,)]
    assert all(a.dtype == dtype for a in p)
    bound = 1 / np.sqrt(5)  # every weight and bias U(-1/sqrt(n), 1/sqrt(n)), as PyTorch
    assert all(np.abs(a).max() <= bound for a in p)
    big = init(3, 64, 2, seed=0)
    assert np.abs(big.weight_hh).max() > 0.95 / np.sqrt(64)  # the whole range is used
    again, other = init(3, 5, 2, seed=7, dtype=dtype), init(3, 5, 2, seed=8, dtype=dtype)
    assert all(np.array_equal(a, b) for a, b in zip(p, again, strict=True))
    assert not np.array_equal(p.weight_hh, other.weight_hh)


def test_rnn_params_keeps_five_fields_and_carries_the_leak():
    arrays = tuple(np.full(s, float(i)) for i, s in enumerate([(4, 3), (4, 4), (4,), (2, 4), (2,)]))
    p = bpttbench.RNNParams(*arrays, alpha=0.5)
    assert bpttbench.RNNParams._fields == ("W_ih", "W_hh", "b_h", "W_out", "b_out")
    assert len(p) == 5 and all(a is b for a, b in zip(p, arrays, strict=True))
    W_ih, W_hh, b_h, W_out, b_out = p  # unpacking: exactly the five arrays
    assert all(a is b for a, b in zip((W_ih, W_hh, b_h, W_out, b_out), arrays, strict=True))
    assert p.alpha == 0.5 and bpttbench.RNNParams(*arrays).alpha == 1.0
    assert p._replace(W_hh=W_hh * 2).alpha == 0.5
    assert p._replace(alpha=0.25).alpha == 0.25
    assert p._make(arrays).alpha == 1.0  # _make builds from the fields alone
    assert p._asdict().keys() == {"W_ih", "W_hh", "b_h", "W_out", "b_out"}
    for clone in (pickle.loads(pickle.dumps(p)), copy.copy(p), copy.deepcopy(p)):
        assert type(clone) is bpttbench.RNNParams and clone.alpha == 0.5
        assert all(np.array_equal(a, b) for a, b in zip(clone, p, strict=True))
    assert "alpha=0.5" in repr(p) and "alpha" not in repr(bpttbench.RNNParams(*arrays))
    with pytest.raises(AttributeError):
        p.alpha = 0.3
    q = bpttbench.init_rnn(3, 4, 2, alpha=0.5)
    assert q.alpha == 0.5 and len(q) == 5


@pytest.mark.parametrize("algorithm", ["bptt", "tbptt", "rtrl"])
def test_gradients_carry_the_leak_of_the_parameters(make_cell_problem, algorithm):
    params, xs, ys = make_cell_problem("leaky")
    extra = (3,) if algorithm == "tbptt" else ()
    _, g = getattr(bpttbench, algorithm)(params, xs, ys, *extra)
    assert isinstance(g, bpttbench.RNNParams) and g.alpha == ALPHA


def test_alpha_1_is_the_plain_cell_bit_for_bit(make_rnn_problem):
    params, xs, ys = make_rnn_problem(T=30)
    explicit = bpttbench.RNNParams(*params, alpha=1.0)
    for call in (bpttbench.bptt, bpttbench.rtrl, lambda p, x, y: bpttbench.tbptt(p, x, y, 4, 6)):
        loss, g = call(params, xs, ys)
        loss1, g1 = call(explicit, xs, ys)
        assert loss == loss1
        assert all(np.array_equal(a, b) for a, b in zip(g, g1, strict=True))


def test_lstm_bias_gradients_are_equal(make_cell_problem):
    """Both LSTM biases enter one sum: the kernel returns the same gradient in both."""
    params, xs, ys = make_cell_problem("lstm")
    _, g = bpttbench.bptt(params, xs, ys)
    np.testing.assert_array_equal(g.bias_ih, g.bias_hh)
    assert g.bias_ih is not g.bias_hh


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_rtrl_of_a_gated_cell_equals_bptt_through_the_public_api(make_cell_problem, name):
    """bpttbench.rtrl dispatches GRUParams and LSTMParams to their own kernels
    (tests/test_rtrl_gated.py holds those to torch and naive_gated)."""
    params, xs, ys = make_cell_problem(name)
    loss, g = bpttbench.rtrl(params, xs, ys)
    ref_loss, ref = bpttbench.bptt(params, xs, ys)
    assert type(g) is type(params)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"{name} rtrl")
    assert_grads_close(g, ref, EXACT_RTOL, f"{name} rtrl")
