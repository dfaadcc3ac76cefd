"""Plain-NumPy references for the gated cells and the leaky Elman cell, from THEORY.md alone.

Nothing here imports ``bpttbench``: like naive.py, these functions are the
independent side of the comparisons, written from the equations one step at a
time (no chunks, no buffers, whole-batch matrix expressions), and held to
central finite differences in test_naive_cells.py and to PyTorch autograd in
test_cells_torch.py.

The cells (THEORY.md, "Gated cells" and "A leak"):

    GRU    r = sig(W_ir x + b_ir + W_hr h + b_hr),  z = sig(W_iz x + b_iz + W_hz h + b_hz)
           g = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * g + z * h
    LSTM   i, f, o = sig(W_i. x + b_i. + W_h. h + b_h.),  g = tanh(W_ig x + b_ig + W_hg h + b_hg)
           c' = f * c + i * g,  h' = o * tanh(c')
    leaky  h' = (1 - alpha) h + alpha tanh(W_ih x + W_hh h + b_h)

with gates stacked in rows as PyTorch stacks them (GRU r|z|n, LSTM i|f|g|o),
two bias vectors for the gated cells, the readout yhat = W_out h + b_out and
the loss 1/2 sum_t sum_b ||yhat - y||^2 for all. The state starts at zero.

A cell here is an object with ``fields`` (the parameter names),
``zero_state(B, n)``, ``step(p, x, state) -> (state', cache)`` and
``step_back(p, x, state, cache, dstate') -> (dstate, {field: gradient})``;
``h(state)`` is what the readout sees. ``GRU``, ``LSTM`` and ``leaky(alpha)``
are the three.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from naive import RNNParams, update_times


class GRUParams(NamedTuple):
    weight_ih: np.ndarray  # (3n, m) r|z|n
    weight_hh: np.ndarray  # (3n, n)
    bias_ih: np.ndarray  # (3n,)
    bias_hh: np.ndarray  # (3n,)
    W_out: np.ndarray  # (p, n)
    b_out: np.ndarray  # (p,)


class LSTMParams(NamedTuple):
    weight_ih: np.ndarray  # (4n, m) i|f|g|o
    weight_hh: np.ndarray  # (4n, n)
    bias_ih: np.ndarray  # (4n,)
    bias_hh: np.ndarray  # (4n,)
    W_out: np.ndarray  # (p, n)
    b_out: np.ndarray  # (p,)


def sig(v):
    return 1.0 / (1.0 + np.exp(-v))


class _GRU:
    fields = GRUParams._fields
    params_type = GRUParams

    def zero_state(self, B, n):
        return np.zeros((B, n))

    def h(self, state):
        return state

    def step(self, p, x, h):
        n = h.shape[1]
        gi = x @ p.weight_ih.T + p.bias_ih  # (B, 3n)
        gh = h @ p.weight_hh.T + p.bias_hh
        r = sig(gi[:, :n] + gh[:, :n])
        z = sig(gi[:, n : 2 * n] + gh[:, n : 2 * n])
        hn = gh[:, 2 * n :]  # W_hn h + b_hn
        g = np.tanh(gi[:, 2 * n :] + r * hn)
        return (1.0 - z) * g + z * h, (r, z, g, hn)

    def step_back(self, p, x, h, cache, dh_new):
        r, z, g, hn = cache
        dg = dh_new * (1.0 - z)
        dz = dh_new * (h - g)
        dpre_n = dg * (1.0 - g**2)  # through tanh
        dr = dpre_n * hn
        dhn = dpre_n * r  # the error at W_hn h + b_hn
        dpre_r = dr * r * (1.0 - r)
        dpre_z = dz * z * (1.0 - z)
        d_gi = np.concatenate([dpre_r, dpre_z, dpre_n], axis=1)  # errors at W_ih x + b_ih
        d_gh = np.concatenate([dpre_r, dpre_z, dhn], axis=1)  # errors at W_hh h + b_hh
        grads = {
            "weight_ih": d_gi.T @ x,
            "bias_ih": d_gi.sum(axis=0),
            "weight_hh": d_gh.T @ h,
            "bias_hh": d_gh.sum(axis=0),
        }
        return dh_new * z + d_gh @ p.weight_hh, grads


class _LSTM:
    fields = LSTMParams._fields
    params_type = LSTMParams

    def zero_state(self, B, n):
        return (np.zeros((B, n)), np.zeros((B, n)))

    def h(self, state):
        return state[0]

    def step(self, p, x, state):
        h, c = state
        n = h.shape[1]
        pre = x @ p.weight_ih.T + p.bias_ih + h @ p.weight_hh.T + p.bias_hh  # (B, 4n)
        i = sig(pre[:, :n])
        f = sig(pre[:, n : 2 * n])
        g = np.tanh(pre[:, 2 * n : 3 * n])
        o = sig(pre[:, 3 * n :])
        c_new = f * c + i * g
        return (o * np.tanh(c_new), c_new), (i, f, g, o, c_new)

    def step_back(self, p, x, state, cache, dstate_new):
        h, c = state
        i, f, g, o, c_new = cache
        dh_new, dc_new = dstate_new
        tc = np.tanh(c_new)
        do = dh_new * tc
        dc = dc_new + dh_new * o * (1.0 - tc**2)
        dpre = np.concatenate(
            [
                dc * g * i * (1.0 - i),
                dc * c * f * (1.0 - f),
                dc * i * (1.0 - g**2),
                do * o * (1.0 - o),
            ],
            axis=1,
        )
        grads = {
            "weight_ih": dpre.T @ x,
            "bias_ih": dpre.sum(axis=0),
            "weight_hh": dpre.T @ h,
            "bias_hh": dpre.sum(axis=0),
        }
        return (dpre @ p.weight_hh, dc * f), grads


class _Leaky:
    """The Elman cell with a leak; ``alpha = 1`` is naive.py's plain cell."""

    fields = RNNParams._fields
    params_type = RNNParams

    def __init__(self, alpha):
        self.alpha = alpha

    def zero_state(self, B, n):
        return np.zeros((B, n))

    def h(self, state):
        return state

    def step(self, p, x, h):
        u = np.tanh(x @ p.W_ih.T + h @ p.W_hh.T + p.b_h)
        return (1.0 - self.alpha) * h + self.alpha * u, u

    def step_back(self, p, x, h, u, dh_new):
        da = dh_new * self.alpha * (1.0 - u**2)
        grads = {"W_ih": da.T @ x, "W_hh": da.T @ h, "b_h": da.sum(axis=0)}
        return (1.0 - self.alpha) * dh_new + da @ p.W_hh, grads


GRU = _GRU()
LSTM = _LSTM()


def leaky(alpha):
    return _Leaky(alpha)


def _as_float64(cell, p):
    return cell.params_type(*(np.asarray(getattr(p, f), dtype=np.float64) for f in cell.fields))


def _batched(xs, ys):
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    if xs.ndim == 2:
        xs, ys = xs[:, None, :], ys[:, None, :]
    return xs, ys


def _zero(state):
    return (
        tuple(np.zeros_like(s) for s in state) if isinstance(state, tuple) else np.zeros_like(state)
    )


def _add_state(a, b):
    return tuple(x + y for x, y in zip(a, b, strict=True)) if isinstance(a, tuple) else a + b


def forward(cell, p, xs, state0=None):
    """States s_0 .. s_T (a list) and outputs yhat_1 .. yhat_T (T, B, p) from s_0
    (zero unless given)."""
    p = _as_float64(cell, p)
    xs = np.asarray(xs, dtype=np.float64)
    T, B, _ = xs.shape
    n = p.W_out.shape[1]
    states = [cell.zero_state(B, n) if state0 is None else state0]
    for t in range(T):
        states.append(cell.step(p, xs[t], states[-1])[0])
    yhat = np.stack([cell.h(s) @ p.W_out.T + p.b_out for s in states[1:]])
    return states, yhat


def loss(cell, p, xs, ys) -> float:
    xs, ys = _batched(xs, ys)
    _, yhat = forward(cell, p, xs)
    return 0.5 * float(np.sum((yhat - ys) ** 2))


def bptt_segment(cell, p, xs, ys, state0, weights):
    """Gradient of 1/2 sum_s weights[s] ||yhat_s - y_s||^2 over a segment from ``state0``.

    The start state is a constant (no gradient flows into it). Epochwise BPTT
    on the segment: the error at state s is the readout's error
    at s plus what flows back from state s + 1 through the cell's step.
    """
    p = _as_float64(cell, p)
    S = xs.shape[0]
    states = [state0]
    caches = []
    for t in range(S):
        state, cache = cell.step(p, xs[t], states[-1])
        states.append(state)
        caches.append(cache)
    g = {f: np.zeros_like(getattr(p, f)) for f in cell.fields}
    dstate = _zero(state0)
    for s in range(S, 0, -1):
        h = cell.h(states[s])
        e = (h @ p.W_out.T + p.b_out - ys[s - 1]) * weights[s - 1]
        g["W_out"] += e.T @ h
        g["b_out"] += e.sum(axis=0)
        dh = e @ p.W_out
        dstate = _add_state(dstate, (dh, np.zeros_like(dh)) if isinstance(dstate, tuple) else dh)
        dstate, step_grads = cell.step_back(p, xs[s - 1], states[s - 1], caches[s - 1], dstate)
        for f, v in step_grads.items():
            g[f] += v
    return cell.params_type(**g)


def _sum(cell, a, b):
    return cell.params_type(*(x + y for x, y in zip(a, b, strict=True)))


def bptt(cell, p, xs, ys):
    """(loss, gradient) by epochwise BPTT."""
    xs, ys = _batched(xs, ys)
    T, B, _ = xs.shape
    state0 = cell.zero_state(B, p.W_out.shape[1])
    return loss(cell, p, xs, ys), bptt_segment(cell, p, xs, ys, state0, np.ones(T))


def tbptt(cell, p, xs, ys, k1, k2=None):
    """Williams & Peng BPTT(k2; k1), each window recomputed from its constant start state
    (the whole state: h, and c for the LSTM), as naive.tbptt does for the plain cell."""
    k2 = k1 if k2 is None else k2
    xs, ys = _batched(xs, ys)
    T = xs.shape[0]
    states, _ = forward(cell, p, xs)
    g = None
    previous = 0
    for t in update_times(T, k1):
        start = max(t - k2, 0)
        weights = np.zeros(t - start)
        weights[previous - start :] = 1.0
        part = bptt_segment(cell, p, xs[start:t], ys[start:t], states[start], weights)
        g = part if g is None else _sum(cell, g, part)
        previous = t
    return loss(cell, p, xs, ys), g


def detach_every_k(cell, p, xs, ys, k):
    """The framework idiom: run k steps, back-propagate their loss, detach the state."""
    xs, ys = _batched(xs, ys)
    T, B, _ = xs.shape
    state = cell.zero_state(B, p.W_out.shape[1])
    g = None
    for start in range(0, T, k):
        stop = min(start + k, T)
        part = bptt_segment(cell, p, xs[start:stop], ys[start:stop], state, np.ones(stop - start))
        g = part if g is None else _sum(cell, g, part)
        state = forward(cell, p, xs[start:stop], state)[0][-1]
    return loss(cell, p, xs, ys), g


def draw_params(cell, rng, m, n, p, scale=0.6):
    """Float64 parameters of ``cell`` drawn from ``rng`` (normal, ``scale``): weights large
    enough that the gates saturate partly, not from any init of the code under test."""
    G = {GRUParams: 3, LSTMParams: 4, RNNParams: 1}[cell.params_type]
    if G == 1:
        shapes = [(n, m), (n, n), (n,), (p, n), (p,)]
    else:
        shapes = [(G * n, m), (G * n, n), (G * n,), (G * n,), (p, n), (p,)]
    return cell.params_type(*(rng.normal(0.0, scale, s) for s in shapes))
