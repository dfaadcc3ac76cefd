"""The online rules' kernels (UORO, KF-RTRL, R-KF, SnAp-1, SnAp-2, RFLO) against
naive_online.py, the exact identities through the kernels, unbiasedness, memory
and bad input.

naive_online.py is pinned by its own tests (test_naive_online.py); here the
kernels must reproduce it: the deterministic rules to summation order
(DETERMINISTIC_RTOL), the stochastic ones seed for seed (STOCHASTIC_RTOL), for
alpha = 1 and 0.5, with B, m and p above 1. The blocked paths run: the
gradient blocks (STEPS_PER_BLOCK, shortened to 3 steps so that T = 7 crosses
two boundaries, and at its default over a long sequence), SnAp-2's gathered
sparse blocks and its dense path.
"""

from __future__ import annotations

import functools
import math
import sys

import bpttbench
import flop_count_online
import helpers
import naive
import naive_online as no
import numba
import numpy as np
import pytest
from helpers import (
    DIFFERENT_AT_LEAST,
    FLOAT32_RTOL,
    assert_grads_close,
    assert_loss_close,
    max_grad_difference,
    with_alpha,
)
from test_memory import MEMORY_FLAT_BYTES, MEMORY_MODEL_RTOL, MEMORY_OVERHEAD_BYTES, peak_bytes
from test_validation import RNN_BAD_INPUTS

# A kernel and its reference compute the same sums in another order (BLAS
# products, blocks, per-column partial sums of the norms): ~1e-15 measured.
DETERMINISTIC_RTOL = 1e-12
# The stochastic rules divide by norm ratios, which carry the rounding of the
# norms into every later step: ~1e-15 measured; the contract is 1e-10.
STOCHASTIC_RTOL = 1e-10
# naive_online's note: KF-RTRL with W_hh = 0, alpha = 1 is exact up to ~EPS.
KF_EPS_RTOL = 100 * no.EPS

RULES = {
    "uoro": bpttbench.uoro,
    "kf_rtrl": bpttbench.kf_rtrl,
    "r_kf": bpttbench.r_kf,
    "snap1": bpttbench.snap1,
    "snap2": bpttbench.snap2,
    "rflo": bpttbench.rflo,
}
STOCHASTIC = ("uoro", "kf_rtrl", "r_kf")
DETERMINISTIC = ("snap1", "snap2", "rflo")
ALPHAS = [pytest.param(a, id=f"alpha={a}") for a in (1.0, 0.5)]
RECURRENT = ("W_hh", "W_ih", "b_h")
SHORT_BLOCK = 3
ONLINE = sys.modules["bpttbench._online"]  # the module, not a function of that name
UORO = sys.modules["bpttbench.uoro"]


@pytest.fixture
def short_blocks(monkeypatch):
    """Blocks of SHORT_BLOCK steps: a sequence of 7 crosses two block boundaries."""
    monkeypatch.setattr(ONLINE, "STEPS_PER_BLOCK", SHORT_BLOCK)


def rtol(name):
    return STOCHASTIC_RTOL if name in STOCHASTIC else DETERMINISTIC_RTOL


def kernel(name, p, xs, ys, alpha, seed=0):
    """The kernel of ``name`` on ``p`` with the leak ``alpha``."""
    kwargs = {"seed": seed} if name in STOCHASTIC else {}
    return RULES[name](with_alpha(bpttbench.RNNParams(*p), alpha), xs, ys, **kwargs)


def reference(name, p, xs, ys, alpha, seed=0):
    kwargs = {"seed": seed} if name in STOCHASTIC else {}
    return getattr(no, name)(p, xs, ys, alpha, **kwargs)


def exact(p, xs, ys, alpha):
    """The exact gradient through a kernel: rtrl at alpha = 1, else the leaky reference.

    (The rtrl kernel has no leak yet; naive_online.leaky_rtrl is pinned to BPTT and
    finite differences by test_naive_online.py.)
    """
    if alpha == 1.0:
        return bpttbench.rtrl(bpttbench.RNNParams(*p), xs, ys)
    return no.leaky_rtrl(p, xs, ys, alpha)


def recurrent_error(actual, expected) -> float:
    return max(naive.relative_error(getattr(actual, f), getattr(expected, f)) for f in RECURRENT)


def random_sparse(rng, n, density):
    """A W_hh with a fraction ``density`` of non-zeros off the diagonal (diagonal kept)."""
    W = rng.normal(0.0, 0.8, (n, n))
    keep = rng.random((n, n)) < density
    np.fill_diagonal(keep, True)
    return np.where(keep, W, 0.0)


def ring(n, rng):
    """Unit i feeds unit i + 1 only, |weight| in [1, 2): the two-hop influence shows at T = 3."""
    W = np.zeros((n, n))
    W[(np.arange(n) + 1) % n, np.arange(n)] = rng.choice([-1.0, 1.0], n) * rng.uniform(1.0, 2.0, n)
    return W


@pytest.fixture
def problem(rng):
    """(bpttbench.RNNParams, xs (7, 2, 3), ys (7, 2, 2)), n = 5: B, m and p all above 1."""
    p = bpttbench.RNNParams(*helpers.rnn_arrays(rng, 3, 5, 2))
    xs, ys = helpers.sequence(rng, 7, 2, 3, 2)
    return p, xs, ys


# ---------------------------------------------------------------- kernels vs naive_online


def assert_matches_reference(name, p, xs, ys, alpha, seed=0):
    loss, g = kernel(name, p, xs, ys, alpha, seed)
    ref_loss, ref = reference(name, p, xs, ys, alpha, seed)
    assert_loss_close(loss, ref_loss, DETERMINISTIC_RTOL, f"{name} loss")
    assert_grads_close(g, ref, rtol(name), f"{name} vs naive_online at alpha={alpha}")
    assert all(a.dtype == np.float64 for a in g)
    return g


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", list(RULES))
def test_rule_equals_its_naive_reference(problem, short_blocks, name, alpha):
    assert_matches_reference(name, *problem, alpha, seed=3)


@pytest.mark.parametrize("name", list(RULES))
def test_rule_equals_its_naive_reference_over_blocks_of_the_default_length(rng, name):
    """T = 75 crosses two boundaries of the default blocks and ends in a partial one."""
    assert ONLINE.STEPS_PER_BLOCK < 75 // 2
    p = bpttbench.RNNParams(*helpers.rnn_arrays(rng, 2, 5, 3, scale=0.4))
    xs, ys = helpers.sequence(rng, 75, 3, 2, 3)
    assert_matches_reference(name, p, xs, ys, 0.5, seed=11)


@pytest.mark.parametrize("name", list(RULES))
def test_rule_equals_its_naive_reference_for_one_sequence(rng, short_blocks, name):
    """B = 1, where UORO's pass 2 of a block and pass 1 of the next share each product
    with W_hh (_matvec.matvec2): T = 11 in blocks of SHORT_BLOCK, the last one ragged."""
    p = bpttbench.RNNParams(*helpers.rnn_arrays(rng, 2, 7, 3, scale=0.4))
    xs, ys = helpers.sequence(rng, 11, 1, 2, 3)
    assert 11 % SHORT_BLOCK and 11 > 2 * SHORT_BLOCK
    assert_matches_reference(name, p, xs, ys, 0.5, seed=4)


def test_uoro_folds_theta_in_panels_of_rows(rng, short_blocks):
    """n = 201: theta~ (201 x 204) is folded in two panels, of 101 rows and of the 100
    left over (uoro.fold_rows), over blocks of SHORT_BLOCK steps."""
    assert UORO.fold_rows(201, 204) == 101
    p = bpttbench.RNNParams(*helpers.rnn_arrays(rng, 2, 201, 2, scale=0.1))
    xs, ys = helpers.sequence(rng, 2 * SHORT_BLOCK + 1, 1, 2, 2)
    assert_matches_reference("uoro", p, xs, ys, 0.5, seed=6)


@pytest.mark.parametrize("name", list(STOCHASTIC))
def test_stochastic_rule_draws_several_raw_outputs_a_step(rng, short_blocks, name):
    """n = 130: each step's n signs take three raw outputs, the last one in part; B = 1
    over blocks of SHORT_BLOCK, so that UORO's paired passes and hand-written products
    run too (their rows, 4 at a time, end with two left over)."""
    p = bpttbench.RNNParams(*helpers.rnn_arrays(rng, 2, 130, 2, scale=0.1))
    xs, ys = helpers.sequence(rng, 2 * SHORT_BLOCK + 1, 1, 2, 2)
    assert_matches_reference(name, p, xs, ys, 0.5, seed=9)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("density", [0.2, 0.5], ids=lambda d: f"density={d}")
def test_snap2_equals_its_naive_reference_on_a_sparse_W_hh(
    problem, rng, short_blocks, density, alpha
):
    """The gathered path: every parameter row keeps fewer units than n, each its own set;
    in blocks of SHORT_BLOCK steps, so that rows run through several blocks, the last ragged."""
    p, xs, ys = problem
    p = p._replace(W_hh=random_sparse(rng, 5, density))
    kept = (p.W_hh != 0).sum(axis=0)
    assert kept.min() < 5 and len(set(kept)) > 1, "the draw should give rows of several sizes"
    assert_matches_reference("snap2", p, xs, ys, alpha)


def test_snap2_equals_its_naive_reference_on_a_ring(problem, rng, short_blocks):
    p, xs, ys = problem
    assert_matches_reference("snap2", p._replace(W_hh=ring(5, rng)), xs, ys, 0.5)


@pytest.mark.parametrize("name", list(RULES))
def test_a_2d_sequence_is_one_batch_element(problem, name):
    p, xs, ys = problem
    loss, g = kernel(name, p, xs[:, 0], ys[:, 0], 0.5, seed=2)
    loss1, g1 = kernel(name, p, xs[:, :1], ys[:, :1], 0.5, seed=2)
    assert loss == loss1
    assert_grads_close(g, g1, 0.0, f"{name}: 2-D vs (T, 1, m)")


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_rule_same_seed_same_estimate_other_seed_another(problem, name):
    p, xs, ys = problem
    _, g1 = kernel(name, p, xs, ys, 0.5, seed=7)
    _, g2 = kernel(name, p, xs, ys, 0.5, seed=7)
    _, g3 = kernel(name, p, xs, ys, 0.5, seed=8)
    assert_grads_close(g1, g2, 0.0, f"{name}, same seed")
    assert max_grad_difference(g1, g3) > DIFFERENT_AT_LEAST


@pytest.mark.parametrize("name", list(RULES))
def test_float32_agrees_with_float64(problem, name):
    p, xs, ys = problem
    loss64, g64 = kernel(name, p, xs, ys, 0.5)
    p32 = bpttbench.RNNParams(*(a.astype(np.float32) for a in p))
    loss32, g32 = kernel(name, p32, xs.astype(np.float32), ys.astype(np.float32), 0.5)
    assert isinstance(loss32, float)
    assert loss32 == pytest.approx(loss64, rel=FLOAT32_RTOL)
    assert all(a.dtype == np.float32 for a in g32)
    assert_grads_close(g32, g64, FLOAT32_RTOL, f"{name} float32 vs float64")


# ---------------------------------------------------------------- exact identities


@pytest.mark.parametrize("alpha", ALPHAS)
def test_snap1_equals_rtrl_for_a_diagonal_W_hh(problem, rng, alpha):
    p, xs, ys = problem
    p = p._replace(W_hh=np.diag(rng.normal(0.0, 0.8, 5)))
    _, g = kernel("snap1", p, xs, ys, alpha)
    assert_grads_close(g, exact(p, xs, ys, alpha)[1], DETERMINISTIC_RTOL, "snap1, diagonal W_hh")


@pytest.mark.parametrize("alpha", ALPHAS)
def test_snap2_equals_rtrl_for_a_dense_W_hh(problem, alpha):
    p, xs, ys = problem
    assert np.all(p.W_hh != 0)
    _, g = kernel("snap2", p, xs, ys, alpha)
    assert_grads_close(g, exact(p, xs, ys, alpha)[1], DETERMINISTIC_RTOL, "snap2, dense W_hh")


@pytest.mark.parametrize("alpha", ALPHAS)
def test_snap2_on_a_ring_is_exact_up_to_T2_and_differs_from_T3(problem, rng, alpha):
    p, xs, ys = problem
    p = p._replace(W_hh=ring(5, rng))
    for T in (1, 2):
        _, g = kernel("snap2", p, xs[:T], ys[:T], alpha)
        assert_grads_close(g, exact(p, xs[:T], ys[:T], alpha)[1], DETERMINISTIC_RTOL, f"T={T}")
    for T in (3, 7):
        _, g = kernel("snap2", p, xs[:T], ys[:T], alpha)
        assert recurrent_error(g, exact(p, xs[:T], ys[:T], alpha)[1]) > DIFFERENT_AT_LEAST


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_rule_is_exact_when_W_hh_is_zero(problem, name, alpha):
    p, xs, ys = problem
    p = p._replace(W_hh=np.zeros((5, 5)))
    _, g = kernel(name, p, xs, ys, alpha)
    assert_grads_close(g, exact(p, xs, ys, alpha)[1], DETERMINISTIC_RTOL, f"{name}, W_hh = 0")


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed={s}")
def test_kf_rtrl_is_exact_up_to_eps_when_W_hh_is_zero_and_alpha_is_one(problem, seed):
    p, xs, ys = problem
    p = p._replace(W_hh=np.zeros((5, 5)))
    _, g = kernel("kf_rtrl", p, xs, ys, 1.0, seed=seed)
    assert_grads_close(g, exact(p, xs, ys, 1.0)[1], KF_EPS_RTOL, "kf_rtrl, W_hh = 0, alpha = 1")


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", [*DETERMINISTIC, "kf_rtrl"])
def test_rule_is_exact_at_T1(problem, name, alpha):
    """J_1 = M_1: the deterministic rules hold it, and so does KF-RTRL (u_0 = 0, K_0 = 0)."""
    p, xs, ys = problem
    _, g = kernel(name, p, xs[:1], ys[:1], alpha)
    assert_grads_close(g, exact(p, xs[:1], ys[:1], alpha)[1], DETERMINISTIC_RTOL, f"{name} T=1")


@pytest.mark.parametrize("alpha", ALPHAS)
def test_rflo_equals_snap1_when_W_hh_has_a_zero_diagonal(problem, alpha):
    p, xs, ys = problem
    assert (
        recurrent_error(kernel("rflo", p, xs, ys, alpha)[1], kernel("snap1", p, xs, ys, alpha)[1])
        > DIFFERENT_AT_LEAST
    )
    p = p._replace(W_hh=p.W_hh - np.diag(np.diag(p.W_hh)))
    _, g_rflo = kernel("rflo", p, xs, ys, alpha)
    _, g_snap = kernel("snap1", p, xs, ys, alpha)
    assert_grads_close(g_rflo, g_snap, DETERMINISTIC_RTOL, "rflo vs snap1, zero diagonal")


@pytest.mark.parametrize("name", ["snap1", "rflo", *STOCHASTIC])
def test_approximate_rule_differs_from_exact_on_a_generic_problem(problem, name):
    """Guards the equalities above: on a dense W_hh these rules are not RTRL."""
    p, xs, ys = problem
    _, g = kernel(name, p, xs, ys, 0.5)
    assert recurrent_error(g, exact(p, xs, ys, 0.5)[1]) > DIFFERENT_AT_LEAST


@pytest.mark.parametrize("name", list(RULES))
def test_readout_gradients_and_loss_are_exact(problem, name):
    p, xs, ys = problem
    loss, g = kernel(name, p, xs, ys, 0.5)
    exact_loss, g_exact = no.leaky_bptt(p, xs, ys, 0.5)
    assert_loss_close(loss, exact_loss, DETERMINISTIC_RTOL, name)
    for field in ("W_out", "b_out"):
        assert naive.relative_error(getattr(g, field), getattr(g_exact, field)) <= 1e-12


# ---------------------------------------------------------------- unbiasedness

# The protocol of test_naive_online.py, through the kernels: seeds 0..N_SEEDS-1 on
# one tiny problem (n = 3, m = 2, p = 2, T = 4, B = 1, alpha = 0.5). For an unbiased
# rule E|mean_N - g*|^2 = tr(Cov) / N, so the RMS error of the 16 means of 64 seeds
# over the error of the mean of all 1024 is near sqrt(16) = 4 (the bounds and the
# bias bound in standard errors are test_naive_online's, measured there).
N_SEEDS, BLOCK = 1024, 64
RATIO_BOUNDS = (2.0, 8.0)
STANDARD_ERRORS = 3.0
UNBIASED_PROBLEM_SEED = 104


@functools.cache
def seed_samples(name):
    """(exact recurrent gradient, (N_SEEDS, P) kernel estimates), flat (W_hh, W_ih, b_h)."""
    rng = np.random.default_rng(UNBIASED_PROBLEM_SEED)
    p = bpttbench.RNNParams(*helpers.rnn_arrays(rng, 2, 3, 2))
    xs, ys = helpers.sequence(rng, 4, 1, 2, 2)

    def flat(g):
        return np.concatenate([getattr(g, f).ravel() for f in RECURRENT])

    g_exact = flat(no.leaky_rtrl(p, xs, ys, 0.5)[1])
    samples = np.array([flat(kernel(name, p, xs, ys, 0.5, seed=s)[1]) for s in range(N_SEEDS)])
    return g_exact, samples


@pytest.mark.parametrize("name", STOCHASTIC)
def test_mean_over_seeds_approaches_rtrl_like_one_over_sqrt_N(name):
    g_exact, samples = seed_samples(name)
    means = samples.reshape(N_SEEDS // BLOCK, BLOCK, -1).mean(axis=1)
    rms_small = np.sqrt(np.mean(np.sum((means - g_exact) ** 2, axis=1)))
    error_all = np.linalg.norm(samples.mean(axis=0) - g_exact)
    ratio = rms_small / error_all
    assert RATIO_BOUNDS[0] <= ratio <= RATIO_BOUNDS[1], (
        f"{name}: error at N={BLOCK} / error at N={N_SEEDS} = {ratio:.2f}, expected about 4"
    )


@pytest.mark.parametrize("name", STOCHASTIC)
def test_bias_is_small_against_the_spread(name):
    g_exact, samples = seed_samples(name)
    error = np.linalg.norm(samples.mean(axis=0) - g_exact)
    standard_error = np.sqrt(np.sum(samples.var(axis=0, ddof=1))) / math.sqrt(N_SEEDS)
    assert error <= STANDARD_ERRORS * standard_error, (
        f"{name}: |mean - exact| is {error / standard_error:.2f} standard errors"
    )


# ---------------------------------------------------------------- memory

memory_only = pytest.mark.skipif(
    numba.config.DISABLE_JIT, reason="memory shape is measured on the compiled kernels"
)
T_SHORT, T_LONG = 64, 4096
MEMORY_SIZE = {"B": 4, "m": 4, "n": 6, "p": 4}


@memory_only
@pytest.mark.parametrize("name", list(RULES))
def test_peak_memory_does_not_grow_with_T(rng, name):
    p = bpttbench.RNNParams(*helpers.rnn_arrays(rng, 4, 6, 4))
    call = RULES[name]
    peaks = {}
    for T in (T_LONG, T_SHORT):
        xs, ys = helpers.sequence(rng, T, MEMORY_SIZE["B"], 4, 4)
        peaks[T] = peak_bytes(lambda xs=xs, ys=ys: call(p, xs, ys))
    assert peaks[T_SHORT] > 0
    assert abs(peaks[T_LONG] - peaks[T_SHORT]) <= MEMORY_FLAT_BYTES, f"{name}: {peaks}"


MODEL_SIZES = [
    {"T": 64, "B": 4, "n": 48, "m": 8, "p": 4},
    {"T": 8, "B": 1, "n": 96, "m": 1, "p": 1},  # a short sequence: blocks shorter than the default
]


@memory_only
@pytest.mark.parametrize(
    "size", MODEL_SIZES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items())
)
@pytest.mark.parametrize("name", list(RULES))
def test_analytic_memory_model_matches_the_measured_peak(name, size):
    spec = bpttbench.ALGORITHMS[name]
    problem = spec.make_problem(size, np.float64, 0)
    measured = peak_bytes(lambda: spec.func(*problem))
    model = spec.memory_bytes(size, 8)
    assert abs(measured - model) <= MEMORY_MODEL_RTOL * model + MEMORY_OVERHEAD_BYTES, (
        f"{name} {size}: measured {measured} B, model {model:.0f} B"
    )


def test_snap2_problem_has_the_registered_density_and_keeps_the_diagonal():
    spec = bpttbench.ALGORITHMS["snap2"]
    for density in (10, 25, 100):
        size = {"T": 2, "B": 1, "n": 41, "m": 1, "p": 1, "density": density}
        p, _, _ = spec.make_problem(size, np.float64, 0)
        off = (p.W_hh != 0) & ~np.eye(41, dtype=bool)
        assert np.all(np.diag(p.W_hh) != 0)
        assert set(off.sum(axis=0)) == {round(density * 40 / 100)}  # every column alike


# ---------------------------------------------------------------- bad input

REJECTED = {
    "uoro": lambda p, xs, ys: bpttbench.uoro(p, xs, ys, seed=1),
    "kf_rtrl": lambda p, xs, ys: bpttbench.kf_rtrl(p, xs, ys),
    "r_kf": bpttbench.r_kf,
    "snap1": bpttbench.snap1,
    "snap2": bpttbench.snap2,
    "rflo": bpttbench.rflo,
}


@pytest.mark.parametrize("case", list(RNN_BAD_INPUTS))
@pytest.mark.parametrize("name", list(REJECTED))
def test_rule_rejects_what_the_exact_kernels_reject(rnn_problem, name, case):
    mutate, error, pattern = RNN_BAD_INPUTS[case]
    params, xs, ys = mutate(*rnn_problem)
    with pytest.raises(error, match=pattern):
        REJECTED[name](params, xs, ys)


@pytest.mark.parametrize(
    ("alpha", "error"),
    [(0.0, ValueError), (-0.5, ValueError), (1.5, ValueError), (math.nan, ValueError),
     (math.inf, ValueError), (True, TypeError), ("0.5", TypeError), (None, TypeError)],
    ids=["0", "negative", "above-1", "nan", "inf", "bool", "str", "None"],
)  # fmt: skip
@pytest.mark.parametrize("name", list(REJECTED))
def test_rule_rejects_a_leak_outside_0_1(rnn_problem, name, alpha, error):
    params, xs, ys = rnn_problem
    with pytest.raises(error, match="alpha"):
        REJECTED[name](with_alpha(params, alpha), xs, ys)


@pytest.mark.parametrize(
    ("seed", "error"),
    [(-1, ValueError), (1.5, TypeError), (True, TypeError), (None, TypeError), ("1", TypeError)],
    ids=["negative", "float", "bool", "None", "str"],
)
@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_rule_rejects_a_bad_seed(rnn_problem, name, seed, error):
    with pytest.raises(error, match="seed"):
        RULES[name](*rnn_problem, seed=seed)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_rule_takes_no_seed(rnn_problem, name):
    with pytest.raises(TypeError, match="seed"):
        RULES[name](*rnn_problem, seed=0)


# ---------------------------------------------------------------- FLOP models


def replica(name, params, xs, ys, alpha, seed, block):
    """flop_count_online's replica of ``name``: (loss, grads, counted FLOPs)."""
    if name in ("snap1", "rflo"):
        w_self = np.diag(params.W_hh) if name == "snap1" else np.zeros(params.W_hh.shape[0])
        return flop_count_online.diagonal_trace(params, xs, ys, alpha, w_self, block)
    if name == "uoro":
        return flop_count_online.uoro(params, xs, ys, alpha, seed, block)
    if name == "snap2":
        return flop_count_online.snap2(params, xs, ys, alpha)
    return getattr(flop_count_online, name)(params, xs, ys, alpha, seed)


FLOP_SIZES = [
    {"T": 7, "B": 2, "n": 5, "m": 3, "p": 2},  # blocks of 3: two and a ragged one
    {"T": 4, "B": 1, "n": 9, "m": 1, "p": 1, "density": 40},  # SnAp-2 gathers rows of 4
    {"T": 3, "B": 3, "n": 6, "m": 2, "p": 3, "density": 100},  # SnAp-2 dense: W_hh itself
]


@pytest.mark.parametrize(
    "size", FLOP_SIZES, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items())
)
@pytest.mark.parametrize("name", list(RULES))
def test_flop_model_equals_the_counted_operations(short_blocks, name, size):
    """The replica does the kernel's computation (same gradient) and counts what it does."""
    spec = bpttbench.ALGORITHMS[name]
    params, xs, ys = spec.make_problem(size, np.float64, 0)
    loss, g = kernel(name, params, xs, ys, 0.5, seed=6)
    ref_loss, ref, counted = replica(name, params, xs, ys, 0.5, 6, SHORT_BLOCK)
    assert_loss_close(ref_loss, loss, DETERMINISTIC_RTOL, f"{name}: replica loss")
    assert_grads_close(ref, g, rtol(name), f"{name}: replica vs kernel")
    model = spec.flop_count(size)
    assert counted == model, f"{name} {size}: counted {counted}, model {model:.0f}"


def test_the_count_sees_the_blocks(short_blocks):
    """Counted with blocks of another length, the replica misses the model: the
    exact matches above are not vacuous."""
    size = FLOP_SIZES[0]
    params, xs, ys = bpttbench.ALGORITHMS["snap1"].make_problem(size, np.float64, 0)
    *_, counted = replica("snap1", params, xs, ys, 0.5, 0, SHORT_BLOCK + 1)
    assert counted != bpttbench.ALGORITHMS["snap1"].flop_count(size)
