"""The algorithm registry: what the harness, the benchmark suite and the report know.

Each entry pairs a gradient function with its exact FLOP count, its analytic
working memory, its theoretical exponents per axis (THEORY.md, "Costs"), the
sizes it takes with their defaults, the sweeps of the ``quick`` and ``full``
presets and the cases of the pytest-benchmark suite, and for the report the
algorithms it is compared with and the peer tools that compute it. A new
algorithm is one file in ``kernels/`` plus one entry in ``kernels/specs/`` (one
module a family, listed there); ``bench`` reads this module and nothing else.

Other packages add algorithms through the entry-point group
``bpttbench.algorithms`` (:data:`ENTRY_POINT_GROUP`): the object an entry point
names is an :class:`~bpttbench.costs.AlgorithmSpec`, or a callable without
arguments that returns one. ``import bpttbench`` loads them into
:data:`ALGORITHMS` after the built-in entries (:func:`load_plugins`); a plugin
that fails to load is left out with a :class:`PluginWarning` naming it, and the
built-in algorithms work as before. In a package's ``pyproject.toml``::

    [project.entry-points."bpttbench.algorithms"]
    my_rtrl = "my_package.algorithms:SPEC"
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, MutableMapping
from importlib import metadata

from .costs import AlgorithmSpec
from .specs.checkpointed import (
    CHECKPOINT_AXES,
    CHECKPOINT_SIZES,
    CHECKPOINTED_BPTT,
    CKPT_BASE_T,
    CKPT_T_SLOTS,
)
from .specs.exact import EXACT
from .specs.gated import CELL_ALGORITHMS, CELL_SWEEPS, with_cells
from .specs.online import IN_CACHE_POINTS, ONLINE, SPARSE_RNN_SIZES
from .specs.sizes import (
    AXIS_LABELS,
    CELL_SIZE,
    CELLS,
    MLP_AXES,
    MLP_SIZES,
    RNN_AXES,
    RNN_SIZES,
    TRUNCATION_SIZES,
)
from .specs.weight_reads import (
    MLP_READS,
    READS_PER_STEP,
    checkpointed_weight_reads,
    mlp_weight_reads,
    rnn_weight_reads,
    with_weight_reads,
)
from .tradeoff import with_tradeoff

__all__ = [
    "ALGORITHMS",
    "AXIS_LABELS",
    "CELLS",
    "CELL_ALGORITHMS",
    "CELL_SIZE",
    "CELL_SWEEPS",
    "CHECKPOINT_AXES",
    "CHECKPOINT_SIZES",
    "CKPT_BASE_T",
    "CKPT_T_SLOTS",
    "ENTRY_POINT_GROUP",
    "IN_CACHE_POINTS",
    "MLP_AXES",
    "MLP_READS",
    "MLP_SIZES",
    "READS_PER_STEP",
    "RNN_AXES",
    "RNN_SIZES",
    "SPARSE_RNN_SIZES",
    "TRUNCATION_SIZES",
    "PluginWarning",
    "check_spec",
    "checkpointed_weight_reads",
    "load_plugins",
    "mlp_weight_reads",
    "rnn_weight_reads",
    "with_cells",
    "with_tradeoff",
]

ENTRY_POINT_GROUP = "bpttbench.algorithms"

# The built-in algorithms, in this order (the presets' and the report's): the exact
# gradients (specs/exact.py), checkpointed BPTT (specs/checkpointed.py), the online
# rules (specs/online.py).
ALGORITHMS: dict[str, AlgorithmSpec] = {
    **EXACT,
    "checkpointed_bptt": CHECKPOINTED_BPTT,
    **ONLINE,
}
# The cell as a size variable, and the gated cells' sweeps (specs/gated.py).
ALGORITHMS.update(with_cells(ALGORITHMS))

# --- the trade-off sweeps -----------------------------------------------------------------
# BPTT, truncated BPTT, RTRL and checkpointed BPTT measured at one (T, n, B) for the
# report's time-memory chart (kernels/tradeoff.py). Last, after every built-in entry:
# it adds to the presets of the algorithms registered by then.
ALGORITHMS.update(with_tradeoff(ALGORITHMS))

# The weights a call reads whatever its batch, for the time fits (specs/weight_reads.py).
ALGORITHMS.update(with_weight_reads(ALGORITHMS))


class PluginWarning(UserWarning):
    """An algorithm plugin could not be loaded; the message names it and says why."""


def load_plugins(
    registry: MutableMapping[str, AlgorithmSpec],
    found: Iterable[metadata.EntryPoint] | None = None,
) -> list[str]:
    """Add the algorithms of the entry-point group ``bpttbench.algorithms`` to ``registry``.

    ``found`` are the entry points to load (default: those installed), loaded in
    order of their names. Each names an :class:`AlgorithmSpec` or a callable
    without arguments returning one; it is added under the spec's name after the
    algorithms already there. One that fails (an import error, not a spec, an
    inconsistent spec, a name already taken) is left out with a
    :class:`PluginWarning`. Returns the names added.
    """
    if found is None:
        found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    added = []
    for ep in sorted(found, key=lambda e: e.name):
        try:
            spec = _plugin_spec(ep)
            if spec.name in registry:
                raise ValueError(f"an algorithm named {spec.name!r} is already registered")
        except Exception as exc:  # a broken plugin must never break the core
            warnings.warn(
                f"bpttbench: algorithm plugin {ep.name!r} ({ep.value}) not loaded: "
                f"{type(exc).__name__}: {exc}",
                PluginWarning,
                stacklevel=2,
            )
            continue
        registry[spec.name] = spec
        added.append(spec.name)
    return added


def _plugin_spec(ep: metadata.EntryPoint) -> AlgorithmSpec:
    """The spec an entry point names, checked for what the harness relies on."""
    obj = ep.load()
    spec = obj if isinstance(obj, AlgorithmSpec) else obj() if callable(obj) else obj
    if not isinstance(spec, AlgorithmSpec):
        raise TypeError(f"expected an AlgorithmSpec (or a callable returning one), got {spec!r}")
    check_spec(spec)
    return spec


def check_spec(spec: AlgorithmSpec) -> None:
    """Raise ValueError where a spec contradicts itself (axes, sizes, presets, fields)."""
    if not isinstance(spec.name, str) or not spec.name.isidentifier():
        raise ValueError(f"name {spec.name!r} is not an identifier")
    if not callable(spec.func) or not callable(spec.make_problem):
        raise ValueError(f"{spec.name}: func and make_problem must be callable")
    for axis, _metric in spec.exponents:
        if axis not in spec.axis_vars:
            raise ValueError(f"{spec.name}: exponent along unknown axis {axis!r}")
        missing = set(spec.axis_vars[axis]) - set(spec.sizes)
        if missing:
            raise ValueError(f"{spec.name}: axis {axis!r} moves {sorted(missing)}: no size given")
    for sweep in (*spec.bench_cases, *(s for p in spec.presets.values() for s in p)):
        if sweep.axis not in spec.axis_vars or not set(sweep.fixed) <= set(spec.sizes):
            raise ValueError(f"{spec.name}: sweep along {sweep.axis!r} does not fit its sizes")
    if isinstance(spec.pairs, str) or not all(isinstance(p, str) for p in spec.pairs):
        raise ValueError(f"{spec.name}: pairs must be a tuple of algorithm names")
