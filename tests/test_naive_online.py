"""The online-rule references in naive_online.py, pinned by their defining properties.

The future Numba kernels of UORO, KF-RTRL, R-KF, SnAp-1/2 and RFLO are held to
naive_online.py, so the references must be right on their own: the exact leaky
references against each other, against central differences and against
naive.py at alpha = 1; each approximate rule against the cases where it is
exact (and against a case where it must not be); the stochastic rules for
unbiasedness, reproducibility and the documented random protocol. None of
these tests imports kernels.
"""

from __future__ import annotations

import functools

import helpers
import naive
import naive_online as no
import numpy as np
import pytest
from helpers import (
    DIFFERENT_AT_LEAST,
    EXACT_RTOL,
    FD_RTOL,
    FD_STEP,
    assert_grads_close,
    assert_loss_close,
    max_grad_difference,
)

ALPHAS = [pytest.param(a, id=f"alpha={a}") for a in (1.0, 0.5, 0.2)]
ALL_RULES = {**no.DETERMINISTIC, **no.STOCHASTIC}
RECURRENT = ("W_hh", "W_ih", "b_h")

# KF-RTRL with W_hh = 0 and alpha = 1: J_t = M_t = diag(d_t) (x) z_t is exactly
# one Kronecker product, but the update still carries the stale factor u_{t-1}
# with weight p1 = ratio(|A K| = 0, |u|) = EPS, so the estimate is exact only
# up to a cross term of relative size ~EPS (7e-8 measured). 100 EPS bounds it.
KF_EPS_RTOL = 100 * no.EPS


@pytest.fixture
def problem(rng):
    """(naive.RNNParams, xs (7, 2, 3), ys (7, 2, 2)): B, m and p all above 1."""
    p = naive.RNNParams(*helpers.rnn_arrays(rng, 3, 4, 2))
    xs, ys = helpers.sequence(rng, 7, 2, 3, 2)
    return p, xs, ys


def call(name, p, xs, ys, alpha, seed=0):
    if name in no.STOCHASTIC:
        return ALL_RULES[name](p, xs, ys, alpha, seed=seed)
    return ALL_RULES[name](p, xs, ys, alpha)


def recurrent_error(actual, expected) -> float:
    return max(naive.relative_error(getattr(actual, f), getattr(expected, f)) for f in RECURRENT)


def ring(n, rng):
    """A sparse W_hh: unit i feeds unit i + 1 only (mod n), |weight| in [1, 2); no self-loops.

    Weights of order one keep the two-hop influence visible (above
    DIFFERENT_AT_LEAST) at T = 3 even at alpha = 0.2, where it scales as alpha^2.
    """
    W = np.zeros((n, n))
    W[(np.arange(n) + 1) % n, np.arange(n)] = rng.choice([-1.0, 1.0], n) * rng.uniform(1.0, 2.0, n)
    return W


# ---------------------------------------------------------------- the leaky model


def test_leaky_forward_and_loss_follow_the_model_equations(problem):
    p, xs, ys = problem
    alpha = 0.3
    T, B, _ = xs.shape
    expected = 0.0
    for b in range(B):
        h = np.zeros(p.W_hh.shape[0])
        for t in range(T):
            h = (1 - alpha) * h + alpha * np.tanh(p.W_ih @ xs[t, b] + p.W_hh @ h + p.b_h)
            e = p.W_out @ h + p.b_out - ys[t, b]
            expected += 0.5 * e @ e
    assert no.leaky_loss(p, xs, ys, alpha) == pytest.approx(expected, rel=EXACT_RTOL)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_leaky_bptt_equals_leaky_rtrl(problem, alpha):
    p, xs, ys = problem
    loss_b, g_b = no.leaky_bptt(p, xs, ys, alpha)
    loss_r, g_r = no.leaky_rtrl(p, xs, ys, alpha)
    assert_loss_close(loss_b, loss_r, EXACT_RTOL, "leaky bptt vs rtrl")
    assert_grads_close(g_r, g_b, EXACT_RTOL, f"leaky rtrl vs bptt at alpha={alpha}")


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("reference", ["leaky_bptt", "leaky_rtrl"])
def test_leaky_reference_matches_finite_differences(problem, reference, alpha):
    p, xs, ys = problem
    fd = naive.finite_difference(lambda theta: no.leaky_loss(theta, xs, ys, alpha), p, FD_STEP)
    loss, g = getattr(no, reference)(p, xs, ys, alpha)
    assert_loss_close(loss, no.leaky_loss(p, xs, ys, alpha), EXACT_RTOL, reference)
    assert_grads_close(g, fd, FD_RTOL, f"{reference} vs FD at alpha={alpha}")


@pytest.mark.parametrize(
    ("leaky", "plain"),
    [("leaky_bptt", naive.bptt), ("leaky_rtrl", naive.rtrl)],
    ids=["bptt", "rtrl"],
)
def test_alpha_one_is_the_plain_cell_of_naive(problem, leaky, plain):
    p, xs, ys = problem
    loss, g = getattr(no, leaky)(p, xs, ys, alpha=1.0)
    loss0, g0 = plain(p, xs, ys)
    assert_loss_close(loss, loss0, EXACT_RTOL, leaky)
    assert_grads_close(g, g0, EXACT_RTOL, f"{leaky} at alpha=1 vs naive")


def test_a_2d_sequence_is_one_batch_element(problem):
    p, xs, ys = problem
    loss, g = no.leaky_rtrl(p, xs[:, 0], ys[:, 0], 0.5)
    loss1, g1 = no.leaky_rtrl(p, xs[:, :1], ys[:, :1], 0.5)
    assert loss == loss1
    assert_grads_close(g, g1, 0.0, "2-D vs (T, 1, m)")


# ---------------------------------------------------------------- every rule


@pytest.mark.parametrize("name", list(ALL_RULES))
def test_rule_loss_and_readout_gradients_are_exact(problem, name):
    p, xs, ys = problem
    loss, g = call(name, p, xs, ys, 0.5)
    exact_loss, exact = no.leaky_bptt(p, xs, ys, 0.5)
    assert_loss_close(loss, exact_loss, EXACT_RTOL, name)
    for field in ("W_out", "b_out"):
        assert naive.relative_error(getattr(g, field), getattr(exact, field)) <= EXACT_RTOL


@pytest.mark.parametrize("name", ["snap1", "rflo", *no.STOCHASTIC])
def test_approximate_rule_differs_from_exact_on_a_generic_problem(problem, name):
    """Guards the equalities below: on a dense W_hh these rules are not RTRL."""
    p, xs, ys = problem
    _, exact = no.leaky_rtrl(p, xs, ys, 0.5)
    _, g = call(name, p, xs, ys, 0.5)
    assert recurrent_error(g, exact) > DIFFERENT_AT_LEAST


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", ["snap1", "snap2", "rflo", "kf_rtrl"])
def test_rule_is_exact_at_T1(problem, name, alpha):
    """J_1 = M_1: every deterministic rule holds it, and so does KF-RTRL (u_0 = 0, K_0 = 0)."""
    p, xs, ys = problem
    _, exact = no.leaky_rtrl(p, xs[:1], ys[:1], alpha)
    _, g = call(name, p, xs[:1], ys[:1], alpha)
    assert_grads_close(g, exact, EXACT_RTOL, f"{name} at T=1")


@pytest.mark.parametrize("name", list(no.DETERMINISTIC))
def test_deterministic_rule_sums_independent_batch_elements(problem, name):
    p, xs, ys = problem
    _, g = call(name, p, xs, ys, 0.5)
    parts = [call(name, p, xs[:, b : b + 1], ys[:, b : b + 1], 0.5)[1] for b in range(2)]
    summed = naive.RNNParams(*(a + b for a, b in zip(*parts, strict=True)))
    assert_grads_close(g, summed, EXACT_RTOL, f"{name}: batch of 2 vs sum of two")


# ---------------------------------------------------------------- the deterministic rules


@pytest.mark.parametrize("alpha", ALPHAS)
def test_snap1_is_exact_for_diagonal_W_hh(problem, rng, alpha):
    p, xs, ys = problem
    p = p._replace(W_hh=np.diag(rng.normal(0.0, 0.6, 4)))
    _, exact = no.leaky_rtrl(p, xs, ys, alpha)
    _, g = no.snap1(p, xs, ys, alpha)
    assert_grads_close(g, exact, EXACT_RTOL, "snap1 with diagonal W_hh")


@pytest.mark.parametrize("alpha", ALPHAS)
def test_snap2_is_exact_for_dense_W_hh(problem, alpha):
    p, xs, ys = problem
    _, exact = no.leaky_rtrl(p, xs, ys, alpha)
    _, g = no.snap2(p, xs, ys, alpha)
    assert_grads_close(g, exact, EXACT_RTOL, "snap2 with dense W_hh")


@pytest.mark.parametrize("alpha", ALPHAS)
def test_snap2_on_a_sparse_W_hh_is_exact_up_to_T2_and_differs_from_T3(problem, rng, alpha):
    """On a ring the two-hop influence i -> i+1 -> i+2 first appears in J_3."""
    p, xs, ys = problem
    p = p._replace(W_hh=ring(4, rng))
    for T in (1, 2):
        _, exact = no.leaky_rtrl(p, xs[:T], ys[:T], alpha)
        _, g = no.snap2(p, xs[:T], ys[:T], alpha)
        assert_grads_close(g, exact, EXACT_RTOL, f"snap2 on a ring at T={T}")
    for T in (3, 7):
        _, exact = no.leaky_rtrl(p, xs[:T], ys[:T], alpha)
        _, g = no.snap2(p, xs[:T], ys[:T], alpha)
        assert recurrent_error(g, exact) > DIFFERENT_AT_LEAST, f"snap2 on a ring at T={T}"


def test_snap_mask_is_the_reach_of_unit_i_within_n_minus_1_steps(rng):
    W = ring(4, rng)
    ones = np.ones((4, 4))
    np.testing.assert_array_equal(no.snap_mask(W, 1), np.eye(4))
    np.testing.assert_array_equal(no.snap_mask(W, 2), np.eye(4) + (W != 0))
    np.testing.assert_array_equal(no.snap_mask(W, 3), np.eye(4) + (W != 0) + (W @ W != 0))
    np.testing.assert_array_equal(no.snap_mask(W, 4), ones)  # the ring closes after 3 hops
    np.testing.assert_array_equal(no.snap_mask(rng.normal(size=(4, 4)), 2), ones)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_snap_of_order_1_is_snap1_and_of_order_n_is_rtrl_on_a_ring(problem, rng, alpha):
    p, xs, ys = problem
    p = p._replace(W_hh=ring(4, rng))
    _, order1 = no.snap(p, xs, ys, alpha, order=1)
    _, order4 = no.snap(p, xs, ys, alpha, order=4)
    assert_grads_close(order1, no.snap1(p, xs, ys, alpha)[1], EXACT_RTOL, "snap(order=1) vs snap1")
    assert_grads_close(order4, no.leaky_rtrl(p, xs, ys, alpha)[1], EXACT_RTOL, "snap(order=4)")


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("name", ["snap1", "snap2", "rflo"])
def test_deterministic_rule_is_exact_when_W_hh_is_zero(problem, name, alpha):
    """A_t = (1 - alpha) I: the influence stays on its diagonal blocks, decaying by the leak."""
    p, xs, ys = problem
    p = p._replace(W_hh=np.zeros((4, 4)))
    _, exact = no.leaky_rtrl(p, xs, ys, alpha)
    _, g = call(name, p, xs, ys, alpha)
    assert_grads_close(g, exact, EXACT_RTOL, f"{name} with W_hh = 0")


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed={s}")
def test_kf_rtrl_is_exact_up_to_eps_when_W_hh_is_zero_and_alpha_is_one(problem, seed):
    p, xs, ys = problem
    p = p._replace(W_hh=np.zeros((4, 4)))
    _, exact = no.leaky_rtrl(p, xs, ys, 1.0)
    _, g = no.kf_rtrl(p, xs, ys, 1.0, seed=seed)
    assert_grads_close(g, exact, KF_EPS_RTOL, "kf_rtrl with W_hh = 0, alpha = 1")


@pytest.mark.parametrize("alpha", ALPHAS)
def test_rflo_equals_snap1_when_W_hh_has_a_zero_diagonal(problem, alpha):
    """RFLO's trace decays by (1 - alpha), SnAp-1's by (1 - alpha) + d * diag(W_hh)."""
    p, xs, ys = problem
    _, g_snap = no.snap1(p, xs, ys, alpha)
    _, g_rflo = no.rflo(p, xs, ys, alpha)
    assert recurrent_error(g_rflo, g_snap) > DIFFERENT_AT_LEAST
    p = p._replace(W_hh=p.W_hh - np.diag(np.diag(p.W_hh)))
    _, g_snap = no.snap1(p, xs, ys, alpha)
    _, g_rflo = no.rflo(p, xs, ys, alpha)
    assert_grads_close(g_rflo, g_snap, EXACT_RTOL, "rflo vs snap1 with zero diagonal")


# ---------------------------------------------------------------- the stochastic rules

# Unbiasedness: seeds 0..N_SEEDS-1 on one tiny problem (n = 3, m = 2, p = 2, T = 4,
# B = 1, alpha = 0.5). For an unbiased rule E|mean_N - g*|^2 = tr(Cov) / N, so
#  - the root-mean-square error of the 16 disjoint means of 64 seeds over the
#    error of the mean of all 1024 is near sqrt(1024 / 64) = 4; measured over
#    eight problems: 3.1 to 7.4 (the denominator is a single draw). A bias b
#    pulls the ratio towards 1 once |b| is comparable to the standard error.
#  - the error of the 1024-seed mean is within a few standard errors
#    sqrt(tr Cov / 1024); measured 0.5 to 1.2 over the same eight problems. The
#    bound of 3 standard errors is a bias below 3 / 32 ~ 0.094 of the spread
#    sqrt(tr Cov) of one estimate.
N_SEEDS, BLOCK = 1024, 64
RATIO_BOUNDS = (2.0, 8.0)
STANDARD_ERRORS = 3.0
UNBIASED_PROBLEM_SEED = 104


@functools.cache
def seed_samples(name):
    """(exact recurrent gradient, (N_SEEDS, P) estimates): flat (W_hh, W_ih, b_h)."""
    rng = np.random.default_rng(UNBIASED_PROBLEM_SEED)
    p = naive.RNNParams(*helpers.rnn_arrays(rng, 2, 3, 2))
    xs, ys = helpers.sequence(rng, 4, 1, 2, 2)

    def flat(g):
        return np.concatenate([getattr(g, f).ravel() for f in RECURRENT])

    exact = flat(no.leaky_rtrl(p, xs, ys, 0.5)[1])
    samples = np.array(
        [flat(no.STOCHASTIC[name](p, xs, ys, 0.5, seed=s)[1]) for s in range(N_SEEDS)]
    )
    return exact, samples


@pytest.mark.parametrize("name", list(no.STOCHASTIC))
def test_mean_over_seeds_approaches_rtrl_like_one_over_sqrt_N(name):
    exact, samples = seed_samples(name)
    blocks = samples.reshape(N_SEEDS // BLOCK, BLOCK, -1).mean(axis=1)
    rms_small = np.sqrt(np.mean(np.sum((blocks - exact) ** 2, axis=1)))
    error_all = np.linalg.norm(samples.mean(axis=0) - exact)
    ratio = rms_small / error_all
    assert RATIO_BOUNDS[0] <= ratio <= RATIO_BOUNDS[1], (
        f"{name}: error at N={BLOCK} / error at N={N_SEEDS} = {ratio:.2f}, expected about 4"
    )


@pytest.mark.parametrize("name", list(no.STOCHASTIC))
def test_bias_is_small_against_the_spread(name):
    exact, samples = seed_samples(name)
    error = np.linalg.norm(samples.mean(axis=0) - exact)
    spread = np.sqrt(np.sum(samples.var(axis=0, ddof=1)))
    standard_error = spread / np.sqrt(N_SEEDS)
    assert error <= STANDARD_ERRORS * standard_error, (
        f"{name}: |mean - exact| = {error:.3g} is {error / standard_error:.2f} standard errors"
        f" (spread {spread:.3g})"
    )


@pytest.mark.parametrize("name", list(no.STOCHASTIC))
def test_same_seed_same_result_and_different_seeds_differ(problem, name):
    p, xs, ys = problem
    _, g1 = call(name, p, xs, ys, 0.5, seed=7)
    _, g2 = call(name, p, xs, ys, 0.5, seed=7)
    _, g3 = call(name, p, xs, ys, 0.5, seed=8)
    assert_grads_close(g1, g2, 0.0, f"{name}, same seed")
    assert max_grad_difference(g1, g3) > DIFFERENT_AT_LEAST


# The random protocol, replayed from one array of raw outputs: per step t (outer),
# per batch element b (inner), ceil(k / 64) outputs whose bits, least significant
# first, are the k signs (set: +1). One random_raw call yields the same outputs in
# that order. The replay below is a second implementation of each rule, vectorised
# over the batch, driven by the signs instead of a generator.
DRAWS_PER_STEP = {"uoro": lambda n: n, "kf_rtrl": lambda n: 2, "r_kf": lambda n: n}


def replay(name, p, xs, ys, alpha, signs):
    """Recurrent gradient G (n, r) of ``name`` given signs (T, B, k)."""
    hs, pre, yhat = no.leaky_forward(p, xs, alpha)
    T, B, _ = xs.shape
    n = p.W_hh.shape[0]
    r = n + xs.shape[2] + 1
    E = no.EPS

    def ratio(num, den):
        return np.sqrt(num / (den + E)) + E

    def norms(a):  # one Frobenius norm per batch element
        return np.sqrt(np.sum(a.reshape(B, -1) ** 2, axis=1))

    G = np.zeros((n, r))
    vec = np.zeros((B, r if name == "kf_rtrl" else n))  # u, or s, or a
    mat = np.zeros((B, n, n) if name == "kf_rtrl" else (B, n, r))  # K, or th, or K
    for t in range(T):
        z = np.concatenate([hs[t], xs[t], np.ones((B, 1))], axis=1)  # (B, r)
        d = alpha * (1.0 - np.tanh(pre[t]) ** 2)  # (B, n)
        A = (1.0 - alpha) * np.eye(n) + d[:, :, None] * p.W_hh  # (B, n, n)
        c = (yhat[t] - ys[t]) @ p.W_out  # (B, n)
        if name == "kf_rtrl":
            c1, c2 = signs[t, :, 0:1], signs[t, :, 1:2]
            AK = A @ mat
            p1 = ratio(norms(AK), norms(vec))[:, None]
            p2 = ratio(norms(d), norms(z))[:, None]
            vec = c1 * p1 * vec + c2 * p2 * z
            mat = (c1 / p1)[:, :, None] * AK + (c2 / p2)[:, :, None] * (np.eye(n) * d[:, None, :])
            G += np.einsum("bj,bji,bc->ic", c, mat, vec)
            continue
        nu = signs[t]  # (B, n)
        nuM = (nu * d)[:, :, None] * z[:, None, :]  # (B, n, r)
        if name == "uoro":
            As = np.einsum("bjk,bk->bj", A, vec)
            rho0 = ratio(norms(mat), norms(As))[:, None]
            rho1 = ratio(norms(nuM), norms(nu))[:, None]
            vec = rho0 * As + rho1 * nu
            mat = mat / rho0[:, :, None] + nuM / rho1[:, :, None]
            G += np.einsum("b,bic->ic", np.sum(c * vec, axis=1), mat)
        else:  # r_kf
            AK = A @ mat
            p0 = ratio(norms(AK), norms(vec))[:, None]
            p1 = ratio(norms(nuM), norms(nu))[:, None]
            vec = p0 * vec + p1 * nu
            mat = AK / p0[:, :, None] + nuM / p1[:, :, None]
            G += np.einsum("bi,bj,bjc->ic", vec, c, mat)
    return G


@pytest.mark.parametrize("name", list(no.STOCHASTIC))
def test_random_protocol_replays_from_one_array_of_raw_outputs(problem, name):
    p, xs, ys = problem
    xs, ys = xs[:3], ys[:3]  # T = 3, B = 2: the order of t, b and of c1, c2 all matter
    T, B, _ = xs.shape
    n = p.W_hh.shape[0]
    seed = 11
    k = DRAWS_PER_STEP[name](n)
    raw = np.random.PCG64(seed).random_raw((T, B, -(-k // 64)))
    G = replay(name, p, xs, ys, 0.5, no.bits_to_signs(raw, k))
    _, g = no.STOCHASTIC[name](p, xs, ys, 0.5, seed=seed)
    expected = naive.RNNParams(G[:, n:-1], G[:, :n], G[:, -1], g.W_out, g.b_out)
    assert_grads_close(g, expected, EXACT_RTOL, f"{name} vs its replay from the documented draws")


@pytest.mark.parametrize("name", list(no.STOCHASTIC))
def test_draws_of_the_first_steps_do_not_depend_on_T(problem, name):
    """What a stream needs: steps 1..t consume the same outputs whatever follows them.

    The last step's target is set to the output, so it adds nothing to the
    recurrent gradient; the rest must then be bit for bit the shorter run's.
    """
    p, xs, ys = problem
    xs, ys = xs[:3], ys[:3].copy()
    _, _, yhat = no.leaky_forward(p, xs, 0.5)
    ys[-1] = yhat[-1]
    _, g_long = no.STOCHASTIC[name](p, xs, ys, 0.5, seed=5)
    _, g_short = no.STOCHASTIC[name](p, xs[:2], ys[:2], 0.5, seed=5)
    for field in RECURRENT:
        np.testing.assert_array_equal(getattr(g_long, field), getattr(g_short, field))
