"""Tasks with a dependency-length knob, for measuring what an algorithm can learn.

Every task is a stream of inputs and squared-error targets at every step, drawn
from a seed (never downloaded), so an online learner can run through it chunk
by chunk and a truncation length k can be set against the task's lag. Each
returns a :class:`Task`: ``xs (T, B, m)``, ``ys (T, B, p)``, the steps where it
is scored, and its graded baselines there: the mean squared error per output,
on the scored steps, of the predictors that have learned nothing, one
dependency, everything. THEORY.md, "Tasks with a dependency-length knob".

- Delayed-add (Pitis 2016, as used by Marschall, Cho & Savin 2020):
  x_t in {0, 1} ~ Bernoulli(1/2), y_t = 1/2 + 1/2 x_{t - t1} - 1/4 x_{t - t2}
  (x before the start counts as 0; scored from t = t2 on). MSE 0.078125 with
  nothing learned (predict the mean 5/8: the variance 1/16 + 1/64; predicting
  1/2 costs 1/64 more), 0.015625 with only the t1 dependency (predict
  3/8 + x_{t-t1} / 2: the variance 1/64 of the t2 term), 0 with both.
- Adding problem (Hochreiter & Schmidhuber 1997), as a stream of episodes of
  ``length`` steps: two input channels, a value U(0, 1) and a marker set at one
  step of the episode's first half and one of its second half; the target at
  the episode's last step is the sum of the two marked values, and 1 (the
  sum's mean, learnable as a constant) at every other step. Scored on the last
  steps: MSE 1/6 when predicting the mean (the variance of a sum of two
  U(0, 1)), 0 when solved. The lag is up to ``length - 1``.
- Copy (Hochreiter & Schmidhuber 1997; Arjovsky, Shah & Bengio 2016), as a
  stream of episodes: ``length`` symbols from an alphabet of ``symbols``,
  ``delay`` blank steps, a go marker, then ``length`` recall steps whose
  targets are the symbols again; inputs and targets are one-hot over
  ``symbols + 2`` channels (symbols, blank, go), and the target is the blank
  everywhere but the recall steps. Scored on the recall steps, by argmax
  accuracy (chance 1 / symbols) and by MSE: a uniform guess over the symbols
  gives (symbols - 1) / symbols / (symbols + 2) per output, a perfect copy 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._validate import check_dtype, check_size

DELAYED_ADD_BASELINES = {"nothing": 0.078125, "t1 only": 0.015625, "both": 0.0}


class Task(NamedTuple):
    """A generated task: the data, its graded baselines, and where it is scored."""

    name: str
    xs: np.ndarray  # (T, B, m)
    ys: np.ndarray  # (T, B, p)
    scored: np.ndarray  # (T,) bool: the steps the task is scored on
    baselines: dict[str, float]  # MSE per output on the scored steps, worst first
    lags: tuple[int, ...]  # the dependency lengths


def delayed_add(T, B=1, t1=5, t2=9, seed=0, dtype=np.float64) -> Task:
    """The delayed-add stream: one input channel, one output, lags ``t1 < t2``.

    Parameters
    ----------
    T, B : int
        Steps and independent streams.
    t1, t2 : int
        The two lags, 1 <= t1 < t2.
    seed : int
        Seed of the ``numpy.random.default_rng`` stream.
    """
    T, B = check_size("T", T), check_size("B", B)
    t1, t2 = check_size("t1", t1), check_size("t2", t2)
    if t2 <= t1:
        raise ValueError(f"t2 must be > t1 (got t1={t1}, t2={t2})")
    dtype = check_dtype("dtype", dtype)
    x = np.random.default_rng(seed).integers(0, 2, size=(T, B)).astype(dtype)
    y = np.full((T, B), 0.5, dtype)
    y[t1:] += 0.5 * x[:-t1] if t1 < T else 0.0
    y[t2:] -= 0.25 * x[:-t2] if t2 < T else 0.0
    scored = np.arange(T) >= t2
    return Task(
        "delayed_add", x[:, :, None], y[:, :, None], scored, dict(DELAYED_ADD_BASELINES), (t1, t2)
    )


def adding(T, B=1, length=20, seed=0, dtype=np.float64) -> Task:
    """The adding problem as a stream of episodes of ``length`` steps (>= 2).

    T is cut to whole episodes (at least one).
    """
    T, B, length = check_size("T", T), check_size("B", B), check_size("length", length)
    if length < 2:
        raise ValueError(f"length must be >= 2 (one marker in each half), got {length}")
    dtype = check_dtype("dtype", dtype)
    n_episodes = T // length
    if n_episodes < 1:
        raise ValueError(f"T={T} is shorter than one episode of {length} steps")
    T = n_episodes * length
    rng = np.random.default_rng(seed)
    values = rng.random((n_episodes, length, B))
    half = length // 2
    first = rng.integers(0, half, size=(n_episodes, B))
    second = rng.integers(half, length, size=(n_episodes, B))
    marks = np.zeros((n_episodes, length, B))
    episodes, streams = np.indices((n_episodes, B))
    marks[episodes, first, streams] = 1.0
    marks[episodes, second, streams] = 1.0
    ys = np.ones((n_episodes, length, B))
    ys[:, -1] = (values * marks).sum(axis=1)
    xs = np.stack([values, marks], axis=-1).reshape(T, B, 2).astype(dtype)
    scored = np.zeros((n_episodes, length), bool)
    scored[:, -1] = True
    return Task(
        "adding",
        xs,
        ys.reshape(T, B, 1).astype(dtype),
        scored.reshape(T),
        {"nothing": 1.0 / 6.0, "solved": 0.0},
        (length - 1,),
    )


def copy_task(T, B=1, length=5, delay=10, symbols=4, seed=0, dtype=np.float64) -> Task:
    """The copy task as a stream of episodes of ``2 length + delay + 1`` steps.

    Parameters
    ----------
    T, B : int
        Steps and independent streams; T is cut to whole episodes (at least one).
    length : int
        Symbols to remember per episode.
    delay : int
        Blank steps between the last symbol and the go marker; the lag from a
        symbol to its recall is ``length + delay + 1``.
    symbols : int
        Alphabet size, >= 2.
    """
    T, B = check_size("T", T), check_size("B", B)
    length, symbols = check_size("length", length), check_size("symbols", symbols)
    if symbols < 2:
        raise ValueError(f"symbols must be >= 2, got {symbols}")
    if isinstance(delay, bool) or not isinstance(delay, int | np.integer) or delay < 0:
        raise ValueError(f"delay must be an int >= 0, got {delay!r}")
    dtype = check_dtype("dtype", dtype)
    episode = 2 * length + delay + 1
    n_episodes = T // episode
    if n_episodes < 1:
        raise ValueError(f"T={T} is shorter than one episode of {episode} steps")
    T = n_episodes * episode
    blank, go = symbols, symbols + 1
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, symbols, size=(n_episodes, B, length))
    x_idx = np.full((n_episodes, episode, B), blank)
    y_idx = np.full((n_episodes, episode, B), blank)
    x_idx[:, :length] = codes.transpose(0, 2, 1)
    x_idx[:, length + delay] = go
    y_idx[:, length + delay + 1 :] = codes.transpose(0, 2, 1)
    eye = np.eye(symbols + 2, dtype=dtype)
    xs = eye[x_idx.reshape(T, B)]
    ys = eye[y_idx.reshape(T, B)]
    scored = np.zeros((n_episodes, episode), bool)
    scored[:, length + delay + 1 :] = True
    # A uniform guess over the symbols on a recall step: squared error
    # (1 - 1/s)^2 + (s - 1) / s^2 = (s - 1) / s, over p = s + 2 outputs.
    nothing = (symbols - 1) / symbols / (symbols + 2)
    return Task(
        "copy", xs, ys, scored.reshape(T), {"nothing": nothing, "perfect": 0.0}, (episode - length,)
    )


def copy_accuracy(task: Task, yhat: np.ndarray) -> float:
    """Argmax accuracy over the symbols on the copy task's recall steps."""
    symbols = task.ys.shape[2] - 2
    steps = task.scored
    guess = np.argmax(yhat[steps][..., :symbols], axis=-1)
    truth = np.argmax(task.ys[steps][..., :symbols], axis=-1)
    return float(np.mean(guess == truth))


def scored_mse(task: Task, yhat: np.ndarray) -> float:
    """Mean squared error per output on the task's scored steps."""
    return float(np.mean((yhat[task.scored] - task.ys[task.scored]) ** 2))


TASKS = {"delayed_add": delayed_add, "adding": adding, "copy": copy_task}
