"""Vanishing and exploding gradients: norm(dL_T/ds_t) against the lag T - t, per cell.

From the loss at the last step only: the error at the last state is
dL_T/dh_T = W_out^T e_T, and each step back applies the cell's state
vector-Jacobian product (``cells.back``; for the Elman cell
dL_T/dh_{t-1} = W_hh^T (D_t * dL_T/dh_t), D_t = 1 - h_t^2), a NumPy
computation from the cells' equations (checked against torch autograd in the
tests). The state is h, and for the LSTM the pair (h, c): its norm is that of
the pair (the error at c is the partial holding h fixed, the path the forget
gate carries), so the constant-error carousel shows.

"Spectral radius" is that of W_hh for the Elman cell and of each gate's
n x n block of weight_hh for the gated cells (``settings.network``). The
fitted rate is exp of the least-squares slope of log norm against the lag (per
step, averaged over the batch); the linearised prediction is the mean-field
rate carry + gain x rho of ``cells.linearised`` (Elman: rho x mean tanh'; GRU:
mean z + rho x mean (1 - z)(1 - g^2) r; LSTM: mean f + rho x mean o tanh'(c) i
(1 - g^2)). It is a first-order sketch: the norm of a product of Jacobians
follows the top Lyapunov exponent, which it bounds only loosely (non-normal
weights, gates varying from step to step, the gates' own derivatives dropped).
"""

from __future__ import annotations

import numpy as np

from . import cells
from .settings import network


def elman_states(params, xs) -> np.ndarray:
    """h_1 .. h_T for xs (T, B, m) from h_0 = 0: (T, B, n)."""
    _, _, stored = cells.run(params, cells.zero_state(params, xs.shape[1]), xs)
    return np.stack([s["h"] for s in stored])


def state_errors(params, xs, ys) -> tuple[list, list, list]:
    """dL_T/dh_t and dL_T/dc_t (LSTM; None otherwise) for t = T .. 1, each (B, n), and the
    stored values of the forward pass."""
    yhat, _, stored = cells.run(params, cells.zero_state(params, xs.shape[1]), xs)
    dh, dc = (yhat[-1] - ys[-1]) @ params.W_out, None
    if cells.cell_of(params) == "lstm":
        dc = np.zeros_like(dh)
    dhs, dcs = [], []
    for s in reversed(stored):
        dhs.append(dh)
        dcs.append(dc)
        dh, dc = cells.back(params, s, dh, dc)
    return dhs, dcs, stored


def gradient_norms(params, xs, ys) -> tuple[np.ndarray, list[dict]]:
    """(norm of dL_T/ds_{T-lag} for lag = 0 .. T-1 averaged over the batch, the stored values)."""
    dhs, dcs, stored = state_errors(params, xs, ys)
    norms = np.empty(len(dhs))
    for lag, (dh, dc) in enumerate(zip(dhs, dcs, strict=True)):
        sq = np.sum(dh**2, axis=1) + (0.0 if dc is None else np.sum(dc**2, axis=1))
        norms[lag] = float(np.mean(np.sqrt(sq)))
    return norms, stored


def fitted_rate(norms: np.ndarray, skip: int = 2) -> float:
    """exp(slope) of log norm against lag, past the first ``skip`` lags (the transient)."""
    lags = np.arange(len(norms))
    ok = (lags >= skip) & (norms > 0) & np.isfinite(norms)
    if ok.sum() < 2:
        return float("nan")
    slope = np.polyfit(lags[ok], np.log(norms[ok]), 1)[0]
    return float(np.exp(slope))


def measure(rho: float, n: int, T: int, task_data, seed: int, cell: str = "elman") -> dict:
    """One vanishing/exploding row: the curve, the fitted and predicted per-step rates."""
    xs, ys = task_data.xs[:T], task_data.ys[:T]
    params = network(n, xs.shape[2], ys.shape[2], seed, rho, cell=cell)
    with np.errstate(over="ignore", invalid="ignore"):
        norms, stored = gradient_norms(params, xs, ys)
    carry, gain, predicted = cells.linearised(params, stored, rho)
    return {
        "curve": [float(v) for v in norms],
        "fitted_rate": fitted_rate(norms),
        "predicted_rate": predicted,
        "carry": carry,
        "gain": gain,
    }
