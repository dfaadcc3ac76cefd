"""Property tests over random small shapes (hypothesis, few examples, no deadline).

Shapes are drawn by hypothesis; the numbers come from a default_rng seeded by
a drawn integer, so every example is reproducible. ``derandomize`` makes the
examples the same on every run: these are regression tests, not a fuzzer.
"""

from __future__ import annotations

import bpttbench
import naive
import numpy as np
from helpers import EXACT_RTOL, assert_grads_close, assert_loss_close, rnn_arrays, sequence
from hypothesis import given, settings
from hypothesis import strategies as st

PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None)

shapes = st.fixed_dictionaries(
    {
        "T": st.integers(1, 9),
        "B": st.integers(1, 3),
        "m": st.integers(1, 3),
        "n": st.integers(1, 5),
        "p": st.integers(1, 3),
        "seed": st.integers(0, 2**32 - 1),
    }
)


def problem(s):
    rng = np.random.default_rng(s["seed"])
    params = bpttbench.RNNParams(*rnn_arrays(rng, s["m"], s["n"], s["p"]))
    xs, ys = sequence(rng, s["T"], s["B"], s["m"], s["p"])
    return params, xs, ys


@PROPERTY_SETTINGS
@given(shapes)
def test_rtrl_equals_bptt_for_random_shapes(s):
    params, xs, ys = problem(s)
    loss_b, g_b = bpttbench.bptt(params, xs, ys)
    loss_r, g_r = bpttbench.rtrl(params, xs, ys)
    assert_loss_close(loss_r, loss_b, EXACT_RTOL, f"rtrl loss {s}")
    assert_grads_close(g_r, g_b, EXACT_RTOL, f"rtrl vs bptt {s}")


@PROPERTY_SETTINGS
@given(shapes, st.integers(1, 10), st.integers(0, 10))
def test_tbptt_equals_window_reference_for_random_truncations(s, k1, extra):
    k2 = k1 + extra
    params, xs, ys = problem(s)
    loss, g = bpttbench.tbptt(params, xs, ys, k1, k2)
    ref_loss, ref = naive.tbptt(params, xs, ys, k1, k2)
    assert_loss_close(loss, ref_loss, EXACT_RTOL, f"tbptt loss {s}")
    assert_grads_close(g, ref, EXACT_RTOL, f"tbptt({k1}, {k2}) vs naive {s}")
