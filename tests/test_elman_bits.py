"""The Elman cell's results do not move by one bit when the kernels change shape.

The digests below are SHA-256 prefixes of the loss and every gradient array
(float64 loss, then the arrays' bytes in field order) that the Elman kernels
returned before the cell layer existed, on problems drawn from a fixed seed.
The cell layer, the leak (alpha = 1 is the plain cell) and the NamedTuple
kernel arguments must reproduce them bit for bit: a reordered sum or an extra
``+ 0.0 * x`` shows here even when every tolerance test passes.

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
    "bptt-T7-B2-n4-float64": "c96b3fa3b9c8ad58168724dd09667377",
    "tbptt-3-5-T7-float64": "def5164573b9bee60ed94104fe0b7f71",
    "rtrl-T7-B2-n4-float64": "a6604a62a9a25ae475b139f1212fb51f",
    "bptt-T150-B3-n5-float64": "189d5edd58cf4c1a10e2c872972e7aaf",
    "tbptt-50-60-T150-float64": "78f9828317aeced50c60dc16598e49b1",
    "tbptt-4-4-T150-float64": "cb0bc997a1f27dfe859949b488845d26",
    "rtrl-T20-B2-n5-float64": "86f55e9c6a73bdf8375c640c8154f029",
    "bptt-T7-B2-n4-float32": "48ba7414cf671765a789582bedb2ea26",
    "tbptt-3-5-T7-float32": "13f4076b44d81974b3edb04fdd9c7a98",
    "rtrl-T7-B2-n4-float32": "785c131144d90211d14b58b35474df19",
    "bptt-T150-B3-n5-float32": "5734c126b943220c907a506342771dac",
    "tbptt-50-60-T150-float32": "97d46953093bc16a2fa8d68edd23d024",
    "tbptt-4-4-T150-float32": "01a6d21fb6cc3ee0b195e3b6822b69f5",
    "rtrl-T20-B2-n5-float32": "1e238eac5e38d729eb9a8fc96d3539f1",
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
