"""Analytic cost models: exact FLOP counts and working-memory bytes as sums of terms.

Every algorithm file states its costs next to its kernel as a function of the
problem size that returns a list of :class:`Term`. A term is one summand of the
exact count together with the powers it carries in each size variable, e.g. the
recurrent matrix product of BPTT is ``Term(2*T*B*n*n, {"T": 1, "B": 1, "n": 2})``.
Summing the values gives the exact count; the powers let the harness ask, along
any axis, which terms lead and how much of the total they make up (the fit
window of THEORY.md, "leading term >= 90% of the total").

Every term is a monomial: doubling a size variable multiplies it by 2 to its
power (tests/test_cost_models.py), exactly where the sizes divide evenly (chunk
counts carry a ceiling, RTRL's slab width a divisor). Work a kernel skips, such as the recurrent
product at a window's first step, is a negative term: ``(T - 1) B n^2`` is
``T B n^2`` less ``B n^2``. Each negative term is outweighed by a positive one
whose powers are at least its own in every variable; the total is positive.

FLOP convention: one add, multiply, subtract or ``tanh`` is one FLOP; a fused
multiply-add is two. Counts follow the kernels as written, including the steps
they skip (for example the recurrent product at a window's first step).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Size = Mapping[str, int]


@dataclass(frozen=True)
class Term:
    """One summand of a cost model: its value and its power in each size variable."""

    value: float
    powers: Mapping[str, float] = field(default_factory=dict)

    def substitute(self, var: str, powers: Mapping[str, float], times: float = 1) -> Term:
        """Scale the value by ``times`` and replace the variable ``var`` by a product of powers.

        Sweep-level models count in steps; an algorithm that runs the sweep
        over windows says what a step stands for, e.g. ``steps -> T k2 / k1``.
        """
        own = dict(self.powers)
        k = own.pop(var, 0.0)
        for v, e in powers.items():
            own[v] = own.get(v, 0.0) + k * e
        return Term(self.value * times, {v: e for v, e in own.items() if e != 0})

    def power(self, axis_vars: tuple[str, ...]) -> float:
        """Total power along an axis that moves the variables ``axis_vars`` together."""
        return sum(self.powers.get(v, 0.0) for v in axis_vars)


CostModel = Callable[[Size], list[Term]]
MemoryModel = Callable[[Size, int], list[Term]]


def monomial(size: Size, coef: float, **powers: int) -> Term:
    """``Term(coef * prod(size[v] ** k))`` with those powers: a term that is exactly a monomial."""
    value = coef
    for var, k in powers.items():
        value *= size[var] ** k
    return Term(value, dict(powers))


def total(terms: list[Term]) -> float:
    """The exact count: the sum of all terms."""
    return float(sum(t.value for t in terms))


def leading_share(terms: list[Term], axis_vars: tuple[str, ...]) -> tuple[float, float]:
    """Leading power along an axis and the share of the total its terms make up.

    Returns ``(power, share)`` where ``power`` is the highest power of the axis
    among the terms with a positive value and ``share`` is the fraction of the
    total carried by the terms of that power. A negative term (the work a kernel
    skips, e.g. the recurrent product below a window's first step) counts in the
    total and in the share of its own power, never as the leading power.
    """
    whole = sum(t.value for t in terms)
    positive = [t for t in terms if t.value > 0]
    if not positive or whole <= 0:
        return 0.0, 0.0
    top = max(t.power(axis_vars) for t in positive)
    lead = sum(t.value for t in terms if t.value != 0 and t.power(axis_vars) == top)
    return top, lead / whole


def share_of_power(terms: list[Term], axis_vars: tuple[str, ...], power: float) -> float:
    """Share of the total carried by the terms of exactly ``power`` along an axis.

    The fit window of an exponent theta is where the theta-power terms make up
    >= 90% of the model; this also covers exponents that hold only in a regime
    (BPTT's memory grows like n while the T n B states outweigh the n^2 weights).
    Negative terms count with their sign, in the total and in their power's share.
    """
    whole = sum(t.value for t in terms)
    if whole <= 0:
        return 0.0
    return sum(t.value for t in terms if abs(t.power(axis_vars) - power) < 1e-9) / whole


@dataclass(frozen=True)
class Exponent:
    """A theoretical exponent of one metric along one axis, with where it comes from.

    ``terms``: where the exponent is not the power of cost-model terms but a growth the
    terms' values carry (checkpointed BPTT's forward steps grow like T^(1 + 1/c) at fixed
    c through the repetition number, in terms of power T^1), the power of the terms
    that carry it: the fit window is where those lead (bench/fit.py). None: ``value``.
    """

    value: float
    source: str
    terms: float | None = None

    @property
    def window_power(self) -> float:
        """The power of the cost terms whose lead defines the fit window."""
        return self.value if self.terms is None else self.terms


@dataclass(frozen=True)
class Sweep:
    """One axis sweep: the axis, its sizes, and the sizes held fixed.

    The sizes are either explicit (``values``) or a geometric grid
    ``geometric = (start, stop, points)``, each size rounded to a multiple of
    ``multiple`` (matrix sizes that are multiples of the SIMD width keep BLAS on
    its fast paths). Sizes not in ``fixed`` take the algorithm's defaults
    (:attr:`AlgorithmSpec.sizes`). This is the shape of a TOML grid's
    ``[[sweep]]`` table, less the algorithm's name.
    """

    axis: str
    values: tuple[int, ...] = ()
    geometric: tuple[int, int, int] | None = None
    multiple: int = 1
    fixed: Mapping[str, int] = field(default_factory=dict)

    def as_grid(self, algorithm: str) -> dict:
        """The sweep as a grid's ``[[sweep]]`` table."""
        out: dict = {"algorithm": algorithm, "axis": self.axis}
        if self.geometric is not None:
            out["geometric"] = list(self.geometric)
        else:
            out["values"] = list(self.values)
        if self.multiple > 1:
            out["multiple"] = self.multiple
        out["fixed"] = dict(self.fixed)
        return out


@dataclass(frozen=True)
class Style:
    """How charts draw one algorithm: a colour, a marker and a line style (matplotlib names).

    Optional on a spec: without one, the report gives each algorithm a style of its own
    by its place in the registry (``bpttbench.bench.charts.assign_styles``).
    """

    colour: str
    marker: str
    linestyle: str = "-"


@dataclass(frozen=True)
class AlgorithmSpec:
    """What the harness needs to know about one algorithm, and nothing else.

    Attributes
    ----------
    name : registry name (``"bptt"``, ``"tbptt"``, ``"rtrl"``, ``"backprop"``).
    title : human-readable name for tables and charts.
    family : ``"rnn"`` or ``"mlp"``: which size variables apply.
    func : the public gradient function, ``func(*problem) -> (loss, grads)``.
    make_problem : ``make_problem(size, dtype, seed) -> tuple`` of arguments for
        ``func`` (parameters, data, and truncation lengths where they apply).
    flops : exact FLOP count of one call, as terms.
    memory : analytic working-memory bytes of one call (buffers the kernel
        allocates plus the gradients it returns; parameters and data excluded),
        as terms; takes the item size in bytes.
    exponents : ``{(axis, metric): Exponent}`` for metric in ``"time"``,
        ``"memory"``, ``"flops"``; axes are ``T``, ``n``, ``B``, ``k``,
        ``depth``, ``width``.
    axis_vars : which size variables each axis moves (axis ``k`` moves both
        ``k1`` and ``k2``).
    sizes : every size variable the algorithm takes, with its default (the
        value a sweep uses where nothing else is said).
    presets : ``{"quick": (Sweep, ...), "full": (...)}``: the axis sweeps each
        preset of ``bpttbench sweep`` makes of this algorithm.
    bench_cases : the cases of the pytest-benchmark suite, as sweeps with
        explicit values.

    Optional, for the report and the peers (a spec without them works):

    style : how charts draw it; ``None`` (the default) takes the next free style
        in registry order, so every algorithm gets its own.
    pairs : names of algorithms to compare it with, side by side at equal sizes:
        ``pairs=("bptt",)`` on RTRL draws RTRL against BPTT (model cost maps,
        where its memory drops below the other's, measured ratios where both
        were measured at the same size).
    peers : ``{tool: implementation}``: which peer tools compute the same
        gradient, and under which name the tool's module knows it
        (``{"pytorch": "bptt"}``; see ``bpttbench.bench.peers``).
    chart_axes : the axes along which the report draws its time and memory in
        charts of their own; ``None`` (the default) means the first two axes of
        ``axis_vars``. Its other axes share the report's panel chart.
    axis_labels : ``{axis: label}`` for axes the registry's ``AXIS_LABELS`` does
        not describe (or to describe one differently), e.g.
        ``{"c": "checkpoint slots c"}``.
    weight_reads : the weights one call reads whatever its batch (entries, as
        terms: the recurrent kernels read every weight once a step, the MLP once a
        layer), the B-independent part of its time model: ``bench.fit`` charges each
        read at the GEMV rate against the FLOPs at the GEMM rate when it chooses
        the window of a time fit. ``None``: no such term (a FLOP-model window).
    """

    name: str
    title: str
    family: str
    func: Callable
    make_problem: Callable
    flops: CostModel
    memory: MemoryModel
    exponents: Mapping[tuple[str, str], Exponent]
    axis_vars: Mapping[str, tuple[str, ...]]
    sizes: Mapping[str, int] = field(default_factory=dict)
    presets: Mapping[str, tuple[Sweep, ...]] = field(default_factory=dict)
    bench_cases: tuple[Sweep, ...] = ()
    style: Style | None = None
    pairs: tuple[str, ...] = ()
    peers: Mapping[str, str] = field(default_factory=dict)
    chart_axes: tuple[str, ...] | None = None
    axis_labels: Mapping[str, str] = field(default_factory=dict)
    weight_reads: CostModel | None = None

    def flop_count(self, size: Size) -> float:
        return total(self.flops(size))

    def memory_bytes(self, size: Size, itemsize: int) -> float:
        return total(self.memory(size, itemsize))

    def own_chart_axes(self) -> tuple[str, ...]:
        """The axes the report charts on their own for this algorithm (see ``chart_axes``)."""
        if self.chart_axes is not None:
            return tuple(a for a in self.chart_axes if a in self.axis_vars)
        return tuple(self.axis_vars)[:2]
