"""The three cells in NumPy for the quality measures: a step forward, the state's error back.

The learning runs score the predictions the network made online (a forward
pass beside the stream, which returns only the chunk's summed loss), and the
vanishing measure needs the error at every earlier state, dL_T/ds_t, which no
kernel returns. Both come from the cells' equations (kernels/cells/, PyTorch's
layouts), written here once with the values a step stores:

    Elman  h' = tanh(W_ih x + W_hh h + b_h)                       state h
    GRU    h' = (1 - z) g + z h,  g = tanh(W_in x + b_in + r (W_hn h + b_hn))
    LSTM   c' = f c + i g,  h' = o tanh(c')                       state (h, c)

The state's error one step back (a vector-Jacobian product; the readout sees
h only, so the error at the LSTM's c is the partial holding h fixed):

    Elman  dh = W_hh^T (dh' (1 - h'^2))
    GRU    dh = z dh' + W_hh^T (da_r | da_z | da_n r),  da_n = dh' (1 - z)(1 - g^2),
           da_r = da_n hn r (1 - r),  da_z = dh' (h - g) z (1 - z)
    LSTM   dC = dh' o (1 - tanh(c')^2) + dc',  dc = dC f,
           dh = W_hh^T (dC g i (1 - i) | dC c f (1 - f) | dC i (1 - g^2) | dh' tanh(c') o (1 - o))

The linearised per-step rate (mean-field: every unit at the trajectory's mean
gate values, the gates' own derivatives dropped) is carry + gain x rho, with
rho the spectral radius of the candidate block (W_hh; W_hn; W_hg):

    Elman  0      + mean(1 - h^2) rho
    GRU    mean z + mean((1 - z)(1 - g^2) r) rho
    LSTM   mean f + mean(o (1 - tanh(c)^2) i (1 - g^2)) rho

(for the LSTM the linearised pair Jacobian [[a W, a f], [b W, f]], a = o
tanh'(c), b = i g', has rank n and its one non-trivial eigenvalue per
eigenvector of W is f + a b lambda). A sketch, as for the Elman cell: the
norm of a product of Jacobians follows the top Lyapunov exponent, which the
mean-field rate bounds only loosely.
"""

from __future__ import annotations

import numpy as np

CELLS = ("elman", "gru", "lstm")
GATES = {"elman": 1, "gru": 3, "lstm": 4}
CANDIDATE = {"elman": 0, "gru": 2, "lstm": 2}  # the gate block of weight_hh that rho measures


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def cell_of(params) -> str:
    name = type(params).__name__
    return {"GRUParams": "gru", "LSTMParams": "lstm"}.get(name, "elman")


def zero_state(params, B: int):
    n = params.W_out.shape[1]
    if cell_of(params) == "lstm":
        return (np.zeros((B, n)), np.zeros((B, n)))
    return np.zeros((B, n))


def hidden(state) -> np.ndarray:
    return state[0] if isinstance(state, tuple) else state


def step(params, state, x):
    """(new state, stored values) of one step from ``state`` on the input batch x (B, m)."""
    cell = cell_of(params)
    if cell == "elman":
        alpha = getattr(params, "alpha", 1.0)
        u = np.tanh(x @ params.W_ih.T + state @ params.W_hh.T + params.b_h)
        h = (1.0 - alpha) * state + alpha * u if alpha != 1.0 else u
        return h, {"h_prev": state, "h": h, "u": u}
    gi = x @ params.weight_ih.T + params.bias_ih
    if cell == "gru":
        n = state.shape[1]
        gh = state @ params.weight_hh.T + params.bias_hh
        r = _sig(gi[:, :n] + gh[:, :n])
        z = _sig(gi[:, n : 2 * n] + gh[:, n : 2 * n])
        hn = gh[:, 2 * n :]
        g = np.tanh(gi[:, 2 * n :] + r * hn)
        h = (1.0 - z) * g + z * state
        return h, {"h_prev": state, "h": h, "r": r, "z": z, "g": g, "hn": hn}
    h_prev, c_prev = state
    n = h_prev.shape[1]
    a = gi + h_prev @ params.weight_hh.T + params.bias_hh
    i, f = _sig(a[:, :n]), _sig(a[:, n : 2 * n])
    g, o = np.tanh(a[:, 2 * n : 3 * n]), _sig(a[:, 3 * n :])
    c = f * c_prev + i * g
    tc = np.tanh(c)
    h = o * tc
    return (h, c), {"h_prev": h_prev, "c_prev": c_prev, "h": h, "c": c, "tc": tc,
                    "i": i, "f": f, "g": g, "o": o}  # fmt: skip


def run(params, state, xs):
    """(yhat (T, B, p), final state, stored values per step) over xs (T, B, m) from ``state``."""
    out = np.empty((xs.shape[0], xs.shape[1], params.W_out.shape[0]))
    stored = []
    for t in range(xs.shape[0]):
        state, s = step(params, state, xs[t])
        stored.append(s)
        out[t] = hidden(state) @ params.W_out.T + params.b_out
    return out, state, stored


def back(params, s: dict, dh, dc=None):
    """The state's error one step back: (dh, dc) at the step's input state from its output's."""
    cell = cell_of(params)
    if cell == "elman":
        alpha = getattr(params, "alpha", 1.0)  # the leaky cell: h' = (1 - alpha) h + alpha u
        return (1.0 - alpha) * dh + (alpha * dh * (1.0 - s["u"] ** 2)) @ params.W_hh, None
    W = params.weight_hh
    if cell == "gru":
        z, g, r = s["z"], s["g"], s["r"]
        da_n = dh * (1.0 - z) * (1.0 - g**2)
        da_r = da_n * s["hn"] * r * (1.0 - r)
        da_z = dh * (s["h_prev"] - g) * z * (1.0 - z)
        return z * dh + np.concatenate([da_r, da_z, da_n * r], axis=1) @ W, None
    i, f, g, o = s["i"], s["f"], s["g"], s["o"]
    dC = dh * o * (1.0 - s["tc"] ** 2) + (0.0 if dc is None else dc)
    da = np.concatenate(
        [dC * g * i * (1.0 - i), dC * s["c_prev"] * f * (1.0 - f), dC * i * (1.0 - g**2),
         dh * s["tc"] * o * (1.0 - o)], axis=1,
    )  # fmt: skip
    return da @ W, dC * f


def linearised(params, stored: list[dict], rho: float) -> tuple[float, float, float]:
    """(carry, gain, carry + gain x rho): the mean-field per-step rate (module docstring)."""
    cell = cell_of(params)
    cat = {k: np.stack([s[k] for s in stored]) for k in stored[0] if k != "h_prev"}
    if cell == "elman":
        alpha = getattr(params, "alpha", 1.0)
        carry, gain = 1.0 - alpha, alpha * float(np.mean(1.0 - cat["u"] ** 2))
    elif cell == "gru":
        z, g, r = cat["z"], cat["g"], cat["r"]
        carry, gain = float(np.mean(z)), float(np.mean((1.0 - z) * (1.0 - g**2) * r))
    else:
        f, o, i, g, tc = cat["f"], cat["o"], cat["i"], cat["g"], cat["tc"]
        carry, gain = float(np.mean(f)), float(np.mean(o * (1.0 - tc**2) * i * (1.0 - g**2)))
    return carry, gain, carry + gain * rho
