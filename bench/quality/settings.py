"""Settings (an algorithm and its options), networks, tasks.

A :class:`Setting` is what a quality row measures with: the stream's algorithm
name, its options (k1, k2 for truncated BPTT; the seed of a stochastic rule
is the run's seed) and the update interval: the weights change every
``update`` steps, so the stream is fed chunks of that length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import bpttbench
import numpy as np
from bpttbench import tasks

STOCHASTIC = ("uoro", "kf_rtrl", "r_kf")
ONLINE = ("rtrl", "uoro", "kf_rtrl", "r_kf", "snap1", "snap2", "rflo")
EXACT = ("rtrl", "bptt")


@dataclass(frozen=True)
class Setting:
    """One algorithm with its options.

    ``label`` names it in tables and charts: ``tbptt k=6``, ``bptt-chunk 16``, ``uoro``.
    ``algorithm`` is the registry name the stream runs (``tbptt`` for the chunk form).
    """

    algorithm: str
    k1: int | None = None
    k2: int | None = None
    update: int = 1  # steps between weight updates (the chunk length fed to the stream)
    label: str = ""
    options: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        return self.label or self.algorithm

    def stream_options(self, seed: int) -> dict:
        opts = dict(self.options)
        if self.algorithm == "tbptt":
            opts.update(k1=self.k1, k2=self.k2)
        if self.algorithm in STOCHASTIC:
            opts["seed"] = seed
        return opts

    def as_dict(self) -> dict:
        out = {"label": self.name, "update": self.update}
        if self.k1 is not None:
            out.update(k1=self.k1, k2=self.k2)
        return out

    def key(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


def tbptt(k: int, update: int) -> Setting:
    """BPTT(k; update): update every ``update`` steps, back-propagate through k steps."""
    return Setting("tbptt", k1=update, k2=k, update=update, label=f"tbptt k={k}")


def bptt_chunk(chunk: int) -> Setting:
    """Exact BPTT inside each chunk of ``chunk`` steps, state carried: tbptt k1 = k2 = chunk."""
    return Setting("tbptt", k1=chunk, k2=chunk, update=chunk, label=f"bptt-chunk {chunk}")


def online(name: str, update: int) -> Setting:
    return Setting(name, update=update)


def spectral_radius(W: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(W))))


CELLS = ("elman", "gru", "lstm")


def network(
    n: int, m: int, p: int, seed: int, rho: float | None = None, dtype=np.float64, cell="elman"
):
    """The cell's ``init_*`` weights, the recurrent matrix rescaled to spectral radius ``rho``.

    Elman: W_hh. GRU and LSTM: each gate's n x n block of ``weight_hh``
    (r|z|n, i|f|g|o) rescaled to spectral radius ``rho`` on its own, so that
    the candidate block (W_hn, W_hg), the one the linearised rate of
    ``cells.linearised`` multiplies, has it, and no gate is left at
    PyTorch's default scale. ``rho`` None keeps the init's weights.
    """
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}: cells are {', '.join(CELLS)}")
    init = {"elman": bpttbench.init_rnn, "gru": bpttbench.init_gru, "lstm": bpttbench.init_lstm}
    params = init[cell](m, n, p, seed=seed, dtype=dtype)
    if rho is None:
        return params
    if cell == "elman":
        W = params.W_hh
        return params._replace(W_hh=(W * (rho / spectral_radius(W))).astype(W.dtype))
    W = params.weight_hh.copy()
    for b in range(W.shape[0] // n):
        block = W[b * n : (b + 1) * n]
        block *= rho / spectral_radius(block)
    return params._replace(weight_hh=W)


@dataclass(frozen=True)
class TaskSpec:
    """A task and its knob: ``name`` in ``bpttbench.tasks.TASKS`` and its keyword options."""

    name: str
    options: tuple[tuple[str, int], ...] = ()

    def make(self, T: int, B: int, seed: int) -> tasks.Task:
        return tasks.TASKS[self.name](T, B=B, seed=seed, **dict(self.options))

    def lags(self) -> tuple[int, ...]:
        return self.make(self.period() * 2, 1, 0).lags

    def period(self) -> int:
        """Steps of one episode (1 for a plain stream)."""
        o = dict(self.options)
        if self.name == "adding":
            return o.get("length", 20)
        if self.name == "copy":
            return 2 * o.get("length", 5) + o.get("delay", 10) + 1
        return max(o.get("t2", 9), 1) + 1

    def label(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in self.options)})"


def delayed_add(t1: int = 5, t2: int = 9) -> TaskSpec:
    return TaskSpec("delayed_add", (("t1", t1), ("t2", t2)))


def threshold(baselines: dict[str, float]) -> float:
    """Halfway between the 'nothing' baseline and the next one."""
    values = sorted(baselines.values(), reverse=True)
    return 0.5 * (values[0] + values[1]) if len(values) > 1 else values[0]
