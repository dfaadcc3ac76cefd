"""How a preset's sweep is written, why the sweeps sit where they do, and the sweeps
that several algorithms (and cells) share."""

from __future__ import annotations

from ..costs import Sweep


def _geo(axis, start, stop, points, multiple=1, **fixed):
    """A preset's geometric axis sweep."""
    return Sweep(axis, geometric=(start, stop, points), multiple=multiple, fixed=fixed)


def _cases(axis, values, **fixed):
    """Benchmark cases: explicit sizes along one axis."""
    return Sweep(axis, values=tuple(values), fixed=fixed)


# --- presets -------------------------------------------------------------------------
# Each axis sweep sits where its exponent's terms carry >= 90% of the analytic model
# (see bench.fit) AND where the measured time is dominated by them too, with >= 8
# points over about a decade (RTRL's n: 8x, as n^4 makes a decade 10^4 in time). What
# decides the sizes (measured single-threaded on a 2-core AMD EPYC, Numba 0.68,
# OpenBLAS; the quick preset's cells take 0.3 ms to 2 s a call):
# - a call costs ~30 us of fixed Python work (validation, allocation; ~150 us plus
#   ~20 us per layer for the MLP), so the smallest cell of a sweep takes >= ~0.5 ms;
# - tanh in the kernels is a scalar libm call (~16 ns, worth hundreds of FLOPs at the
#   GEMM rate) although the FLOP model counts it as one, so the n^2 (w^2) time of BPTT
#   (backprop) leads only from n (w) of a few hundred;
# - batches of 64 make the n x n products GEMMs that stay compute-bound when the
#   matrices outgrow the 32 MiB L3 (with B = 16 the efficiency falls by a quarter from
#   n = 1000 to 4000, which bends the slope up by ~0.1), so GFLOP/s stay flat;
# - matrix sizes are multiples of 32 (8 for RTRL) to stay on BLAS's fast paths;
# - memory exponents need the swept term to outweigh the weights and the fixed chunk
#   scratch (128 rows of steps x batch): T B (k B) well above 9 (128 + 2n).
# The report compares RTRL with BPTT where both were measured at the same (T, n, B):
# _PAIR_T is one sweep in both algorithms' presets, at an n small enough for RTRL to be
# cheap, with T on both sides of where RTRL's memory drops below BPTT's (T ~ 300 at
# n = 16, B = 1, by the models).
_PAIR_T = Sweep("T", geometric=(64, 2048, 6), fixed={"n": 16, "B": 1})
# The full preset's gated RTRL n sweeps run four steps of one sequence (see _RTRL_GATED_N
# in specs/gated.py); the Elman cell is measured at their sizes too, so that the report compares
# the cells there.
_RTRL_GATED_T = 4
_RTRL_GRU_N = (40, 48, 56, 64, 80, 96, 112, 136, 160, 192, 224, 264, 288, 320, 384)
_RTRL_LSTM_N = (44, 48, 56, 64, 80, 96, 112, 136, 160, 192, 224, 264, 304, 352)
# Memory along B (exponent 1) of BPTT and truncated BPTT, every cell: the T n B (k2 n B)
# states outweigh the n^2 weights and gradients 9 to 1 from B = 64 at n = 64, T = 64
# (B = 32 at n = 32, k2 = 64), so these sweeps have all 9 sizes in the window (the
# n = 256 sweep of BPTT's time along B has 6 of 13, the gated ones 3 and 4 of 7).
# 0.1 to 0.7 s a call at the top (GRU, LSTM).
_BPTT_B_MEMORY = _geo("B", 64, 4096, 9, T=64, n=64)
_TBPTT_B = _geo("B", 32, 4096, 9, T=128, n=32, k1=64, k2=64)
