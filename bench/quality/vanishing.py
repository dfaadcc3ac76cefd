"""Vanishing and exploding gradients: norm(dL_T/dh_t) against the lag T - t.

For the Elman cell (THEORY.md, "Gradient quality measures"), from the
loss at the last step only: dL_T/dh_T = W_out^T e_T, then

    dL_T/dh_{t-1} = W_hh^T (D_t * dL_T/dh_t),    D_t = 1 - h_t^2

a NumPy computation from the cell's equations (no torch). The fitted rate is
exp of the least-squares slope of log norm against the lag (per step, averaged
over the batch); the linearised prediction is the spectral radius of W_hh
times the mean tanh' (mean D over the trajectory). The prediction is a
first-order sketch: the norm of a product of Jacobians follows the top
Lyapunov exponent, which the spectral radius times the mean slope bounds only
loosely (non-normal W_hh, D varying from step to step).
"""

from __future__ import annotations

import numpy as np

from .settings import network


def elman_states(params, xs) -> np.ndarray:
    """h_1 .. h_T for xs (T, B, m) from h_0 = 0: (T, B, n)."""
    T, B, _ = xs.shape
    h = np.zeros((B, params.W_hh.shape[0]))
    out = np.empty((T, B, h.shape[1]))
    for t in range(T):
        h = np.tanh(xs[t] @ params.W_ih.T + h @ params.W_hh.T + params.b_h)
        out[t] = h
    return out


def gradient_norms(params, xs, ys) -> tuple[np.ndarray, float]:
    """(norm(dL_T/dh_{T-lag}) for lag = 0 .. T-1 averaged over the batch, mean tanh')."""
    H = elman_states(params, xs)
    T = H.shape[0]
    e = H[-1] @ params.W_out.T + params.b_out - ys[-1]
    g = e @ params.W_out  # (B, n): dL_T/dh_T
    norms = np.empty(T)
    for lag in range(T):
        norms[lag] = float(np.mean(np.linalg.norm(g, axis=1)))
        D = 1.0 - H[T - 1 - lag] ** 2
        g = (D * g) @ params.W_hh
    return norms, float(np.mean(1.0 - H**2))


def fitted_rate(norms: np.ndarray, skip: int = 2) -> float:
    """exp(slope) of log norm against lag, past the first ``skip`` lags (the transient)."""
    lags = np.arange(len(norms))
    ok = (lags >= skip) & (norms > 0) & np.isfinite(norms)
    if ok.sum() < 2:
        return float("nan")
    slope = np.polyfit(lags[ok], np.log(norms[ok]), 1)[0]
    return float(np.exp(slope))


def measure(rho: float, n: int, T: int, task_data, seed: int) -> dict:
    """One vanishing/exploding row: the curve, the fitted and predicted per-step rates."""
    xs, ys = task_data.xs[:T], task_data.ys[:T]
    params = network(n, xs.shape[2], ys.shape[2], seed, rho)
    norms, mean_slope = gradient_norms(params, xs, ys)
    return {
        "curve": [float(v) for v in norms],
        "fitted_rate": fitted_rate(norms),
        "predicted_rate": rho * mean_slope,
        "mean_tanh_prime": mean_slope,
    }
