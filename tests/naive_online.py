"""Plain-NumPy references of the online gradient rules, on the leaky Elman cell.

Written from THEORY.md ("A leak, so that the cheap rules differ", "Online
approximations") and the papers it cites; nothing here imports ``kernels`` or
``bpttbench``. These functions are what the Numba kernels of the online rules
are held to: bit for bit where a rule is deterministic, seed for seed where it
is stochastic (the random protocol below is part of the contract).

The model
---------
The leaky Elman cell of Murray 2019 and Marschall, Cho & Savin 2020, with
0 < alpha <= 1 (alpha = 1 is the plain cell of ``naive``)::

    a_t    = W_ih x_t + W_hh h_{t-1} + b_h          h_0 = 0
    h_t    = (1 - alpha) h_{t-1} + alpha tanh(a_t)
    yhat_t = W_out h_t + b_out
    L      = 1/2 sum_t sum_b || yhat_t,b - y_t,b ||^2

Parameters are any object with the fields of ``naive.RNNParams``; ``alpha`` is a
separate keyword. Arrays are (T, B, m) inputs and (T, B, p) targets (a 2-D
(T, m) sequence means B = 1). Every function returns ``(loss, grads)`` with
``grads`` a ``naive.RNNParams``.

Notation (per step t and batch element b):

- phi'(a_t) = 1 - tanh(a_t)^2 (of the pre-activation: with a leak this is
  *not* 1 - h_t^2);
- d_t = alpha phi'(a_t), the immediate factor: dh_t/dW[i, c] has the single
  non-zero entry d_t,i z_t,c in row i;
- z_t = (h_{t-1}, x_t, 1), of length r = n + m + 1;
- A_t = dh_t/dh_{t-1} = (1 - alpha) I + diag(d_t) W_hh;
- e_t = yhat_t - y_t and c_t = dL_t/dh_t = W_out^T e_t;
- G, the recurrent gradient, an (n x r) matrix whose columns split as
  (W_hh | W_ih | b_h); the influence J_t = dh_t/dG is held as (n, n, r) with
  J[j, i, c] = dh_t,j / dG[i, c].

Every rule returns the sum over steps (and over batch elements) of its per-step
estimate c_t^T Jhat_t, with the weights held fixed; each batch element carries
its own approximate influence state, starting at zero. The readout gradients
are exact in every rule: sum_t e_t h_t^T and sum_t e_t. The loss is the leaky
loss above.

The rules
---------
``leaky_bptt`` and ``leaky_rtrl`` are exact (reverse mode, and forward mode
with the full influence matrix J_t = A_t J_{t-1} + M_t).

- ``uoro`` (Tallec & Ollivier 2018): J ~ s th^T, s (n), th (n x r).
  nu in {-1, +1}^n; rho0 = ratio(|th|, |A s|), rho1 = ratio(|nu^T M|, |nu|),
  where nu^T M = outer(nu * d, z);
  s <- rho0 A s + rho1 nu;  th <- th / rho0 + (nu^T M) / rho1;
  gradient (c . s) th.
- ``kf_rtrl`` (Mujika, Meier & Steger 2018): J[j, i, c] ~ K[j, i] u[c],
  u (r), K (n x n). c1, c2 in {-1, +1};
  p1 = ratio(|A K|, |u|), p2 = ratio(|diag d|, |z|);
  u <- c1 p1 u + c2 p2 z;  K <- c1 (A K) / p1 + c2 diag(d) / p2;
  gradient outer(c^T K, u).
- ``r_kf`` (Marschall, Cho & Savin 2020, "reverse" KF-RTRL): J[j, i, c] ~
  a[i] K[j, c], a (n), K (n x r). nu in {-1, +1}^n;
  p0 = ratio(|A K|, |a|), p1 = ratio(|outer(nu * d, z)|, |nu|);
  a <- p0 a + p1 nu;  K <- (A K) / p0 + outer(nu * d, z) / p1;
  gradient outer(a, c^T K).
- ``snap1`` (Menick et al. 2021): J restricted to its diagonal blocks,
  J[j, i, c] = [i == j] S[i, c]; S <- diag(A)[:, None] * S + outer(d, z),
  with diag(A) = (1 - alpha) + d * diag(W_hh); gradient c[:, None] * S.
- ``snap`` / ``snap2``: SnAp-n keeps the entries of J that are non-zero within
  n steps (Menick et al.): a parameter of row i moves h_i at its first step and
  unit j one step after each hop i -> j, so J[j, i, :] is kept where unit j is
  reached from unit i within n - 1 steps of the recurrent core, i.e. where
  (I + [W_hh != 0])^(n - 1) is non-zero (``snap_mask``); J <- mask * (A J + M).
  SnAp-1's mask is I. SnAp-2's is I + [W_hh != 0]: for a dense W_hh it is
  full, so SnAp-2 == RTRL; for a sparse W_hh it equals RTRL up to T = 2 and
  differs from T = 3 on (once a two-hop path i -> k -> j exists with
  W_hh[j, i] = 0). The mask is taken from the zero pattern of W_hh.
- ``rflo`` (Murray 2019): B <- (1 - alpha) B + outer(d, z); gradient
  c[:, None] * B. Murray's rule feeds the error back through a fixed random
  matrix; here, as in Marschall et al.'s framework, the feedback is the true
  c_t = W_out^T e_t, so only the trace is approximate. On this model e-prop for
  rate units (Bellec et al. 2020) is the same rule: its eligibility trace
  propagates through the unit's own leak (1 - alpha) and ignores every
  recurrent weight, self-connection included, so ``rflo`` is the one
  implementation of both. It differs from SnAp-1 only by the term
  d * diag(W_hh) of the trace's decay, so rflo == snap1 when diag(W_hh) = 0.

Norm ratios
-----------
ratio(num, den) = sqrt(num / (den + EPS)) + EPS with EPS = 1e-7, every norm
Frobenius (the vector 2-norm for a vector). This is the form of Tallec &
Ollivier's Algorithm 1 (and of vanilla-rtrl's UORO in its epsilon mode); it
keeps the zero initial states finite: the first step has ratio(0, 0) = EPS, and
the zero factor divided by EPS stays zero. Any positive factor that does not
depend on the step's signs, or is even in them, keeps the rules unbiased.

Random protocol
---------------
One generator per call, ``numpy.random.PCG64(seed)``. Draws are made only
with ``random_raw(w)`` (w raw 64-bit outputs) and turned into k signs: sign i
is bit i mod 64 of output i // 64, least significant first, +1 where the bit
is set and -1 where it is clear, w = ceil(k / 64) (``signs(bits, k)``). For
t = 1..T (outer loop) and, within each step, for b = 0..B-1 (inner loop),
before that batch element's state update:

- ``uoro``:    nu = signs(bits, n)
- ``kf_rtrl``: c1, c2 = signs(bits, 2)       (c1 from bit 0)
- ``r_kf``:    nu = signs(bits, n)

Nothing else is drawn. A call therefore consumes T * B * ceil(k / 64)
outputs (k = n, 2, n), the draws of steps 1..t do not depend on T (so a
stream that carries the generator across chunks reproduces the one-shot
call), and the T * B draws yield the same outputs as one
random_raw(T * B * w). Flipping every sign maps the states of UORO and R-KF
to their negatives and leaves their estimates unchanged bit for bit, so only
KF-RTRL can tell a kernel's sign convention from this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from naive import RNNParams

EPS = 1e-7


# ---------------------------------------------------------------- model


def _prepare(p, xs, ys):
    p = RNNParams(*(np.asarray(getattr(p, f), dtype=np.float64) for f in RNNParams._fields))
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    if xs.ndim == 2:
        xs, ys = xs[:, None, :], ys[:, None, :]
    return p, xs, ys


def leaky_forward(p, xs, alpha=1.0):
    """States, pre-activations and outputs of the leaky cell from h_0 = 0.

    Returns ``hs`` (T + 1, B, n) with ``hs[0] = 0``, ``pre`` (T, B, n) with
    ``pre[t - 1] = a_t``, and ``yhat`` (T, B, p).
    """
    p, xs, _ = _prepare(p, xs, xs)
    T, B, _ = xs.shape
    n = p.W_hh.shape[0]
    hs = np.zeros((T + 1, B, n))
    pre = np.zeros((T, B, n))
    for t in range(1, T + 1):
        pre[t - 1] = xs[t - 1] @ p.W_ih.T + hs[t - 1] @ p.W_hh.T + p.b_h
        hs[t] = (1.0 - alpha) * hs[t - 1] + alpha * np.tanh(pre[t - 1])
    yhat = hs[1:] @ p.W_out.T + p.b_out
    return hs, pre, yhat


def leaky_loss(p, xs, ys, alpha=1.0) -> float:
    """1/2 sum_t sum_b ||yhat - y||^2 of the leaky cell."""
    p, xs, ys = _prepare(p, xs, ys)
    _, _, yhat = leaky_forward(p, xs, alpha)
    return 0.5 * float(np.sum((yhat - ys) ** 2))


def _split(p: RNNParams, G, g_W_out, g_b_out) -> RNNParams:
    """Gradients as RNNParams from G = (W_hh | W_ih | b_h) and the readout's."""
    n, m = p.W_ih.shape
    return RNNParams(
        W_ih=G[:, n : n + m].copy(),
        W_hh=G[:, :n].copy(),
        b_h=G[:, n + m].copy(),
        W_out=g_W_out,
        b_out=g_b_out,
    )


# ---------------------------------------------------------------- exact


def leaky_bptt(p, xs, ys, alpha=1.0):
    """Epochwise BPTT of the leaky cell: (loss, gradient).

    The error at the copy node of h_t is the error from y_t plus the error
    from h_{t+1}: g_t = W_out^T e_t + A_{t+1}^T g_{t+1}, with
    A^T g = (1 - alpha) g + W_hh^T (d * g). Then dL/da_t = d_t * g_t.
    """
    p, xs, ys = _prepare(p, xs, ys)
    hs, pre, yhat = leaky_forward(p, xs, alpha)
    T = xs.shape[0]
    e = yhat - ys
    g = RNNParams(*(np.zeros_like(a) for a in p))
    g_next = np.zeros_like(hs[0])  # dL/dh_{t+1}, all paths
    delta_next = np.zeros_like(hs[0])  # dL/da_{t+1}
    for t in range(T, 0, -1):
        g.W_out[...] += e[t - 1].T @ hs[t]
        g.b_out[...] += e[t - 1].sum(axis=0)
        g_t = e[t - 1] @ p.W_out + (1.0 - alpha) * g_next + delta_next @ p.W_hh
        delta = g_t * alpha * (1.0 - np.tanh(pre[t - 1]) ** 2)
        g.W_ih[...] += delta.T @ xs[t - 1]
        g.W_hh[...] += delta.T @ hs[t - 1]
        g.b_h[...] += delta.sum(axis=0)
        g_next, delta_next = g_t, delta
    return 0.5 * float(np.sum(e**2)), g


class _Step(NamedTuple):
    t: int  # 1..T
    b: int
    z: np.ndarray  # (r,)  (h_{t-1}, x_t, 1)
    d: np.ndarray  # (n,)  alpha phi'(a_t)
    A: np.ndarray  # (n, n) dh_t/dh_{t-1}
    c: np.ndarray  # (n,)  W_out^T (yhat_t - y_t)


def _steps(p: RNNParams, xs, ys, alpha) -> Iterator[_Step]:
    """The per-step quantities, t outer and b inner: the order of the random protocol."""
    hs, pre, yhat = leaky_forward(p, xs, alpha)
    T, B, _ = xs.shape
    n = p.W_hh.shape[0]
    for t in range(1, T + 1):
        for b in range(B):
            z = np.concatenate([hs[t - 1, b], xs[t - 1, b], [1.0]])
            d = alpha * (1.0 - np.tanh(pre[t - 1, b]) ** 2)
            A = (1.0 - alpha) * np.eye(n) + d[:, None] * p.W_hh
            c = p.W_out.T @ (yhat[t - 1, b] - ys[t - 1, b])
            yield _Step(t, b, z, d, A, c)


def _loss_and_readout(p: RNNParams, xs, ys, alpha):
    hs, _, yhat = leaky_forward(p, xs, alpha)
    e = yhat - ys
    g_W_out = np.einsum("tbp,tbn->pn", e, hs[1:])
    return 0.5 * float(np.sum(e**2)), g_W_out, e.sum(axis=(0, 1))


def _sizes(p: RNNParams, xs):
    _, B, m = xs.shape
    n = p.W_hh.shape[0]
    return B, n, n + m + 1


def _finish(p, xs, ys, alpha, G):
    loss, g_W_out, g_b_out = _loss_and_readout(p, xs, ys, alpha)
    return loss, _split(p, G, g_W_out, g_b_out)


def _masked_influence(p, xs, ys, alpha, mask):
    """Forward mode with J <- mask * (A J + M); mask (n, n) over (j, i)."""
    B, n, r = _sizes(p, xs)
    J = np.zeros((B, n, n, r))
    units = np.arange(n)
    G = np.zeros((n, r))
    for s in _steps(p, xs, ys, alpha):
        Jb = np.einsum("jk,kic->jic", s.A, J[s.b])
        Jb[units, units, :] += np.outer(s.d, s.z)  # M[j, i, c] = [j == i] d_i z_c
        J[s.b] = mask[:, :, None] * Jb
        G += np.einsum("j,jic->ic", s.c, J[s.b])
    return _finish(p, xs, ys, alpha, G)


def leaky_rtrl(p, xs, ys, alpha=1.0):
    """RTRL of the leaky cell: J_t = A_t J_{t-1} + M_t, gradient sum_t c_t^T J_t."""
    p, xs, ys = _prepare(p, xs, ys)
    n = p.W_hh.shape[0]
    return _masked_influence(p, xs, ys, alpha, np.ones((n, n)))


# ---------------------------------------------------------------- deterministic rules


def snap_mask(W_hh, order: int) -> np.ndarray:
    """SnAp-``order`` mask over (j, i): unit j within order - 1 steps of unit i.

    Edges i -> j are the non-zero entries W_hh[j, i]; a unit reaches itself in
    zero steps (and through the leak). ``order = 1`` gives I.
    """
    if order < 1:
        raise ValueError(f"SnAp order must be >= 1, got {order}")
    W_hh = np.asarray(W_hh)
    n = W_hh.shape[0]
    step = (np.eye(n) + (W_hh != 0)).astype(np.int64)
    reach = np.linalg.matrix_power(step, order - 1)
    return (reach > 0).astype(np.float64)


def snap(p, xs, ys, alpha=1.0, order=2):
    """SnAp-``order``: RTRL with the influence kept on ``snap_mask(W_hh, order)``."""
    p, xs, ys = _prepare(p, xs, ys)
    return _masked_influence(p, xs, ys, alpha, snap_mask(p.W_hh, order))


def snap2(p, xs, ys, alpha=1.0):
    """SnAp-2: influence kept where W_hh[j, i] != 0 or j == i."""
    return snap(p, xs, ys, alpha, order=2)


def snap1(p, xs, ys, alpha=1.0):
    """SnAp-1: S <- diag(A_t)[:, None] * S + outer(d_t, z_t); gradient c[:, None] * S."""
    p, xs, ys = _prepare(p, xs, ys)
    B, n, r = _sizes(p, xs)
    S = np.zeros((B, n, r))
    G = np.zeros((n, r))
    for s in _steps(p, xs, ys, alpha):
        S[s.b] = np.diag(s.A)[:, None] * S[s.b] + np.outer(s.d, s.z)
        G += s.c[:, None] * S[s.b]
    return _finish(p, xs, ys, alpha, G)


def rflo(p, xs, ys, alpha=1.0):
    """RFLO (= e-prop for rate units here): B <- (1 - alpha) B + outer(d_t, z_t)."""
    p, xs, ys = _prepare(p, xs, ys)
    B, n, r = _sizes(p, xs)
    trace = np.zeros((B, n, r))
    G = np.zeros((n, r))
    for s in _steps(p, xs, ys, alpha):
        trace[s.b] = (1.0 - alpha) * trace[s.b] + np.outer(s.d, s.z)
        G += s.c[:, None] * trace[s.b]
    return _finish(p, xs, ys, alpha, G)


# ---------------------------------------------------------------- stochastic rules


def _ratio(num, den):
    """sqrt(num / (den + EPS)) + EPS: the variance-minimising scale, finite at zero."""
    return np.sqrt(num / (den + EPS)) + EPS


def _norm(a) -> float:
    return float(np.sqrt(np.sum(np.square(a))))


def bits_to_signs(raw, k):
    """The protocol's k signs from raw uint64 outputs (..., ceil(k / 64)): bit i mod 64
    of output i // 64, least significant first, +1 where set (whatever the byte order)."""
    bits = (raw[..., None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    return np.where(bits.reshape(*raw.shape[:-1], -1)[..., :k] == 1, 1.0, -1.0)


def signs(bits, k):
    """k signs of the protocol from the bit generator ``bits`` (ceil(k / 64) raw outputs)."""
    return bits_to_signs(bits.random_raw(-(-k // 64)), k)


def _generator(seed):
    return np.random.PCG64(seed)


def uoro(p, xs, ys, alpha=1.0, seed=0):
    """UORO: J ~ s th^T, a rank-one unbiased estimate (see the module docstring)."""
    p, xs, ys = _prepare(p, xs, ys)
    B, n, r = _sizes(p, xs)
    rng = _generator(seed)
    s_ = np.zeros((B, n))
    th = np.zeros((B, n, r))
    G = np.zeros((n, r))
    for s in _steps(p, xs, ys, alpha):
        nu = signs(rng, n)
        As = s.A @ s_[s.b]
        nuM = np.outer(nu * s.d, s.z)  # nu^T M_t, as an (n, r) matrix
        rho0 = _ratio(_norm(th[s.b]), _norm(As))
        rho1 = _ratio(_norm(nuM), _norm(nu))
        s_[s.b] = rho0 * As + rho1 * nu
        th[s.b] = th[s.b] / rho0 + nuM / rho1
        G += (s.c @ s_[s.b]) * th[s.b]
    return _finish(p, xs, ys, alpha, G)


def kf_rtrl(p, xs, ys, alpha=1.0, seed=0):
    """KF-RTRL: J[j, i, c] ~ K[j, i] u[c], two random signs per step."""
    p, xs, ys = _prepare(p, xs, ys)
    B, n, r = _sizes(p, xs)
    rng = _generator(seed)
    u = np.zeros((B, r))
    K = np.zeros((B, n, n))
    G = np.zeros((n, r))
    for s in _steps(p, xs, ys, alpha):
        c1, c2 = signs(rng, 2)
        AK = s.A @ K[s.b]
        p1 = _ratio(_norm(AK), _norm(u[s.b]))
        p2 = _ratio(_norm(s.d), _norm(s.z))  # |diag(d)|_F = |d|
        u[s.b] = c1 * p1 * u[s.b] + c2 * p2 * s.z
        K[s.b] = c1 * AK / p1 + c2 * np.diag(s.d) / p2
        G += np.outer(s.c @ K[s.b], u[s.b])
    return _finish(p, xs, ys, alpha, G)


def r_kf(p, xs, ys, alpha=1.0, seed=0):
    """Reverse KF-RTRL: J[j, i, c] ~ a[i] K[j, c], one sign per unit per step."""
    p, xs, ys = _prepare(p, xs, ys)
    B, n, r = _sizes(p, xs)
    rng = _generator(seed)
    a = np.zeros((B, n))
    K = np.zeros((B, n, r))
    G = np.zeros((n, r))
    for s in _steps(p, xs, ys, alpha):
        nu = signs(rng, n)
        AK = s.A @ K[s.b]
        nuM = np.outer(nu * s.d, s.z)
        p0 = _ratio(_norm(AK), _norm(a[s.b]))
        p1 = _ratio(_norm(nuM), _norm(nu))
        a[s.b] = p0 * a[s.b] + p1 * nu
        K[s.b] = AK / p0 + nuM / p1
        G += np.outer(a[s.b], s.c @ K[s.b])
    return _finish(p, xs, ys, alpha, G)


DETERMINISTIC = {"snap1": snap1, "snap2": snap2, "rflo": rflo}
STOCHASTIC = {"uoro": uoro, "kf_rtrl": kf_rtrl, "r_kf": r_kf}


# --- SnAp-1 on the gated cells (Menick et al. 2021, sec. 3) ---------------------------
# SnAp-1 is RTRL whose influence matrix J_t = d state_t / d theta keeps only the entries
# that one step of the cell makes non-zero, J_t = keep * (A_t J_{t-1} + M_t), and drops
# the rest. A parameter of row k of weight_ih, weight_hh, bias_ih or bias_hh (any gate)
# enters the pre-activation of unit k mod n only, so one step moves that unit's state
# only: keep[j, theta] = [unit of state entry j == unit of theta's row], the state being
# h (GRU) or (h, c) (LSTM). A_t = d state_t / d state_{t-1} and M_t = d state_t / d theta
# (at a fixed state_{t-1}) are taken here by central differences of one step of the
# cell, so this reference shares no derivative with the kernel.


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def gated_step(kind: str, theta: list, state: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One step of the GRU or LSTM (PyTorch's gate order) for one sequence; state -> state."""
    weight_ih, weight_hh, bias_ih, bias_hh = theta
    n = weight_hh.shape[1]
    h = state[:n]
    if kind == "gru":
        gi, gh = weight_ih @ x + bias_ih, weight_hh @ h + bias_hh
        r = _sigmoid(gi[:n] + gh[:n])
        z = _sigmoid(gi[n : 2 * n] + gh[n : 2 * n])
        g = np.tanh(gi[2 * n :] + r * gh[2 * n :])
        return (1.0 - z) * g + z * h
    c = state[n:]
    a = weight_ih @ x + bias_ih + weight_hh @ h + bias_hh
    i, f, o = _sigmoid(a[:n]), _sigmoid(a[n : 2 * n]), _sigmoid(a[3 * n :])
    c_new = f * c + i * np.tanh(a[2 * n : 3 * n])
    return np.concatenate([o * np.tanh(c_new), c_new])


def _flat(theta):
    return np.concatenate([a.ravel() for a in theta])


def _unflat(vec, like):
    out, at = [], 0
    for a in like:
        out.append(vec[at : at + a.size].reshape(a.shape))
        at += a.size
    return out


def gated_snap1(kind: str, params, xs, ys, masked: bool = True, eps: float = 1e-6):
    """(loss, [g_weight_ih, g_weight_hh, g_bias_ih, g_bias_hh, g_W_out, g_b_out]) of SnAp-1.

    ``params`` has the fields weight_ih, weight_hh, bias_ih, bias_hh, W_out, b_out;
    ``masked=False`` keeps every entry: exact RTRL (a check of this reference).
    """
    theta = [np.asarray(getattr(params, k), np.float64)
             for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]  # fmt: skip
    W_out, b_out = (np.asarray(a, np.float64) for a in (params.W_out, params.b_out))
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    T, B, _ = xs.shape
    n = theta[1].shape[1]
    ns = n if kind == "gru" else 2 * n
    flat = _flat(theta)
    unit_theta = np.concatenate([np.repeat(np.arange(a.shape[0]) % n, a.size // a.shape[0])
                                 for a in theta])  # fmt: skip
    keep = (np.arange(ns)[:, None] % n) == unit_theta[None, :]
    if not masked:
        keep[:] = True
    grad = np.zeros_like(flat)
    g_W_out, g_b_out = np.zeros_like(W_out), np.zeros_like(b_out)
    loss = 0.0
    for b in range(B):
        state, J = np.zeros(ns), np.zeros((ns, flat.size))
        for t in range(T):
            x = xs[t, b]
            A = np.empty((ns, ns))
            for j in range(ns):
                d = np.zeros(ns)
                d[j] = eps
                A[:, j] = (gated_step(kind, theta, state + d, x)
                           - gated_step(kind, theta, state - d, x)) / (2 * eps)  # fmt: skip
            M = np.empty((ns, flat.size))
            for q in range(flat.size):
                d = np.zeros(flat.size)
                d[q] = eps
                up = gated_step(kind, _unflat(flat + d, theta), state, x)
                down = gated_step(kind, _unflat(flat - d, theta), state, x)
                M[:, q] = (up - down) / (2 * eps)
            J = np.where(keep, A @ J + M, 0.0)
            state = gated_step(kind, theta, state, x)
            h = state[:n]
            e = W_out @ h + b_out - ys[t, b]
            loss += 0.5 * float(e @ e)
            g_W_out += np.outer(e, h)
            g_b_out += e
            grad += (W_out.T @ e) @ J[:n]
    return loss, [*_unflat(grad, theta), g_W_out, g_b_out]
