"""Values where the fast code paths run: several chunks, several RTRL slabs (float64).

The other value tests stay at T x B <= 60 and n <= 6, so they run one chunk of
``_sweeps`` (CHUNK_ROWS = 128 rows of steps x batch) and one slab of RTRL's
influence update (K blocks per GEMM, K r <= SLAB_COLS). Here every case is
sized so that the blocked loops run more than once, and asserts it:

- BPTT: several chunks, a ragged last one (chunks are cut from the top of the
  window, so the ragged chunk is the earliest), the error ``delta`` carried
  from one chunk into the next, B > 1, m > 1, p > 1.
- Truncated BPTT: windows longer than a chunk, error spans longer than a chunk
  (k1 > chunk), k1 < k2, k2 > T, and ragged ends (T not a multiple of k1).
- RTRL: n / K >= 3 slabs, an odd number of them, and K = 1 (one block a GEMM);
  T spans several passes of steps (kernels/_slabs.py), the last one ragged, and
  the pass length does not change the gradient.

References: naive.py (plain NumPy from THEORY.md) and PyTorch autograd
(``torch_reference``; truncation window by window from THEORY.md's definition).
"""

from __future__ import annotations

import importlib

import bpttbench
import naive
import naive_online
import numpy as np
import pytest
import torch_reference
from bpttbench._slabs import STEPS_PER_PASS
from bpttbench._sweeps import chunk_steps
from bpttbench.rtrl import SLAB_COLS, _blocks_per_gemm
from helpers import EXACT_RTOL, assert_grads_close, assert_loss_close, rnn_arrays, sequence

N_HIDDEN = 24  # state size of the BPTT and truncation cases: n x n products, not matrix-vector
M_IN, P_OUT = 5, 4


def make_problem(rng, T, B, n=N_HIDDEN, m=M_IN, p=P_OUT):
    """A float64 problem with weights ~ N(0, 1/n): over hundreds of steps the state
    neither saturates nor dies out, so the gradient has every step's contribution
    and a rounding difference is not amplified exponentially (at conftest's
    N(0, 0.6), n = 24 makes the recurrence chaotic)."""
    params = bpttbench.RNNParams(*rnn_arrays(rng, m, n, p, scale=1.0 / np.sqrt(n)))
    return (params, *sequence(rng, T, B, m, p))


def chunks_of(steps, chunk):
    return -(-steps // chunk)


# --- BPTT: one backward sweep over the whole sequence ------------------------------

# (T, B, chunk steps, chunks): the chunk count is asserted against the kernel's helper.
BPTT_CASES = [
    pytest.param(300, 3, 42, 8, id="T=300-B=3-chunk=42-chunks=8"),
    pytest.param(130, 5, 25, 6, id="T=130-B=5-chunk=25-chunks=6"),
    pytest.param(300, 1, 128, 3, id="T=300-B=1-chunk=128-chunks=3"),
]


@pytest.mark.parametrize(("T", "B", "chunk", "chunks"), BPTT_CASES)
def test_bptt_over_several_chunks_equals_naive_and_torch(rng, T, B, chunk, chunks):
    assert chunk_steps(B, T) == chunk, "the kernel's chunk is not the one this case is sized for"
    assert chunks_of(T, chunk) == chunks > 1
    assert T % chunk != 0, "the last (earliest) chunk should be ragged"
    params, xs, ys = make_problem(rng, T, B)
    loss, g = bpttbench.bptt(params, xs, ys)
    ref_loss, ref = naive.bptt(params, xs, ys)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"bptt T={T} B={B} loss vs naive")
    assert_grads_close(g, ref, EXACT_RTOL, f"bptt T={T} B={B} ({chunks} chunks) vs naive")
    torch_loss, torch_g = torch_reference.rnn_gradient(params, xs, ys)
    assert_loss_close(loss, torch_loss, EXACT_RTOL, f"bptt T={T} B={B} loss vs torch")
    assert_grads_close(g, torch_g, EXACT_RTOL, f"bptt T={T} B={B} ({chunks} chunks) vs torch")


# --- Truncated BPTT: backward sweeps over windows that span chunks -----------------

# (T, B, k1, k2, chunk steps): the chunk is chunk_steps(B, min(k2, T)).
TBPTT_CASES = [
    # errors of an update (50 steps) span two chunks; windows of 100 span three
    pytest.param(320, 3, 50, 100, 42, id="T=320-B=3-k1=50-k2=100-chunk=42"),
    # k1 = k2 not dividing T; each window is a full chunk and 3 steps more
    pytest.param(301, 3, 45, 45, 42, id="T=301-B=3-k1=k2=45-chunk=42"),
    # many short error spans at the top of windows of four chunks
    pytest.param(260, 5, 11, 80, 25, id="T=260-B=5-k1=11-k2=80-chunk=25"),
    # k2 > T: windows grow back to h_0 and span up to four chunks
    pytest.param(200, 2, 30, 500, 64, id="T=200-B=2-k1=30-k2=500-chunk=64"),
    # B = 1: the largest chunk, 128 steps; errors (130 steps) still span two
    pytest.param(300, 1, 130, 260, 128, id="T=300-B=1-k1=130-k2=260-chunk=128"),
]


@pytest.mark.parametrize(("T", "B", "k1", "k2", "chunk"), TBPTT_CASES)
def test_tbptt_windows_across_chunks_equal_naive_and_torch(rng, T, B, k1, k2, chunk):
    window = min(k2, T)
    assert chunk_steps(B, window) == chunk, (
        "the kernel's chunk is not the one this case is sized for"
    )
    assert chunks_of(window, chunk) > 1, "a window must span several chunks"
    assert T % k1 != 0, "the sequence should end with a short update"
    params, xs, ys = make_problem(rng, T, B)
    loss, g = bpttbench.tbptt(params, xs, ys, k1, k2)
    what = f"tbptt(k1={k1}, k2={k2}) T={T} B={B} chunk={chunk}"
    ref_loss, ref = naive.tbptt(params, xs, ys, k1, k2)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"{what} loss vs naive")
    assert_grads_close(g, ref, EXACT_RTOL, f"{what} vs naive")
    torch_loss, torch_g = torch_reference.truncated_gradient(params, xs, ys, k1, k2)
    assert_loss_close(loss, torch_loss, EXACT_RTOL, f"{what} loss vs torch")
    assert_grads_close(g, torch_g, EXACT_RTOL, f"{what} vs torch window by window")


def test_some_truncation_case_has_errors_spanning_chunks():
    """The readout errors of one update fill more than one chunk in some case."""
    assert any(p.values[2] > p.values[4] for p in TBPTT_CASES)


# --- RTRL: the influence update in slabs of K blocks -------------------------------

# (n, m, K, slabs): K = _blocks_per_gemm(n, n + m + 1), asserted in the test.
rtrl_kernel = importlib.import_module(
    "bpttbench.rtrl"
)  # the module: bpttbench.rtrl is the function

RTRL_CASES = [
    pytest.param(24, 5, 8, 3, id="n=24-m=5-K=8-slabs=3"),
    pytest.param(20, 32, 4, 5, id="n=20-m=32-K=4-slabs=5"),
    pytest.param(13, 7, 1, 13, id="n=13-m=7-K=1-slabs=13"),
]
# Two passes of STEPS_PER_PASS steps and a ragged third one.
RTRL_T, RTRL_B, RTRL_P = 2 * STEPS_PER_PASS + 5, 2, 3


@pytest.mark.parametrize(("n", "m", "K", "slabs"), RTRL_CASES)
def test_rtrl_over_several_slabs_equals_naive_and_torch(rng, n, m, K, slabs):
    r = n + m + 1
    assert _blocks_per_gemm(n, r) == K, "the kernel's slab is not the one this case is sized for"
    assert K * r <= SLAB_COLS and n // K == slabs >= 3 and slabs % 2 == 1
    assert RTRL_T > 2 * STEPS_PER_PASS and RTRL_T % STEPS_PER_PASS != 0
    params, xs, ys = make_problem(rng, RTRL_T, RTRL_B, n=n, m=m, p=RTRL_P)
    loss, g = bpttbench.rtrl(params, xs, ys)
    what = f"rtrl n={n} m={m} K={K} ({slabs} slabs)"
    ref_loss, ref = naive.rtrl(params, xs, ys)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"{what} loss vs naive")
    assert_grads_close(g, ref, EXACT_RTOL, f"{what} vs naive")
    torch_loss, torch_g = torch_reference.rnn_gradient(params, xs, ys)
    assert_loss_close(loss, torch_loss, EXACT_RTOL, f"{what} loss vs torch")
    assert_grads_close(g, torch_g, EXACT_RTOL, f"{what} vs torch")


@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_rtrl_pass_length_does_not_change_the_gradient(rng, alpha):
    """One step a pass (the order of a kernel without passes), a ragged pass length and
    the default agree to rounding, for the plain and the leaky cell, over several slabs."""
    n, m, T, B = 13, 7, 23, 3
    params, xs, ys = make_problem(rng, T, B, n=n, m=m, p=RTRL_P)
    arrays = tuple(params)
    results = [
        rtrl_kernel.advance(rtrl_kernel.start(arrays, B), arrays, xs, ys, alpha, P)
        for P in (1, 5, None)
    ]
    ref_loss, ref = naive_online.leaky_rtrl(params, xs, ys, alpha)
    for P, (loss, g) in zip((1, 5, None), results, strict=True):
        assert_loss_close(loss, ref_loss, EXACT_RTOL, f"rtrl passes of {P} loss vs naive")
        assert_grads_close(g, ref, EXACT_RTOL, f"rtrl passes of {P} steps vs naive")


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "4"])
def test_rtrl_rejects_a_bad_pass_length(rng, bad):
    params, xs, ys = make_problem(rng, 5, 1, n=4, m=2, p=2)
    arrays = tuple(params)
    with pytest.raises(ValueError, match="steps_per_pass must be a positive integer"):
        rtrl_kernel.advance(rtrl_kernel.start(arrays, 1), arrays, xs, ys, 1.0, bad)
