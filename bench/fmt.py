"""Numbers and sizes as the report and the command line print them: one copy of each.

Pure functions from values to text, for tables, captions and the summary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

_SUPERSCRIPT = str.maketrans("0123456789-.", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻·")


def seconds(v) -> str:
    """A duration in three significant digits: ``'45.3 us'``, ``'13.7 ms'``, ``'4.82 s'``,
    ``'2m05s'`` from two minutes on; ``'-'`` when missing."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "-"
    if not math.isfinite(v):
        return "-"
    if v >= 120:
        return f"{int(v // 60)}m{int(v % 60):02d}s"
    if v >= 1:
        return f"{v:.3g} s"
    if v >= 1e-3:
        return f"{v * 1e3:.3g} ms"
    return f"{v * 1e6:.3g} us"


def nbytes(v) -> str:
    """A number of bytes in powers of 1024: ``'512 B'``, ``'1.5 KiB'``, ``'7.5 GiB'``;
    ``'-'`` when missing."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "-"
    if not math.isfinite(v):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(v) < 1024 or unit == "PiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    raise AssertionError("unreachable")


def slope(x: float) -> str:
    """Two decimals, without the '-0.00' a slope of -0.001 would print."""
    text = f"{x:.2f}"
    return "0.00" if text == "-0.00" else text


def cell(v, spec: str = ".3g") -> str:
    """A number for a table cell (``spec`` 'd' for an integer); '-' when missing."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "-"
    if not math.isfinite(v):
        return "-"
    return format(int(v), "d") if spec == "d" else format(v, spec)


def integer(v) -> str:
    """A count that pandas may have turned into a float: 2.0 -> '2'."""
    try:
        return str(int(v))
    except (TypeError, ValueError):
        return str(v)


def text(v) -> str:
    """A value for a table cell; empty when missing (None or NaN)."""
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def ratio(a, b) -> str:
    """``a / b`` in three significant digits, '-' when it is not a number."""
    try:
        return f"{float(a) / float(b):.3g}" if float(b) > 0 else "-"
    except (TypeError, ValueError):
        return "-"


def power(x: float) -> str:
    """An exponent as a superscript: 2 -> '²', 1.5 -> '¹·⁵'."""
    return f"{x:g}".translate(_SUPERSCRIPT)


def join(items: Sequence[str]) -> str:
    """``['a', 'b', 'c']`` -> ``'a, b and c'``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def short(name: str, width: int = 52) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def counts(by_status: Mapping[str, int]) -> str:
    """``{'ok': 3, 'skipped': 1}`` -> ``'3 ok, 1 skipped'``."""
    return ", ".join(f"{v} {k}" for k, v in sorted(by_status.items())) or "none"


def sizes(values: Mapping[str, int], order: Sequence[str], solo: Iterable[str] = ()) -> str:
    """``{'n': 32, 'B': 1, 'm': 1, 'p': 1}`` -> ``'n=32, B=1, m=p=1'``.

    Variables appear in ``order`` (the registry's); neighbours that share a value
    are written together unless one of them is in ``solo`` (the variables an axis
    moves on its own, such as T or n), so ``m=p=1`` and ``k1=k2=16`` but never ``T=n=64``.
    """
    solo = set(solo)
    present = [v for v in order if v in values]
    present += [v for v in values if v not in present]
    groups: list[list[str]] = []
    for v in present:
        last = groups[-1] if groups else None
        if last and v not in solo and last[-1] not in solo and values[last[-1]] == values[v]:
            last.append(v)
        else:
            groups.append([v])
    return ", ".join("=".join(g) + f"={values[g[0]]}" for g in groups)
