"""Backprop through an MLP against depth and width (pytest-benchmark)."""

from __future__ import annotations

import pytest

B = 64
DEPTHS = [2, 4, 8, 16]  # at width 256
WIDTHS = [128, 256, 512, 1024]  # at depth 2


@pytest.mark.parametrize("depth", DEPTHS, ids=[f"depth={d}-width=256" for d in DEPTHS])
def test_backprop_vs_depth(run_cell, depth):
    loss, _ = run_cell("backprop", "depth", {"depth": depth, "width": 256, "B": B})
    assert loss > 0


@pytest.mark.parametrize("width", WIDTHS, ids=[f"depth=2-width={w}" for w in WIDTHS])
def test_backprop_vs_width(run_cell, width):
    loss, _ = run_cell("backprop", "width", {"depth": 2, "width": width, "B": B})
    assert loss > 0
