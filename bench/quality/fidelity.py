"""Gradient fidelity: an algorithm's gradient against the exact one, same weights and trajectory.

The exact gradient g* is BPTT over the same window from the same start state
(h_0 = 0), with the weights held fixed; the algorithm's g is its one-shot call
on that window (truncated BPTT with its k1, k2; an online rule over every step
of it). Measures over the recurrent parameters (Elman: W_ih, W_hh, b_h; GRU and
LSTM: weight_ih, weight_hh, bias_ih, bias_hh; the readout's gradient is exact
for every rule), THEORY.md "Gradient quality measures". The gated cells run
truncated BPTT and exact RTRL (kernels/rtrl_gru.py, rtrl_lstm.py); the
online approximations are the Elman cell's only:

    cosine      <g, g*> / (|g| |g*|)
    rel_err     |g - g*| / |g*|
    norm_ratio  |g| / |g*|

For a stochastic rule (UORO, KF-RTRL, R-KF) over K seeds: the bias is the
mean estimate's cosine and relative error against g*, the spread the mean
distance of the estimates from their mean over |g*|; the per-seed figures are
the means over seeds.
"""

from __future__ import annotations

import bpttbench
import numpy as np

from .settings import STOCHASTIC, Setting

READOUT = ("W_out", "b_out")


def flat(grads) -> np.ndarray:
    """The recurrent parameters' gradient as one vector (every field but the readout's)."""
    return np.concatenate([np.ravel(getattr(grads, f)) for f in grads._fields if f not in READOUT])


def measures(g: np.ndarray, g_star: np.ndarray) -> dict:
    ns, ng = float(np.linalg.norm(g_star)), float(np.linalg.norm(g))
    tiny = np.finfo(float).tiny
    return {
        "cosine": float(g @ g_star) / max(ng * ns, tiny),
        "rel_err": float(np.linalg.norm(g - g_star)) / max(ns, tiny),
        "norm_ratio": ng / max(ns, tiny),
    }


def estimate(setting: Setting, params, xs, ys, seed: int = 0):
    """The algorithm's one-shot gradient over the window (weights fixed, from h_0 = 0)."""
    name = setting.algorithm
    if name == "tbptt":
        return bpttbench.tbptt(params, xs, ys, setting.k1, setting.k2)[1]
    if name == "bptt":
        return bpttbench.bptt(params, xs, ys)[1]
    fn = getattr(bpttbench, name)
    return fn(params, xs, ys, seed=seed)[1] if name in STOCHASTIC else fn(params, xs, ys)[1]


def exact(params, xs, ys):
    return bpttbench.bptt(params, xs, ys)[1]


def compare_one(setting: Setting, params, xs, ys, seed: int = 0, g_star=None) -> dict:
    """Cosine, relative error and norm ratio of one estimate (one seed)."""
    if g_star is None:
        g_star = flat(exact(params, xs, ys))
    return measures(flat(estimate(setting, params, xs, ys, seed)), g_star)


def fidelity(setting: Setting, params, xs, ys, seeds: int = 8) -> dict:
    """The measures of ``setting`` on one window; bias and spread over ``seeds`` for a
    stochastic rule (``bias_*`` equal the plain figures for a deterministic one)."""
    g_star = flat(exact(params, xs, ys))
    k = seeds if setting.algorithm in STOCHASTIC else 1
    gs = np.stack([flat(estimate(setting, params, xs, ys, s)) for s in range(k)])
    each = [measures(g, g_star) for g in gs]
    out = {key: float(np.mean([e[key] for e in each])) for key in each[0]}
    mean = gs.mean(axis=0)
    bias = measures(mean, g_star)
    out["bias_cosine"], out["bias_rel_err"] = bias["cosine"], bias["rel_err"]
    ns = max(float(np.linalg.norm(g_star)), np.finfo(float).tiny)
    out["spread"] = float(np.mean(np.linalg.norm(gs - mean, axis=1))) / ns
    out["seeds"] = k
    return out
