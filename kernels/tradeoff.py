"""The trade-off sweeps: every way to pay for a gradient, measured at one (T, n, B).

BPTT stores all T states; truncated BPTT stores k and changes the gradient;
RTRL stores none and pays n^4 a step; checkpointed BPTT keeps c slots and
recomputes the rest. The report draws them on one chart, time against peak
memory (``bench/tradeoff.py``), and compares checkpointed BPTT with Gruslys et
al. 2016 ("95% of memory saved for one third more time at T = 1000"), so they
are measured where that claim was made: ``SIZE``, T = 1000, with n = 64 and
B = 8 (issue 12).

Each algorithm's sweeps here join its presets (:func:`with_tradeoff`, applied
at the end of the registry); an algorithm not in the registry is left out, so
checkpointed BPTT's sweep runs from the moment its entry exists.

Why these sizes (costs by the registry's models; call times measured
single-threaded on the reference machine, scaled by FLOPs):

- BPTT: one cell, ~20 ms a call (0.2 GFLOP at ~23 GFLOP/s), 4.2 MB of states;
- truncated BPTT, k1 = k2 = k: k from 4 to 512, all below T (k >= T is BPTT's
  gradient); its time barely moves, its memory ~ k n B;
- checkpointed BPTT over its slots c: 2 (29 forward passes' worth of
  recomputation, revolve's count) to 128 (1870 forward steps against BPTT's 999),
  sqrt(T) = 32 among them, and c = T, which stores every state like BPTT and
  recomputes nothing (the schedule's own baseline);
- RTRL at n = 64, B = 8 is 0.28 GFLOP a step, ~7.5 ms: 7.5 s a call at T = 1000,
  about two minutes as a cell of the full preset (8 rounds, 4 visits), within its
  180 s cell limit but not the quick preset's 30 s. The full preset measures it at
  T = 1000 and at T = 16; the quick one only at T = 16 (0.12 s a call). Its memory
  has no term in T (n^3 B influence matrices), so the report may carry a short
  run's peak to T = 1000 and scale its time by steps, labelled as scaled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from .costs import AlgorithmSpec, Sweep

# Where the trade-off is measured: Gruslys et al.'s T, a state and batch that keep
# BPTT's T n B states well above the weights (64^2) and RTRL affordable.
SIZE = {"T": 1000, "n": 64, "B": 8}
# The name the checkpointed kernel is registered under, and its slot axis.
CHECKPOINTED = "checkpointed_bptt"
SLOTS_AXIS = "c"
# RTRL's short runs: steps per call where T would take too long (see the docstring).
RTRL_SHORT_T = 16

_T = SIZE["T"]
_T_SWEEP = (125, 250, 500, _T)
# Issue 12's time target holds "at n = 64..512": the full preset also measures BPTT and
# a c sweep at n = 256 and 512 (T = 1000, B = 8; ~0.1 and ~0.5 s a BPTT call by the
# FLOP model, checkpointed BPTT at c = 4 about twice that), the report's overhead tables.
WIDE_N = (256, 512)
# The full preset's BPTT T sweep at SIZE, the gated cells' too
# (kernels/specs/checkpointed.py, CKPT_BASE_T: a gated sweep needs >= 6 points, each
# one an Elman point).
BASE_T_FULL = (125, 177, 250, 354, 500, 707, _T)
WIDE_C = (4, 16, 35, 92, 300, _T)


def _at(axis: str, values, **fixed) -> Sweep:
    """A sweep of explicit values along ``axis`` at SIZE, less the swept variable."""
    held = {k: v for k, v in SIZE.items() if k != axis} | fixed
    return Sweep(axis, values=tuple(values), fixed=held)


# algorithm -> preset -> sweeps. The quick preset keeps a few points of each, so a
# quick report already draws the chart; the full one the whole trade-off.
SWEEPS: dict[str, dict[str, tuple[Sweep, ...]]] = {
    # Every sweep needs 4 sizes (bench.grid.MIN_FIT_POINTS): BPTT and RTRL run a short T
    # sweep ending at T = 1000 (RTRL's quick one short of it), which also shows their
    # time per step is flat in T there.
    "bptt": {
        "quick": (_at("T", _T_SWEEP),),
        "full": (_at("T", BASE_T_FULL), *(_at("T", _T_SWEEP, n=n) for n in WIDE_N)),
    },
    "tbptt": {
        "quick": (_at("k", [4, 16, 64, 256], T=_T),),
        "full": (_at("k", [4, 8, 16, 32, 64, 128, 256, 512], T=_T),),
    },
    "rtrl": {
        "quick": (_at("T", [2, 4, 8, RTRL_SHORT_T]),),
        "full": (_at("T", [RTRL_SHORT_T, 64, 256, _T]),),
    },
    CHECKPOINTED: {
        "quick": (_at(SLOTS_AXIS, [4, 8, 32, _T], T=_T),),
        "full": (
            _at(SLOTS_AXIS, [2, 4, 8, 16, 32, 64, 128, _T], T=_T),
            *(_at(SLOTS_AXIS, WIDE_C, T=_T, n=n) for n in WIDE_N),
        ),
    },
}


def with_tradeoff(algorithms: Mapping[str, AlgorithmSpec]) -> dict[str, AlgorithmSpec]:
    """The registry with the trade-off sweeps added to the presets of the algorithms it has.

    Algorithms without trade-off sweeps, and trade-off algorithms not registered,
    are left as they are; a sweep is not added where the preset already sweeps its
    axis at the same fixed sizes (checkpointed BPTT's own c sweep is at SIZE).
    """
    out = dict(algorithms)
    for name, by_preset in SWEEPS.items():
        spec = algorithms.get(name)
        if spec is None:
            continue
        presets = dict(spec.presets)
        for preset, sweeps in by_preset.items():
            have = presets.get(preset, ())
            presets[preset] = (*have, *(s for s in sweeps if not _covered(s, have)))
        out[name] = replace(spec, presets=presets)
    return out


def _covered(sweep: Sweep, have) -> bool:
    """Whether a sweep in ``have`` runs along ``sweep``'s axis at the same fixed sizes."""
    return any(h.axis == sweep.axis and dict(h.fixed) == dict(sweep.fixed) for h in have)
