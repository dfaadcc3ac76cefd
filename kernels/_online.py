"""What the online rules share: the leaky cell's step, the leak and seed checks, costs.

The online rules (``uoro.py``, ``kf_rtrl.py``, ``r_kf.py``, ``snap1.py``,
``snap2.py``, ``rflo.py``) run the leaky Elman cell of Murray 2019 and
Marschall, Cho & Savin 2020 (THEORY.md, "A leak, so that the cheap rules
differ"), 0 < alpha <= 1, alpha = 1 being the plain cell of ``model.py``::

    a_t    = W_ih x_t + W_hh h_{t-1} + b_h                h_0 = 0
    h_t    = (1 - alpha) h_{t-1} + alpha tanh(a_t)
    d_t    = alpha phi'(a_t) = alpha (1 - tanh(a_t)^2)     the immediate factor
    z_t    = (h_{t-1}, x_t, 1)                             length r = n + m + 1
    A_t    = dh_t / dh_{t-1} = (1 - alpha) I + diag(d_t) W_hh
    e_t    = W_out h_t + b_out - y_t,    c_t = dL_t / dh_t = W_out^T e_t

and each keeps its own approximation of the influence J_t = dh_t / dtheta of
the recurrent parameters theta = (W_hh | W_ih | b_h), an (n x r) matrix G of
gradients whose row k is the parameters of unit k. Every rule returns the sum
over steps and batch elements of its per-step estimate c_t^T Jhat_t with the
weights held fixed; the readout gradients sum_t e_t h_t^T and sum_t e_t are
exact. Each batch element carries its own state, starting at zero.

Every rule is written as a pair: ``start(...)`` returns the state at t = 0,
``advance(state, arrays, xs, ys)`` runs the steps of ``xs`` from that state
and leaves the final state in it. A one-shot call is one ``advance`` from a
fresh state; ``stream.py`` calls ``advance`` once per chunk, which is why a
streamed sequence reproduces the one-shot gradient.

Random protocol of the stochastic rules (tests/naive_online.py): one
``numpy.random.PCG64(seed)`` per call or stream; for t = 1..T, for b =
0..B-1, before that element's update, k random signs (k = n for UORO and
R-KF, 2 for KF-RTRL, c1 first) from ceil(k / 64) raw 64-bit outputs
(``random_raw``): sign i is bit i mod 64 of output i // 64, least significant
first, 1 -> +1 and 0 -> -1. A sign is one bit, and drawing a whole double for
each (as this protocol did at first) cost UORO ~2 ns a sign, 7% of its step at
n = 64. The kernels draw the outputs inside the time loop, from the generator's
state carried as four uint64 words (:func:`pcg_words`, :func:`pcg_next`: the
same outputs, bit for bit), so nothing is allocated per step and no Generator
is unboxed per call.

Blocking: a rule whose gradient term is a rank-one update per step of a state
that is itself updated by rank-one terms (UORO's theta~, SnAp-1's and RFLO's
traces) gathers the terms of ``STEPS_PER_BLOCK`` steps and folds them into G
with one GEMM at the block's end (and at the end of every call), instead of
reading and writing all of G at every step; the block's coefficients come
from a backward recursion over its steps (see ``uoro.py``, ``snap1.py``).

Norm ratios: ratio(num, den) = sqrt(num / (den + EPS)) + EPS, EPS = 1e-7, of
Frobenius norms (Tallec & Ollivier 2018, Algorithm 1): finite on the zero
initial states.
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from ._jit import jit
from ._math import tanh
from ._matvec import matvec
from .costs import Term
from .model import RNNParams, readout_step

EPS = 1e-7

# Steps whose gradient terms a kernel gathers before folding them into G (and, for
# SnAp-1 and RFLO, into the trace) with one GEMM: the blocked path of uoro.py and
# snap1.py. Long enough for a GEMM, short enough that its buffers stay small; read
# at every call, so a test can shorten it to cross block boundaries on a short sequence.
STEPS_PER_BLOCK = 32


# --- checks --------------------------------------------------------------------------


def leak(params) -> float:
    """The cell's leak alpha, read from ``params.alpha`` (1.0 when absent): 0 < alpha <= 1."""
    alpha = getattr(params, "alpha", 1.0)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"params.alpha must be a real number in (0, 1], got {alpha!r}")
    alpha = float(alpha)
    if not 0.0 < alpha <= 1.0:  # NaN fails too
        raise ValueError(f"params.alpha must satisfy 0 < alpha <= 1, got {alpha}")
    return alpha


def check_seed(seed) -> int:
    """A non-negative int seed (bools are refused)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be a non-negative int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return int(seed)


# --- PCG64 in the kernel ---------------------------------------------------------------
# Numba unboxes a numpy Generator argument through ctypes at every call, about 10 us:
# a fifth of a 32-step UORO chunk at n = 64. The stochastic rules therefore carry the
# generator's 128-bit state as four uint64 words and draws from it here, bit for bit
# what numpy's PCG64 (XSL-RR 128/64) gives: its random_raw() outputs (tests/test_stream.py).

_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645
_M64 = (1 << 64) - 1
_MULT_HI, _MULT_LO = np.uint64(_PCG_MULT >> 64), np.uint64(_PCG_MULT & _M64)
_U32, _U58, _U63, _U64_1 = (np.uint64(v) for v in (32, 58, 63, 1))
_LOW32 = np.uint64(0xFFFFFFFF)


def pcg_words(seed: int) -> np.ndarray:
    """[state_hi, state_lo, inc_hi, inc_lo] of ``numpy.random.PCG64(seed)``, as uint64."""
    st = np.random.PCG64(seed).state["state"]
    return np.array(
        [st["state"] >> 64, st["state"] & _M64, st["inc"] >> 64, st["inc"] & _M64], np.uint64
    )


@jit
def _mulhi(x, y):
    """The high 64 bits of the 128-bit product of two uint64."""
    x0, x1 = x & _LOW32, x >> _U32
    y0, y1 = y & _LOW32, y >> _U32
    p00, p01, p10 = x0 * y0, x0 * y1, x1 * y0
    mid = (p00 >> _U32) + (p01 & _LOW32) + (p10 & _LOW32)
    return x1 * y1 + (p01 >> _U32) + (p10 >> _U32) + (mid >> _U32)


@jit
def pcg_next(w):
    """The next raw 64-bit output of the PCG64 whose words are ``w`` (advanced in place)."""
    s_hi, s_lo, i_hi, i_lo = w[0], w[1], w[2], w[3]
    # state <- state * MULT + inc  (mod 2^128)
    hi = _mulhi(s_lo, _MULT_LO) + s_hi * _MULT_LO + s_lo * _MULT_HI
    lo = s_lo * _MULT_LO
    new_lo = lo + i_lo
    hi = hi + i_hi + (_U64_1 if new_lo < lo else np.uint64(0))
    w[0], w[1] = hi, new_lo
    x = hi ^ new_lo  # XSL-RR output: rotate right by the top six bits of the state
    rot = hi >> _U58
    return (x >> rot) | (x << ((np.uint64(64) - rot) & _U63))


@jit(inline=True)
def bit_sign(word, i):
    """The protocol's sign from bit ``i`` (0..63) of a raw output: +1 if it is set, else -1."""
    return 1.0 if (word >> np.uint64(i)) & _U64_1 else -1.0


@jit
def draw_signs(rng, out):
    """Fill ``out`` with len(out) signs of the protocol, from the generator words ``rng``."""
    for i0 in range(0, out.shape[0], 64):
        word = pcg_next(rng)
        for i in range(i0, min(i0 + 64, out.shape[0])):
            out[i] = bit_sign(word, i - i0)


def kept_scratch(state, steps: int, make):
    """The buffers a kernel writes into, kept on ``state`` so that a stream allocates them once.

    ``make(steps)`` builds them for blocks of ``steps`` steps; they are rebuilt only
    when a call needs longer blocks than those held. (A one-shot call builds them
    once, for min(STEPS_PER_BLOCK, T) steps.)
    """
    held = getattr(state, "scratch", None)
    if held is None or held[0] < steps:
        state.scratch = (steps, make(steps))
    return state.scratch[1]


def kept_work(state, T: int, work_size, sizes, dtype) -> tuple[int, np.ndarray]:
    """(k, work): a flat scratch for blocks of k steps, kept like :func:`kept_scratch`'s.

    ``work_size(*sizes, k)`` is its length; k is the held block length, at least
    ``block_steps(T)`` (a stream keeps the longest blocks it has needed).
    """
    kept_scratch(state, block_steps(T), lambda k: np.empty(work_size(*sizes, k), dtype))
    return state.scratch


def block_steps(T: int) -> int:
    """Steps per block for a call of T steps."""
    return max(1, min(STEPS_PER_BLOCK, T))


@jit
def new_grads(n, m, p, dtype):
    """The five gradient arrays (W_ih, W_hh, b_h, W_out, b_out) for a kernel to add into.

    The blocked kernels (uoro.py, snap1.py) build them and fold G = (W_hh | W_ih
    | b_h) row by row straight into the first three, then return them: fresh
    arrays each call, owned by the caller (a stream keeps no reference), with
    no G to copy out and nothing to pass in. G's three are left uncleared: the
    kernel's first fold clears each row just before adding to it, while the
    row is in L1 (np.zeros would write all of G once more). At n = 256 the
    clearing and copying of G were about 5% of a 32-step chunk; at n = 64 the
    five allocations and arguments about 1 us of its ~45.
    """
    return (
        np.empty((n, m), dtype), np.empty((n, n), dtype), np.empty(n, dtype),
        np.zeros((p, n), dtype), np.zeros(p, dtype),
    )  # fmt: skip


def as_params(grads) -> RNNParams:
    """RNNParams of the five arrays of :func:`new_grads` (``_make``: no checks, alpha 1)."""
    return RNNParams._make(grads)


# --- flat buffers ----------------------------------------------------------------------
# A stream's chunk pays Numba's dispatch for every array it passes to a kernel and for
# every array a kernel returns (each is typed, unboxed or boxed: ~0.05 us an argument,
# more in tuples, ~0.3 us a returned array), and at n = 64 a 32-step chunk of SnAp-1 is
# ~45 us. So the blocked kernels take their scratch as one flat ``work`` array that they
# carve into views themselves (:func:`carve`), and fill the five gradient arrays as views
# of one flat array the caller allocates (:func:`grad_views`, :func:`grads_of`).


# Every carved array starts on a multiple of ALIGN elements (64 bytes of float64), one
# ALIGN past the end of the one before: packed end to end, an odd size (p = 1) would
# leave the block buffers' rows on no cache-line boundary, and arrays of 4 KiB
# multiples (SnAp-1's lambda, d and c of a 32-step block at n = 64) would sit at the
# same offsets within their pages, which the CPU's load-store checks take for overlaps.
ALIGN = 8


@jit(inline=True)
def carve(buf, at, shape):
    """(The view of ``buf[at:]`` of ``shape``, the aligned offset after it)."""
    size = 1
    for s in shape:
        size *= s
    return buf[at : at + size].reshape(shape), (at + size + ALIGN - 1) // ALIGN * ALIGN + ALIGN


def space(*sizes: int) -> int:
    """Elements of a flat buffer that :func:`carve` cuts into arrays of ``sizes``, in order."""
    return sum(-(-s // ALIGN) * ALIGN + ALIGN for s in sizes)


def grad_size(n: int, m: int, p: int) -> int:
    """Elements of the flat gradient array: W_ih, W_hh, b_h, W_out, b_out in turn."""
    return space(n * m, n * n, n, p * n, p)


@jit(inline=True)
def grad_views(g, n, m, p):
    """The five gradient arrays as views of the flat ``g`` (:func:`grad_size`), readout zeroed.

    G's three (W_ih, W_hh, b_h) are left as they are: the blocked kernels clear each
    row in their first fold, as with :func:`new_grads`.
    """
    g_W_ih, at = carve(g, 0, (n, m))
    g_W_hh, at = carve(g, at, (n, n))
    g_b_h, at = carve(g, at, (n,))
    g_W_out, at = carve(g, at, (p, n))
    g_b_out, at = carve(g, at, (p,))
    g_W_out[:] = 0.0
    g_b_out[:] = 0.0
    return g_W_ih, g_W_hh, g_b_h, g_W_out, g_b_out


@functools.cache
def grad_cuts(n: int, m: int, p: int) -> tuple:
    """What :func:`grads_of` needs: the sizes, and where each array of the flat one starts."""
    starts = [0]
    for size in (n * m, n * n, n, p * n):
        starts.append(starts[-1] + space(size))
    return n, m, p, *starts


def grads_of(g, n, m, p, i_ih, i_hh, i_b, i_out, i_bout) -> RNNParams:
    """RNNParams of the five views of the flat ``g`` that :func:`grad_views` filled.

    The starts are :func:`grad_cuts`'s, worked out once per state. Views of one fresh
    array per call: C-contiguous, owned by the caller (their base is that array,
    which nothing else holds).
    """
    return RNNParams._make(
        (
            g[i_ih : i_ih + n * m].reshape(n, m), g[i_hh : i_hh + n * n].reshape(n, n),
            g[i_b : i_b + n], g[i_out : i_out + p * n].reshape(p, n), g[i_bout : i_bout + p],
        )
    )  # fmt: skip


def gradients(G, g_W_out, g_b_out, m: int) -> RNNParams:
    """RNNParams from G = (W_hh | W_ih | b_h), row by row, and the readout's gradients."""
    n = G.shape[0]
    return RNNParams(
        W_ih=G[:, n : n + m].copy(), W_hh=G[:, :n].copy(), b_h=G[:, n + m].copy(),
        W_out=g_W_out, b_out=g_b_out,
    )  # fmt: skip


# --- the cell ------------------------------------------------------------------------


@jit
def rows_times_transpose(X, W, out):
    """out = X W^T for X (B, k), W (n, k): a hand-written product when B = 1, else a GEMM."""
    if X.shape[0] == 1:
        matvec(W, X[0], out[0])
    else:
        np.dot(X, W.T, out)


@jit
def cell_step(x, y, W_ih, W_hh, b_h, W_out, b_out, alpha, h_prev, h, d, c, e, g_W_out, g_b_out):
    """One step of the leaky cell for every batch element, and its readout.

    Reads x_t (B, m), y_t (B, p) and h_{t-1} (B, n); writes h_t into ``h``,
    d_t into ``d``, e_t into ``e`` (B, p) and c_t into ``c``; adds e_t h_t^T
    and e_t to the readout gradients. Returns sum_b |e_t|^2.
    """
    rows_times_transpose(h_prev, W_hh, d)
    return cell_step_from(
        x, y, W_ih, b_h, W_out, b_out, alpha, h_prev, h, d, c, e, g_W_out, g_b_out
    )


@jit(inline=True)
def cell_step_from(x, y, W_ih, b_h, W_out, b_out, alpha, h_prev, h, d, c, e, g_W_out, g_b_out):
    """:func:`cell_step` once ``d`` holds W_hh h_{t-1} (a rule that computed it with another
    product of W_hh, as UORO does, passes it in)."""
    B, n = h.shape
    rows_times_transpose(x, W_ih, h)  # h holds W_ih x_t for a moment
    leak = 1.0 - alpha
    for b in range(B):
        for i in range(n):
            th = tanh(h[b, i] + d[b, i] + b_h[i])
            h[b, i] = leak * h_prev[b, i] + alpha * th
            d[b, i] = alpha * (1.0 - th * th)
    sq = 0.0
    for b in range(B):
        sq = readout_step(W_out, b_out, h[b], y[b], e[b], c[b], g_W_out, g_b_out, sq)
    return sq


@jit
def fill_z(h_prev, x, z):
    """z_t = (h_{t-1}, x_t, 1) of one batch element."""
    n = h_prev.shape[0]
    m = x.shape[0]
    z[:n] = h_prev
    z[n : n + m] = x
    z[n + m] = 1.0


@jit
def ratio(num, den):
    """sqrt(num / (den + EPS)) + EPS, of two norms."""
    return math.sqrt(num / (den + EPS)) + EPS


# --- costs ---------------------------------------------------------------------------
# Every term is a monomial in the size variables it declares (tests/test_cost_models.py
# doubles each variable and checks the term scales by its powers), so a factor
# r = n + m + 1 becomes three terms.


def times_r(value, powers, n, m) -> list[Term]:
    """``value * r``, r = n + m + 1, as three monomials; ``powers`` are those of ``value``."""
    return [
        Term(value * n, {**powers, "n": powers.get("n", 0) + 1}),
        Term(value * m, {**powers, "m": powers.get("m", 0) + 1}),
        Term(value, dict(powers)),
    ]


def cell_flops(T, B, n, m, p) -> list[Term]:
    """FLOPs of ``cell_step`` over T steps (and the final loss * 0.5)."""
    TB = {"T": 1, "B": 1}
    return [
        Term(T * B * 2 * n * n, {**TB, "n": 2}),  # W_hh h_{t-1}
        Term(T * B * 2 * n * m, {**TB, "n": 1, "m": 1}),  # W_ih x_t
        Term(T * B * 9 * n, {**TB, "n": 1}),  # two adds, tanh, leak (3), d_t (3)
        Term(T, {"T": 1}),  # 1 - alpha
        # per output: yhat (2 n), - y, e^2 and its sum, g_b_out; c_t and g_W_out (4 n)
        Term(T * B * p * 6 * n, {**TB, "n": 1, "p": 1}),
        Term(T * B * p * 4, {**TB, "p": 1}),
        Term(1),  # loss * 0.5
    ]


def cell_bytes(B, n, m, p, itemsize) -> list[Term]:
    """Bytes of the cell's buffers: h_t (B, n), d_t, c_t, e_t, and the readout gradients."""
    return [
        Term(3 * B * n * itemsize, {"B": 1, "n": 1}),  # h_t, d_t, c_t
        Term(B * p * itemsize, {"B": 1, "p": 1}),  # e_t
        Term(p * n * itemsize, {"n": 1, "p": 1}),  # g_W_out
        Term(p * itemsize, {"p": 1}),  # g_b_out
    ]


def returned_gradient_bytes(n, m, itemsize) -> list[Term]:
    """The three recurrent gradients a blocked kernel folds into directly (n x r in all)."""
    return times_r(n * itemsize, {"n": 1}, n, m)


def gradient_bytes(n, m, itemsize) -> list[Term]:
    """G (n x r) and its three parts copied out as the returned gradients."""
    return times_r(2 * n * itemsize, {"n": 1}, n, m)
