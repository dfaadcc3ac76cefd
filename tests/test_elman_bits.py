"""The Elman cell's results do not move by one bit when the kernels change shape.

The digests below are SHA-256 prefixes of the loss and every gradient array
(float64 loss, then the arrays' bytes in field order) that the Elman kernels
returned before the cell layer existed, on problems drawn from a fixed seed.
The cell layer, the leak (alpha = 1 is the plain cell) and the NamedTuple
kernel arguments must reproduce them bit for bit: a reordered sum or an extra
``+ 0.0 * x`` shows here even when every tolerance test passes.

Re-recorded once, when the kernels' tanh became the vectorised one of
kernels/_math.py (within a few ulp of the C library's, tests/test_fast_math.py):
that moved the last bits of every result, and nothing else (the gradients by
under 1e-15 relative, measured against the libm kernels on these problems).

The bits are those of the BLAS they were recorded with (OpenBLAS through
SciPy's wheel, x86-64). A BLAS that orders the sums of a product differently
gives other bits on its own; record the digests again from the pre-cell
kernels (the commit that added this file) before reading a failure there as a
change of the kernels.
"""

from __future__ import annotations

import hashlib

import bpttbench
import numpy as np
import pytest
from helpers import rnn_arrays, sequence

SEED = 20240611

# name -> (algorithm, sizes, extra arguments). T = 150 with B = 3 makes chunks of
# 42 steps: several chunks, a ragged last one, and tbptt windows crossing chunks.
CASES = {
    "bptt-T7-B2-n4": ("bptt", {"T": 7, "B": 2, "m": 3, "n": 4, "p": 2}, ()),
    "tbptt-3-5-T7": ("tbptt", {"T": 7, "B": 2, "m": 3, "n": 4, "p": 2}, (3, 5)),
    "rtrl-T7-B2-n4": ("rtrl", {"T": 7, "B": 2, "m": 3, "n": 4, "p": 2}, ()),
    "bptt-T150-B3-n5": ("bptt", {"T": 150, "B": 3, "m": 2, "n": 5, "p": 3}, ()),
    "tbptt-50-60-T150": ("tbptt", {"T": 150, "B": 3, "m": 2, "n": 5, "p": 3}, (50, 60)),
    "tbptt-4-4-T150": ("tbptt", {"T": 150, "B": 3, "m": 2, "n": 5, "p": 3}, (4, 4)),
    "rtrl-T20-B2-n5": ("rtrl", {"T": 20, "B": 2, "m": 2, "n": 5, "p": 3}, ()),
}

DIGESTS = {
    "bptt-T7-B2-n4-float64": "c934f4a2311da1c8e8aafbbbe0e74c84",
    "tbptt-3-5-T7-float64": "d5cf382b2492ecb0dc37160fd22ab8f3",
    "rtrl-T7-B2-n4-float64": "354980d87cfb0b7c20333593b5939483",
    "bptt-T150-B3-n5-float64": "86d3f71053d102d965395bc89294f8fb",
    "tbptt-50-60-T150-float64": "59a8a13f9087ba228aa7b87fe178f10f",
    "tbptt-4-4-T150-float64": "d07128020299b67f9ac2554c1836225e",
    "rtrl-T20-B2-n5-float64": "28785a8a33252ba67c951a1873d10997",
    "bptt-T7-B2-n4-float32": "3421a7fb2aa0984eee66556a7a78aa8c",
    "tbptt-3-5-T7-float32": "8f7d4b8ae527e227b4a44ff492572ed7",
    "rtrl-T7-B2-n4-float32": "441a3193c31319aa29b6b6326759fb9b",
    "bptt-T150-B3-n5-float32": "cf5d7c403a8431cb94baa64f8ebedd53",
    "tbptt-50-60-T150-float32": "6fe503127ba09d23a1dbe1b4a07a2ac8",
    "tbptt-4-4-T150-float32": "844a68128a82b970c98fc9b99c7c66f3",
    "rtrl-T20-B2-n5-float32": "5cd0f1fd005037157496c951ae701554",
}


def digest(loss, grads) -> str:
    h = hashlib.sha256(np.float64(loss).tobytes())
    for a in grads:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:32]


def problem(case, dtype, make_params=None):
    _, s, _ = CASES[case]
    rng = np.random.default_rng(SEED)
    arrays = rnn_arrays(rng, s["m"], s["n"], s["p"])
    xs, ys = sequence(rng, s["T"], s["B"], s["m"], s["p"])
    make_params = make_params or bpttbench.RNNParams
    return make_params(*(a.astype(dtype) for a in arrays)), xs.astype(dtype), ys.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_elman_results_are_bit_identical_to_the_pre_cell_kernels(case, dtype):
    algorithm, _, extra = CASES[case]
    params, xs, ys = problem(case, dtype)
    loss, g = getattr(bpttbench, algorithm)(params, xs, ys, *extra)
    assert digest(loss, g) == DIGESTS[f"{case}-{np.dtype(dtype).name}"], (
        f"{algorithm} on {case} ({np.dtype(dtype).name}) changed bits"
    )
