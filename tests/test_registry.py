"""The algorithm registry: every entry runs, its costs are positive, and its
declared exponents agree with the powers of its own cost terms.

The harness fits an exponent only where the model's terms of that power carry
>= 90% of the total (THEORY.md, "choose the fit window from the analytic
model"). So a declared exponent must either be the leading power along its
axis (bpttbench.costs.leading_share) and come to dominate as the axis grows, or,
for an exponent that THEORY.md gives for a regime (BPTT's memory grows like n
while the T n B states outweigh the n^2 weights), be below the leading power
and carry >= 90% of the total somewhere nearby.
"""

from __future__ import annotations

import bpttbench
import numpy as np
import pytest
from bpttbench.bench.sweep import preset_plan
from bpttbench.costs import AlgorithmSpec, leading_share
from bpttbench.registry import AXIS_LABELS, CKPT_T_SLOTS, check_spec

LEADS = 0.9  # THEORY.md: the leading term is >= 90% of the total inside the fit window
ITEMSIZE = 8  # float64; the models are checked at float32's 4 too where it matters

BASE_SIZE = {
    "rnn": {"T": 256, "B": 4, "n": 16, "m": 8, "p": 4, "k1": 4, "k2": 4},
    "mlp": {"depth": 3, "width": 16, "B": 4},
}
# Along axis k the window must stay below T, so that axis starts from a long sequence;
# SnAp-2's density (a percentage) grows from 1% in a wide W_hh, so that it keeps units.
BASE_FOR_AXIS = {"k": {"T": 1 << 16}, "density": {"density": 1, "n": 1 << 12}}
CEILING = {"density": 100}  # a variable that cannot grow past this
# Along c (checkpoint slots) the slots must stay fewer than the segments (T B / 128 of
# them: 32768 here, past c = 4 x 1024), and the slot count starts small (the other axes
# use the kernel's default, ceil(sqrt(T))).
BASE_FOR_AXIS["c"] = {"T": 1 << 20, "c": 4}
GROWTH = [1 << j for j in range(11)]  # the axis variables scaled by 1 .. 1024
REGIME_SCALES = [1, 16, 256]  # the other variables scaled, to look for a regime

EXPECTED_ALGORITHMS = {"bptt", "tbptt", "rtrl", "backprop"}
METRICS = {"time", "flops", "memory"}


def entries():
    return [
        (name, axis, metric)
        for name, spec in bpttbench.ALGORITHMS.items()
        for (axis, metric) in spec.exponents
    ]


# The gated cells' cost models, with the exponents declared for the algorithm: a cell
# changes constants, not powers (kernels/specs/gated.py, "the cell").
GATED = ("gru", "lstm")


def cell_entries():
    gated = ("bptt", "tbptt", "checkpointed_bptt")
    return [(n, a, m, c) for n, a, m in entries() if n in gated for c in GATED]


def terms_of(spec, metric, size):
    return spec.memory(size, ITEMSIZE) if metric == "memory" else spec.flops(size)


def share_of_power(terms, axis_vars, power):
    total = sum(t.value for t in terms)  # negative terms count with their sign
    return sum(t.value for t in terms if abs(t.power(axis_vars) - power) < 1e-9) / total


def assert_negative_terms_are_outweighed(terms):
    """A negative term is work a kernel skips: it must be less than a positive term
    whose powers are at least its own in every variable (it takes from that term)."""
    for neg in (t for t in terms if t.value < 0):
        covers = [
            t
            for t in terms
            if t.value >= -neg.value
            and all(t.powers.get(v, 0) >= e for v, e in neg.powers.items())
            and all(e >= neg.powers.get(v, 0) for v, e in t.powers.items())
        ]
        assert covers, f"negative term {neg} is outweighed by no positive term of its powers"


def scaled(size, variables, factor):
    return {k: (v * factor if k in variables else v) for k, v in size.items()}


def base_size(spec, axis, cell=None):
    extra = {"cell": cell} if cell else {}
    return {**BASE_SIZE[spec.family], **BASE_FOR_AXIS.get(axis, {}), **extra}


def test_registry_holds_the_four_algorithms_under_their_names():
    assert set(bpttbench.ALGORITHMS) >= EXPECTED_ALGORITHMS
    for name, spec in bpttbench.ALGORITHMS.items():
        assert isinstance(spec, AlgorithmSpec)
        assert spec.name == name
        assert spec.family in BASE_SIZE
        assert spec.title
    for name in EXPECTED_ALGORITHMS:
        assert bpttbench.ALGORITHMS[name].func is getattr(bpttbench, name)


@pytest.mark.parametrize("name", sorted(bpttbench.ALGORITHMS))
def test_costs_are_positive(name):
    spec = bpttbench.ALGORITHMS[name]
    for factor in (1, 4, 64):
        size = scaled(BASE_SIZE[spec.family], set(BASE_SIZE[spec.family]) - {"k1", "k2"}, factor)
        assert spec.flop_count(size) > 0
        for itemsize in (4, 8):
            assert spec.memory_bytes(size, itemsize) > 0
        assert_negative_terms_are_outweighed(spec.flops(size))
        assert_negative_terms_are_outweighed(spec.memory(size, ITEMSIZE))


# Axes along which time follows no power law, so none is declared: checkpointed BPTT's
# forward steps fall with the slots c like T ln T / ln c (kernels/specs/checkpointed.py).
NO_TIME_POWER_LAW = {("checkpointed_bptt", "c")}
# Exponents that are a schedule's asymptotic theory, not the power of a cost term (their
# Exponent.terms is the power of the terms that carry them): checkpointed BPTT's forward
# steps at fixed c grow like T^(1 + 1/c) (revolve's repetition number r ~ (c! T)^(1/c);
# kernels/specs/checkpointed.py), in terms of power T^1 with the factor r in their values.
SCHEDULE_EXPONENTS = {
    ("checkpointed_bptt", "T", "time"): 1 + 1 / CKPT_T_SLOTS,
    ("checkpointed_bptt", "T", "flops"): 1 + 1 / CKPT_T_SLOTS,
}


@pytest.mark.parametrize("name", sorted(bpttbench.ALGORITHMS))
def test_every_axis_has_time_and_memory_exponents_with_a_source(name):
    spec = bpttbench.ALGORITHMS[name]
    axes = {axis for axis, _ in spec.exponents}
    assert axes <= set(spec.axis_vars)
    for axis in axes:
        if (name, axis) in NO_TIME_POWER_LAW:
            assert (axis, "time") not in spec.exponents
        else:
            assert (axis, "time") in spec.exponents
        assert (axis, "memory") in spec.exponents
    for (axis, metric), exponent in spec.exponents.items():
        assert metric in METRICS
        assert exponent.source, f"{name} {axis} {metric}: no source"


@pytest.mark.parametrize(
    ("name", "axis", "metric", "cell"),
    [(*e, None) for e in entries()] + cell_entries(),
    ids=lambda v: str(v),
)
def test_declared_exponent_matches_the_cost_terms(name, axis, metric, cell):
    spec = bpttbench.ALGORITHMS[name]
    exponent = spec.exponents[(axis, metric)]
    assert exponent.value == SCHEDULE_EXPONENTS.get((name, axis, metric), exponent.value)
    assert (exponent.terms is None) == ((name, axis, metric) not in SCHEDULE_EXPONENTS)
    declared = exponent.window_power  # the power of the terms that carry the exponent
    model = "flops" if metric == "time" else metric  # time follows the FLOP count
    axis_vars = spec.axis_vars[axis]
    base = base_size(spec, axis, cell)
    power, _ = leading_share(terms_of(spec, model, base), axis_vars)
    if declared == power:
        # The leading power must come to dominate as the axis grows.
        growth = [
            f for f in GROWTH if all(base[v] * f <= CEILING.get(v, f * base[v]) for v in axis_vars)
        ]
        shares = [
            leading_share(terms_of(spec, model, scaled(base, axis_vars, f)), axis_vars)
            for f in growth
        ]
        assert all(p == declared for p, _ in shares)
        assert max(s for _, s in shares) >= LEADS, (
            f"{name} {axis} {metric}: power {declared} never reaches {LEADS:.0%}: {shares}"
        )
    else:
        # A regime exponent: below the leading power, and leading somewhere.
        assert declared < power, f"{name} {axis} {metric}: declared {declared} > leading {power}"
        # The regime is one of long sequences and large batches: the input and output
        # sizes stay at the base (scaled with B, the C B p readout-error scratch grows
        # like B p, a term without n, faster than the B n states).
        fixed = {"k1", "k2", "m", "p"}
        others = {k for k, v in base.items() if isinstance(v, int)} - set(axis_vars) - fixed
        best = max(
            share_of_power(terms_of(spec, model, scaled(base, others, s)), axis_vars, declared)
            for s in REGIME_SCALES
        )
        assert best >= LEADS, (
            f"{name} {axis} {metric}: declared {declared} (leading power {power}) carries "
            f"at most {best:.0%} of the model"
        )


@pytest.mark.parametrize("name", sorted(bpttbench.ALGORITHMS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_make_problem_runs_through_func(name, dtype):
    spec = bpttbench.ALGORITHMS[name]
    size = (
        {"T": 6, "B": 2, "n": 4, "m": 3, "p": 2, "k1": 2, "k2": 3}
        if spec.family == "rnn"
        else {"depth": 2, "width": 4, "B": 3}
    )
    problem = spec.make_problem(size, dtype, 0)
    again = spec.make_problem(size, dtype, 0)
    loss, grads = spec.func(*problem)
    loss_again, _ = spec.func(*again)
    assert np.isfinite(loss) and loss > 0
    assert loss == loss_again, "make_problem is not deterministic for a fixed seed"
    arrays = [a for field in grads for a in (field if isinstance(field, tuple) else (field,))]
    assert arrays and all(a.dtype == dtype and np.isfinite(a).all() for a in arrays)


# --- what the report and the peers read from the registry --------------------------------

KNOWN_PEER_TOOLS = {"pytorch", "jax"}


@pytest.mark.parametrize("name", sorted(bpttbench.ALGORITHMS))
def test_spec_is_consistent(name):
    spec = bpttbench.ALGORITHMS[name]
    check_spec(spec)
    assert set(spec.pairs) <= set(bpttbench.ALGORITHMS) - {name}
    assert set(spec.peers) <= KNOWN_PEER_TOOLS
    assert set(spec.own_chart_axes()) <= set(spec.axis_vars)
    for axis in spec.axis_vars:
        assert axis in AXIS_LABELS or axis in spec.axis_labels, f"{name}: no label for {axis}"


def _shared_cells(preset: str, a: str, b: str) -> set[tuple]:
    """Sizes the preset measures for both ``a`` and ``b`` (on the variables they share)."""
    reg = bpttbench.ALGORITHMS
    cells = preset_plan(preset, reg).cells(reg)
    shared = [v for v in reg[a].sizes if v in reg[b].sizes]
    of = {x: {tuple(c.size[v] for v in shared) for c in cells if c.algorithm == x} for x in (a, b)}
    return of[a] & of[b]


@pytest.mark.parametrize("preset", ["quick", "full"])
def test_every_pair_is_measured_at_common_sizes(preset):
    """The report compares a pair measured with measured: the presets must give such cells."""
    pairs = [(a, b) for a, spec in bpttbench.ALGORITHMS.items() for b in spec.pairs]
    assert ("rtrl", "bptt") in pairs
    for a, b in pairs:
        assert len(_shared_cells(preset, a, b)) >= 4, (preset, a, b)


# --- the cell as a size variable ----------------------------------------------------------

SMALL_RNN = {"T": 6, "B": 2, "n": 4, "m": 3, "p": 2, "k1": 2, "k2": 3}
PARAMS_OF = {"elman": bpttbench.RNNParams, "gru": bpttbench.GRUParams, "lstm": bpttbench.LSTMParams}


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
@pytest.mark.parametrize("name", ["bptt", "tbptt", "checkpointed_bptt"])
def test_make_problem_builds_the_cell_of_the_size(name, cell):
    spec = bpttbench.ALGORITHMS[name]
    problem = spec.make_problem({**SMALL_RNN, "cell": cell}, np.float64, 0)
    assert type(problem[0]) is PARAMS_OF[cell]
    loss, grads = spec.func(*problem)
    assert np.isfinite(loss) and type(grads) is PARAMS_OF[cell]
    for factor in (1, 16):
        size = {**SMALL_RNN, "cell": cell, "T": 6 * factor, "n": 4 * factor}
        assert spec.flop_count(size) > 0 and spec.memory_bytes(size, 8) > 0
        assert_negative_terms_are_outweighed([*spec.flops(size), *spec.memory(size, 8)])


def test_a_gated_step_costs_more_than_an_elman_step():
    """Same sizes: G = 3 (GRU) or 4 (LSTM) gate blocks of GEMM work, more stored per step."""
    spec = bpttbench.ALGORITHMS["bptt"]
    size = {"T": 64, "B": 4, "n": 256, "m": 1, "p": 1}
    flops = {c: spec.flop_count({**size, "cell": c}) for c in ("elman", "gru", "lstm")}
    assert 2.5 < flops["gru"] / flops["elman"] < 3.5 < flops["lstm"] / flops["elman"] < 4.5
    assert spec.flop_count(size) == flops["elman"]  # elman is the default


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_rtrl_runs_the_gated_cells_with_their_own_cost_models(cell):
    spec = bpttbench.ALGORITHMS["rtrl"]
    size = {**SMALL_RNN, "cell": cell}
    loss, g = spec.func(*spec.make_problem(size, np.float64, 0))
    assert loss > 0 and type(g).__name__ == f"{cell.upper()}Params"
    module = getattr(bpttbench, f"rtrl_{cell}")
    assert spec.flop_count(size) == sum(t.value for t in module.flops(size))
    assert spec.memory_bytes(size, 8) == sum(t.value for t in module.memory(size, 8))


def test_unknown_cell_is_refused():
    spec = bpttbench.ALGORITHMS["bptt"]
    with pytest.raises(ValueError, match="cell"):
        spec.make_problem({**SMALL_RNN, "cell": "transformer"}, np.float64, 0)
    with pytest.raises(ValueError, match="cell"):
        spec.flop_count({**SMALL_RNN, "cell": "transformer"})


def test_with_cells_adds_the_cell_size_and_the_gated_sweeps():
    from bpttbench.registry import CELL_ALGORITHMS, CELL_SWEEPS, CELLS, with_cells

    registry = with_cells(bpttbench.ALGORITHMS)
    assert CELLS == ("elman", "gru", "lstm")
    assert set(CELL_ALGORITHMS) == {"bptt", "tbptt", "rtrl", "checkpointed_bptt", "snap1"}
    for name, spec in registry.items():
        before = bpttbench.ALGORITHMS[name]
        if name not in CELL_ALGORITHMS:  # the online rules but SnAp-1 run the Elman cell only
            assert spec is before
            continue
        assert spec.sizes == {**before.sizes, "cell": "elman"}
        check_spec(spec)  # every sweep's fixed sizes are sizes of the spec
        for preset, sweeps in before.presets.items():
            assert spec.presets[preset][: len(sweeps)] == sweeps  # the Elman sweeps unchanged
    quick = [s for s in registry["bptt"].presets["quick"] if "cell" in s.fixed]
    assert {(s.axis, s.fixed["cell"]) for s in quick} == {
        (a, c) for a in ("T", "n") for c in ("gru", "lstm")
    }
    assert registry == bpttbench.ALGORITHMS  # wired in, and adding the cells again adds nothing
    for name, presets in CELL_SWEEPS.items():
        spec = registry[name]
        for sweep in (s for sweeps in presets.values() for s in sweeps):
            assert sweep.fixed["cell"] in CELLS and sweep.axis in spec.axis_vars
            assert set(sweep.fixed) <= set(spec.sizes)
            assert (sweep.axis, "memory") in spec.exponents  # something to fit
            points = sweep.geometric[2] if sweep.geometric else len(sweep.values)
            assert points >= 6  # a fit needs >= 4; >= 8 for a verdict in the full preset


def test_every_gated_sweep_measures_sizes_an_elman_sweep_of_its_preset_measures():
    """The report compares the cells at equal sizes (bench.cells_compare): every gated
    cell's sweep point must be a point of an Elman sweep of the same preset."""
    from bpttbench.bench.grid import preset_grid

    for preset in ("quick", "full"):
        grid = preset_grid(preset, bpttbench.ALGORITHMS)
        points: dict = {}
        for sw in grid["sweep"]:
            spec = bpttbench.ALGORITHMS[sw["algorithm"]]
            if "cell" not in spec.sizes:
                continue
            fixed = {**spec.sizes, **sw.get("fixed", {})}
            sizes = sw.get("values") or grid_values(sw)
            for v in sizes:
                size = {**fixed, **{var: v for var in spec.axis_vars[sw["axis"]]}}
                cell = size.pop("cell")
                points.setdefault((sw["algorithm"], cell), set()).add(tuple(sorted(size.items())))
        for (name, cell), pts in points.items():
            if cell != "elman":
                missing = pts - points[(name, "elman")]
                assert not missing, (preset, name, cell, sorted(missing)[:3])


def grid_values(sw):
    from bpttbench.bench.grid import geometric

    return geometric(*sw["geometric"], sw.get("multiple", 1))


# The full preset gives every exponent of the cell algorithms a sweep per cell with
# >= 8 sizes where the model's terms of that power carry >= 90% (bench.fit's window):
# fewer and the report's fit notes a short window, or gives no verdict at all (the
# gated BPTT memory along n had no such sweep, along B 3 and 4 sizes).
FULL_WINDOW_POINTS = 8


@pytest.mark.parametrize("name", ["bptt", "tbptt", "rtrl"])
@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_every_exponent_has_a_full_sweep_with_eight_sizes_in_its_window(name, cell):
    from bpttbench.bench.fit import fit_window
    from bpttbench.bench.grid import geometric

    spec = bpttbench.ALGORITHMS[name]
    sweeps = [s for s in spec.presets["full"] if s.fixed.get("cell", "elman") == cell]
    short = []
    for (axis, metric), exp in spec.exponents.items():
        best = 0
        for s in (s for s in sweeps if s.axis == axis):
            values = list(s.values) or geometric(*s.geometric, s.multiple)
            sizes = [
                {**spec.sizes, **s.fixed, **dict.fromkeys(spec.axis_vars[axis], v)} for v in values
            ]
            window = fit_window(spec, axis, metric, sizes, ITEMSIZE, exp.window_power)
            best = max(best, sum(window))
        if best < FULL_WINDOW_POINTS:
            short.append((axis, metric, best))
    assert not short, f"{name} on the {cell} cell: (axis, metric, sizes in the window) {short}"
