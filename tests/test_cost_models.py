"""The analytic cost models: every term scales as it declares, and the FLOP model
equals an operation count of the kernel's own sequence of operations.

1. Powers. A term ``Term(value, powers)`` claims its value is a monomial in the
   size variables: doubling one variable v multiplies it by 2**powers[v]. The
   harness relies on that claim to pick fit windows (THEORY.md, "leading term
   >= 90% of the total"). Each term of every FLOP and memory model is evaluated
   at a base size and at the base with one variable doubled.

   Terms that carry a ceiling or a divisor cannot be monomials everywhere:
   - chunk counts, ceil(steps / chunk) with chunk = CHUNK_ROWS // B, and the
     chunk scratch of min(T, CHUNK_ROWS // B) steps (bptt and tbptt);
   - RTRL's scratch slab of K blocks, K the largest divisor of n with
     K r <= SLAB_COLS.
   The base sizes are powers of two at which every ceiling divides exactly
   (T B a multiple of CHUNK_ROWS, windows of whole chunks), so the chunk terms
   are held to their powers there; at ragged sizes their exact formula is
   checked instead. The slab term is left out of the power check (its power
   in n lies between 1 and 2 depending on the divisors of n) and checked
   against its exact formula. Truncated BPTT groups its per-update terms by
   window shape; k1 and k2 moved apart change the set of shapes (the first
   k2 / k1 - 1 updates reach back only to h_0), so the power check moves them
   together (axis k) with k dividing T, and the k1 < k2 counts are checked
   exactly in part 2.

   Work a kernel skips (the recurrent product and the carry below a window's
   first step, the tanh of an MLP's output layer, the error of its input layer)
   is a negative term of its own, a monomial like the others, so no term carries
   a "T - 1" or "L - 1". The chunk scratch has the powers of its chunk: C B rows
   of CHUNK_ROWS are constant in B (bpttbench._sweeps.chunk_powers).

2. Counts. ``flop_count`` replays each kernel's operations in NumPy, counting
   each as it is performed; its gradient must equal the kernel's and its count
   must equal ``spec.flop_count(size)`` exactly.
"""

from __future__ import annotations

import importlib

import bpttbench
import flop_count
import naive_cells
import pytest
from bpttbench._sweeps import CHUNK_ROWS, chunk_steps, forward_flops
from bpttbench.cells import cell_named
from bpttbench.costs import Term, leading_share, share_of_power
from bpttbench.registry import CELL_ALGORITHMS
from bpttbench.rtrl import SLAB_COLS, _blocks_per_gemm
from helpers import (
    EXACT_RTOL,
    assert_grads_close,
    assert_loss_close,
    mlp_arrays,
    rnn_arrays,
    sequence,
)

ITEMSIZE = 8

# Checkpointed BPTT's plan (``bpttbench.checkpointed_bptt`` is the function).
checkpoint_plan = importlib.import_module("bpttbench.checkpointed_bptt").plan

# Powers of two: B divides CHUNK_ROWS, T is a multiple of the chunk and of k, and a
# window (k = 64 steps) spans two chunks of 32 (four of 16 with B doubled).
BASE_SIZE = {
    "rnn": {"T": 256, "B": 4, "n": 16, "m": 4, "p": 2, "k1": 64, "k2": 64, "c": 8},
    "mlp": {"depth": 4, "width": 16, "B": 4},
}
# The size variables doubled one at a time; "k" doubles k1 and k2 together.
AXES = {"k": ("k1", "k2")}


def doubled_variables(spec):
    """Every numeric size variable (a categorical one, such as the cell, is not doubled)."""
    variables = [
        v for v, x in spec.sizes.items() if v not in ("k1", "k2") and not isinstance(x, str)
    ]
    if "k1" in spec.sizes:
        variables.append("k")
    return variables


def model_terms(spec, model, size):
    return spec.flops(size) if model == "flops" else spec.memory(size, ITEMSIZE)


def own_base(spec, cell=None):
    """BASE_SIZE of the spec's family, with the spec's defaults for sizes of its own
    (SnAp-2's density: 25% keeps round(density (n - 1) / 100) exact under doubling)."""
    family = BASE_SIZE[spec.family]
    own = {k: v for k, v in spec.sizes.items() if k not in family and not isinstance(v, str)}
    return {**family, **own, **OWN_BASE.get(spec.name, {}), **({"cell": cell} if cell else {})}


# Checkpointed BPTT's slots are linear in c only while c < ceil(T / L) - 1, L = 128 / B
# steps a segment (past that every segment start is stored: the slot count stops at the
# segments); at T = 4096 the base (B = 4, c = 8) and its doublings stay inside.
OWN_BASE = {"checkpointed_bptt": {"T": 4096}}


def doubled(size, variable):
    return {k: (2 * v if k in AXES.get(variable, (variable,)) else v) for k, v in size.items()}


def describe(term):
    return "-".join(f"{v}^{p:g}" for v, p in sorted(term.powers.items())) or "const"


# Terms with a divisor, left out of the power check; their exact formula is tested below.
DIVISOR_TERMS = {("rtrl", "memory", 6)}


def schedule_terms(name, model, cell) -> int:
    """How many leading terms follow revolve's forward count rather than a power law.

    Checkpointed BPTT evaluates the cell F(T, c) + turns times: piecewise linear in T
    with a slope (the repetition number) that grows with T, and falling with c. Those
    terms are left out of the power check; their count is checked exactly against the
    closed form and the recurrence in tests/test_checkpointed_bptt.py.
    """
    if name != "checkpointed_bptt" or model != "flops":
        return 0
    return len(forward_flops(cell_named(cell or "elman"), 1, 1, 1, 1))


def scaling_cases():
    cases = []
    for name, spec in bpttbench.ALGORITHMS.items():
        cells = (None, "gru", "lstm") if name in CELL_ALGORITHMS else (None,)
        for cell in cells:
            base = own_base(spec, cell)
            for model in ("flops", "memory"):
                for index, term in enumerate(model_terms(spec, model, base)):
                    key = (name, model, index)
                    if key in DIVISOR_TERMS or index < schedule_terms(name, model, cell):
                        continue
                    case_id = f"{name}-{cell or 'default'}-{model}-{index}-{describe(term)}"
                    cases.append(pytest.param(name, cell, model, index, id=case_id))
    return cases


@pytest.mark.parametrize(("name", "cell", "model", "index"), scaling_cases())
def test_term_scales_by_its_declared_powers(name, cell, model, index):
    spec = bpttbench.ALGORITHMS[name]
    base = own_base(spec, cell)
    terms = model_terms(spec, model, base)
    term = terms[index]
    assert term.value != 0, f"{name} {model} term {index} is zero at the base {base}"
    wrong = {}
    for variable in doubled_variables(spec):
        size = doubled(base, variable)
        moved = model_terms(spec, model, size)
        assert len(moved) == len(terms), (
            f"{name} {model}: {len(terms)} terms at {base}, {len(moved)} with {variable} doubled"
        )
        ratio = moved[index].value / term.value
        expected = 2.0 ** term.power(AXES.get(variable, (variable,)))
        if ratio != pytest.approx(expected, rel=1e-12):
            wrong[variable] = f"x{ratio:.4f}, declared x{expected:g}"
    assert not wrong, (
        f"{name} {model} term {index} (value {term.value:g}, powers {dict(term.powers)}) "
        f"does not scale as declared when doubling: {wrong}"
    )


@pytest.mark.parametrize("name", sorted(bpttbench.ALGORITHMS))
def test_memory_terms_are_proportional_to_the_item_size(name):
    spec = bpttbench.ALGORITHMS[name]
    size = BASE_SIZE[spec.family]
    wide, narrow = spec.memory(size, 8), spec.memory(size, 4)
    assert [t.value for t in wide] == [2 * t.value for t in narrow]


def test_a_skipped_step_counts_with_its_sign_in_the_shares():
    """(T - 1) B n^2 is T B n^2 less B n^2: the T^1 terms carry all of T B n^2, the
    constant terms what is left, and the shares are of the exact total."""
    B, n, T = 2, 3, 5
    terms = [
        Term(2 * T * B * n * n, {"T": 1, "B": 1, "n": 2}),
        Term(-2 * B * n * n, {"B": 1, "n": 2}),
        Term(3 * B * n, {"B": 1, "n": 1}),
    ]
    whole = 2 * (T - 1) * B * n * n + 3 * B * n
    assert leading_share(terms, ("T",)) == (1, pytest.approx(2 * T * B * n * n / whole))
    assert share_of_power(terms, ("T",), 0) == pytest.approx((3 * B * n - 2 * B * n * n) / whole)
    assert leading_share(terms, ("n",)) == (2, pytest.approx(2 * (T - 1) * B * n * n / whole))


# --- terms with a ceiling or a divisor: their exact formula at ragged sizes -------------

RAGGED_SIZES = [
    pytest.param({"T": 300, "B": 3, "n": 6, "m": 2, "p": 3}, id="T=300-B=3"),
    pytest.param({"T": 50, "B": 5, "n": 4, "m": 3, "p": 2}, id="T=50-B=5"),
    pytest.param({"T": 20, "B": 1, "n": 4, "m": 3, "p": 2}, id="T=20-B=1"),
]


@pytest.mark.parametrize("size", RAGGED_SIZES)
def test_bptt_chunk_terms_follow_their_ceiling_formula(size):
    T, B, n, m, p = (size[k] for k in ("T", "B", "n", "m", "p"))
    chunk = max(1, min(T, CHUNK_ROWS // B))
    chunks = -(-T // chunk)
    flops = bpttbench.ALGORITHMS["bptt"].flops(size)
    assert flops[5].value == chunks * p * n  # g_W_out += tmp, once a chunk
    assert flops[10].value == 2 * T * B * n * n + chunks * n * n  # g_W_hh
    assert flops[11].value == 2 * T * B * n * m + chunks * n * m  # g_W_ih
    memory = bpttbench.ALGORITHMS["bptt"].memory(size, ITEMSIZE)
    assert memory[2].value == chunk * B * n * ITEMSIZE  # D
    assert memory[3].value == chunk * B * p * ITEMSIZE  # E
    assert memory[4].value == B * n * ITEMSIZE  # delta


@pytest.mark.parametrize(
    ("T", "k2"), [(300, 20), (300, 500), (50, 50)], ids=["k2<T", "k2>T", "k2=T"]
)
def test_tbptt_chunk_scratch_follows_its_formula(T, k2):
    size = {"T": T, "B": 3, "n": 6, "m": 2, "p": 3, "k1": min(k2, 10), "k2": k2}
    B, n, p = size["B"], size["n"], size["p"]
    chunk = max(1, min(k2, T, CHUNK_ROWS // B))
    memory = bpttbench.ALGORITHMS["tbptt"].memory(size, ITEMSIZE)
    assert memory[0].value == min(k2, T) * B * n * ITEMSIZE  # the window's states
    assert memory[2].value == chunk * B * n * ITEMSIZE  # D
    assert memory[3].value == chunk * B * p * ITEMSIZE  # E
    assert memory[4].value == B * n * ITEMSIZE  # delta


def largest_slab(n, r):
    """K: the largest divisor of n whose K blocks of r columns fit in SLAB_COLS."""
    return max(K for K in range(1, n + 1) if n % K == 0 and K * r <= SLAB_COLS)


@pytest.mark.parametrize(
    ("n", "m"), [(16, 4), (24, 5), (13, 7), (40, 1), (7, 1)], ids=lambda v: str(v)
)
def test_rtrl_slab_term_follows_its_divisor_formula(n, m):
    r = n + m + 1
    K = largest_slab(n, r)
    assert _blocks_per_gemm(n, r) == K
    memory = bpttbench.ALGORITHMS["rtrl"].memory({"T": 4, "B": 2, "n": n, "m": m, "p": 2}, 8)
    assert memory[6].value == n * K * r * 8


# --- part 2: the FLOP model against an operation count ---------------------------------

RNN_SMALL = {"n": 4, "m": 3, "p": 2}


def rnn_problem(rng, size):
    params = bpttbench.RNNParams(*rnn_arrays(rng, size["m"], size["n"], size["p"]))
    xs, ys = sequence(rng, size["T"], size["B"], size["m"], size["p"])
    return params, xs, ys


def check_replica(name, size, kernel_result, replica_result):
    loss, grads = kernel_result
    ref_loss, ref_grads, counted = replica_result
    assert_loss_close(ref_loss, loss, EXACT_RTOL, f"{name} {size}: replica loss vs kernel")
    assert_grads_close(ref_grads, grads, EXACT_RTOL, f"{name} {size}: replica vs kernel")
    model = bpttbench.ALGORITHMS[name].flop_count(size)
    assert counted == model, (
        f"{name} {size}: counted {counted} FLOPs, the model says {model:.0f} "
        f"(difference {counted - model:+.0f})"
    )


def ids(size):
    return "-".join(f"{k}={v}" for k, v in size.items())


BPTT_SIZES = [
    {"T": 7, "B": 2, **RNN_SMALL},  # one chunk
    {"T": 40, "B": 5, **RNN_SMALL},  # chunks of 25: two, the earlier ragged
    {"T": 70, "B": 3, "n": 5, "m": 2, "p": 3},  # chunks of 42
    {"T": 300, "B": 1, **RNN_SMALL},  # chunks of 128: three
]


@pytest.mark.parametrize("size", BPTT_SIZES, ids=ids)
def test_bptt_flop_model_equals_the_counted_operations(rng, size):
    params, xs, ys = rnn_problem(rng, size)
    chunk = chunk_steps(size["B"], size["T"])
    check_replica(
        "bptt", size, bpttbench.bptt(params, xs, ys), flop_count.bptt(params, xs, ys, chunk)
    )


CHECKPOINTED_SIZES = [
    {"T": 7, "B": 2, **RNN_SMALL, "c": 2},  # one segment (T <= BPTT's chunk of 64 steps)
    {"T": 40, "B": 20, **RNN_SMALL, "c": 3},  # segments of 6: seven, the last ragged
    {"T": 70, "B": 16, "n": 5, "m": 2, "p": 3, "c": 1},  # one slot: 9 * 8 / 2 segment advances
    {"T": 60, "B": 64, **RNN_SMALL, "c": 4},  # segments of 2 steps, 30 of them
    {"T": 30, "B": 1, **RNN_SMALL, "c": 30},  # plain BPTT, no recomputation
    {"T": 1, "B": 2, **RNN_SMALL, "c": 1},  # one step
    {"T": 40, "B": 20, **RNN_SMALL, "c": 20},  # spare slots: 4 head segments, a tail of 16
    {"T": 60, "B": 64, **RNN_SMALL, "c": 40},  # segments of 2: 20 below a tail of 20
]


@pytest.mark.parametrize("size", CHECKPOINTED_SIZES, ids=ids)
def test_checkpointed_bptt_flop_model_equals_the_counted_operations(rng, size):
    params, xs, ys = rnn_problem(rng, size)
    T, c = size["T"], size["c"]
    schedule, _, L = checkpoint_plan(T, c, size["B"])
    check_replica(
        "checkpointed_bptt",
        size,
        bpttbench.checkpointed_bptt(params, xs, ys, c),
        flop_count.checkpointed_bptt(params, xs, ys, schedule, L, chunk_steps(size["B"], T)),
    )


TBPTT_SIZES = [
    {"T": 12, "B": 2, **RNN_SMALL, "k1": 4, "k2": 4},  # k divides T
    {"T": 13, "B": 2, **RNN_SMALL, "k1": 5, "k2": 5},  # ragged end
    {"T": 10, "B": 2, **RNN_SMALL, "k1": 1, "k2": 3},  # k1 = 1 < k2
    {"T": 9, "B": 2, **RNN_SMALL, "k1": 4, "k2": 100},  # k2 > T
    {"T": 40, "B": 5, **RNN_SMALL, "k1": 7, "k2": 30},  # windows of two chunks (25 + 5)
    {"T": 45, "B": 3, **RNN_SMALL, "k1": 20, "k2": 45},  # chunks of 42, ragged end
    {"T": 300, "B": 1, **RNN_SMALL, "k1": 130, "k2": 260},  # errors of 130 steps span 2 chunks
]


@pytest.mark.parametrize("size", TBPTT_SIZES, ids=ids)
def test_tbptt_flop_model_equals_the_counted_operations(rng, size):
    params, xs, ys = rnn_problem(rng, size)
    k1, k2 = size["k1"], size["k2"]
    chunk = chunk_steps(size["B"], min(k2, size["T"]))
    check_replica(
        "tbptt",
        size,
        bpttbench.tbptt(params, xs, ys, k1, k2),
        flop_count.tbptt(params, xs, ys, k1, k2, chunk),
    )


RTRL_SIZES = [
    {"T": 4, "B": 2, **RNN_SMALL},  # one slab (K = n)
    {"T": 3, "B": 2, "n": 24, "m": 5, "p": 3},  # K = 8: three slabs
    {"T": 3, "B": 2, "n": 13, "m": 7, "p": 2},  # K = 1: thirteen slabs
]


@pytest.mark.parametrize("size", RTRL_SIZES, ids=ids)
def test_rtrl_flop_model_equals_the_counted_operations(rng, size):
    params, xs, ys = rnn_problem(rng, size)
    K = _blocks_per_gemm(size["n"], size["n"] + size["m"] + 1)
    check_replica("rtrl", size, bpttbench.rtrl(params, xs, ys), flop_count.rtrl(params, xs, ys, K))


MLP_SIZES = [
    {"depth": 1, "width": 5, "B": 4},
    {"depth": 2, "width": 5, "B": 4},
    {"depth": 3, "width": 6, "B": 3},
]


@pytest.mark.parametrize("size", MLP_SIZES, ids=ids)
def test_backprop_flop_model_equals_the_counted_operations(rng, size):
    widths = [size["width"]] * (size["depth"] + 1)
    params = bpttbench.MLPParams(*mlp_arrays(rng, widths))
    x = rng.normal(size=(size["B"], widths[0]))
    y = rng.normal(size=(size["B"], widths[-1]))
    check_replica(
        "backprop", size, bpttbench.backprop(params, x, y), flop_count.backprop(params, x, y)
    )


def test_the_count_sees_the_chunking(rng):
    """The replica's count depends on the chunk (one += per chunk GEMM): counted with
    another chunk it must miss the model, so an exact match above is not vacuous."""
    size = {"T": 40, "B": 5, **RNN_SMALL}
    params, xs, ys = rnn_problem(rng, size)
    chunk = chunk_steps(size["B"], size["T"])
    _, _, counted = flop_count.bptt(params, xs, ys, chunk // 2)  # 4 chunks, not 2
    assert counted != bpttbench.ALGORITHMS["bptt"].flop_count(size)


# --- the gated cells: their FLOP models against the counted operations ------------------

GATED_PARAMS = {"gru": (naive_cells.GRU, 3), "lstm": (naive_cells.LSTM, 4)}


def gated_problem(rng, kind, size):
    cell, _ = GATED_PARAMS[kind]
    params = naive_cells.draw_params(cell, rng, size["m"], size["n"], size["p"])
    xs, ys = sequence(rng, size["T"], size["B"], size["m"], size["p"])
    as_bpttbench = getattr(bpttbench, f"{type(params).__name__}")(*params)
    return params, as_bpttbench, xs, ys


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("size", BPTT_SIZES, ids=ids)
def test_gated_bptt_flop_model_equals_the_counted_operations(rng, kind, size):
    params, kernel_params, xs, ys = gated_problem(rng, kind, size)
    chunk = chunk_steps(size["B"], size["T"])
    check_replica(
        "bptt",
        {**size, "cell": kind},
        bpttbench.bptt(kernel_params, xs, ys),
        flop_count.bptt_gated(kind, params, xs, ys, chunk),
    )


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("size", TBPTT_SIZES, ids=ids)
def test_gated_tbptt_flop_model_equals_the_counted_operations(rng, kind, size):
    params, kernel_params, xs, ys = gated_problem(rng, kind, size)
    k1, k2 = size["k1"], size["k2"]
    chunk = chunk_steps(size["B"], min(k2, size["T"]))
    check_replica(
        "tbptt",
        {**size, "cell": kind},
        bpttbench.tbptt(kernel_params, xs, ys, k1, k2),
        flop_count.tbptt_gated(kind, params, xs, ys, k1, k2, chunk),
    )
