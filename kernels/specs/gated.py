"""The cell as a size: the GRU's and LSTM's sweeps, and the algorithms that take them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..costs import AlgorithmSpec, Sweep
from .checkpointed import CKPT_BASE_T, CKPT_T_SLOTS
from .presets import (
    _BPTT_B_MEMORY,
    _PAIR_T,
    _RTRL_GATED_T,
    _RTRL_GRU_N,
    _RTRL_LSTM_N,
    _TBPTT_B,
    _cases,
    _geo,
)
from .sizes import CELL_SIZE

# --- the cell: a categorical size variable ------------------------------------------------
# BPTT, truncated BPTT and RTRL take the cell as a size variable ``cell``: "elman" (the
# default), "gru" or "lstm" (kernels/cells/); the online rules run the Elman cell only.
# ``make_problem`` builds that cell's parameters and the FLOP and memory models branch
# on it (kernels/bptt.py, tbptt.py; rtrl dispatches to kernels/rtrl_gru.py and
# rtrl_lstm.py). The declared exponents hold for
# every cell: a gated step does G = 3 (GRU) or 4 (LSTM) times the Elman step's GEMM
# work and stores (1 + K) n B numbers (K = 4, 5) instead of n B, constants that change
# no power of T, n, B or k, so gated BPTT time is ~ T n^2 B and its memory ~ T n B + P
# (THEORY.md, "Costs"; tests/test_registry.py checks the powers per cell).
#
# The gated sweeps take their sizes from the Elman sweeps of the same preset (every
# point, or every other), with the same fixed sizes, so that the report compares the
# cells at equal (T, n, B) (bench/cells_compare.py), and they sit where the Elman
# ones do for the same reasons (see specs/presets.py), shorter: a gated BPTT call costs
# 3 to 4 times the Elman one (measured: bptt at n = 64, B = 16, T = 2048 takes 36 ms
# for Elman, 115 ms for the GRU, 173 ms for the LSTM; at n = 1024, T = 2, B = 64: 16,
# 55 and 69 ms), a gated RTRL call 3 (GRU) and 8 (LSTM) times the FLOPs. The RTRL n
# sweeps start at n = 48 (quick), where the n^4 terms carry 90% of every cell's FLOPs
# and n^3 90% of its memory, and stop at 136 (0.6 s an LSTM call by the FLOP model at
# the Elman kernel's rate); the full preset's span 8x (_RTRL_GATED_N). The quick
# preset gets BPTT's T and n and RTRL's n and T (the pair sweep), 6 points each: 48
# cells; the full preset every axis of BPTT, truncated BPTT and RTRL, with >= 8 sizes
# in the fit window of every exponent, time and memory (the memory-along-n and -B
# sweeps are the Elman's own; tests/test_registry.py checks the windows per cell).


# The full preset's gated RTRL n sweeps: 8x from the first size where the n^4 terms
# carry 90% of the FLOP model (40 for the GRU, 44 for the LSTM at m = 1; bench.fit), to
# 384 (GRU) and 352 (LSTM): the kernels' rate rises from ~75% of the GEMM peak at
# n = 64..128 to ~90% at 192 (the GEMM A_t @ slab has inner dimension n), which a 4x
# window could not average out. The Elman cell is measured at their sizes too.
# Four steps of one sequence, not one: a call reads and writes its whole influence
# matrix (S P B numbers: n^2 (n + 2) for the Elman cell, 3 n^2 (n + 2) the GRU,
# 8 n^2 (n + 2) the LSTM) at least once, and beyond the 32 MiB L3 (from n = 161, 112 and
# 80 at B = 1) at the memory's rate, ~0.7 ns a number (16 bytes read and written, and
# the first touch of fresh pages). The time model does not charge it (the runs measure
# no memory rate). When every step streamed it, at T = 1, it took ~15% of a call at
# n = 136 and bent the fits to 3.85 to 3.87: the n^4 terms led 90% of the time only from
# n ~ 330 (Elman) and 410 (LSTM), out of reach. The kernels now run each slab through a
# pass of up to STEPS_PER_PASS steps while it is in cache (kernels/_slabs.py), so the
# matrix crosses the bus once a pass: at T = 4 the stream is a quarter of a step's,
# and the n^4 terms carry 90% from n T ~ 330, n ~ 80. Measured at min-time 1.5: about
# 20 min for the 155 RTRL cells of the full preset. The next sizes, GRU 448 and LSTM
# 416 (10.7 and 21 s a call), would pass the sweep's 3 minutes a cell
# (--max-cell-seconds) and be skipped.
_RTRL_GATED_N = {
    "gru": _cases("n", _RTRL_GRU_N, T=_RTRL_GATED_T, B=1, cell="gru"),
    "lstm": _cases("n", _RTRL_LSTM_N, T=_RTRL_GATED_T, B=1, cell="lstm"),
}


def _on_cell(sweep: Sweep, cell: str) -> Sweep:
    """An Elman sweep of the registry, on ``cell``: the same sizes, for the cell comparison."""
    return replace(sweep, fixed={**sweep.fixed, "cell": cell})


def _cell_sweeps(cell):
    pair_t = _on_cell(_PAIR_T, cell)
    # BPTT's and truncated BPTT's time along n: every size of the Elman's up to 3040 (15
    # points: the LSTM's BPTT fit over every other size, 8 points, came out 2.08 [1.99,
    # 2.17], one point's noise wide; and with 8 points the truncated BPTT time fit went
    # to the memory sweep's 9 small sizes, n = 32..512, where the gates' pointwise work
    # leads: 1.70 there)
    bptt_n = (384, 448, 512, 608, 704, 800, 928, 1088, 1248, 1440, 1696, 1952, 2272, 2624, 3040)
    return {
        "bptt": {
            "quick": (
                _geo("T", 256, 1448, 6, n=64, B=16, cell=cell),
                _cases("n", (448, 544, 672, 800, 992, 1216), T=2, B=64, cell=cell),
            ),
            "full": (
                # to the Elman's top T: the GRU's states lead its memory 9 to 1 from
                # T = 256 only (1.8 s a GRU call, 2.8 s an LSTM call at T = 32768)
                _geo("T", 128, 32768, 9, n=64, B=16, cell=cell),
                _cases("n", bptt_n, T=4, B=64, cell=cell),
                # memory along n and along B: the Elman's sweeps (see their comments)
                _geo("n", 16, 512, 11, multiple=8, T=1024, B=16, cell=cell),
                _geo("B", 8, 512, 7, T=64, n=256, cell=cell),
                _on_cell(_BPTT_B_MEMORY, cell),
                # the baseline of checkpointed BPTT's c sweep at T = 1000, B = 8
                _cases("T", CKPT_BASE_T, n=64, B=8, cell=cell),
            ),
        },
        "checkpointed_bptt": {
            "full": (
                _cases("c", (2, 5, 14, 35, 92, 238, 620, 1000), T=1000, n=64, B=8, cell=cell),
                # memory along c: one-step segments (B = 128) keep revolve's slots up to
                # T - 1 (a gated cell's kept tail is no power of c); n = 16 keeps the
                # gradients small beside c n B (8 of 9 in the window for the GRU, 9 LSTM)
                _geo("c", 224, 2047, 9, T=2048, n=16, B=128, cell=cell),
                _cases(
                    "T",
                    (128, 208, 338, 549, 891, 1448, 2353, 3822),
                    n=64,
                    B=16,
                    c=CKPT_T_SLOTS,
                    cell=cell,
                ),
            ),
        },
        "tbptt": {
            "full": (
                _geo("T", 128, 16384, 8, n=64, B=16, k1=16, k2=16, cell=cell),
                _cases("n", bptt_n, T=16, B=64, k1=8, k2=8, cell=cell),
                _geo("n", 16, 512, 11, multiple=8, T=256, B=64, k1=256, k2=256, cell=cell),
                _geo("k", 64, 8192, 8, T=8192, n=16, B=64, cell=cell),
                _on_cell(_TBPTT_B, cell),
            ),
        },
        "rtrl": {
            "quick": (
                _cases("n", (48, 56, 64, 80, 104, 136), T=2, B=2, cell=cell),
                pair_t,
            ),
            "full": (
                # every other size of the Elman's, 8 (3 s an LSTM call at T = 8192)
                _cases("T", (16, 39, 95, 232, 565, 1378, 3360, 8192), n=32, B=1, cell=cell),
                _RTRL_GATED_N[cell],
                # the Elman's B sweep (12 sizes; 7 left the fits short of 8 points)
                _geo("B", 1, 64, 13, T=4, n=64, cell=cell),
                pair_t,
            ),
        },
    }


# algorithm -> preset -> the gated cells' sweeps
CELL_SWEEPS: dict[str, dict[str, tuple[Sweep, ...]]] = {}
for _cell in ("gru", "lstm"):
    for _name, _presets in _cell_sweeps(_cell).items():
        for _preset, _sweeps in _presets.items():
            _by_preset = CELL_SWEEPS.setdefault(_name, {})
            _by_preset[_preset] = _by_preset.get(_preset, ()) + _sweeps


# The algorithms that take every cell; of the online rules SnAp-1 takes the gated cells
# too (Menick et al. 2021 define it for them; kernels/snap1_gated.py, O(n^2) per step
# with G = 3 or 4 gates' constant), the others run the (leaky) Elman cell only.
CELL_ALGORITHMS = ("bptt", "tbptt", "rtrl", "checkpointed_bptt", "snap1")


def with_cells(algorithms: Mapping[str, AlgorithmSpec]) -> dict[str, AlgorithmSpec]:
    """The registry with the cell as a size variable of the algorithms that take cells.

    ``cell`` joins the sizes of :data:`CELL_ALGORITHMS` (default ``"elman"``, a
    categorical size) and the gated sweeps of :data:`CELL_SWEEPS` join their
    presets; make_problem and the cost models read ``size["cell"]``. The fits
    (``bench.fit``) fit each cell's sweeps apart, and the report compares the
    cells (``bench.cells_compare``). :data:`ALGORITHMS` is built with it
    (kernels/registry.py).
    """
    out = {}
    for name, spec in algorithms.items():
        if name not in CELL_ALGORITHMS:
            out[name] = spec
            continue
        extra = CELL_SWEEPS.get(name, {})
        presets = {}
        for p in {*spec.presets, *extra}:  # idempotent: a sweep already there is not added
            have = spec.presets.get(p, ())
            presets[p] = (*have, *(s for s in extra.get(p, ()) if s not in have))
        out[name] = replace(spec, sizes={**spec.sizes, **CELL_SIZE}, presets=presets)
    return out
