"""The cell as a size: the GRU's and LSTM's sweeps, and the algorithms that take them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..costs import AlgorithmSpec, Sweep
from .checkpointed import CKPT_BASE_T, CKPT_T_SLOTS
from .presets import _BPTT_B_MEMORY, _PAIR_T, _RTRL_GRU_N, _RTRL_LSTM_N, _TBPTT_B, _cases, _geo
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
# carry 90% of the FLOP model (40 for the GRU, 44 for the LSTM at m = 1; bench.fit).
# Over 48..192 (4x) the fits came out 3.92 [3.82, 4.02] (GRU) and 3.84 [3.74, 3.94]
# (LSTM): the kernels' rate still rises from ~75% of the GEMM peak at n = 64..128 to
# ~90% at 192 (the GEMM A_t @ slab has inner dimension n), which a 4x window cannot
# average out. One step of one sequence (T = B = 1; a step costs the same at every t,
# J_0 = 0 included; T = 1, 2 and 8 measured within a few percent a step) keeps the top
# sizes at 4.5 s (LSTM, n = 352, 2.8 GB: its influence matrix is 8 n^3 B numbers) and
# 1.2 s a call (GRU, n = 320, 0.8 GB). Estimated on the reference machine at its
# kernels' rate, min-time 1.5 (17 calls a cell at the top): about 50 s (GRU), 140 s
# (LSTM) and 40 s (the Elman cell at their sizes), against about 95 s for the two
# 48..192 sweeps they replace.
# Over 40..320 (GRU) and 44..352 (LSTM) the reference run fitted 3.89 [3.84, 3.93]
# (INCONCLUSIVE) and 3.89 [3.85, 3.93]: the rate, 42 to 49 GFLOP/s up to n = 160 and
# 50 to 56 above, still rose at the top; starting the window higher does not help
# (48..352 gives 3.91 [3.87, 3.95] for the GRU but 3.88 [3.84, 3.92] for the LSTM,
# whose rate rises most from n = 80 on). So the sweeps reach further, to where the
# Elman kernel's rate levels off (57 to 60 GFLOP/s at n = 224..376): GRU 288, 384,
# 448 (4.6 s a call, 2.2 GB), LSTM 304, 416 (8.7 s, 4.6 GB). With the rates levelling
# at 53 to 56 GFLOP/s there, the stored sweeps project to 3.89 [3.86, 3.92] and
# 3.89 [3.86, 3.92]: inside 4 +- 0.15, by a little. About 250 s more (14 calls a cell).
# They came out 3.88 [3.86, 3.91] (GRU, PASS) and 3.85 [3.82, 3.89] (LSTM, INCONCLUSIVE),
# and the Elman cell at their sizes 3.87 [3.82, 3.92]. What the time model misses is the
# influence matrix's own traffic: every step reads and writes each of its S P B numbers
# once (S n^2 r B: n^2 (n + 2) for the Elman cell, 3 n^2 (n + 2) the GRU, 8 n^2 (n + 2)
# the LSTM), and beyond the 32 MiB L3 (from n = 161, 112 and 80 at B = 1; 128 for the
# Elman at B = 2) that stream runs at the memory's rate. Two terms, the FLOPs at one rate
# and a cost per influence number, fit every stored RTRL n sweep from n = 80 within
# ~10% (diagnosis only, not the fit's method): 95 to 101 GFLOP/s (the run's DGEMM peak,
# 102) and 0.64 to 0.87 ns a number a step (16 bytes read and written: 18 to 25 GB/s,
# one core's DRAM stream). The n^4 terms then carry 90% of the time only from n ~ 260
# (GRU), 330 (Elman) and 410 (LSTM); an 8x span from there (J: 0.1 TB at n = 2400) is
# out of reach, and below the L3 exit the stream is cheaper, a regime of its own. So
# every window that starts past the L3 exit measures 3.80 to 3.86 (Elman 80..448 at
# T = B = 2: 3.85 [3.79, 3.91]), and the PASSes (the GRU's; the Elman's own T = B = 2
# sweep, 3.97 [3.89, 4.05]) rest on the in-L3 points below n ~ 100. Neither a later
# start nor a preferred sweep makes these fits honest PASSes; charging the stream
# needs a memory rate that the runs do not yet measure (bench.measure times GEMM and an
# L3-resident 1024^2 GEMV only).
_RTRL_GATED_N = {
    "gru": _cases("n", _RTRL_GRU_N, T=1, B=1, cell="gru"),
    "lstm": _cases("n", _RTRL_LSTM_N, T=1, B=1, cell="lstm"),
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
