"""Shared fixtures: one seeded generator per test, and builders of small problems.

Problems are drawn from ``numpy.random.default_rng(SEED)`` (never the global
state) and built in float64; a test that needs float32 casts them. The default
sizes are one small, fixed shape so that the kernels compile once per dtype and
the finite-difference loops stay cheap.
"""

from __future__ import annotations

import os

import helpers
import naive
import numpy as np
import pytest

SEED = 20240611

# The default recurrent problem: small enough for central differences over all
# 42 parameters, long enough (T = 7) that several truncation windows exist.
RNN_SIZE = {"T": 7, "B": 2, "m": 3, "n": 4, "p": 2}
MLP_SIZES = [3, 5, 4, 2]
MLP_BATCH = 4


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


@pytest.fixture
def make_rnn_problem(rng):
    """``make(T=, B=, m=, n=, p=, dtype=) -> (bpttbench.RNNParams, xs, ys)``."""
    import bpttbench

    def make(dtype=np.float64, **size):
        s = {**RNN_SIZE, **size}
        arrays = helpers.rnn_arrays(rng, s["m"], s["n"], s["p"])
        xs, ys = helpers.sequence(rng, s["T"], s["B"], s["m"], s["p"])
        params = bpttbench.RNNParams(*(a.astype(dtype) for a in arrays))
        return params, xs.astype(dtype), ys.astype(dtype)

    return make


@pytest.fixture
def rnn_problem(make_rnn_problem):
    """The default float64 problem: (bpttbench.RNNParams, xs (7, 2, 3), ys (7, 2, 2))."""
    return make_rnn_problem()


@pytest.fixture
def make_mlp_problem(rng):
    """``make(sizes=, B=, dtype=) -> (bpttbench.MLPParams, x, y)``."""
    import bpttbench

    def make(sizes=MLP_SIZES, B=MLP_BATCH, dtype=np.float64):
        weights, biases = helpers.mlp_arrays(rng, sizes)
        x = rng.normal(size=(B, sizes[0]))
        y = rng.normal(size=(B, sizes[-1]))
        params = bpttbench.MLPParams(
            tuple(w.astype(dtype) for w in weights), tuple(b.astype(dtype) for b in biases)
        )
        return params, x.astype(dtype), y.astype(dtype)

    return make


@pytest.fixture
def mlp_problem(make_mlp_problem):
    return make_mlp_problem()


@pytest.fixture
def naive_rnn_problem(rng):
    """The default problem with ``naive.RNNParams``: for tests that must not import kernels."""
    s = RNN_SIZE
    params = naive.RNNParams(*helpers.rnn_arrays(rng, s["m"], s["n"], s["p"]))
    xs, ys = helpers.sequence(rng, s["T"], s["B"], s["m"], s["p"])
    return params, xs, ys


def pytest_sessionfinish(session, exitstatus):
    """In CI, a skipped comparison with a reference library fails the run.

    ``helpers.reference`` already makes a missing library an error in CI; this
    catches any other path by which such a test could be skipped there.
    """
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = [
        r
        for r in reporter.stats.get("skipped", [])
        if "reference" in str(getattr(r, "longrepr", ""))
    ]
    if skipped:
        reporter.write_line(
            f"CI: {len(skipped)} reference comparison(s) skipped; CI must run them all", red=True
        )
        session.exitstatus = 1
