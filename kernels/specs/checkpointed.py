"""Checkpointed BPTT: the exact gradient within c stored states, the slot count c a
size of its own."""

from __future__ import annotations

# Names, not modules: the package re-exports each function under its module's name.
from ..checkpointed_bptt import checkpointed_bptt
from ..checkpointed_bptt import flops as checkpointed_flops
from ..checkpointed_bptt import memory as checkpointed_memory
from ..checkpointed_bptt import plan as checkpoint_plan
from ..costs import AlgorithmSpec, Exponent
from .presets import _PAIR_T, _cases, _geo
from .sizes import RNN_AXES, RNN_SIZES, _exponents, _rnn_data

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


def _checkpointed_problem(size, dtype, seed):
    """BPTT's problem and the slot count ``c`` (absent: the kernel's default ceil(sqrt(T)));
    the schedule is built here, once per (T, c), like an FFT plan (checkpointed_bptt.plan)."""
    slots = int(size["c"]) if "c" in size else None
    if slots is not None:
        checkpoint_plan(int(size["T"]), slots, int(size["B"]))
    return (*_rnn_data(size, dtype, seed), slots)


CHECKPOINTED_BPTT = AlgorithmSpec(
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
