"""The exact gradients: BPTT, truncated BPTT and RTRL of the recurrent cells, and the
MLP's backprop, the feed-forward baseline."""

from __future__ import annotations

# Names, not modules: the package re-exports each function under its module's name.
from ..backprop import backprop
from ..backprop import flops as backprop_flops
from ..backprop import memory as backprop_memory
from ..bptt import bptt
from ..bptt import flops as bptt_flops
from ..bptt import memory as bptt_memory
from ..costs import AlgorithmSpec
from ..rtrl import flops as rtrl_flops
from ..rtrl import memory as rtrl_memory
from ..rtrl import rtrl
from ..tbptt import flops as tbptt_flops
from ..tbptt import memory as tbptt_memory
from ..tbptt import tbptt
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
from .sizes import (
    MLP_AXES,
    MLP_SIZES,
    RNN_AXES,
    RNN_SIZES,
    TRUNCATION_SIZES,
    _exponents,
    _mlp_problem,
    _rnn_data,
    _tbptt_problem,
)

_WZ95 = "Williams & Zipser 1995"
_WP90 = "Williams & Peng 1990; Williams & Zipser 1995"
_WZ89 = "Williams & Zipser 1989; Menick et al. 2021 (quartic in the state size)"
_STD = "standard (Rumelhart, Hinton & Williams 1986)"


EXACT: dict[str, AlgorithmSpec] = {
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
                # the gated cells' sizes (about 2 min)
                _cases("n", sorted({*_RTRL_GRU_N, *_RTRL_LSTM_N}), T=_RTRL_GATED_T, B=1),
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
