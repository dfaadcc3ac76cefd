"""Recurrent algorithms against sequence length T and state size n (pytest-benchmark).

Sizes are small enough for the whole suite to take a few minutes; the exponent
sweeps with verdicts are ``bpttbench run``'s job, this suite tracks the kernels'
speed over commits (``--benchmark-autosave``, ``--benchmark-compare``).
"""

from __future__ import annotations

import pytest

RNN = {"B": 8, "m": 1, "p": 1}
K = 16  # truncation of tbptt, BPTT(k; k)

# (algorithm, fixed n, the T values) and (algorithm, fixed T, the n values): RTRL's
# n^4 cost gets shorter sequences and smaller states.
T_CASES = [
    ("bptt", 64, [64, 256, 1024, 4096]),
    ("tbptt", 64, [64, 256, 1024, 4096]),
    ("rtrl", 16, [4, 16, 64, 256]),
]
N_CASES = [
    ("bptt", 256, [64, 128, 256, 512]),
    ("tbptt", 256, [64, 128, 256, 512]),
    ("rtrl", 4, [8, 16, 32, 64]),
]


def size(name: str, T: int, n: int) -> dict:
    s = {"T": T, "n": n, **RNN}
    if name == "tbptt":
        s.update(k1=K, k2=K)
    return s


@pytest.mark.parametrize(
    ("name", "T", "n"),
    [pytest.param(a, T, n, id=f"{a}-T={T}-n={n}") for a, n, Ts in T_CASES for T in Ts],
)
def test_rnn_vs_T(run_cell, name, T, n):
    loss, _ = run_cell(name, "T", size(name, T, n))
    assert loss > 0


@pytest.mark.parametrize(
    ("name", "T", "n"),
    [pytest.param(a, T, n, id=f"{a}-T={T}-n={n}") for a, T, ns in N_CASES for n in ns],
)
def test_rnn_vs_n(run_cell, name, T, n):
    loss, _ = run_cell(name, "n", size(name, T, n))
    assert loss > 0
