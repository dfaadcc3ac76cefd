"""Every registered algorithm against each axis of its benchmark cases (pytest-benchmark).

The cases come from the registry (``AlgorithmSpec.bench_cases``), so an algorithm
registered there, or by a plugin, is benchmarked with no edit here. Sizes are
small enough for the whole suite to take a few minutes; the exponent sweeps with
verdicts are ``bpttbench run``'s job, this suite tracks the kernels' speed over
commits (``--benchmark-autosave``, ``--benchmark-compare``).
"""

from __future__ import annotations

import bpttbench
import pytest


def _cases():
    for name, spec in bpttbench.ALGORITHMS.items():
        for case in spec.bench_cases:
            for value in case.values:
                size = {**spec.sizes, **case.fixed}
                for var in spec.axis_vars[case.axis]:
                    size[var] = value
                shown = {
                    k: v
                    for k, v in size.items()
                    if k in case.fixed or k in spec.axis_vars[case.axis]
                }
                label = "-".join(f"{k}={v}" for k, v in shown.items())
                yield pytest.param(name, case.axis, size, id=f"{name}-vs-{case.axis}-{label}")


@pytest.mark.parametrize(("name", "axis", "size"), list(_cases()))
def test_algorithm(run_cell, name, axis, size):
    loss, _ = run_cell(name, axis, size)
    assert loss > 0
