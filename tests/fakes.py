"""A synthetic algorithm registry with known exponents, for the harness's own tests.

``make_registry()`` returns specs shaped like ``bpttbench.ALGORITHMS`` entries
whose "kernels" are cheap NumPy calls: ``fake_rnn`` allocates a (T, n, B)
buffer (memory exponent 1 in T and n) and its FLOP model is ``2 T n^2 B`` plus
a lower-order ``c T n B`` term, so the fit window along n is known in closed
form; ``fake_mlp`` does the same for depth and width; ``fake_online`` holds
an (n, n, B) state whatever T is, so its memory exponent in T is 0. ``fail_after`` makes a
spec raise ``KeyboardInterrupt`` from the k-th problem on, to simulate a
killed sweep.
"""

from __future__ import annotations

import numpy as np
from bpttbench.costs import AlgorithmSpec, Exponent, Term
from bpttbench.registry import MLP_SIZES, RNN_SIZES

LOWER = 40.0  # coefficient of the lower-order T n B term of fake_rnn's FLOP model


def _rnn_flops(s):
    T, n, B = s["T"], s["n"], s["B"]
    return [
        Term(2.0 * T * n * n * B, {"T": 1, "n": 2, "B": 1}),
        Term(LOWER * T * n * B, {"T": 1, "n": 1, "B": 1}),
    ]


def _rnn_memory(s, itemsize):
    T, n, B = s["T"], s["n"], s["B"]
    return [Term(float(T * n * B * itemsize), {"T": 1, "n": 1, "B": 1})]


def _mlp_flops(s):
    L, w, B = s["depth"], s["width"], s["B"]
    return [Term(2.0 * L * w * w * B, {"depth": 1, "width": 2, "B": 1})]


def _mlp_memory(s, itemsize):
    L, w, B = s["depth"], s["width"], s["B"]
    return [Term(float(L * w * B * itemsize), {"depth": 1, "width": 1, "B": 1})]


def _online_flops(s):
    T, n, B = s["T"], s["n"], s["B"]
    return [Term(2.0 * T * n * n * B, {"T": 1, "n": 2, "B": 1})]


def _online_memory(s, itemsize):
    n, B = s["n"], s["B"]
    return [Term(float(n * n * B * itemsize), {"n": 2, "B": 1})]


def _online_func(buf):
    n, B = buf.shape[1], buf.shape[2]
    state = np.ones((n, n, B), dtype=buf.dtype)  # held whatever T is: memory flat in T
    return float(state.sum() + buf.sum()), state


def _rnn_func(buf):
    out = np.empty_like(buf)
    np.tanh(buf, out=out)
    return float(out.sum()), out


def make_registry(fail_after: int | None = None, counter: list | None = None) -> dict:
    """Fake registry; with ``fail_after=k`` the (k+1)-th make_problem raises KeyboardInterrupt."""
    calls = counter if counter is not None else [0]

    def make_rnn(size, dtype, seed):
        calls[0] += 1
        if fail_after is not None and calls[0] > fail_after:
            raise KeyboardInterrupt
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((size["T"], size["n"], size["B"])).astype(dtype),)

    def make_mlp(size, dtype, seed):
        calls[0] += 1
        if fail_after is not None and calls[0] > fail_after:
            raise KeyboardInterrupt
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((size["depth"], size["width"], size["B"])).astype(dtype),)

    src = "synthetic"
    rnn = AlgorithmSpec(
        name="fake_rnn",
        title="Fake RNN",
        family="rnn",
        func=_rnn_func,
        make_problem=make_rnn,
        flops=_rnn_flops,
        memory=_rnn_memory,
        exponents={
            ("T", "time"): Exponent(1, src),
            ("n", "time"): Exponent(2, src),
            ("T", "memory"): Exponent(1, src),
            ("n", "memory"): Exponent(1, src),
            ("T", "flops"): Exponent(1, src),
            ("n", "flops"): Exponent(2, src),
        },
        axis_vars={"T": ("T",), "n": ("n",), "B": ("B",)},
        sizes=RNN_SIZES,
    )
    mlp = AlgorithmSpec(
        name="fake_mlp",
        title="Fake MLP",
        family="mlp",
        func=_rnn_func,
        make_problem=make_mlp,
        flops=_mlp_flops,
        memory=_mlp_memory,
        exponents={
            ("depth", "time"): Exponent(1, src),
            ("width", "time"): Exponent(2, src),
            ("depth", "memory"): Exponent(1, src),
        },
        axis_vars={"depth": ("depth",), "width": ("width",), "B": ("B",)},
        sizes=MLP_SIZES,
    )
    online = AlgorithmSpec(
        name="fake_online", title="Fake online", family="rnn", func=_online_func,
        make_problem=make_rnn, flops=_online_flops, memory=_online_memory,
        exponents={
            ("T", "time"): Exponent(1, src), ("n", "time"): Exponent(2, src),
            ("T", "memory"): Exponent(0, src), ("n", "memory"): Exponent(2, src),
        },
        axis_vars={"T": ("T",), "n": ("n",), "B": ("B",)}, sizes=RNN_SIZES,
    )  # fmt: skip
    return {"fake_rnn": rnn, "fake_mlp": mlp, "fake_online": online}
