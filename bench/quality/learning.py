"""Online learning through the streams: final loss, steps to a threshold, cost, divergence.

One run trains one network on one task stream with one setting: chunks of
``setting.update`` steps go to ``bpttbench.stream``, the optimizer updates the
weights after each, and the state is carried (no reset). The predictions the
loss is scored on are those the network made online, with the weights of the
moment: a NumPy forward pass of the cell beside the stream (``cells.run``; the
streams return only the chunk's summed loss, not which steps were scored).

The cell is Elman, GRU or LSTM (``Training.cell``). The gated cells train
through the truncated-BPTT stream only (``tbptt k=`` and ``bptt-chunk``
settings, which carry the window's states, the LSTM's c with h). Of the
online rules' streams only SnAp-1's takes a gated cell, and the presets do not
train it yet; a gated run of any setting but truncated BPTT is refused with a
ValueError before it starts.

- final loss: the scored MSE per output over the last 20% of steps;
- steps to threshold: the first step at which the moving average of the
  scored MSE (over a window of 10% of the steps) falls to the threshold
  (halfway between the 'nothing' baseline and the next), or None;
- time per step: wall seconds of ``stream.step`` plus the optimizer's update,
  divided by the steps (the forward pass that scores is not counted);
- peak bytes: tracemalloc's peak over building a stream and one chunk, in a
  separate, untimed call (the carried state is the algorithm's memory);
- diverged: a non-finite loss, gradient or weight, or a FloatingPointError
  from the kernels; the run stops there and is recorded as diverged.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from dataclasses import dataclass

import bpttbench
import numpy as np
from bpttbench import optim

from . import cells
from .fidelity import compare_one
from .settings import Setting, TaskSpec, network, threshold

FINAL_FRACTION = 0.2
WINDOW_FRACTION = 0.1


@dataclass(frozen=True)
class Training:
    """How a run trains: the step budget, the batch, the optimizer."""

    steps: int = 4000
    B: int = 4
    n: int = 32
    optimizer: str = "adam"
    lr: float = 3e-3
    clip: float | None = 1.0
    rho: float | None = None  # spectral radius of the initial W_hh (None: init_rnn's)
    cell: str = "elman"  # or "gru", "lstm" (truncated BPTT only: see the module's docstring)

    def make_optimizer(self):
        return optim.OPTIMIZERS[self.optimizer](lr=self.lr, clip=self.clip)


def _finite(grads) -> bool:
    return all(np.isfinite(g).all() for g in grads)


def peak_bytes(setting: Setting, params, B: int, xs, ys, seed: int) -> int:
    """tracemalloc's peak over building the stream and running one chunk (untimed)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        s = bpttbench.stream(setting.algorithm, params, B=B, **setting.stream_options(seed))
        s.step(xs, ys)
        return int(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def train(setting: Setting, task: TaskSpec, training: Training, seed: int) -> dict:
    """Train online and return the row's measurements (see the module's docstring)."""
    U = setting.update
    T = (training.steps // U) * U
    data = task.make(T, training.B, seed)
    T = (data.xs.shape[0] // U) * U  # the episode tasks cut T to whole episodes
    xs, ys, scored = data.xs[:T], data.ys[:T], data.scored[:T]
    m, p = xs.shape[2], ys.shape[2]
    if training.cell != "elman" and setting.algorithm != "tbptt":
        raise ValueError(
            f"{setting.name} trains the Elman cell only; the {training.cell} cell trains "
            f"through the truncated-BPTT stream (tbptt k=, bptt-chunk settings)"
        )
    params = network(training.n, m, p, seed, training.rho, cell=training.cell)
    opt = training.make_optimizer()
    s = bpttbench.stream(setting.algorithm, params, B=training.B, **setting.stream_options(seed))
    h = cells.zero_state(params, training.B)
    err = np.full(T, np.nan)  # scored MSE per step (NaN where not scored)
    diverged, reason, spent, t = False, None, 0.0, 0
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for t in range(0, T, U):
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    yhat, h, _ = cells.run(s.params, h, xs[t : t + U])
                sq = np.mean((yhat - ys[t : t + U]) ** 2, axis=(1, 2))
                err[t : t + U] = np.where(scored[t : t + U], sq, np.nan)
                t0 = time.perf_counter()
                loss, grads = s.step(xs[t : t + U], ys[t : t + U])
                if not (math.isfinite(loss) and _finite(grads)):
                    raise FloatingPointError(f"non-finite loss or gradient at step {t}")
                new = opt.step(s.params, grads)
                if not _finite(new):
                    raise FloatingPointError(f"non-finite weights after step {t}")
                s.params = new
                spent += time.perf_counter() - t0
            except FloatingPointError as exc:
                diverged, reason = True, str(exc) or "FloatingPointError"
                break
    done = t + U if not diverged else max(t, 1)
    row = {
        "steps": T,
        "steps_run": done,
        "time_per_step_s": spent / done,
        "diverged": diverged,
        "reason": reason,
        "baselines": dict(data.baselines),
        "threshold": threshold(data.baselines),
    }
    row.update(_scores(err, T, row["threshold"], diverged))
    if not diverged:
        row["peak_bytes"] = peak_bytes(setting, params, training.B, xs[: U * 2], ys[: U * 2], seed)
        row.update(_fidelity_at(setting, s.params, task, seed))
    return row


def _scores(err, T, thr, diverged) -> dict:
    if diverged:
        return {"final_loss": float("nan"), "steps_to_threshold": None}
    tail = err[int(T * (1 - FINAL_FRACTION)) :]
    final = float(np.nanmean(tail)) if np.isfinite(tail).any() else float("nan")
    w = max(1, int(T * WINDOW_FRACTION))
    ok = np.isfinite(err)
    csum = np.concatenate([[0.0], np.cumsum(np.where(ok, err, 0.0))])
    cnt = np.concatenate([[0], np.cumsum(ok)])
    hit = None
    for end in range(w, T + 1, max(1, w // 10)):
        c = cnt[end] - cnt[end - w]
        if c and (csum[end] - csum[end - w]) / c <= thr:
            hit = end
            break
    return {"final_loss": final, "steps_to_threshold": hit}


def _fidelity_at(setting: Setting, params, task: TaskSpec, seed: int) -> dict:
    """Fidelity at the trained weights on a fresh window of the task (from h = 0)."""
    window = max(4 * (setting.k2 or 1), 2 * task.period(), 40)
    data = task.make(window, 1, seed + 10_000)
    return compare_one(setting, params, data.xs, data.ys, seed)
