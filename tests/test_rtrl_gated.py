"""RTRL for the gated cells (bpttbench.rtrl_gru, bpttbench.rtrl_lstm) at the array level.

Gradients are held, in float64, to three independent sides: PyTorch autograd
through torch.nn.GRU / torch.nn.LSTM and nn.Linear, the plain-NumPy BPTT of
``naive_gated`` and central differences of its loss. Every case has B, m and
p > 1; the cases with several slabs per step (asserted) are the ones that
exercise the slab bookkeeping, and the narrow-slab case puts rows of two gates
into one slab. The kernels run the steps in passes (kernels/_slabs.py); the
pass cases span several passes with a ragged last one. Memory is measured with
tracemalloc, FLOPs are checked through the powers of their terms.
"""

from __future__ import annotations

import gc
import importlib
import tracemalloc

import naive
import naive_gated
import numba
import numpy as np
import pytest
from bpttbench import costs
from bpttbench._slabs import STEPS_PER_PASS
from helpers import (
    DIFFERENT_AT_LEAST,
    EXACT_RTOL,
    FD_RTOL,
    FD_STEP,
    FLOAT32_RTOL,
    assert_grads_close,
    assert_loss_close,
    reference,
)
from naive_gated import GatedParams

# The modules, by import path: the package may re-export the functions under the same names.
rtrl_gru = importlib.import_module("bpttbench.rtrl_gru")
rtrl_lstm = importlib.import_module("bpttbench.rtrl_lstm")

CELLS = {
    "gru": (rtrl_gru, naive_gated.gru_bptt, naive_gated.gru_loss, 3),
    "lstm": (rtrl_lstm, naive_gated.lstm_bptt, naive_gated.lstm_loss, 4),
}

# (size, slab_cols): slab_cols None is the kernels' default.
CASES = {
    # One slab: a smallest problem with B, m, p > 1. T = 4, not 3: at T = 3 the LSTM's
    # weight_hh gradient is only ~5e-3, and the rounding of central differences
    # (~eps L / FD_STEP, 6e-10) came to 2e-7 of it; at T = 4 it is 3e-8, well inside FD_RTOL.
    "tiny": ({"T": 4, "B": 2, "m": 2, "n": 2, "p": 2}, None),
    # The default slab width, several slabs (GRU 6 slabs of K = 12 blocks, LSTM 6 of 16).
    "slabs": ({"T": 5, "B": 3, "m": 3, "n": 24, "p": 3}, None),
    # Narrow slabs, K = 3 (GRU) and 4 (LSTM) blocks not dividing n = 10: some slabs hold
    # rows of two gates, so a gate index taken from the wrong slab shows.
    "narrow": ({"T": 6, "B": 2, "m": 3, "n": 10, "p": 2}, 60),
}
SEVERAL_SLABS = ("slabs", "narrow")

# Weights this large keep every gate well inside its non-linear range.
SCALE = 0.5


def kernel(cell):
    module = CELLS[cell][0]
    return getattr(module, f"rtrl_{cell}")


def make_problem(rng, cell, size, dtype=np.float64):
    """GatedParams and (xs, ys) drawn from ``rng``, not from any bpttbench initialiser."""
    gates = CELLS[cell][3]
    n, m, p = size["n"], size["m"], size["p"]
    params = GatedParams(
        rng.normal(0.0, SCALE, (gates * n, m)),
        rng.normal(0.0, SCALE, (gates * n, n)),
        rng.normal(0.0, SCALE, gates * n),
        rng.normal(0.0, SCALE, gates * n),
        rng.normal(0.0, SCALE, (p, n)),
        rng.normal(0.0, SCALE, p),
    )
    xs = rng.normal(size=(size["T"], size["B"], m))
    ys = rng.normal(size=(size["T"], size["B"], p))
    return GatedParams(*(a.astype(dtype) for a in params)), xs.astype(dtype), ys.astype(dtype)


def run(cell, params, xs, ys, slab_cols=None, steps_per_pass=None):
    loss, grads = kernel(cell)(*params, xs, ys, slab_cols=slab_cols, steps_per_pass=steps_per_pass)
    return loss, GatedParams(*grads)


def case_problem(rng, cell, case):
    size, slab_cols = CASES[case]
    module = CELLS[cell][0]
    slabs = module.slab_count(size["n"], size["m"], slab_cols)
    if case in SEVERAL_SLABS:
        assert slabs > 1, f"{cell} {case}: one slab, the slab bookkeeping would go untested"
    if case == "narrow":
        K = module.blocks_per_gemm(size["n"], size["m"], slab_cols)
        assert size["n"] % K != 0, f"{cell}: K = {K} divides n, no slab holds two gates"
    return (*make_problem(rng, cell, size), slab_cols)


# --- PyTorch autograd --------------------------------------------------------------------


def torch_gradient(cell, params, xs, ys):
    """Loss and GatedParams of gradients of torch.nn.GRU / LSTM + nn.Linear by autograd."""
    torch = reference("torch")
    n, m = params.weight_hh.shape[1], params.weight_ih.shape[1]
    p = params.W_out.shape[0]
    layer = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    rnn = layer(m, n, num_layers=1, batch_first=False, dtype=torch.float64)
    readout = torch.nn.Linear(n, p, dtype=torch.float64)
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    with torch.no_grad():
        for name, a in zip(names, params[:4], strict=True):
            getattr(rnn, name).copy_(torch.from_numpy(np.array(a)))
        readout.weight.copy_(torch.from_numpy(np.array(params.W_out)))
        readout.bias.copy_(torch.from_numpy(np.array(params.b_out)))
    out, _ = rnn(torch.from_numpy(np.array(xs)))
    loss = 0.5 * ((readout(out) - torch.from_numpy(np.array(ys))) ** 2).sum()
    loss.backward()
    grads = [getattr(rnn, name).grad.numpy() for name in names]
    return loss.item(), GatedParams(*grads, readout.weight.grad.numpy(), readout.bias.grad.numpy())


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("cell", list(CELLS))
def test_gradient_equals_torch_autograd(rng, cell, case):
    reference("torch")
    params, xs, ys, slab_cols = case_problem(rng, cell, case)
    loss, g = run(cell, params, xs, ys, slab_cols)
    ref_loss, ref = torch_gradient(cell, params, xs, ys)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"rtrl_{cell} loss vs torch")
    assert_grads_close(g, ref, EXACT_RTOL, f"rtrl_{cell} {case} vs torch autograd")


# --- The plain-NumPy BPTT of naive_gated ------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("cell", list(CELLS))
def test_gradient_equals_naive_bptt(rng, cell, case):
    params, xs, ys, slab_cols = case_problem(rng, cell, case)
    loss, g = run(cell, params, xs, ys, slab_cols)
    ref_loss, ref = CELLS[cell][1](params, xs, ys)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"rtrl_{cell} loss vs naive BPTT")
    assert_grads_close(g, ref, EXACT_RTOL, f"rtrl_{cell} {case} vs naive BPTT")


def test_gru_b_hn_gets_its_own_gradient(rng):
    """b_hn sits inside r * (W_hn h + b_hn): its gradient is r times b_in's, per step.

    So the n-gate rows of the two bias gradients differ, while the r and z rows
    (both biases enter the pre-activation alike) agree. This keeps the
    comparisons above from passing with one bias gradient copied into the other.
    """
    params, xs, ys, slab_cols = case_problem(rng, "gru", "narrow")
    n = params.weight_hh.shape[1]
    _, g = run("gru", params, xs, ys, slab_cols)
    rz = slice(0, 2 * n)
    assert naive.relative_error(g.bias_hh[rz], g.bias_ih[rz]) <= EXACT_RTOL
    assert naive.relative_error(g.bias_hh[2 * n :], g.bias_ih[2 * n :]) >= DIFFERENT_AT_LEAST


def test_lstm_biases_get_equal_gradients(rng):
    params, xs, ys, slab_cols = case_problem(rng, "lstm", "narrow")
    _, g = run("lstm", params, xs, ys, slab_cols)
    assert naive.relative_error(g.bias_hh, g.bias_ih) <= EXACT_RTOL


# --- Passes of steps ----------------------------------------------------------------------

# Each slab runs through the steps of a pass while it is in cache (kernels/_slabs.py).
# Passes of 4 over T = 2 * 4 + 3 steps: two whole passes and a ragged one of 3, on
# narrow slabs (several per step, rows of two gates in one), so a slab update that
# reads another step's Jacobian, or a last pass that runs past T, shows.
PASS = 4
PASS_SIZE = {"T": 2 * PASS + 3, "B": 2, "m": 3, "n": 10, "p": 2}
PASS_SLAB_COLS = CASES["narrow"][1]


@pytest.mark.parametrize("cell", list(CELLS))
def test_several_passes_with_a_ragged_end_equal_naive_bptt(rng, cell):
    params, xs, ys = make_problem(rng, cell, PASS_SIZE)
    assert CELLS[cell][0].slab_count(PASS_SIZE["n"], PASS_SIZE["m"], PASS_SLAB_COLS) > 1
    loss, g = run(cell, params, xs, ys, PASS_SLAB_COLS, steps_per_pass=PASS)
    ref_loss, ref = CELLS[cell][1](params, xs, ys)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"rtrl_{cell} loss in passes vs naive BPTT")
    assert_grads_close(g, ref, EXACT_RTOL, f"rtrl_{cell} in passes of {PASS} vs naive BPTT")


@pytest.mark.parametrize("cell", list(CELLS))
def test_the_pass_length_changes_the_rounding_only(rng, cell):
    """1 is the step-by-step order; 5 leaves a ragged pass of 1; T and more make one pass."""
    params, xs, ys = make_problem(rng, cell, PASS_SIZE)
    T = PASS_SIZE["T"]
    loss1, g1 = run(cell, params, xs, ys, PASS_SLAB_COLS, steps_per_pass=1)
    for steps in (5, T, 3 * T, None):
        loss, g = run(cell, params, xs, ys, PASS_SLAB_COLS, steps_per_pass=steps)
        assert_loss_close(loss, loss1, 1e-13, f"rtrl_{cell} loss, passes of {steps} vs 1")
        assert_grads_close(g, g1, 1e-12, f"rtrl_{cell}, passes of {steps} vs 1")


@pytest.mark.parametrize("steps", [0, -2, 2.0, True, "4"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_a_bad_pass_length_is_refused(rng, cell, steps):
    params, xs, ys = make_problem(rng, cell, CASES["tiny"][0])
    with pytest.raises(ValueError, match="steps_per_pass must be a positive integer"):
        run(cell, params, xs, ys, steps_per_pass=steps)


# --- Central differences --------------------------------------------------------------


@pytest.mark.parametrize("cell", list(CELLS))
def test_gradient_equals_finite_differences(rng, cell):
    params, xs, ys, slab_cols = case_problem(rng, cell, "tiny")
    _, g = run(cell, params, xs, ys, slab_cols)
    loss_fn = CELLS[cell][2]
    fd = naive.finite_difference(lambda q: loss_fn(q, xs, ys), params, FD_STEP)
    assert_grads_close(g, fd, FD_RTOL, f"rtrl_{cell} vs central differences")


# --- float32 ----------------------------------------------------------------------------


@pytest.mark.parametrize("cell", list(CELLS))
def test_float32_runs_in_float32_and_agrees_with_float64(rng, cell):
    params, xs, ys, slab_cols = case_problem(rng, cell, "narrow")
    loss64, g64 = run(cell, params, xs, ys, slab_cols)
    p32 = GatedParams(*(a.astype(np.float32) for a in params))
    loss32, g32 = run(cell, p32, xs.astype(np.float32), ys.astype(np.float32), slab_cols)
    assert isinstance(loss32, float)
    assert loss32 == pytest.approx(loss64, rel=FLOAT32_RTOL)
    for name, a in zip(g32._fields, g32, strict=True):
        assert a.dtype == np.float32, f"rtrl_{cell}: {name} came back as {a.dtype}"
    assert_grads_close(g32, g64, FLOAT32_RTOL, f"rtrl_{cell} float32 vs float64")


# --- Memory -----------------------------------------------------------------------------

# A size whose working set (about 0.44 MB GRU, 0.99 MB LSTM in float64 at T_LONG) dwarfs
# the few hundred bytes of Python objects a call creates besides its buffers.
MEMORY_SIZE = {"B": 2, "m": 3, "n": 16, "p": 2}
# What the slab updates read is kept for the steps of a pass, min(STEPS_PER_PASS, T):
# T_SHORT is shorter than a pass (the model's coefficient is T there); from
# STEPS_PER_PASS on the keep is one whole pass and the peak stops growing.
T_SHORT, T_PASS, T_LONG = 8, 2 * STEPS_PER_PASS, 256

# Peaks at T_PASS and T_LONG of an algorithm without history may differ by
# Python bookkeeping only (measured: 0 bytes). The smallest record kept per
# step, one number, would add (T_LONG - T_PASS) * 4 = 896 bytes even in
# float32, so the bound sits below that.
MEMORY_FLAT_BYTES = 512

# The measured peak against memory(): the model counts every buffer's data,
# not the array objects, tuples and floats around them, a constant 4.0 KB (GRU)
# and 4.4 KB (LSTM) at every size measured: 0.9% and 0.4% of MEMORY_SIZE at T_LONG
# in float64, 2.1% and 1.0% at T_SHORT in float32.
MEMORY_MODEL_RTOL = 0.05


def peak_bytes(call) -> int:
    """Peak traced bytes of one ``call()`` after a warm-up call, above the baseline."""
    call()
    gc.collect()
    assert not tracemalloc.is_tracing(), "tracemalloc already running: the peak would be shared"
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = call()
        _, peak = tracemalloc.get_traced_memory()
        del result
    finally:
        tracemalloc.stop()
    return peak - baseline


needs_jit = pytest.mark.skipif(
    numba.config.DISABLE_JIT, reason="memory is measured on the compiled kernels"
)


@needs_jit
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_peak_memory_is_flat_in_T_past_a_pass_and_matches_the_model(rng, cell, dtype):
    # On one Numba thread, as a sweep measures: the model counts one thread's scratch
    # slab, and each further thread adds one (kernels/rtrl_gru.py, "Threads").
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        _check_peak_memory(rng, cell, dtype)
    finally:
        numba.set_num_threads(before)


def _check_peak_memory(rng, cell, dtype):
    params, _, _ = make_problem(rng, cell, {**MEMORY_SIZE, "T": 1}, dtype)
    peaks = {}
    for T in (T_SHORT, T_PASS, T_LONG):
        _, xs, ys = make_problem(rng, cell, {**MEMORY_SIZE, "T": T}, dtype)
        peaks[T] = peak_bytes(lambda xs=xs, ys=ys: kernel(cell)(*params, xs, ys))
    assert abs(peaks[T_LONG] - peaks[T_PASS]) <= MEMORY_FLAT_BYTES, (
        f"rtrl_{cell}: peak {peaks[T_PASS]} B at T={T_PASS} but {peaks[T_LONG]} B at T={T_LONG}"
    )
    itemsize = np.dtype(dtype).itemsize
    for T in (T_SHORT, T_LONG):
        model = costs.total(CELLS[cell][0].memory({**MEMORY_SIZE, "T": T}, itemsize))
        assert peaks[T] == pytest.approx(model, rel=MEMORY_MODEL_RTOL), (
            f"rtrl_{cell}: measured peak {peaks[T]} B at T={T}, model {model:.0f} B"
        )


# --- FLOP model -------------------------------------------------------------------------

FLOP_SIZE = {"T": 5, "B": 3, "n": 7, "m": 4, "p": 2}
SIZE_VARS = ("T", "B", "n", "m", "p")


@pytest.mark.parametrize("cell", list(CELLS))
def test_flop_terms_scale_exactly_as_their_powers(cell):
    """Every term is a monomial: scaling one size variable by f scales it by f ** power."""
    flops = CELLS[cell][0].flops
    base = flops(FLOP_SIZE)
    assert all(t.value > 0 for t in base)
    for term in base:
        assert set(term.powers) <= set(SIZE_VARS)
    for var in SIZE_VARS:
        for f in (2, 3):
            scaled = flops({**FLOP_SIZE, var: FLOP_SIZE[var] * f})
            assert len(scaled) == len(base)
            for t0, t1 in zip(base, scaled, strict=True):
                assert t1.value == t0.value * f ** t0.powers.get(var, 0), (
                    f"rtrl_{cell}: term {t0} scales by {t1.value / t0.value} along {var}"
                )


# The slab GEMMs per step and sequence: (n x n) @ (n x P) for the GRU, the
# (2n x n) left half of A_t @ (n x P) for the LSTM; P = G n (n + m + 2).
GEMM_FLOPS = {
    "gru": lambda T, B, n, m, p: T * B * 2 * n * n * 3 * n * (n + m + 2),
    "lstm": lambda T, B, n, m, p: T * B * 2 * (2 * n) * n * 4 * n * (n + m + 2),
}
N4_COEFFICIENT = {"gru": 6, "lstm": 16}


@pytest.mark.parametrize("cell", list(CELLS))
def test_flop_model_is_led_by_the_slab_gemms(cell):
    flops = CELLS[cell][0].flops
    terms = flops(FLOP_SIZE)
    n4 = [t for t in terms if t.powers.get("n") == 4]
    assert len(n4) == 1
    assert n4[0].powers == {"T": 1, "B": 1, "n": 4}
    assert n4[0].value == N4_COEFFICIENT[cell] * 5 * 3 * 7**4
    # The GEMM part is what the slab shapes give, and the rest is O(n^2 r) per step.
    rest = costs.total(terms) - GEMM_FLOPS[cell](**FLOP_SIZE)
    assert 0 < rest < 100 * 5 * 3 * 7**2 * (7 + 4 + 2)
    # The n^4 term comes to carry >= 90% of the model as n grows (THEORY.md fit window).
    size = {**FLOP_SIZE, "n": 512}
    power, share = costs.leading_share(flops(size), ("n",))
    assert power == 4 and share >= 0.9
    # Linear in T and in B.
    for var in ("T", "B"):
        doubled = costs.total(flops({**FLOP_SIZE, var: 2 * FLOP_SIZE[var]}))
        assert doubled == 2 * costs.total(terms) - 2 + 1  # the final 0.5 * loss is once
