"""The online rules: UORO, KF-RTRL, R-KF, SnAp-1, SnAp-2 and RFLO, approximations of
RTRL's gradient that keep nothing per step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..costs import AlgorithmSpec
from ..kf_rtrl import flops as kf_rtrl_flops
from ..kf_rtrl import kf_rtrl
from ..kf_rtrl import memory as kf_rtrl_memory
from ..r_kf import flops as r_kf_flops
from ..r_kf import memory as r_kf_memory
from ..r_kf import r_kf
from ..rflo import flops as rflo_flops
from ..rflo import memory as rflo_memory
from ..rflo import rflo
from ..snap1 import flops as snap1_flops
from ..snap1 import memory as snap1_memory
from ..snap1 import snap1
from ..snap2 import DEFAULT_DENSITY, snap2, sparse_W_hh
from ..snap2 import flops as snap2_flops
from ..snap2 import memory as snap2_memory
from ..uoro import flops as uoro_flops
from ..uoro import memory as uoro_memory
from ..uoro import uoro
from .presets import _cases, _geo
from .sizes import RNN_AXES, RNN_SIZES, _exponents, _rnn_data

# --- the online rules ----------------------------------------------------------------
# Per step, UORO, SnAp-1 and RFLO touch n r numbers (r = n + m + 1) and multiply by W_hh
# once or twice: n^2; KF-RTRL and R-KF multiply W_hh by an n x n (n x r) factor: n^3;
# SnAp-2 is RTRL on the one-hop pattern: density^2 n^4. None keeps anything per step, so
# memory is flat in T: n^2 (density n^3 for SnAp-2). What decides the sizes (measured,
# one thread, float64; the FLOP model's 90% window is necessary, not sufficient: its
# lower-order terms are memory-bound passes that run several times slower per FLOP
# than the GEMM of the leading term, so the time's leading share lags the FLOPs'):
# - the n^2 rules run at a few us per step at n = 64 (memory-bound passes over n r
#   numbers), so T = 16 keeps their smallest quick cell near 0.2 ms and the largest
#   (n = 1024) near 20 ms; their memory model leads with n^2 only from n ~ 300 (the
#   per-block buffers hold 16 to 32 steps of vectors), so their sweeps reach n = 1024;
# - KF-RTRL and R-KF are one n^3 GEMM per step, but up to n ~ 256 the call's n^2
#   passes (K's update, c^T K, the gradient's outer product) still take a third of the
#   time: local slopes measured 1.4-2.0 from n = 64 to 128, 2.7 from 256 to 384, and
#   2.83-2.96 from 384 to 1536 (T = 2: 4.5 ms a call at n = 384, 0.25 s at 1536). The
#   sweeps start at n = 512 (quick) and 384 (full), where the GEMM carries ~90%;
# - SnAp-2 is one GEMM per row, step and batch element, (s + 1) x s times s x r (s = q + 1
#   kept units, q = density n): d_t, the leak and the gradient row are folded into it, and
#   each row's blocks run through a block of steps while in cache (kernels/snap2.py), so
#   what is left beside the FLOPs is memory-bound work per kept entry of J once a block
#   (read from memory, written back, and a call's first touch of J) and the gather of
#   W_hh[S_k, S_k] (~0.5 ns an entry, n s^2 a block). When J was streamed every step (c
#   ~10 to 20 FLOPs' time an entry a step: the rate is the GEMM peak over 1 + c / s, which
#   bends a slope by about -(c / s_first - c / s_last) / ln(s_last / s_first)), the
#   reference fit along n was 3.88 over 320..576; in blocks it is c / (s T) at T = 4.
#   The sweeps keep s >= ~128 and T = 4: along density n = 512 from 30% to 90% (s = 154
#   to 461), along n 256 to 704 at 50% (s = 129 to 353, 2.75x): calls of 0.1 to 6 s and at
#   most 1.4 GiB. Above n = 512 (s > 256) the rate falls again, from 96 GFLOP/s at n = 496
#   to 81 at 704 (reference run); not understood: the same GEMM shapes in a loop, hot in
#   cache, run at 103 to 108 GFLOP/s through s = 352. 100%
#   density is left out: every unit kept, the kernel skips the gather (RTRL's
#   product), a change of code path within the sweep. Along B the blocks are B
#   products of their own, the same work per element; the B sweep runs at n = 160 and
#   50% (s = 81), where J (17 MB per element) leaves the last-level cache from B = 2 on,
#   so that the per-entry streaming costs alike at every B but the first, and T = 2
#   (7 ms a call at B = 1: the ~30 us of fixed work a call under 1%; 1.1 GiB at B = 64).
# - the n^2 rules' time along n (reference run, T = 16, B = 1): a call's time less
#   ~30 us of fixed work, per step and per n^2, is flat from n = 64 (SnAp-1, RFLO:
#   0.23-0.27 ns) or 184 (UORO: 0.43-0.51 ns; ~1 us a step more below) to n = 728,
#   then steps up ~2.3x to n = 2048 as the 2-3 n^2 numbers a step streams leave the
#   last-level cache (0.59 ns at 1024, 1.08 at 1448 for UORO). The fit over 64..2048
#   averages the two regimes to ~2.0 with a wide interval. The full preset therefore
#   adds a denser sweep inside the cache, n = 184..728 at T = 256 (the fixed work under
#   2% of a call), which the time fit takes; the online budget table reads its n off
#   the wide sweep, which crosses the budget (bench/online_budget.py).
# The full preset adds T and B sweeps of 8 points each (and the n^2 rules a second B
# sweep of 10): about 200 cells for the six.
# The n^3 rules' B sweeps run from 8 to 1024 at n = 64: the time's B^1 terms lead the
# time model (FLOPs at the GEMM rate, each step's weight reads at the GEMV rate;
# bench.fit) from B ~ 8 to 16, and the memory's B n^2 state leads the n r buffers 9 to 1
# from B ~ 32 (memory along B: 6 of 8 sizes in its window; B = 1 to 64 gave it 2 or 3).
# The n^2 rules' B sweep stays in one level of the memory hierarchy: each sequence keeps
# n r numbers that every block streams (UORO's theta~, SnAp-1's and RFLO's trace S),
# beside its block's records, so the cost per sequence steps up where B sequences'
# state leaves the 32 MiB L3 (shared by both cores; L2 1 MiB a core). At n = 128,
# T = 16, B = 8..1024 the memory model's working set is 2.0 to 199 MiB (SnAp-1, RFLO)
# and 2.1 to 217 MiB (UORO), and in the reference run (the kernels before UORO's
# theta~ copy went) the time per sequence and step was flat up to 13 MiB (SnAp-1, RFLO:
# 2.2 us to B = 64) and 38 MiB (UORO: 5.9 to 6.3 us to B = 128), then 1.3 to 1.5x that
# beyond, still rising at B = 1024: fits of 1.09 to 1.12 over the mix (INCONCLUSIVE).
# At n = 32 (r = 34) a sequence keeps 8.7 KiB of S or theta~ and 33 to 50 KiB of block
# records and scratch, so B = 16..256 spans a working set of 0.7 to 10.5 MiB (SnAp-1,
# RFLO) and 1.0 to 14.8 MiB (UORO): inside the L3 at every point (the bottom one or
# two inside L2, which measured no different: 0.42 to 0.47 us a sequence and step for
# SnAp-1 from B = 16 to 512, 0.70 to 0.80 us for UORO, before its blocks). The state
# beyond the L3 instead (B from ~1024 at n = 128) would take 2.5 GiB for UORO at a
# decade's span. T = 256 keeps a call's fixed ~30 us
# under 2% at B = 16 (1.8 ms, SnAp-1), the top call near 30 ms (SnAp-1) to 60 ms (UORO);
# the time model's B^1 terms carry >= 90% from B = 16, its memory's from B ~ 12 (UORO)
# and 16 (SnAp-1, RFLO): all its sizes are in both windows. The n = 128 sweep stays for
# its large batches: the threads grid (reports/reference/threads.toml) times SnAp-1's
# and RFLO's B = 128..1024 at two threads for the report's parallel chart, and reuses
# the one-thread cells from here. The fit takes the in-L3 sweep: it has more sizes in
# its window (10 to the large one's 6 to 8), as the in-cache n sweep below does.
B_IN_L3_POINTS = 10

# The n^2 rules' in-cache n sweep has more points than the wide one (11), so that the
# exponent fit, which takes the sweep with the most sizes in its window, takes it.
IN_CACHE_POINTS = 12

_TO18 = "Tallec & Ollivier 2018, sec. 3 and Algorithm 1; Marschall, Cho & Savin 2020, Table 1"
_MMS18 = "Mujika, Meier & Steger 2018, sec. 4 and Table 1; Marschall, Cho & Savin 2020, Table 1"
_MCS20 = "Marschall, Cho & Savin 2020, sec. 4.3 and Table 1"
_MEN21 = "Menick et al. 2021, sec. 3 and Table 1"
_MEN21_2 = (
    "Menick et al. 2021, sec. 3.1 (RTRL restricted to the one-hop pattern of W_hh: "
    "density^2 n^4 time, density n^3 memory per step at a fixed density)"
)
_MUR19 = "Murray 2019, eqs. 12-14; Marschall, Cho & Savin 2020, Table 1"

SPARSE_RNN_SIZES = {**RNN_SIZES, "density": DEFAULT_DENSITY}


def _sparse_rnn_problem(size, dtype, seed):
    """A problem whose W_hh keeps its diagonal and ``density`` percent of each column."""
    params, xs, ys = _rnn_data(size, dtype, seed)
    density = int(size.get("density", DEFAULT_DENSITY))
    W_hh = sparse_W_hh(params.W_hh, density, np.random.default_rng(seed + 2))
    return params._replace(W_hh=W_hh), xs, ys


def _online(name, title, func, flops, memory, source, n_time, n_memory, make_problem=_rnn_data,
            sizes=RNN_SIZES, quick=(), full=(), cases=()):  # fmt: skip
    return AlgorithmSpec(
        name=name,
        title=title,
        family="rnn",
        func=func,
        make_problem=make_problem,
        flops=flops,
        memory=memory,
        exponents=_exponents(source, T=(1, 0), n=(n_time, n_memory), B=(1, 1)),
        axis_vars=RNN_AXES,
        sizes=sizes,
        presets={"quick": quick, "full": full},
        bench_cases=cases,
    )


def _quadratic(name, title, func, flops, memory, source):
    """An n^2-per-step rule (UORO, SnAp-1, RFLO): the same sweeps and cases."""
    return _online(
        name, title, func, flops, memory, source, 2, 2,
        quick=(_geo("n", 160, 1024, 6, multiple=8, T=16, B=1),),
        full=(
            _geo("T", 64, 8192, 8, n=64, B=1),
            _geo("n", 64, 2048, 11, multiple=8, T=16, B=1),
            # denser at the top for the memory, at T = 8: UORO's n^2 terms (theta~ and G)
            # carry 90% of its model at T = 16 only from n ~ 1100 (its block records and
            # fold panels grow like n), so its memory fit takes these 5 sizes (the time
            # fits the in-cache sweep below; SnAp-1's and RFLO's memory and the budget
            # table the wide one above, which reaches as far and has more sizes)
            _geo("n", 1024, 2048, 5, multiple=8, T=8, B=1),
            # inside the last-level cache, T = 256 steps a call: the fit's sweep (more
            # points in the window than the wide one), the wide one the budget's
            _geo("n", 184, 728, IN_CACHE_POINTS, multiple=8, T=256, B=1),
            # every sequence's state inside the L3 (see "The n^2 rules' B sweep" above): the
            # fit's sweep; the large batches, beyond the L3 from B ~ 128, the threads grid's
            _geo("B", 16, 256, B_IN_L3_POINTS, T=256, n=32),
            _geo("B", 8, 1024, 8, T=16, n=128),
        ),
        cases=(_cases("n", [64, 256], T=200, B=1),),
    )  # fmt: skip


def _cubic(name, title, func, flops, memory, source):
    """An n^3-per-step rule (KF-RTRL, R-KF): the same sweeps and cases."""
    return _online(
        name, title, func, flops, memory, source, 3, 2,
        quick=(_geo("n", 512, 1536, 5, multiple=16, T=2, B=1),),
        full=(
            _geo("T", 64, 8192, 8, n=64, B=1),
            _geo("n", 384, 2048, 9, multiple=16, T=2, B=1),
            _geo("B", 8, 1024, 8, T=4, n=64),
        ),
        cases=(_cases("n", [64, 256], T=200, B=1),),
    )  # fmt: skip


def _snap2_spec():
    """SnAp-2: the n^4 rule of a sparse W_hh, with density (percent) as an axis of its own."""
    spec = _online(
        "snap2",
        "SnAp-2",
        snap2,
        snap2_flops,
        snap2_memory,
        _MEN21_2,
        4,
        3,
        make_problem=_sparse_rnn_problem,
        sizes=SPARSE_RNN_SIZES,
        quick=(
            # Both quick sweeps sit where the GEMM's rate still rises with s = density n, so
            # they fit below the exponents: along n, 88 to 98 GFLOP/s over 256..448 (fits of
            # 3.8 to 3.9 in two quick runs); along density at n = 320, 79 to 91 GFLOP/s from
            # 40% to 90% at T = 2 (84 to 92 at T = 4; fits of 1.8 to 1.9). The full preset's
            # sweeps (n 256..704, where the rate rises and then falls; density at n = 512)
            # are the ones that measure the exponents.
            _geo("n", 256, 448, 5, multiple=16, T=2, B=1, density=50),
            _geo("density", 25, 90, 5, T=2, B=1, n=320),
        ),
        full=(
            _geo("T", 16, 2048, 8, n=64, B=1),
            _geo("n", 256, 704, 13, multiple=16, T=4, B=1, density=50),
            _geo("density", 30, 90, 9, T=4, B=1, n=512),
            _geo("B", 1, 64, 8, T=2, n=160, density=50),
        ),
        cases=(
            _cases("n", [64, 256], T=8, B=1),
            _cases("n", [64, 128], T=8, B=1, density=100),  # dense: RTRL's work
        ),
    )
    return replace(
        spec,
        axis_vars={**RNN_AXES, "density": ("density",)},
        exponents={**spec.exponents, **_exponents(_MEN21_2, density=(2, 1))},
        axis_labels={"density": "density of W_hh (% non-zeros)"},
    )  # fmt: skip


ONLINE = dict(
    uoro=_quadratic("uoro", "UORO", uoro, uoro_flops, uoro_memory, _TO18),
    kf_rtrl=_cubic("kf_rtrl", "KF-RTRL", kf_rtrl, kf_rtrl_flops, kf_rtrl_memory, _MMS18),
    r_kf=_cubic("r_kf", "R-KF", r_kf, r_kf_flops, r_kf_memory, _MCS20),
    snap1=_quadratic("snap1", "SnAp-1", snap1, snap1_flops, snap1_memory, _MEN21),
    snap2=_snap2_spec(),
    rflo=_quadratic("rflo", "RFLO", rflo, rflo_flops, rflo_memory, _MUR19),
)  # fmt: skip
