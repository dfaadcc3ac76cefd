"""The algorithm registry: what the harness, the benchmark suite and the report know.

Each entry pairs a gradient function with its exact FLOP count, its analytic
working memory, its theoretical exponents per axis (THEORY.md, "Costs"), the
sizes it takes with their defaults, the sweeps of the ``quick`` and ``full``
presets and the cases of the pytest-benchmark suite, and for the report the
algorithms it is compared with and the peer tools that compute it. A new
algorithm is one file in ``kernels/`` plus one entry here; ``bench`` reads
nothing else.

Other packages add algorithms through the entry-point group
``bpttbench.algorithms`` (:data:`ENTRY_POINT_GROUP`): the object an entry point
names is an :class:`~bpttbench.costs.AlgorithmSpec`, or a callable without
arguments that returns one. ``import bpttbench`` loads them into
:data:`ALGORITHMS` after the built-in entries (:func:`load_plugins`); a plugin
that fails to load is left out with a :class:`PluginWarning` naming it, and the
built-in algorithms work as before. In a package's ``pyproject.toml``::

    [project.entry-points."bpttbench.algorithms"]
    my_rtrl = "my_package.algorithms:SPEC"
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import replace
from functools import partial
from importlib import metadata

import numpy as np

# Names, not modules: the package re-exports each function under its module's name.
from .backprop import backprop
from .backprop import flops as backprop_flops
from .backprop import memory as backprop_memory
from .bptt import bptt
from .bptt import flops as bptt_flops
from .bptt import memory as bptt_memory
from .cells import CELL_NAMES, INIT, cell_named
from .checkpointed_bptt import checkpointed_bptt, default_slots
from .checkpointed_bptt import evaluations as checkpointed_evaluations
from .checkpointed_bptt import flops as checkpointed_flops
from .checkpointed_bptt import memory as checkpointed_memory
from .checkpointed_bptt import plan as checkpoint_plan
from .costs import AlgorithmSpec, Exponent, Sweep, Term
from .kf_rtrl import flops as kf_rtrl_flops
from .kf_rtrl import kf_rtrl
from .kf_rtrl import memory as kf_rtrl_memory
from .model import init_mlp
from .r_kf import flops as r_kf_flops
from .r_kf import memory as r_kf_memory
from .r_kf import r_kf
from .rflo import flops as rflo_flops
from .rflo import memory as rflo_memory
from .rflo import rflo
from .rtrl import flops as rtrl_flops
from .rtrl import memory as rtrl_memory
from .rtrl import rtrl
from .snap1 import flops as snap1_flops
from .snap1 import memory as snap1_memory
from .snap1 import snap1
from .snap2 import DEFAULT_DENSITY, snap2, sparse_W_hh
from .snap2 import flops as snap2_flops
from .snap2 import memory as snap2_memory
from .tbptt import flops as tbptt_flops
from .tbptt import memory as tbptt_memory
from .tbptt import tbptt
from .uoro import flops as uoro_flops
from .uoro import memory as uoro_memory
from .uoro import uoro

ENTRY_POINT_GROUP = "bpttbench.algorithms"

RNN_AXES = {"T": ("T",), "n": ("n",), "B": ("B",), "k": ("k1", "k2")}
MLP_AXES = {"depth": ("depth",), "width": ("width",), "B": ("B",)}
# Default sizes where a sweep says nothing. Input and output sizes are kept at 1 so
# the n^2 (and n^4) terms lead the cost models from small n on.
RNN_SIZES = {"T": 64, "n": 32, "B": 1, "m": 1, "p": 1}
TRUNCATION_SIZES = {**RNN_SIZES, "k1": 16, "k2": 16}
MLP_SIZES = {"depth": 4, "width": 128, "B": 16}
# What each axis means, for chart axes and tables; a spec's own axis_labels come first.
AXIS_LABELS = {
    "T": "sequence length T (steps)",
    "n": "state size n (hidden units)",
    "B": "batch size B",
    "k": "truncation length k = k1 = k2 (steps)",
    "depth": "depth L (layers)",
    "width": "width w (units per layer)",
}


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
# The full preset's gated RTRL n sweeps run one step of one sequence (see _RTRL_GATED_N
# below); the Elman cell is measured at their sizes too, so that the report compares
# the cells there.
_RTRL_GRU_N = (40, 48, 56, 64, 80, 96, 112, 136, 160, 192, 224, 264, 288, 320, 384, 448)
_RTRL_LSTM_N = (44, 48, 56, 64, 80, 96, 112, 136, 160, 192, 224, 264, 304, 352, 416)
# Memory along B (exponent 1) of BPTT and truncated BPTT, every cell: the T n B (k2 n B)
# states outweigh the n^2 weights and gradients 9 to 1 from B = 64 at n = 64, T = 64
# (B = 32 at n = 32, k2 = 64), so these sweeps have all 9 sizes in the window (the
# n = 256 sweep of BPTT's time along B has 6 of 13, the gated ones 3 and 4 of 7).
# 0.1 to 0.7 s a call at the top (GRU, LSTM).
_BPTT_B_MEMORY = _geo("B", 64, 4096, 9, T=64, n=64)
_TBPTT_B = _geo("B", 32, 4096, 9, T=128, n=32, k1=64, k2=64)

_WZ95 = "Williams & Zipser 1995"
_WP90 = "Williams & Peng 1990; Williams & Zipser 1995"
_WZ89 = "Williams & Zipser 1989; Menick et al. 2021 (quartic in the state size)"
_STD = "standard (Rumelhart, Hinton & Williams 1986)"


def _rnn_data(size, dtype, seed):
    T, B, n, m, p = (int(size[k]) for k in ("T", "B", "n", "m", "p"))
    cell = size.get("cell", CELL_SIZE["cell"])
    if cell not in INIT:
        raise ValueError(f"unknown cell {cell!r}; cells are {', '.join(CELL_NAMES)}")
    params = INIT[cell](m, n, p, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    xs = rng.standard_normal((T, B, m)).astype(dtype)
    ys = rng.standard_normal((T, B, p)).astype(dtype)
    return params, xs, ys


def _tbptt_problem(size, dtype, seed):
    return (*_rnn_data(size, dtype, seed), int(size["k1"]), int(size["k2"]))


def _checkpointed_problem(size, dtype, seed):
    """BPTT's problem and the slot count ``c`` (absent: the kernel's default ceil(sqrt(T)));
    the schedule is built here, once per (T, c), like an FFT plan (checkpointed_bptt.plan)."""
    slots = int(size["c"]) if "c" in size else None
    if slots is not None:
        checkpoint_plan(int(size["T"]), slots, int(size["B"]))
    return (*_rnn_data(size, dtype, seed), slots)


def _mlp_problem(size, dtype, seed):
    L, w, B = int(size["depth"]), int(size["width"]), int(size["B"])
    params = init_mlp([w] * (L + 1), seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((B, w)).astype(dtype)
    y = rng.standard_normal((B, w)).astype(dtype)
    return params, x, y


def _exponents(source, **by_axis):
    """``T=(time, memory)`` -> {(axis, metric): Exponent}; FLOPs follow time."""
    table = {}
    for axis, (time, mem) in by_axis.items():
        table[(axis, "time")] = Exponent(time, source)
        table[(axis, "flops")] = Exponent(time, source)
        table[(axis, "memory")] = Exponent(mem, source)
    return table


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "bptt": AlgorithmSpec(
        name="bptt",
        title="BPTT",
        family="rnn",
        func=bptt,
        make_problem=_rnn_data,
        flops=bptt_flops,
        memory=bptt_memory,
        # memory vs n is 1 while the T n B states dominate P ~ n^2
        exponents=_exponents(_WZ95, T=(1, 1), n=(2, 1), B=(1, 1)),
        axis_vars=RNN_AXES,
        sizes=RNN_SIZES,
        presets={
            "quick": (
                _geo("T", 256, 8192, 11, n=64, B=16),
                _geo("n", 448, 4000, 12, multiple=32, T=2, B=64),
                _PAIR_T,
            ),
            "full": (
                _geo("T", 128, 32768, 17, n=64, B=16),
                _geo("n", 384, 4096, 17, multiple=32, T=4, B=64),
                # memory along n (exponent 1): the T n B states lead the n^2 weights and
                # gradients 9 to 1 only where T B >> n, so a sweep of its own at T B = 16384
                # (0.5 s a call at n = 512); time along n stays on the sweep above
                _geo("n", 16, 512, 11, multiple=8, T=1024, B=16),
                _geo("B", 8, 512, 13, T=64, n=256),
                _BPTT_B_MEMORY,
                _PAIR_T,
                # issue 14's small-n target (one sequence of 1000 steps, where the scalar
                # tanh weighs most): the report sets n = 16, 32, 64 against the old kernel's
                # times (a sweep needs four sizes for its fit)
                _cases("n", [16, 24, 32, 48, 64], T=1000, B=1),
            ),
        },
        bench_cases=(
            _cases("T", [64, 256, 1024, 4096], n=64, B=8),
            _cases("n", [64, 128, 256, 512], T=256, B=8),
        ),
        peers={"pytorch": "bptt", "jax": "bptt"},
    ),
    "tbptt": AlgorithmSpec(
        name="tbptt",
        title="Truncated BPTT",
        family="rnn",
        func=tbptt,
        make_problem=_tbptt_problem,
        flops=tbptt_flops,
        memory=tbptt_memory,
        # axis k moves k1 = k2 together: T / k updates of k steps each, so time is flat in k
        exponents=_exponents(_WP90, T=(1, 0), n=(2, 1), B=(1, 1), k=(0, 1)),
        axis_vars=RNN_AXES,
        sizes=TRUNCATION_SIZES,
        presets={
            "quick": (
                _geo("T", 256, 8192, 11, n=64, B=16, k1=16, k2=16),
                _geo("k", 64, 4096, 11, T=4096, n=16, B=64),
            ),
            "full": (
                _geo("T", 128, 32768, 17, n=64, B=16, k1=16, k2=16),
                _geo("n", 384, 4096, 17, multiple=32, T=16, B=64, k1=8, k2=8),
                # memory along n (exponent 1): the k2 n B window states lead the n^2
                # weights and gradients only where k2 B >> n (k2 B = 16384 here)
                _geo("n", 16, 512, 11, multiple=8, T=256, B=64, k1=256, k2=256),
                _geo("k", 64, 8192, 15, T=8192, n=16, B=64),
                _TBPTT_B,
            ),
        },
        bench_cases=(
            _cases("T", [64, 256, 1024, 4096], n=64, B=8, k1=16, k2=16),
            _cases("n", [64, 128, 256, 512], T=256, B=8, k1=16, k2=16),
        ),
        # Its T sweeps share every size with BPTT's: the report compares them there.
        pairs=("bptt",),
        peers={"pytorch": "tbptt"},
    ),
    "rtrl": AlgorithmSpec(
        name="rtrl",
        title="RTRL",
        family="rnn",
        func=rtrl,
        make_problem=_rnn_data,
        flops=rtrl_flops,
        memory=rtrl_memory,
        exponents=_exponents(_WZ89, T=(1, 0), n=(4, 3), B=(1, 1)),
        axis_vars=RNN_AXES,
        sizes=RNN_SIZES,
        presets={
            "quick": (
                _geo("T", 16, 2048, 11, n=32, B=1),
                _geo("n", 40, 320, 16, multiple=8, T=2, B=2),
                _PAIR_T,
            ),
            "full": (
                _geo("T", 16, 8192, 15, n=32, B=1),
                _geo("n", 40, 448, 15, multiple=8, T=2, B=2),
                # the gated cells' sizes (about 40 s)
                _cases("n", sorted({*_RTRL_GRU_N, *_RTRL_LSTM_N}), T=1, B=1),
                _geo("B", 1, 64, 13, T=4, n=64),
                _PAIR_T,
            ),
        },
        bench_cases=(
            _cases("T", [4, 16, 64, 256], n=16, B=8),
            _cases("n", [8, 16, 32, 64], T=4, B=8),
        ),
        pairs=("bptt",),
        peers={"jax": "rtrl"},
    ),
    "backprop": AlgorithmSpec(
        name="backprop",
        title="Backprop (MLP)",
        family="mlp",
        func=backprop,
        make_problem=_mlp_problem,
        flops=backprop_flops,
        memory=backprop_memory,
        # memory vs width is 2 once the L w^2 gradients dominate the L w B activations
        exponents=_exponents(_STD, depth=(1, 1), width=(2, 2), B=(1, 1)),
        axis_vars=MLP_AXES,
        sizes=MLP_SIZES,
        presets={
            "quick": (
                _geo("depth", 4, 64, 11, width=256, B=64),
                _geo("width", 384, 3584, 12, multiple=32, depth=2, B=64),
            ),
            "full": (
                _geo("depth", 4, 128, 16, width=256, B=64),
                _geo("width", 320, 4096, 17, multiple=32, depth=2, B=64),
                _geo("B", 16, 2048, 15, depth=4, width=512),
                # memory along B: the L w B activations outweigh the L w^2 gradients
                # 9 to 1 only from B ~ 9 w (w = 64: B >= 512); 5 to 100 ms a call
                _geo("B", 256, 32768, 8, depth=4, width=64),
            ),
        },
        bench_cases=(
            _cases("depth", [2, 4, 8, 16], width=256, B=64),
            _cases("width", [128, 256, 512, 1024], depth=2, B=64),
        ),
        # The feed-forward baseline: its axes share the report's panel chart.
        chart_axes=(),
    ),
}


# --- checkpointed BPTT: the slot count c as a size -------------------------------------
# The exact gradient holding at most c states (kernels/checkpointed_bptt.py): revolve's
# schedule over segments of L = 128 / B steps (BPTT's chunk), each segment reversed by
# BPTT's own sweeps. Theory (kernels/checkpoint_schedule.py, THEORY.md "Checkpointed
# BPTT"): memory c n B (2 c n B for the LSTM) plus one segment and BPTT's chunk buffers,
# flat in T and linear in c; time: L F(T / L, c) + T forward steps plus one backward sweep,
# F(t, c) = r t - C(c + r, c + 1) forward advances with r = min{r : C(c + r, c) >= t} the
# repetition number.
# Along T at fixed c the forward count is not linear: r grows like (c! t)^(1/c), so
# F ~ c / (c + 1) (c!)^(1/c) t^(1 + 1/c) (Griewank 1992, "Achieving logarithmic growth
# of temporal and spatial complexity in reverse automatic differentiation", Optim.
# Methods Softw. 1, section 4; Griewank & Walther 2000, TOMS 26, eq. (2)): the declared
# exponent of time and FLOPs along T is 1 + 1/c with the T sweeps' c = 16, 1.0625. (The
# exact count, over the full preset's T = 128 .. 16384 at B = 16, fits 1.09: r steps by
# whole numbers, and the backward sweep's linear share dilutes the forward part.)
# At fixed T there is no power law in c: F falls from T (T - 1) / 2 (c = 1) to T - 1
# (c >= T - 1) like T ln T / ln c, a local exponent -1 / ln c that tends to 0 only slowly
# (the reference run fitted -0.28 over c = 2..1000), so time along c declares none: the
# trade-off chart shows it against the schedule's count instead.
# Sizes: the c sweep sits at T = 1000, n = 64, B = 8, the trade-off point (BPTT
# takes ~5 ms a call there; c = 4 makes ~5 T forward steps, c >= 32 about 2.4 T), so
# the quick preset's c sweep, 8 cells of 5 to 40 ms a call, stays a few seconds. Memory
# along c leads (90% of the model) only where c outweighs the constant buffers, about
# 3 (C + 1) + 10 states with C = 128 / B steps per chunk, and grows with c up to the T B
# / 128 segments; past them the spare slots keep a tail of states, linear in c again for
# the Elman cell only (a gated tail row carries the cell's values). So the full preset's
# memory-along-c sweep sits at B = 128 (segments of one step: revolve up to c = T - 1)
# and n = 16, every cell (T = 2048, c = 224 .. 2047).
CKPT_T_SLOTS = 16  # the c of the T sweeps, which sets their exponent 1 + 1/c
# BPTT beside a c sweep at T = 1000, B = 8: the full trade-off T sweep of BPTT
# (kernels/tradeoff.py, BASE_T_FULL), 6+ points as every gated sweep has
CKPT_BASE_T = (125, 177, 250, 354, 500, 707, 1000)
_CKPT = (
    "Griewank 1992; Griewank & Walther 2000 (revolve); Gruslys et al. 2016 (BPTT-HSM): "
    "forward steps r T - C(c + r, c + 1), memory c n B"
)
_CKPT_T = (
    f"Griewank 1992 (revolve's repetition number r ~ (c! T)^(1/c)): forward steps "
    f"~ T^(1 + 1/c) at fixed c = {CKPT_T_SLOTS}"
)
CHECKPOINT_AXES = {**{k: v for k, v in RNN_AXES.items() if k != "k"}, "c": ("c",)}
CHECKPOINT_SIZES = {**RNN_SIZES, "c": CKPT_T_SLOTS}  # what _PAIR_T, a T sweep, runs at

ALGORITHMS["checkpointed_bptt"] = AlgorithmSpec(
    name="checkpointed_bptt",
    title="Checkpointed BPTT",
    family="rnn",
    func=checkpointed_bptt,
    make_problem=_checkpointed_problem,
    flops=checkpointed_flops,
    memory=checkpointed_memory,
    # memory vs n is 1 while the c n B states and buffers dominate P ~ n^2
    exponents={
        **_exponents(_CKPT, n=(2, 1), B=(1, 1)),
        **_exponents(_CKPT_T, T=(1 + 1 / CKPT_T_SLOTS, 0)),
        # ... carried by cost terms of power T^1 (the factor r is in their values)
        ("T", "time"): Exponent(1 + 1 / CKPT_T_SLOTS, _CKPT_T, terms=1),
        ("T", "flops"): Exponent(1 + 1 / CKPT_T_SLOTS, _CKPT_T, terms=1),
        ("c", "memory"): Exponent(1, _CKPT),
    },
    axis_vars=CHECKPOINT_AXES,
    sizes=CHECKPOINT_SIZES,
    presets={
        "quick": (
            _geo("c", 4, 512, 8, T=1000, n=64, B=8),
            _PAIR_T,  # c = 16: 1.94 T forward steps at T = 2048 (segments of 128 steps)
        ),
        "full": (
            _geo("c", 2, 1000, 14, T=1000, n=64, B=8),
            _geo("T", 128, 16384, 11, n=64, B=16, c=CKPT_T_SLOTS),
            _geo("n", 384, 2560, 9, multiple=32, T=16, B=64, c=4),
            # memory along n (exponent 1): the c n B slots and the chunk rows lead the
            # n^2 gradients only where B >> n (0.2 s a call at n = 128)
            _geo("n", 8, 128, 9, multiple=8, T=256, B=256, c=16),
            # memory along c: one-step segments (B = 128) keep revolve's slots up to
            # T - 1, and n = 16 keeps the gradients small beside c n B: 9 of 9 in the
            # window for every cell (the gated cells' sweeps are the same sizes)
            _geo("c", 224, 2047, 9, T=2048, n=16, B=128),
            _geo("B", 8, 512, 9, T=64, n=256, c=8),
            # memory along B: the c n B slots and C n B chunk rows lead the n^2
            # gradients 9 to 1 only from B ~ 128 at n = 64 (B = 512 at n = 256)
            _geo("B", 32, 4096, 8, T=64, n=64, c=8),
            _PAIR_T,
        ),
    },
    bench_cases=(
        _cases("c", [4, 32, 1000], T=1000, n=64, B=8),
        _cases("T", [64, 256, 1024], n=64, B=8, c=16),
    ),
    # BPTT is what it trades against: _PAIR_T measures both at the same (T, n, B).
    pairs=("bptt",),
    chart_axes=("c", "T"),
    axis_labels={"c": "checkpoint slots c"},
)


class PluginWarning(UserWarning):
    """An algorithm plugin could not be loaded; the message names it and says why."""


def load_plugins(
    registry: MutableMapping[str, AlgorithmSpec],
    found: Iterable[metadata.EntryPoint] | None = None,
) -> list[str]:
    """Add the algorithms of the entry-point group ``bpttbench.algorithms`` to ``registry``.

    ``found`` are the entry points to load (default: those installed), loaded in
    order of their names. Each names an :class:`AlgorithmSpec` or a callable
    without arguments returning one; it is added under the spec's name after the
    algorithms already there. One that fails (an import error, not a spec, an
    inconsistent spec, a name already taken) is left out with a
    :class:`PluginWarning`. Returns the names added.
    """
    if found is None:
        found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    added = []
    for ep in sorted(found, key=lambda e: e.name):
        try:
            spec = _plugin_spec(ep)
            if spec.name in registry:
                raise ValueError(f"an algorithm named {spec.name!r} is already registered")
        except Exception as exc:  # a broken plugin must never break the core
            warnings.warn(
                f"bpttbench: algorithm plugin {ep.name!r} ({ep.value}) not loaded: "
                f"{type(exc).__name__}: {exc}",
                PluginWarning,
                stacklevel=2,
            )
            continue
        registry[spec.name] = spec
        added.append(spec.name)
    return added


def _plugin_spec(ep: metadata.EntryPoint) -> AlgorithmSpec:
    """The spec an entry point names, checked for what the harness relies on."""
    obj = ep.load()
    spec = obj if isinstance(obj, AlgorithmSpec) else obj() if callable(obj) else obj
    if not isinstance(spec, AlgorithmSpec):
        raise TypeError(f"expected an AlgorithmSpec (or a callable returning one), got {spec!r}")
    check_spec(spec)
    return spec


def check_spec(spec: AlgorithmSpec) -> None:
    """Raise ValueError where a spec contradicts itself (axes, sizes, presets, fields)."""
    if not isinstance(spec.name, str) or not spec.name.isidentifier():
        raise ValueError(f"name {spec.name!r} is not an identifier")
    if not callable(spec.func) or not callable(spec.make_problem):
        raise ValueError(f"{spec.name}: func and make_problem must be callable")
    for axis, _metric in spec.exponents:
        if axis not in spec.axis_vars:
            raise ValueError(f"{spec.name}: exponent along unknown axis {axis!r}")
        missing = set(spec.axis_vars[axis]) - set(spec.sizes)
        if missing:
            raise ValueError(f"{spec.name}: axis {axis!r} moves {sorted(missing)}: no size given")
    for sweep in (*spec.bench_cases, *(s for p in spec.presets.values() for s in p)):
        if sweep.axis not in spec.axis_vars or not set(sweep.fixed) <= set(spec.sizes):
            raise ValueError(f"{spec.name}: sweep along {sweep.axis!r} does not fit its sizes")
    if isinstance(spec.pairs, str) or not all(isinstance(p, str) for p in spec.pairs):
        raise ValueError(f"{spec.name}: pairs must be a tuple of algorithm names")


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
#   kept units, q = density n): d_t, the leak and the gradient row are folded into it, so
#   what is left beside the FLOPs is memory-bound work per kept entry of J: the GEMM
#   streams J (~1 GB at the largest cells) from memory and back, a step (the old kernel's
#   pass over every entry, c = 30 to 44 FLOPs' time an entry, bent the reference fits to
#   1.76 and 3.73), and a call allocates and first touches J once: the rate is the GEMM
#   peak over (1 + c / s + c_a / (s T)), c and c_a ~10 to 20 (measured on the loaded
#   2-core machine, interleaved: a step took 1.03-1.18x its GEMMs alone from s = 47 to
#   193, a call's first touch of J 0.1-0.5 of a step). Along density at a fixed n and
#   along n at a fixed density both bend the slope by about -(c / s_first - c / s_last)
#   / ln(s_last / s_first), and the gather of W_hh[S_k, S_k] (~0.5 ns an entry, n s^2 a
#   step: ~20 / r of the time, an n^3 term) by as much along n. So the sweeps keep
#   s >= ~150 and T = 4: along density n = 512 from 30% to 90% (s = 154 to 461), along
#   n 320 to 576 at 50% (s = 161 to 289): calls of 0.3 to 5 s and at most 0.9 GiB. The
#   n sweep stops at 576: above n = 512 this kernel ran slower than the first one (a
#   pass over a block in cache), 79 against 86 GFLOP/s at 528, 58 against 69 at 576, 61
#   against 83 at 640 (interleaved, quiet moment); not understood (a product into a
#   block in cache, copied over J's, ran as slow, so not the output rows' writes). 100%
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
# The full preset adds T and B sweeps of 8 points each: about 170 cells for the six.
# The B sweeps run from 8 to 1024: the time's B^1 terms lead the time model (FLOPs at the
# GEMM rate, each step's weight reads at the GEMV rate; bench.fit) from B ~ 8 to 16, and
# the memory's B n r (B n^2) state leads the n r buffers 9 to 1 only from B ~ 32, so that
# memory along B gets 6 of 8 sizes in its window (B = 1 to 64 gave it 2 or 3).

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
            # inside the last-level cache, T = 256 steps a call: the fit's sweep (more
            # points in the window than the wide one), the wide one the budget's
            _geo("n", 184, 728, IN_CACHE_POINTS, multiple=8, T=256, B=1),
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
            _geo("n", 256, 448, 5, multiple=16, T=2, B=1, density=50),
            _geo("density", 25, 90, 5, T=2, B=1, n=320),
        ),
        full=(
            _geo("T", 16, 2048, 8, n=64, B=1),
            _geo("n", 320, 576, 9, multiple=16, T=4, B=1, density=50),
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


ALGORITHMS.update(
    uoro=_quadratic("uoro", "UORO", uoro, uoro_flops, uoro_memory, _TO18),
    kf_rtrl=_cubic("kf_rtrl", "KF-RTRL", kf_rtrl, kf_rtrl_flops, kf_rtrl_memory, _MMS18),
    r_kf=_cubic("r_kf", "R-KF", r_kf, r_kf_flops, r_kf_memory, _MCS20),
    snap1=_quadratic("snap1", "SnAp-1", snap1, snap1_flops, snap1_memory, _MEN21),
    snap2=_snap2_spec(),
    rflo=_quadratic("rflo", "RFLO", rflo, rflo_flops, rflo_memory, _MUR19),
)  # fmt: skip


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
# ones do for the same reasons (see "presets" above), shorter: a gated BPTT call costs
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

CELLS = CELL_NAMES
CELL_SIZE = {"cell": "elman"}


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
    cells (``bench.cells_compare``). :data:`ALGORITHMS` is built with it (the
    last line of this module).
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


ALGORITHMS.update(with_cells(ALGORITHMS))

# --- the trade-off sweeps -----------------------------------------------------------------
# BPTT, truncated BPTT, RTRL and checkpointed BPTT measured at one (T, n, B) for the
# report's time-memory chart (kernels/tradeoff.py). Last, after every built-in entry:
# it adds to the presets of the algorithms registered by then.
from .tradeoff import with_tradeoff  # noqa: E402

ALGORITHMS.update(with_tradeoff(ALGORITHMS))


# --- the weights a call reads whatever its batch --------------------------------------------
# The B-independent part of the time model (bench.fit, "time along B"): each product of
# B rows by a weight matrix reads the matrix whatever B, so at B = 1 it is a GEMV and
# costs as long as one, while the B rows' FLOPs run at best at the GEMM rate. Counted
# per product a step makes with the weights: forward only (RTRL and the online rules:
# once; UORO twice, W_hh h and W_hh s), forward and backward (BPTT and truncated BPTT:
# twice; checkpointed BPTT: at every cell evaluation, recomputations included, and at
# every backward step; the weight-gradient GEMMs are batched over 64 / B steps, so their
# reads are left out), the MLP's forward, backward and gradient GEMMs (three times a
# layer). A lower bound (the kernels read W_ih and the readout less often than
# W_hh's count says, but pack and re-read the weights inside BLAS more), so the window
# it sets along B starts no later than the kernels' real B^0 work would start it.
READS_PER_STEP = {"bptt": 2, "tbptt": 2, "uoro": 2}
MLP_READS = 3


def rnn_weight_reads(size, products: float = 1) -> list[Term]:
    """The cell's and the readout's weights read ``products`` times a step:
    products T (G n (n + m + 1) + p (n + 1)) entries."""
    T, n, m, p = (size[k] for k in ("T", "n", "m", "p"))
    G = cell_named(str(size.get("cell", "elman"))).gates
    k = products * T
    return [
        Term(k * G * n * n, {"T": 1, "n": 2}),
        Term(k * G * n * (m + 1), {"T": 1, "n": 1}),
        Term(k * p * (n + 1), {"T": 1, "n": 1}),
    ]


def mlp_weight_reads(size) -> list[Term]:
    """Every layer's weights and biases, read by three GEMMs a call: 3 L (w^2 + w) entries."""
    L, w = size["depth"], size["width"]
    return [
        Term(MLP_READS * L * w * w, {"depth": 1, "width": 2}),
        Term(MLP_READS * L * w, {"depth": 1, "width": 1}),
    ]


def checkpointed_weight_reads(size) -> list[Term]:
    """Checkpointed BPTT reads the weights at each cell evaluation (recomputations too)
    and at each backward step: (evaluations + T) (G n (n + m + 1) + p (n + 1)) entries."""
    T, B = int(size["T"]), int(size["B"])
    c = int(size["c"]) if "c" in size else default_slots(T)
    evals = checkpointed_evaluations(T, c, B)
    return rnn_weight_reads(size, products=(evals + T) / T)


def _weight_reads(name: str, spec: AlgorithmSpec):
    if spec.family == "mlp":
        return mlp_weight_reads
    if name == "checkpointed_bptt":
        return checkpointed_weight_reads
    return partial(rnn_weight_reads, products=READS_PER_STEP.get(name, 1))


ALGORITHMS.update(
    {
        name: replace(spec, weight_reads=_weight_reads(name, spec))
        for name, spec in ALGORITHMS.items()
        if spec.weight_reads is None
    }
)
