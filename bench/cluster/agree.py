"""Whether two stores' fitted exponents agree: the acceptance check of a cluster run.

Owns the comparison behind ``reports/cluster/run.sh``: the same sweep measured
once by a local sweep and once through ``--local-cluster N`` should give the
same exponents. Two fits of one sweep (algorithm, axis, metric, dtype and the
fixed sizes) agree when their verdicts are the same and each slope lies within
the other's confidence interval. Fits present in only one store are listed and
count as disagreement, since the two runs measured the same plan.

    python -m bpttbench.bench.cluster.agree LOCAL.sqlite CLUSTER.sqlite

prints one line per fit and a last line with the count; exit status 0 when all
agree, 1 otherwise, 2 on a store that cannot be read.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bpttbench.bench import BenchError


def fit_id(f) -> tuple:
    """What makes two fits fits of the same sweep (the machine aside)."""
    return (f.algorithm, f.axis, f.metric, str(f.dtype), json.dumps(f.fixed, sort_keys=True))


def within(x: float, low: float, high: float, tol: float = 1e-9) -> bool:
    """``x`` in ``[low, high]`` (widened by ``tol``: an exact exponent's interval has no width)."""
    return all(math.isfinite(v) for v in (x, low, high)) and low - tol <= x <= high + tol


@dataclass(frozen=True)
class Pair:
    key: tuple
    a: object | None  # FitResult of the first store, None when it has no such fit
    b: object | None

    @property
    def why_not(self) -> str:
        """Why the two fits disagree ("" when they agree)."""
        a, b = self.a, self.b
        if a is None or b is None:
            return f"no fit in the {'first' if a is None else 'second'} store"
        if a.verdict != b.verdict:
            return "verdicts differ"
        if not within(a.slope, b.ci_low, b.ci_high):
            return "first slope outside the second's interval"
        if not within(b.slope, a.ci_low, a.ci_high):
            return "second slope outside the first's interval"
        return ""

    @property
    def agree(self) -> bool:
        return not self.why_not


def pair_fits(a: Iterable, b: Iterable) -> list[Pair]:
    """The fits of two stores matched by :func:`fit_id`; several fits of one id in a
    store (several machines) are refused: the comparison is of one machine's runs."""
    sides = []
    for name, fits in (("first", a), ("second", b)):
        by: dict[tuple, object] = {}
        for f in fits:
            k = fit_id(f)
            if k in by:
                raise BenchError(
                    f"the {name} store has fits of {k[0]} over {k[1]} ({k[2]}) from several "
                    "machines: compare stores measured on one machine"
                )
            by[k] = f
        sides.append(by)
    keys = sorted(set(sides[0]) | set(sides[1]))
    return [Pair(k, sides[0].get(k), sides[1].get(k)) for k in keys]


def _fmt(f) -> str:
    if f is None:
        return f"{'-':>26s}"
    return f"{f.slope:6.2f} [{f.ci_low:5.2f}, {f.ci_high:5.2f}] {f.verdict:>6s}"


def format_pairs(pairs: Sequence[Pair], names: tuple[str, str]) -> str:
    head = f"{'algorithm':14s} {'axis':5s} {'metric':7s} {names[0]:>26s} {names[1]:>26s}  agree"
    lines = [head]
    for p in pairs:
        alg, axis, metric = p.key[:3]
        verdict = "yes" if p.agree else f"NO: {p.why_not}"
        lines.append(f"{alg:14s} {axis:5s} {metric:7s} {_fmt(p.a)} {_fmt(p.b)}  {verdict}")
    n = sum(p.agree for p in pairs)
    lines.append(f"{n} of {len(pairs)} fitted exponents agree")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import bpttbench
    from bpttbench.bench import fit, store

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m bpttbench.bench.cluster.agree A.sqlite B.sqlite", file=sys.stderr)
        return 2
    try:
        fits = [fit.fit_table(store.load_cells(db), bpttbench.ALGORITHMS) for db in args]
        pairs = pair_fits(*fits)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_pairs(pairs, ("local", "cluster")))
    return 0 if pairs and all(p.agree for p in pairs) else 1


if __name__ == "__main__":
    sys.exit(main())
