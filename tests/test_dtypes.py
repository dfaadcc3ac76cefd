"""float32 and float64: results come back in the parameters' dtype, and agree.

The float32 kernels are separate compiled specialisations, so they are
checked against the float64 ones (already held to finite differences and
naive.py) within FLOAT32_RTOL, and against an independent reference: naive.py
in float64 on the float32-rounded problem, within FLOAT32_REFERENCE_RTOL, at
small sizes and at sizes where the chunked and slabbed paths run.
"""

from __future__ import annotations

import bpttbench
import naive
import numpy as np
import pytest
from bpttbench._sweeps import chunk_steps
from bpttbench.rtrl import _blocks_per_gemm
from helpers import (
    FLOAT32_REFERENCE_RTOL,
    FLOAT32_RTOL,
    assert_grads_close,
    assert_loss_close,
    rnn_arrays,
    sequence,
)

RNN_CALLS = {
    "bptt": bpttbench.bptt,
    "rtrl": bpttbench.rtrl,
    "tbptt-k1=3-k2=5": lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, 3, 5),
    "tbptt-k1=4": lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, 4),
}


def as_float32(params):
    return bpttbench.RNNParams(*(a.astype(np.float32) for a in params))


@pytest.mark.parametrize("algorithm", list(RNN_CALLS))
@pytest.mark.parametrize("T", [7, 20], ids=lambda T: f"T={T}")
def test_float32_rnn_gradient_agrees_with_float64(make_rnn_problem, algorithm, T):
    call = RNN_CALLS[algorithm]
    params, xs, ys = make_rnn_problem(T=T, n=6)
    loss64, g64 = call(params, xs, ys)
    loss32, g32 = call(as_float32(params), xs.astype(np.float32), ys.astype(np.float32))
    assert isinstance(loss32, float)
    assert loss32 == pytest.approx(loss64, rel=FLOAT32_RTOL)
    for name, a in zip(g32._fields, g32, strict=True):
        assert a.dtype == np.float32, f"{algorithm}: {name} came back as {a.dtype}"
    assert_grads_close(g32, g64, FLOAT32_RTOL, f"{algorithm} float32 vs float64")


def test_float32_backprop_agrees_with_float64(make_mlp_problem):
    params, x, y = make_mlp_problem(sizes=[3, 5, 4, 2])
    loss64, g64 = bpttbench.backprop(params, x, y)
    q32 = bpttbench.MLPParams(
        tuple(w.astype(np.float32) for w in params.weights),
        tuple(b.astype(np.float32) for b in params.biases),
    )
    loss32, g32 = bpttbench.backprop(q32, x.astype(np.float32), y.astype(np.float32))
    assert isinstance(loss32, float)
    assert loss32 == pytest.approx(loss64, rel=FLOAT32_RTOL)
    assert all(a.dtype == np.float32 for a in (*g32.weights, *g32.biases))
    assert_grads_close(g32, g64, FLOAT32_RTOL, "backprop float32 vs float64")


NAIVE_CALLS = {
    "bptt": naive.bptt,
    "rtrl": naive.rtrl,
    "tbptt-k1=3-k2=5": lambda p, xs, ys: naive.tbptt(p, xs, ys, 3, 5),
    "tbptt-k1=4": lambda p, xs, ys: naive.tbptt(p, xs, ys, 4),
}


def exact_of_rounded(params32, *arrays32):
    """The float32 problem, exactly: its values widened to float64 (no rounding)."""
    return (
        naive.RNNParams(*(a.astype(np.float64) for a in params32)),
        *(a.astype(np.float64) for a in arrays32),
    )


def assert_float32_matches_reference(call, reference, params, xs, ys, what):
    p32, xs32, ys32 = as_float32(params), xs.astype(np.float32), ys.astype(np.float32)
    loss32, g32 = call(p32, xs32, ys32)
    assert all(a.dtype == np.float32 for a in g32), f"{what}: not float32"
    ref_loss, ref = reference(*exact_of_rounded(p32, xs32, ys32))
    assert_loss_close(loss32, ref_loss, FLOAT32_REFERENCE_RTOL, f"{what} float32 loss")
    assert_grads_close(g32, ref, FLOAT32_REFERENCE_RTOL, f"{what} float32 vs exact reference")


@pytest.mark.parametrize("algorithm", list(RNN_CALLS))
@pytest.mark.parametrize("T", [7, 20], ids=lambda T: f"T={T}")
def test_float32_rnn_gradient_equals_the_exact_gradient_of_the_rounded_problem(
    make_rnn_problem, algorithm, T
):
    params, xs, ys = make_rnn_problem(T=T, n=6)
    assert_float32_matches_reference(
        RNN_CALLS[algorithm], NAIVE_CALLS[algorithm], params, xs, ys, f"{algorithm} T={T}"
    )


# The float32 chunked and slabbed paths, with weights ~ N(0, 1/n) so that 300
# steps stay far from chaos (see FLOAT32_REFERENCE_RTOL).
BLOCKED = {"T": 300, "B": 3, "n": 24, "m": 5, "p": 4}
BLOCKED_CALLS = {
    "bptt": (bpttbench.bptt, naive.bptt),
    "tbptt-k1=50-k2=100": (
        lambda p, xs, ys: bpttbench.tbptt(p, xs, ys, 50, 100),
        lambda p, xs, ys: naive.tbptt(p, xs, ys, 50, 100),
    ),
    "rtrl-T=12": (bpttbench.rtrl, naive.rtrl),
}


@pytest.mark.parametrize("algorithm", list(BLOCKED_CALLS))
def test_float32_blocked_paths_equal_the_exact_gradient_of_the_rounded_problem(rng, algorithm):
    # RTRL has no chunks and costs n^4 a step: a short sequence runs all its slabs.
    s = {**BLOCKED, "T": 12} if algorithm.startswith("rtrl") else BLOCKED
    T = s["T"]
    params = bpttbench.RNNParams(*rnn_arrays(rng, s["m"], s["n"], s["p"], 1 / np.sqrt(s["n"])))
    xs, ys = sequence(rng, T, s["B"], s["m"], s["p"])
    if algorithm.startswith("rtrl"):
        assert s["n"] // _blocks_per_gemm(s["n"], s["n"] + s["m"] + 1) >= 3, "want 3+ slabs"
    else:
        assert T > 2 * chunk_steps(s["B"], T), "want several chunks"
    call, reference = BLOCKED_CALLS[algorithm]
    assert_float32_matches_reference(call, reference, params, xs, ys, f"{algorithm} {s}")


def test_float32_backprop_equals_the_exact_gradient_of_the_rounded_problem(make_mlp_problem):
    params, x, y = make_mlp_problem(sizes=[6, 8, 8, 8, 1], B=5)
    q32 = bpttbench.MLPParams(
        tuple(w.astype(np.float32) for w in params.weights),
        tuple(b.astype(np.float32) for b in params.biases),
    )
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    loss32, g32 = bpttbench.backprop(q32, x32, y32)
    q64 = naive.MLPParams(
        tuple(w.astype(np.float64) for w in q32.weights),
        tuple(b.astype(np.float64) for b in q32.biases),
    )
    ref_loss, ref = naive.backprop(q64, x32.astype(np.float64), y32.astype(np.float64))
    assert_loss_close(loss32, ref_loss, FLOAT32_REFERENCE_RTOL, "backprop float32 loss")
    assert_grads_close(g32, ref, FLOAT32_REFERENCE_RTOL, "backprop float32 vs exact reference")


@pytest.mark.parametrize("algorithm", list(RNN_CALLS))
def test_float64_rnn_gradient_comes_back_float64(rnn_problem, algorithm):
    loss, g = RNN_CALLS[algorithm](*rnn_problem)
    assert isinstance(loss, float)
    assert all(a.dtype == np.float64 for a in g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_init_rnn_shapes_dtype_and_seed(dtype):
    p = bpttbench.init_rnn(3, 5, 2, seed=7, dtype=dtype)
    assert isinstance(p, bpttbench.RNNParams)
    assert [a.shape for a in p] == [(5, 3), (5, 5), (5,), (2, 5), (2,)]
    assert all(a.dtype == dtype for a in p)
    assert all(np.isfinite(a).all() for a in p)
    again = bpttbench.init_rnn(3, 5, 2, seed=7, dtype=dtype)
    other = bpttbench.init_rnn(3, 5, 2, seed=8, dtype=dtype)
    assert all(np.array_equal(a, b) for a, b in zip(p, again, strict=True))
    assert not np.array_equal(p.W_hh, other.W_hh)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_init_mlp_shapes_dtype_and_seed(dtype):
    q = bpttbench.init_mlp([4, 6, 3], seed=7, dtype=dtype)
    assert isinstance(q, bpttbench.MLPParams)
    assert [w.shape for w in q.weights] == [(6, 4), (3, 6)]
    assert [b.shape for b in q.biases] == [(6,), (3,)]
    assert all(a.dtype == dtype for a in (*q.weights, *q.biases))
    again = bpttbench.init_mlp([4, 6, 3], seed=7, dtype=dtype)
    assert all(np.array_equal(a, b) for a, b in zip(q.weights, again.weights, strict=True))


def test_init_rnn_output_drives_every_algorithm(rng):
    p = bpttbench.init_rnn(3, 4, 2, seed=0, dtype=np.float32)
    xs = rng.normal(size=(5, 2, 3)).astype(np.float32)
    ys = rng.normal(size=(5, 2, 2)).astype(np.float32)
    for call in RNN_CALLS.values():
        loss, g = call(p, xs, ys)
        assert np.isfinite(loss)
        assert all(np.isfinite(a).all() and a.dtype == np.float32 for a in g)
