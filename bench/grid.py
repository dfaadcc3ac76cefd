"""Sweep plans: grids, presets, TOML grid files, command-line overrides, and their checks.

A sweep moves one size variable (an *axis*) over a geometric grid with the
others fixed. A *grid* is a list of such axis sweeps plus timing settings; the
``quick`` and ``full`` presets are grids (each algorithm's sweeps are declared
in the registry, ``AlgorithmSpec.presets``), and a TOML file holds a custom one
in the same shape::

    [settings]                 # all optional
    dtype = "float64"
    min_time = 0.3             # seconds of timed rounds per cell
    round_time = 0.005         # a round lasts at least this long
    min_rounds = 5
    visits = 3                 # time each cell in 3 visits spread over the sweep
    max_cell_seconds = 60
    seed = 0                   # cell order is shuffled with this seed

    [fixed.rnn]                # optional: defaults for every recurrent sweep
    m = 1
    p = 1

    [[sweep]]
    algorithm = "bptt"
    axis = "T"
    geometric = [16, 4096, 9]  # start, stop, points; or: values = [16, 32, ...]
    multiple = 1               # optional: round the geometric sizes to multiples of this
    fixed = { n = 64, B = 1 }

Every number is checked before anything is measured or written: sizes are
integers from 1 to ``MAX_SIZE`` (a size variable whose default is a string,
such as a cell type, takes a short name instead), a grid has at most
``MAX_POINTS`` points per axis, times are finite and positive, the seed is
from 0 to 2^63 - 1. A bad value is one line naming it (:class:`BenchError`).
"""

from __future__ import annotations

import json
import math
import random
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from bpttbench.bench import BenchError
from bpttbench.bench.measure import TimingSettings

MIN_FIT_POINTS = 4
MAX_SIZE = 2**40  # far beyond any machine's memory, and exact in every integer type used
MAX_POINTS = 1000
MAX_SECONDS = 7 * 86400.0
MAX_ROUNDS = 10**6
MAX_VISITS = 100
MAX_SEED = 2**63 - 1
DTYPES = ("float64", "float32")
SETTING_KEYS = {
    "dtype", "min_time", "round_time", "min_rounds", "max_rounds", "max_cell_seconds", "seed",
    "visits", "threads",
}  # fmt: skip
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # a categorical size: safe inside a cell key

# --- presets -------------------------------------------------------------------------
# A preset is timing settings plus, for every algorithm in the registry, the axis
# sweeps its spec declares under the preset's name (AlgorithmSpec.presets): the sizes
# and why they were chosen live beside each algorithm in the registry.
PRESET_SETTINGS: dict[str, dict] = {
    "quick": {"min_time": 0.3, "round_time": 0.005, "min_rounds": 6, "visits": 3,
              "max_cell_seconds": 30},
    "full": {"min_time": 8.0, "round_time": 0.02, "min_rounds": 8, "visits": 4,
             "max_cell_seconds": 180},
}  # fmt: skip


def preset_grid(name: str, registry: Mapping) -> dict:
    """The preset ``name`` as a grid: its settings and every algorithm's sweeps for it."""
    sweeps = [
        sweep.as_grid(algorithm)
        for algorithm, spec in registry.items()
        for sweep in spec.presets.get(name, ())
    ]
    return {"settings": dict(PRESET_SETTINGS.get(name, {})), "sweep": sweeps}


def preset_names(registry: Mapping) -> list[str]:
    """Presets with settings, then any other preset name a spec declares."""
    named = {p for spec in registry.values() for p in spec.presets}
    return [*PRESET_SETTINGS, *sorted(named - set(PRESET_SETTINGS))]


# --- plans ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AxisSweep:
    algorithm: str
    axis: str
    values: tuple[int, ...]
    fixed: Mapping[str, int | str]


@dataclass(frozen=True)
class Cell:
    algorithm: str
    axis: str
    value: int
    size: Mapping[str, int | str]
    dtype: str

    def label(self) -> str:
        rest = " ".join(f"{k}={v}" for k, v in self.size.items() if k not in ("m", "p"))
        return f"{self.algorithm} {self.axis}={self.value} [{rest}]"


@dataclass
class Plan:
    name: str
    sweeps: list[AxisSweep]
    timing: TimingSettings = field(default_factory=TimingSettings)
    dtype: str = "float64"
    seed: int = 0
    max_cell_seconds: float = 60.0
    visits: int = 1
    # The threads axis: the plan is swept once per count, each a run of its own
    # (its own GEMM peak at that count), keyed nt=/bt= in the store.
    threads: tuple[int, ...] = (1,)

    def cells(self, registry: Mapping, shuffle: int = 0) -> list[Cell]:
        """Every cell of the plan, shuffled with the plan's seed (and ``shuffle``, per pass)."""
        out = [
            Cell(s.algorithm, s.axis, v, cell_size(registry[s.algorithm], s, v), self.dtype)
            for s in self.sweeps
            for v in s.values
        ]
        random.Random(f"{self.seed}/{shuffle}").shuffle(out)
        return out


def spec_axes(spec) -> tuple[str, ...]:
    """The axes an algorithm can be swept on: those with a theoretical exponent.

    (Recurrent algorithms share one axis table; only truncated BPTT has
    exponents along ``k``, so only it takes k1 and k2.)
    """
    axes = {axis for axis, _ in spec.exponents}
    return tuple(a for a in spec.axis_vars if a in axes) or tuple(spec.axis_vars)


def size_vars(spec) -> tuple[str, ...]:
    """The size variables an algorithm takes (its spec's sizes)."""
    return tuple(spec.sizes)


def cell_size(spec, sweep: AxisSweep, value: int) -> dict[str, int | str]:
    size = {v: sweep.fixed[v] for v in size_vars(spec)}
    for v in spec.axis_vars[sweep.axis]:
        size[v] = int(value)
    return size


# --- checked values ------------------------------------------------------------------


def check_size(x: object, what: str) -> int:
    """A size: an integer from 1 to MAX_SIZE (a bool, a fraction or a string is refused)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise BenchError(f"{what} must be a positive integer, got {x!r}")
    if isinstance(x, float) and not (math.isfinite(x) and x == int(x)):
        raise BenchError(f"{what} must be a positive integer, got {x!r}")
    if x < 1:
        raise BenchError(f"{what} must be a positive integer, got {x!r}")
    if x > MAX_SIZE:
        raise BenchError(f"{what} {x!r} is out of range (sizes are at most 2^40)")
    return int(x)


def check_value(spec, var: str, x: object, what: str) -> int | str:
    """A value of size variable ``var`` of ``spec``: of the type of its default."""
    if isinstance(spec.sizes.get(var), str):
        if not isinstance(x, str) or not _NAME.match(x):
            raise BenchError(
                f"{what} must be a name of letters, digits, '_', '.' or '-' "
                f"(like {spec.sizes[var]!r}), got {x!r}"
            )
        return x
    return check_size(x, what)


MAX_THREADS = 1024


def parse_threads(x: object, what: str) -> tuple[int, ...]:
    """Thread counts: one count, a list of them, or text like ``"1,2,4"``; sorted, distinct."""
    if isinstance(x, str):
        parts = [v.strip() for v in x.split(",")]
        if not all(v.isdigit() for v in parts):
            raise BenchError(f"{what} must be a thread count or counts like 1,2,4, got {x!r}")
        x = [int(v) for v in parts]
    values = x if isinstance(x, list | tuple) else [x]
    if not values:
        raise BenchError(f"{what} must name at least one thread count")
    return tuple(sorted({_count(v, what, MAX_THREADS) for v in values}))


def _count(x: object, what: str, top: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or not 1 <= x <= top:
        raise BenchError(f"{what} must be an integer from 1 to {top}, got {x!r}")
    return x


def _seconds(x: object, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise BenchError(f"{what} must be a positive number of seconds, got {x!r}")
    if not (math.isfinite(x) and 0 < x <= MAX_SECONDS):
        raise BenchError(
            f"{what} must be a positive number of seconds, finite and at most "
            f"{MAX_SECONDS:g}, got {x!r}"
        )
    return float(x)


def _check_keys(d: Mapping, allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise BenchError(f"unknown key(s) {', '.join(unknown)} in {where}")


def geometric(start: int, stop: int, points: int, multiple: int = 1) -> list[int]:
    """``points`` integers spaced geometrically from ``start`` to ``stop`` (duplicates dropped).

    With ``multiple``, each is rounded to the nearest multiple of it (at least
    ``multiple``): matrix sizes that are multiples of the SIMD width keep BLAS
    on its fast paths, so the efficiency does not jump from one size to the next.
    """
    if points < 1 or start < 1 or stop < start or multiple < 1:
        raise BenchError(
            f"bad geometric grid [{start}, {stop}, {points}]: need 1 <= start <= stop, points >= 1"
        )
    if max(start, stop, multiple) > MAX_SIZE:
        raise BenchError(f"geometric grid [{start}, {stop}, {points}]: sizes are at most 2^40")
    if points > MAX_POINTS:
        raise BenchError(f"geometric grid [{start}, {stop}, {points}]: at most {MAX_POINTS} points")
    if points == 1:
        return [int(start)]
    vals = np.geomspace(start, stop, points)
    return sorted({max(multiple, multiple * int(np.rint(v / multiple))) for v in vals})


# --- grids ---------------------------------------------------------------------------


def parse_grid(grid: Mapping, registry: Mapping, source: str) -> Plan:
    """Validate a grid (preset dict or parsed TOML) and turn it into a :class:`Plan`."""
    if not isinstance(grid, Mapping):
        raise BenchError(f"{source}: a grid is a table with [[sweep]] entries")
    _check_keys(grid, ("settings", "fixed", "sweep"), source)
    settings = grid.get("settings", {})
    if not isinstance(settings, Mapping):
        raise BenchError(f"{source}: [settings] must be a table")
    _check_keys(settings, SETTING_KEYS, f"{source} [settings]")
    family_fixed = grid.get("fixed", {})
    if not isinstance(family_fixed, Mapping):
        raise BenchError(f"{source}: [fixed] must be a table like [fixed.rnn]")
    _check_keys(family_fixed, {spec.family for spec in registry.values()}, f"{source} [fixed]")
    raw = grid.get("sweep")
    if not raw:
        raise BenchError(f"{source}: the grid has no [[sweep]] entries")
    if not isinstance(raw, list):
        raise BenchError(f"{source}: 'sweep' must be an array of tables ([[sweep]])")
    sweeps = [
        _parse_sweep(s, registry, family_fixed, f"{source} sweep #{i}")
        for i, s in enumerate(raw, 1)
    ]
    return apply_settings(Plan(name=source, sweeps=sweeps), settings, source)


def _parse_sweep(s: object, registry: Mapping, family_fixed: Mapping, where: str) -> AxisSweep:
    if not isinstance(s, Mapping):
        raise BenchError(f"{where}: must be a table")
    _check_keys(s, ("algorithm", "axis", "values", "geometric", "multiple", "fixed"), where)
    name = s.get("algorithm")
    if name not in registry:
        raise BenchError(
            f"{where}: unknown algorithm {name!r} (known: {', '.join(sorted(registry))})"
        )
    spec = registry[name]
    axis = s.get("axis")
    if axis not in spec_axes(spec):
        raise BenchError(
            f"{where}: {name} has no axis {axis!r} (axes: {', '.join(spec_axes(spec))})"
        )
    values = _sweep_values(s, where)
    fixed = dict(spec.sizes)
    fixed.update(_fixed_sizes(family_fixed.get(spec.family, {}), spec, f"{where} fixed"))
    fixed.update(_fixed_sizes(s.get("fixed", {}), spec, f"{where} fixed"))
    return AxisSweep(name, axis, tuple(values), fixed)


def _sweep_values(s: Mapping, where: str) -> list[int]:
    if ("values" in s) == ("geometric" in s):
        raise BenchError(
            f"{where}: give exactly one of values = [...] or geometric = [start, stop, points]"
        )
    if "geometric" in s:
        g = s["geometric"]
        if not isinstance(g, list) or len(g) != 3:
            raise BenchError(f"{where}: geometric must be [start, stop, points]")
        start, stop = (check_size(x, f"{where} geometric") for x in g[:2])
        points = _count(g[2], f"{where} geometric points", MAX_POINTS)
        multiple = check_size(s.get("multiple", 1), f"{where} multiple")
        values = geometric(start, stop, points, multiple)
    else:
        v = s["values"]
        if not isinstance(v, list) or not v:
            raise BenchError(f"{where}: values must be a non-empty list of sizes")
        if len(v) > MAX_POINTS:
            raise BenchError(f"{where}: at most {MAX_POINTS} values, got {len(v)}")
        values = sorted({check_size(x, f"{where} value") for x in v})
    if len(values) < MIN_FIT_POINTS:
        raise BenchError(
            f"{where}: {len(values)} distinct size(s) {values}; a fit needs at least "
            f"{MIN_FIT_POINTS} (8 or more spanning a decade for a verdict)"
        )
    return values


def _fixed_sizes(d: object, spec, where: str) -> dict[str, int | str]:
    if not isinstance(d, Mapping):
        raise BenchError(f"{where}: must be a table of size = value")
    allowed = size_vars(spec)
    _check_keys(d, allowed, f"{where} ({spec.name} takes {', '.join(allowed)})")
    return {k: check_value(spec, k, v, f"{where} {k}") for k, v in d.items()}


def apply_settings(plan: Plan, settings: Mapping, source: str) -> Plan:
    """Overlay ``[settings]`` (or command-line flags) on a plan, validating each value."""
    timing = plan.timing
    for key, val in settings.items():
        if val is None:
            continue
        what = f"{source}: {key}"
        if key == "dtype":
            if val not in DTYPES:
                raise BenchError(f"{what} must be one of {', '.join(DTYPES)}, got {val!r}")
            plan = replace(plan, dtype=val)
        elif key == "seed":
            if isinstance(val, bool) or not isinstance(val, int) or not 0 <= val <= MAX_SEED:
                raise BenchError(f"{what} must be an integer from 0 to 2^63 - 1, got {val!r}")
            plan = replace(plan, seed=val)
        elif key in ("min_rounds", "max_rounds"):
            timing = replace(timing, **{key: _count(val, what, MAX_ROUNDS)})
        elif key == "visits":
            plan = replace(plan, visits=_count(val, what, MAX_VISITS))
        elif key == "max_cell_seconds":
            plan = replace(plan, max_cell_seconds=_seconds(val, what))
        elif key == "threads":
            plan = replace(plan, threads=parse_threads(val, what))
        elif key in ("min_time", "round_time"):
            timing = replace(timing, **{key: _seconds(val, what)})
    if timing.max_rounds < timing.min_rounds:
        raise BenchError(f"{source}: max_rounds must be >= min_rounds")
    return replace(plan, timing=timing)


def preset_plan(name: str, registry: Mapping) -> Plan:
    if name not in preset_names(registry):
        known = ", ".join(preset_names(registry))
        raise BenchError(f"unknown preset {name!r} (presets: {known})")
    grid = preset_grid(name, registry)
    if not grid["sweep"]:
        raise BenchError(f"preset {name!r}: no algorithm in the registry has sweeps for it")
    plan = parse_grid(grid, registry, f"preset {name}")
    return replace(plan, name=name)


def load_grid_file(path: str | Path, registry: Mapping) -> Plan:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise BenchError(f"cannot read grid file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BenchError(f"grid file {path} is not UTF-8 text") from None
    try:
        grid = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"TOML error in {path}: {exc}") from None
    plan = parse_grid(grid, registry, path.name)
    return replace(plan, name=f"grid:{path.name}")


# --- the command line's overrides ------------------------------------------------------


def restrict(
    plan: Plan,
    registry: Mapping,
    algorithms: Sequence[str] | None = None,
    axes: Sequence[str] | None = None,
    points: Mapping[str, list[int]] | None = None,
    fixed: Mapping[str, int | str] | None = None,
) -> Plan:
    """Apply the command line's filters and overrides to a plan."""
    sweeps = list(plan.sweeps)
    if algorithms:
        unknown = [a for a in algorithms if a not in registry]
        if unknown:
            raise BenchError(
                f"unknown algorithm {unknown[0]!r} (known: {', '.join(sorted(registry))})"
            )
        sweeps = [s for s in sweeps if s.algorithm in algorithms]
    if axes:
        known = {a for spec in registry.values() for a in spec_axes(spec)}
        unknown = [a for a in axes if a not in known]
        if unknown:
            raise BenchError(f"unknown axis {unknown[0]!r} (axes: {', '.join(sorted(known))})")
        sweeps = [s for s in sweeps if s.axis in axes]
    if not sweeps:
        raise BenchError(f"{plan.name}: no sweep left for the chosen algorithms and axes")
    for axis, values in (points or {}).items():
        if not any(s.axis == axis for s in sweeps):
            raise BenchError(f"--points {axis}=...: no sweep in the plan moves axis {axis!r}")
        if len(values) < MIN_FIT_POINTS:
            raise BenchError(
                f"--points {axis}: {len(values)} distinct size(s); a fit needs at least "
                f"{MIN_FIT_POINTS}"
            )
        sweeps = [replace(s, values=tuple(values)) if s.axis == axis else s for s in sweeps]
    for var, value in (fixed or {}).items():
        sweeps = _fix(sweeps, registry, var, value)
    return replace(plan, sweeps=sweeps)


def _fix(sweeps: list[AxisSweep], registry: Mapping, var: str, value: int | str) -> list:
    used = False
    new = []
    for s in sweeps:
        spec = registry[s.algorithm]
        if var in size_vars(spec) and var not in spec.axis_vars[s.axis]:
            checked = check_value(spec, var, value, f"--fixed {var}")
            s = replace(s, fixed={**s.fixed, var: checked})
            used = True
        new.append(s)
    if not used:
        raise BenchError(f"--fixed {var}={value}: no sweep in the plan has {var!r} fixed")
    return new


def parse_points(spec: str) -> tuple[str, list[int]]:
    """``T=16:4096:9`` (geometric start:stop:points) or ``T=16,64,256,1024``."""
    axis, sep, rest = spec.partition("=")
    if not sep or not axis or not rest:
        raise BenchError(f"--points {spec!r}: expected AXIS=START:STOP:POINTS or AXIS=V1,V2,...")
    try:
        parts = [int(x) for x in rest.split(":" if ":" in rest else ",") if x.strip()]
    except ValueError:
        raise BenchError(f"--points {spec!r}: sizes must be integers") from None
    if ":" in rest:
        if len(parts) != 3:
            raise BenchError(f"--points {spec!r}: expected START:STOP:POINTS")
        start, stop = (check_size(x, f"--points {axis}") for x in parts[:2])
        return axis, geometric(start, stop, _count(parts[2], f"--points {axis} points", MAX_POINTS))
    if not parts:
        raise BenchError(f"--points {spec!r}: sizes must be positive integers")
    if len(parts) > MAX_POINTS:
        raise BenchError(f"--points {spec!r}: at most {MAX_POINTS} values")
    return axis, sorted({check_size(x, f"--points {axis}") for x in parts})


def parse_fixed(spec: str) -> tuple[str, int | str]:
    """``n=64`` (a size) or ``cell=gru`` (a named size): checked against the plan in restrict."""
    var, sep, rest = spec.partition("=")
    if not sep or not var or not rest.strip():
        raise BenchError(f"--fixed {spec!r}: expected VAR=POSITIVE_INTEGER, e.g. n=64")
    try:
        value: int | str = int(rest)
    except ValueError:
        return var, rest.strip()
    return var, check_size(value, f"--fixed {var}")


# --- the plan as text ----------------------------------------------------------------


def _fixed_shown(plan_sweep: AxisSweep, registry: Mapping) -> dict:
    spec = registry[plan_sweep.algorithm]
    return {
        k: v
        for k, v in plan_sweep.fixed.items()
        if k in size_vars(spec) and k not in spec.axis_vars[plan_sweep.axis]
    }


def describe(plan: Plan, registry: Mapping) -> str:
    """The plan as text (``bpttbench sweep --dry-run``)."""
    lines = [
        f"plan {plan.name}: dtype {plan.dtype}, seed {plan.seed}, "
        f"min_time {plan.timing.min_time} s, round_time {plan.timing.round_time} s, "
        f"min_rounds {plan.timing.min_rounds}, visits {plan.visits}, "
        f"max_cell_seconds {plan.max_cell_seconds}, threads {list(plan.threads)}"
    ]
    for s in plan.sweeps:
        fixed = _fixed_shown(s, registry)
        lines.append(
            f"  {s.algorithm:9s} {s.axis:6s} {list(s.values)}  fixed "
            + " ".join(f"{k}={v}" for k, v in fixed.items())
        )
    cells = sum(len(s.values) for s in plan.sweeps)
    if len(plan.threads) == 1:
        lines.append(f"  {cells} cells")
    else:
        lines.append(
            f"  {cells * len(plan.threads)} cells ({cells} at each of {len(plan.threads)} "
            "thread counts, one run per count)"
        )
    return "\n".join(lines)


def to_toml(plan: Plan, registry: Mapping) -> str:
    """The plan as a TOML grid (``bpttbench sweep --dump-grid``): edit it, pass it to --grid."""
    t = plan.timing
    lines = [
        f"# bpttbench grid, from {plan.name}",
        "[settings]",
        f'dtype = "{plan.dtype}"',
        f"seed = {plan.seed}",
        f"min_time = {t.min_time!r}",
        f"round_time = {t.round_time!r}",
        f"min_rounds = {t.min_rounds}",
        f"max_rounds = {t.max_rounds}",
        f"visits = {plan.visits}",
        f"max_cell_seconds = {plan.max_cell_seconds!r}",
        f"threads = [{', '.join(str(v) for v in plan.threads)}]",
    ]
    for s in plan.sweeps:
        fixed = ", ".join(f"{k} = {json.dumps(v)}" for k, v in _fixed_shown(s, registry).items())
        lines += [
            "",
            "[[sweep]]",
            f'algorithm = "{s.algorithm}"',
            f'axis = "{s.axis}"',
            f"values = [{', '.join(str(v) for v in s.values)}]",
            f"fixed = {{ {fixed} }}",
        ]
    return "\n".join(lines) + "\n"
