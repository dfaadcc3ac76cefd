"""Whether two stores' fitted exponents agree: the acceptance check of a cluster run.

Owns the comparison behind ``reports/cluster/run.sh``: the same sweep measured
once by a local sweep and once through ``--local-cluster N`` should give the
same exponents. Fits are matched by sweep (algorithm, axis, metric, dtype and the
fixed sizes) and each pair is judged, the criterion printed with the result:

- **agree**: the same verdict, and each slope within the other's 95% interval
  (two fits of too few sizes, slope NaN, agree when their verdicts do);
- **consistent**: the 95% intervals overlap, but a verdict or a slope does not
  match (a noisier fit is INCONCLUSIVE where the other PASSes);
- **differ**: the intervals are disjoint (or only one store could fit);
- **missing**: the fit is in one store only (the two runs measured one plan).

The metrics are judged apart. Memory and FLOPs are deterministic (a worker
measures the same peak bytes as a local sweep, :mod:`.memprobe`): every such
fit must agree. Time depends on what else ran on the machine: workers that
share one machine's cores, caches and memory bandwidth slow each other on
cells that outgrow the caches, so their time fits may bend; those are reported
(which, by how much) and must at least be consistent.

    python -m bpttbench.bench.cluster.agree [--time-reported-only WHY] LOCAL.sqlite CLUSTER.sqlite

prints one line per fit, the fits that do not agree with why, the criterion,
and one summary line per metric (``== memory: 26 of 26 agree (must all agree:
yes)``); exit status 0 when every memory and FLOPs fit agrees and no time fit
differs, 1 otherwise, 2 on a store that cannot be read. ``--time-reported-only
WHY`` (``run.sh`` passes it when the cluster's workers share one machine's
cores) still prints every time fit and its judgement, but does not let time
decide the exit status: the summary line says so, and why.
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


DETERMINISTIC = ("memory", "flops")  # must agree fit for fit
# Deterministic fits also agree when their slopes are this close: a few peaks differ
# by a few hundred bytes (module docstring of .memprobe), which can move a slope by
# a thousandth outside an interval of almost no width.
SLOPE_TOL = 0.01
CRITERION = (
    "criterion: agree = same verdict and each slope within the other's 95% interval "
    f"(memory, FLOPs: or slopes within {SLOPE_TOL}); consistent = the intervals overlap; "
    "differ = disjoint intervals or fitted in one store only. Memory and FLOPs are "
    "deterministic and must all agree; time fits must be at least consistent."
)
JUDGEMENTS = ("agree", "consistent", "differ", "missing")


def _finite(f) -> bool:
    return math.isfinite(f.slope)


def _fmt_slope(f) -> str:
    return f"{f.slope:.2f} [{f.ci_low:.2f}, {f.ci_high:.2f}] {f.verdict}"


@dataclass(frozen=True)
class Pair:
    key: tuple
    a: object | None  # FitResult of the first store, None when it has no such fit
    b: object | None

    @property
    def metric(self) -> str:
        return self.key[2]

    @property
    def judgement(self) -> tuple[str, str]:
        """``(one of JUDGEMENTS, why)``; why is "" when they agree."""
        a, b = self.a, self.b
        if a is None or b is None:
            return "missing", f"no fit in the {'first' if a is None else 'second'} store"
        if not _finite(a) and not _finite(b):
            if a.verdict == b.verdict:
                return "agree", ""
            return "differ", f"verdicts differ ({a.verdict} vs {b.verdict}), neither fitted"
        if not (_finite(a) and _finite(b)):
            return "differ", f"fitted in the {'second' if _finite(b) else 'first'} store only"
        a_in_b = within(a.slope, b.ci_low, b.ci_high)
        b_in_a = within(b.slope, a.ci_low, a.ci_high)
        close = self.metric in DETERMINISTIC and abs(a.slope - b.slope) <= SLOPE_TOL + 1e-12
        if a.verdict == b.verdict and ((a_in_b and b_in_a) or close):
            return "agree", ""
        gap = f"slopes {a.slope:.2f} vs {b.slope:.2f}"
        overlap = a.ci_low - 1e-9 <= b.ci_high and b.ci_low - 1e-9 <= a.ci_high
        if not overlap:
            return "differ", f"intervals disjoint, {gap}"
        if a.verdict != b.verdict:
            return "consistent", f"verdicts differ ({a.verdict} vs {b.verdict}), {gap}"
        side = "first" if not a_in_b else "second"
        return "consistent", f"{side} slope outside the other's interval, {gap}"

    @property
    def why_not(self) -> str:
        """Why the two fits do not agree ("" when they agree)."""
        return self.judgement[1]

    @property
    def agree(self) -> bool:
        return self.judgement[0] == "agree"

    def acceptable(self, time_required: bool = True) -> bool:
        """Agree for a deterministic metric; for time, at least consistent (or
        anything, when time is reported only)."""
        if self.metric in DETERMINISTIC:
            return self.agree
        return not time_required or self.judgement[0] in ("agree", "consistent")


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


def summary(pairs: Sequence[Pair], time_note: str = "") -> list[str]:
    """One line per metric: how many fits agree, are consistent, differ, are missing.
    With ``time_note`` (why), time fits are reported and not required to agree."""
    lines = []
    metrics = sorted({p.metric for p in pairs}, key=lambda m: (m not in DETERMINISTIC, m))
    for metric in metrics:
        mine = [p for p in pairs if p.metric == metric]
        count = {j: sum(p.judgement[0] == j for p in mine) for j in JUDGEMENTS}
        parts = [f"{count['agree']} of {len(mine)} agree"]
        parts += [f"{count[j]} {j}" for j in JUDGEMENTS[1:] if count[j]]
        if metric in DETERMINISTIC:
            rule = "must all agree"
        elif time_note:
            lines.append(f"== {metric}: {', '.join(parts)} (reported only: {time_note})")
            continue
        else:
            rule = "must be at least consistent"
        ok = all(p.acceptable() for p in mine)
        lines.append(f"== {metric}: {', '.join(parts)} ({rule}: {'yes' if ok else 'NO'})")
    n = sum(p.agree for p in pairs)
    lines.append(f"== all: {n} of {len(pairs)} fitted exponents agree")
    return lines


def format_pairs(pairs: Sequence[Pair], names: tuple[str, str], time_note: str = "") -> str:
    head = f"{'algorithm':14s} {'axis':5s} {'metric':7s} {names[0]:>26s} {names[1]:>26s}  judged"
    lines = [head]
    for p in pairs:
        alg, axis, metric = p.key[:3]
        judged, why = p.judgement
        verdict = judged + (f": {why}" if why else "")
        if not p.acceptable(not time_note):
            verdict = "NO, " + verdict
        lines.append(f"{alg:14s} {axis:5s} {metric:7s} {_fmt(p.a)} {_fmt(p.b)}  {verdict}")
    bad = [p for p in pairs if not p.agree]
    if bad:
        lines.append("")
        lines.append("not agreeing:")
        for p in bad:
            alg, axis, metric, dtype, fixed = p.key
            lines.append(
                f"  {metric:7s} {alg} along {axis} ({dtype}, {fixed}): {p.judgement[0]}, "
                f"{p.why_not}"
            )
    lines.append("")
    lines.append(CRITERION)
    if time_note:
        lines.append(f"time fits are reported, not required to agree: {time_note}")
    lines.extend(summary(pairs, time_note))
    return "\n".join(lines)


USAGE = (
    "usage: python -m bpttbench.bench.cluster.agree [--time-reported-only WHY] A.sqlite B.sqlite"
)


def _fits_of(db) -> list:
    """The fits of one store (its cells fitted as the report fits them)."""
    import bpttbench
    from bpttbench.bench import fit, store

    return fit.fit_table(store.load_cells(db), bpttbench.ALGORITHMS)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    time_note = ""
    if args[:1] == ["--time-reported-only"]:
        if len(args) < 2 or not args[1].strip():
            print(
                f"{USAGE}\n--time-reported-only needs WHY, e.g. 'workers shared 2 cores'",
                file=sys.stderr,
            )
            return 2
        time_note, args = args[1].strip(), args[2:]
    if len(args) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        fits = [_fits_of(db) for db in args]
        pairs = pair_fits(*fits)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_pairs(pairs, ("local", "cluster"), time_note))
    return 0 if pairs and all(p.acceptable(not time_note) for p in pairs) else 1


if __name__ == "__main__":
    sys.exit(main())
