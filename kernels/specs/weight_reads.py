"""The weights a call reads whatever its batch: the time model's B-independent part."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial

from ..cells import cell_named
from ..checkpointed_bptt import default_slots
from ..checkpointed_bptt import evaluations as checkpointed_evaluations
from ..costs import AlgorithmSpec, Term

# --- the weights a call reads whatever its batch --------------------------------------------
# The B-independent part of the time model (bench.fit, "time along B"): each product of
# B rows by a weight matrix reads the matrix whatever B, so at B = 1 it is a GEMV and
# costs as long as one, while the B rows' FLOPs run at best at the GEMM rate. Counted
# per product a step makes with the weights: forward only (RTRL and the online rules:
# once; UORO's W_hh h and W_hh s~ too, which share one read at B = 1, kernels/_matvec.py,
# and are two GEMMs above it: once is the lower bound), forward and backward (BPTT and
# truncated BPTT: twice; checkpointed BPTT: at every cell evaluation, recomputations
# included, and at every backward step; the weight-gradient GEMMs are batched over 64 / B
# steps, so their reads are left out), the MLP's forward, backward and gradient GEMMs
# (three times a layer). A lower bound (the kernels read W_ih and the readout less often
# than W_hh's count says, but pack and re-read the weights inside BLAS more), so the
# window it sets along B starts no later than the kernels' real B^0 work would start it.
READS_PER_STEP = {"bptt": 2, "tbptt": 2}
MLP_READS = 3


def rnn_weight_reads(size, products: float = 1) -> list[Term]:
    """The cell's and the readout's weights read ``products`` times a step:
    products T (G n (n + m + 1) + p (n + 1)) entries."""
    T, n, m, p = (size[k] for k in ("T", "n", "m", "p"))
    G = cell_named(str(size.get("cell", "elman"))).gates
    k = products * T
    return [
        Term(k * G * n * n, {"T": 1, "n": 2}),
        Term(k * G * n * (m + 1), {"T": 1, "n": 1}),
        Term(k * p * (n + 1), {"T": 1, "n": 1}),
    ]


def mlp_weight_reads(size) -> list[Term]:
    """Every layer's weights and biases, read by three GEMMs a call: 3 L (w^2 + w) entries."""
    L, w = size["depth"], size["width"]
    return [
        Term(MLP_READS * L * w * w, {"depth": 1, "width": 2}),
        Term(MLP_READS * L * w, {"depth": 1, "width": 1}),
    ]


def checkpointed_weight_reads(size) -> list[Term]:
    """Checkpointed BPTT reads the weights at each cell evaluation (recomputations too)
    and at each backward step: (evaluations + T) (G n (n + m + 1) + p (n + 1)) entries."""
    T, B = int(size["T"]), int(size["B"])
    c = int(size["c"]) if "c" in size else default_slots(T)
    evals = checkpointed_evaluations(T, c, B)
    return rnn_weight_reads(size, products=(evals + T) / T)


def _weight_reads(name: str, spec: AlgorithmSpec):
    if spec.family == "mlp":
        return mlp_weight_reads
    if name == "checkpointed_bptt":
        return checkpointed_weight_reads
    return partial(rnn_weight_reads, products=READS_PER_STEP.get(name, 1))


def with_weight_reads(algorithms: Mapping[str, AlgorithmSpec]) -> dict[str, AlgorithmSpec]:
    """The specs of ``algorithms`` that declare no weight reads, with their family's."""
    return {
        name: replace(spec, weight_reads=_weight_reads(name, spec))
        for name, spec in algorithms.items()
        if spec.weight_reads is None
    }
