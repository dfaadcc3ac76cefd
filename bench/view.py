"""The report's window on the registry, and what every chart builder is handed.

Everything the report knows about algorithms and axes comes through :class:`View`:
titles, the size variables (``fit.size_columns``), axis labels (a spec's
``axis_labels``, then the registry's ``AXIS_LABELS``), which axes get charts of
their own (``AlgorithmSpec.chart_axes``), the pairs to compare
(``AlgorithmSpec.pairs``) and each algorithm's chart style
(``charts.assign_styles``). An algorithm registered by a plugin is charted, paired
and styled like a built-in one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bpttbench.bench import fmt
from bpttbench.bench.charts import assign_styles
from bpttbench.bench.fit import size_columns
from bpttbench.costs import Style
from bpttbench.registry import AXIS_LABELS

if TYPE_CHECKING:  # for annotations only: slices imports this module
    from bpttbench.bench.slices import StoreData


class Skip(Exception):
    """A chart (or a whole source) cannot be drawn; the message says why."""


class NoSource(Skip):
    """A chart's source could not be read; that was already said once, so it is not echoed."""


@dataclass
class View:
    """The registry as the report reads it."""

    registry: Mapping
    styles: dict[str, Style] = field(default_factory=dict)

    @classmethod
    def of(cls, registry: Mapping, extra: Iterable[str] = ()) -> View:
        """The view of ``registry``; ``extra`` names algorithms found in the data only."""
        extra = sorted({x for x in extra if x and x not in registry})
        return cls(dict(registry), assign_styles(registry, extra))

    @property
    def sizes(self) -> tuple[str, ...]:
        """Every size variable, in registry order."""
        return size_columns(self.registry)

    def solo_vars(self) -> set[str]:
        """Size variables that an axis moves on its own (T, n, B, depth, width)."""
        moved = (vs for spec in self.registry.values() for vs in spec.axis_vars.values())
        return {vs[0] for vs in moved if len(vs) == 1}

    def sizes_text(self, values: Mapping[str, int]) -> str:
        """``'n=32, B=1, m=p=1'``: see :func:`bpttbench.bench.fmt.sizes`."""
        return fmt.sizes(values, self.sizes, self.solo_vars())

    def title(self, name: str) -> str:
        spec = self.registry.get(name)
        return getattr(spec, "title", None) or str(name).upper()

    def style(self, name: str) -> Style:
        """The algorithm's style; a name first seen now gets the next free one."""
        if name not in self.styles:
            extra = [n for n in self.styles if n not in self.registry]
            self.styles = assign_styles(self.registry, [*extra, name])
        return self.styles[name]

    def axis_vars(self, name: str, axis: str) -> tuple[str, ...]:
        """The size variables ``axis`` moves for ``name`` (the axis itself when unknown)."""
        spec = self.registry.get(name)
        if spec is not None and axis in spec.axis_vars:
            return tuple(spec.axis_vars[axis])
        for other in self.registry.values():
            if axis in other.axis_vars:
                return tuple(other.axis_vars[axis])
        return (axis,)

    def axes(self) -> tuple[str, ...]:
        """Every axis of the registry, in registry order."""
        return tuple(dict.fromkeys(a for spec in self.registry.values() for a in spec.axis_vars))

    def axis_label(self, axis: str) -> str:
        """``'sequence length T (steps)'``: a spec's own label first, then the registry's."""
        for spec in self.registry.values():
            if axis in spec.axis_labels:
                return spec.axis_labels[axis]
        return AXIS_LABELS.get(axis, axis)

    def axis_name(self, axis: str) -> str:
        """The label without its unit: ``'sequence length T'``."""
        return self.axis_label(axis).split(" (")[0]

    def chart_axes(self) -> tuple[str, ...]:
        """Axes with charts of their own (time and memory), in registry order."""
        return tuple(
            dict.fromkeys(a for spec in self.registry.values() for a in spec.own_chart_axes())
        )

    def own_chart(self, name: str, axis: str) -> bool:
        """Whether ``name`` is drawn along ``axis`` in a chart of its own (else in the panels).

        Algorithms outside the registry (found in pytest-benchmark JSON) follow
        the axis: on their own chart where any registered algorithm has one.
        """
        spec = self.registry.get(name)
        if spec is None:
            return axis in self.chart_axes()
        return axis in spec.own_chart_axes()

    def order(self, names: Iterable[str]) -> list[str]:
        """Algorithms in registry order, unknown names after them alphabetically."""
        rank = {n: i for i, n in enumerate(self.registry)}
        return sorted(set(names), key=lambda n: (rank.get(n, len(rank)), str(n)))

    def pairs(self) -> list[tuple[str, str]]:
        """``(a, b)`` for every ``b`` in a spec ``a``'s ``pairs``, both registered."""
        return [
            (a, b)
            for a, spec in self.registry.items()
            for b in spec.pairs
            if b in self.registry and b != a
        ]


@dataclass
class Context:
    """What every chart builder may use: the registry's view and the store's slice (or None)."""

    view: View
    store: StoreData | None

    def need_store(self) -> StoreData:
        """The store's slice, or NoSource (its absence was reported once already)."""
        if self.store is None:
            raise NoSource("no results store (see above)")
        return self.store
