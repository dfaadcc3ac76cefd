"""The parallel kernels: the same result on one thread and on two, and right on both.

Exact RTRL splits each step's (the gated cells': each pass's) slab updates
over Numba's threads (kernels/rtrl.py, kernels/_parallel.py,
kernels/_slabs.py). The parts never share a write and every gradient row sums
its terms in the same order, so the result at two threads equals the result at
one bit for bit, and both equal BPTT's gradient to the exact tolerance. The
sizes make several slabs per thread, in parts of unequal size (7 slabs on 2
threads: 3 and 4), so a part that skips or repeats a slab, or two parts
sharing a scratch slab, shows.
"""

from __future__ import annotations

import importlib

import bpttbench
import naive_cells
import numba
import numpy as np
import pytest
from bpttbench import _parallel
from bpttbench.cells import RNNParams
from bpttbench.rtrl import start
from helpers import EXACT_RTOL, assert_grads_close, assert_loss_close, rnn_arrays, sequence

# n = 14 with m = 22: rows of r = 37 columns, slabs of K = 2 blocks, 7 slabs.
N, M, P, T, B = 14, 22, 3, 6, 3

pytestmark = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="Numba's pool has one thread (NUMBA_NUM_THREADS)"
)


@pytest.fixture
def threads():
    """Run a test body at a given Numba thread count, and restore the count after."""
    before = numba.get_num_threads()
    yield numba.set_num_threads
    numba.set_num_threads(before)


def _problem(alpha):
    rng = np.random.default_rng(14)
    arrays = rnn_arrays(rng, M, N, P)
    xs, ys = sequence(rng, T, B, M, P)
    return RNNParams(*arrays, alpha=alpha), xs, ys


def test_the_sizes_make_ragged_parts(threads):
    """The problem splits into 7 slabs, 3 and 4 per thread (else the tests below are weak)."""
    _, J = start(rnn_arrays(np.random.default_rng(0), M, N, P), B)
    assert J.shape[1] == 7
    threads(2)
    assert _parallel.parallel_parts(J.shape[1]) == 2
    threads(1)
    assert _parallel.parallel_parts(J.shape[1]) == 1


@pytest.mark.parametrize("alpha", [1.0, 0.6], ids=["plain", "leaky"])
def test_rtrl_same_bits_on_one_and_two_threads(threads, alpha):
    params, xs, ys = _problem(alpha)
    threads(1)
    loss1, g1 = bpttbench.rtrl(params, xs, ys)
    threads(2)
    loss2, g2 = bpttbench.rtrl(params, xs, ys)
    assert loss1 == loss2
    for name, a, b in zip(g1._fields, g1, g2, strict=True):
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b), f"{name}: differs between 1 and 2 threads"
    cell = naive_cells.leaky(alpha)
    lb, gb = naive_cells.bptt(cell, cell.params_type(*params[:5]), xs, ys)
    assert_loss_close(loss2, lb, EXACT_RTOL, "rtrl at 2 threads vs the NumPy reference")
    assert_grads_close(g2, gb, EXACT_RTOL, "rtrl at 2 threads vs the NumPy reference")


def test_one_blas_thread_inside_a_parallel_kernel():
    """BLAS is held to one thread while parts run, and given its count back after."""
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas():
        return {i["prefix"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas()
        with _parallel.one_blas_thread(2):
            assert set(blas().values()) == {1}
        assert blas() == before
        with _parallel.one_blas_thread(1):  # one part: BLAS keeps its threads
            assert blas() == before


# The gated cells' kernels at n = 7, m = 5 with slabs of 64 columns: 21 GRU blocks of
# r = 14 in 7 slabs of 3, 28 LSTM blocks in 7 slabs of 4, so 3 and 4 per thread. Passes
# of 4 over T = 6 steps (kernels/_slabs.py): a whole pass and a ragged one of 2, each
# slab run through a pass's steps on its own thread; None is one pass of all 6.
GATED_N, GATED_M, GATED_SLAB_COLS = 7, 5, 64


@pytest.mark.parametrize("steps_per_pass", [None, 4], ids=["one-pass", "passes-of-4"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gated_rtrl_same_bits_on_one_and_two_threads(threads, cell, steps_per_pass):
    """The gated cells' exact RTRL (kernels/rtrl_gru.py, rtrl_lstm.py)."""
    module = importlib.import_module(f"bpttbench.rtrl_{cell}")
    kernel = getattr(module, f"rtrl_{cell}")
    n, m, gates = GATED_N, GATED_M, {"gru": 3, "lstm": 4}[cell]
    assert module.slab_count(n, m, GATED_SLAB_COLS) == 7
    rng = np.random.default_rng(7)
    shapes = [(gates * n, m), (gates * n, n), (gates * n,), (gates * n,), (P, n), (P,)]
    arrays = [rng.normal(0.0, 0.6, s) for s in shapes]
    xs, ys = sequence(rng, T, B, m, P)
    options = {"slab_cols": GATED_SLAB_COLS, "steps_per_pass": steps_per_pass}
    threads(1)
    loss1, g1 = kernel(*arrays, xs, ys, **options)
    threads(2)
    loss2, g2 = kernel(*arrays, xs, ys, **options)
    assert loss1 == loss2
    for i, (a, b) in enumerate(zip(g1, g2, strict=True)):
        assert np.array_equal(a, b), f"gradient {i}: differs between 1 and 2 threads"
    ref = {"gru": naive_cells.GRU, "lstm": naive_cells.LSTM}[cell]
    lb, gb = naive_cells.bptt(ref, ref.params_type(*arrays), xs, ys)
    what = f"{cell} rtrl at 2 threads vs the NumPy reference"
    assert_loss_close(loss2, lb, EXACT_RTOL, what)
    assert_grads_close(ref.params_type(*g2), gb, EXACT_RTOL, what)
