"""Plain-NumPy BPTT references for the gated cells, written from the equations alone.

Nothing here imports ``bpttbench``: these functions are the independent side of
the RTRL kernels' comparisons for the GRU and the LSTM (torch.nn.GRU and
torch.nn.LSTM, one layer, batch_first=False), each followed by a linear
readout with the half-sum-of-squares loss of THEORY.md:

    yhat_t = W_out h_t + b_out
    L      = 1/2 sum_t sum_b || yhat_t,b - y_t,b ||^2

GRU (gate rows r|z|n, h_0 = 0):

    r   = sig(W_ir x + b_ir + W_hr h + b_hr)
    z   = sig(W_iz x + b_iz + W_hz h + b_hz)
    g   = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h'  = (1 - z) * g + z * h

LSTM (gate rows i|f|g|o, h_0 = c_0 = 0):

    i, f, o = sig(W_i. x + b_i. + W_h. h + b_h.),  g = tanh(W_ig x + b_ig + W_hg h + b_hg)
    c'  = f * c + i * g
    h'  = o * tanh(c')

Both are differentiated in reverse (epochwise BPTT): one forward pass keeping
every intermediate, one backward pass from T to 1. Arrays are (T, B, m)
inputs and (T, B, p) targets; gradients come back as :class:`GatedParams`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GatedParams(NamedTuple):
    """The arrays of one gated layer and its readout, named as PyTorch names them."""

    weight_ih: np.ndarray  # (G n, m), G = 3 (GRU) or 4 (LSTM)
    weight_hh: np.ndarray  # (G n, n)
    bias_ih: np.ndarray  # (G n,)
    bias_hh: np.ndarray  # (G n,)
    W_out: np.ndarray  # (p, n)
    b_out: np.ndarray  # (p,)


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def _f64(params) -> GatedParams:
    return GatedParams(*(np.asarray(a, dtype=np.float64) for a in params))


def _zeros_like(p: GatedParams) -> GatedParams:
    return GatedParams(*(np.zeros_like(a) for a in p))


def gru_forward(params, xs):
    """Every intermediate of the GRU over the sequence, h_0 = 0.

    Returns a dict of arrays indexed by step s = 0..T-1 (state ``h`` has T + 1
    entries, ``h[0] = h_0``) and the outputs ``yhat`` (T, B, p).
    """
    p = _f64(params)
    xs = np.asarray(xs, dtype=np.float64)
    T, B, _ = xs.shape
    n = p.weight_hh.shape[1]
    h = np.zeros((T + 1, B, n))
    r, z, g, u = (np.zeros((T, B, n)) for _ in range(4))
    for s in range(T):
        gi = xs[s] @ p.weight_ih.T + p.bias_ih  # (B, 3n)
        gh = h[s] @ p.weight_hh.T + p.bias_hh
        r[s] = _sig(gi[:, :n] + gh[:, :n])
        z[s] = _sig(gi[:, n : 2 * n] + gh[:, n : 2 * n])
        u[s] = gh[:, 2 * n :]  # W_hn h + b_hn, the part that r gates
        g[s] = np.tanh(gi[:, 2 * n :] + r[s] * u[s])
        h[s + 1] = (1.0 - z[s]) * g[s] + z[s] * h[s]
    yhat = h[1:] @ p.W_out.T + p.b_out
    return {"h": h, "r": r, "z": z, "g": g, "u": u}, yhat


def gru_loss(params, xs, ys) -> float:
    _, yhat = gru_forward(params, xs)
    return 0.5 * float(np.sum((yhat - np.asarray(ys, dtype=np.float64)) ** 2))


def gru_bptt(params, xs, ys):
    """(loss, GatedParams of gradients) of the GRU by epochwise BPTT."""
    p = _f64(params)
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    st, yhat = gru_forward(p, xs)
    T = xs.shape[0]
    grad = _zeros_like(p)
    e = yhat - ys
    dh_next = np.zeros_like(st["h"][0])  # dL/dh_s through h_{s+1}
    for s in range(T - 1, -1, -1):
        h_prev, r, z, g, u = st["h"][s], st["r"][s], st["z"][s], st["g"][s], st["u"][s]
        grad.W_out[...] += e[s].T @ st["h"][s + 1]
        grad.b_out[...] += e[s].sum(axis=0)
        dh = e[s] @ p.W_out + dh_next
        da_n = dh * (1.0 - z) * (1.0 - g**2)  # through g = tanh(a_n)
        da_z = dh * (h_prev - g) * z * (1.0 - z)
        da_r = da_n * u * r * (1.0 - r)  # a_n = ... + r * u
        d_ih = np.concatenate([da_r, da_z, da_n], axis=1)
        d_hh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # W_hn h + b_hn sits inside r * ()
        grad.weight_ih[...] += d_ih.T @ xs[s]
        grad.bias_ih[...] += d_ih.sum(axis=0)
        grad.weight_hh[...] += d_hh.T @ h_prev
        grad.bias_hh[...] += d_hh.sum(axis=0)
        dh_next = dh * z + d_hh @ p.weight_hh
    return gru_loss(p, xs, ys), grad


def lstm_forward(params, xs):
    """Every intermediate of the LSTM over the sequence, h_0 = c_0 = 0."""
    p = _f64(params)
    xs = np.asarray(xs, dtype=np.float64)
    T, B, _ = xs.shape
    n = p.weight_hh.shape[1]
    h = np.zeros((T + 1, B, n))
    c = np.zeros((T + 1, B, n))
    i, f, g, o = (np.zeros((T, B, n)) for _ in range(4))
    for s in range(T):
        a = xs[s] @ p.weight_ih.T + p.bias_ih + h[s] @ p.weight_hh.T + p.bias_hh  # (B, 4n)
        i[s] = _sig(a[:, :n])
        f[s] = _sig(a[:, n : 2 * n])
        g[s] = np.tanh(a[:, 2 * n : 3 * n])
        o[s] = _sig(a[:, 3 * n :])
        c[s + 1] = f[s] * c[s] + i[s] * g[s]
        h[s + 1] = o[s] * np.tanh(c[s + 1])
    yhat = h[1:] @ p.W_out.T + p.b_out
    return {"h": h, "c": c, "i": i, "f": f, "g": g, "o": o}, yhat


def lstm_loss(params, xs, ys) -> float:
    _, yhat = lstm_forward(params, xs)
    return 0.5 * float(np.sum((yhat - np.asarray(ys, dtype=np.float64)) ** 2))


def lstm_bptt(params, xs, ys):
    """(loss, GatedParams of gradients) of the LSTM by epochwise BPTT."""
    p = _f64(params)
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    st, yhat = lstm_forward(p, xs)
    T = xs.shape[0]
    grad = _zeros_like(p)
    e = yhat - ys
    dh_next = np.zeros_like(st["h"][0])  # dL/dh_s through step s + 1
    dc_next = np.zeros_like(st["c"][0])  # dL/dc_s through c_{s+1} = f c_s + ...
    for s in range(T - 1, -1, -1):
        i, f, g, o = st["i"][s], st["f"][s], st["g"][s], st["o"][s]
        c_prev, c, h_prev = st["c"][s], st["c"][s + 1], st["h"][s]
        grad.W_out[...] += e[s].T @ st["h"][s + 1]
        grad.b_out[...] += e[s].sum(axis=0)
        dh = e[s] @ p.W_out + dh_next
        tc = np.tanh(c)
        dc = dc_next + dh * o * (1.0 - tc**2)
        da = np.concatenate(
            [
                dc * g * i * (1.0 - i),
                dc * c_prev * f * (1.0 - f),
                dc * i * (1.0 - g**2),
                dh * tc * o * (1.0 - o),
            ],
            axis=1,
        )
        grad.weight_ih[...] += da.T @ xs[s]
        grad.weight_hh[...] += da.T @ h_prev
        grad.bias_ih[...] += da.sum(axis=0)
        grad.bias_hh[...] += da.sum(axis=0)
        dh_next = da @ p.weight_hh
        dc_next = dc * f
    return lstm_loss(p, xs, ys), grad
