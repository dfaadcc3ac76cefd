"""The slice of the results store the report charts, with its fits and run metadata.

The charts compare like with like: of the store's measured cells they use one
configuration (machine, thread counts and dtype), the one with the most
successful cells; cells of other configurations are counted in the report's
notes, not mixed in, and where several machines measured the store's cells
(a sweep through a cluster), the notes say which machine measured what. The
exponent fits of that slice are either handed in (``bpttbench run`` fits once
and passes them on) or made here, once; a chart draws exactly the sweep its
fit used (:func:`pick_sweep`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from bpttbench.bench import BenchError, fmt, store
from bpttbench.bench.fit import FitResult, fit_table, size_value, sweep_rows
from bpttbench.bench.view import Skip, View

CONFIG_COLUMNS = ("machine", "numba_threads", "blas_threads", "dtype")


@dataclass
class StoreData:
    """The slice of the store the charts use, with its fits and run metadata."""

    cells: pd.DataFrame  # every status, one configuration
    runs: pd.DataFrame  # the runs those cells came from
    config: dict  # machine, numba_threads, blas_threads, dtype
    fits: dict  # (algorithm, axis, metric) -> FitResult, of the Elman cell where there is a cell
    footer: str
    notes: list[str] = field(default_factory=list)  # for "About the data"
    all_cells: pd.DataFrame | None = None
    cell_fits: dict = field(default_factory=dict)  # (algorithm, cell, axis, metric): gated cells

    def all_fits(self) -> list[FitResult]:
        """Every fit of the slice, the gated cells' after the others."""
        return [*self.fits.values(), *self.cell_fits.values()]

    @property
    def ok(self) -> pd.DataFrame:
        return self.cells[self.cells["status"] == "ok"]


def load_store(
    db_path: str | Path, view: View, fits: Sequence[FitResult] | None = None
) -> StoreData:
    """Read the store, choose the slice to chart, take or make its fits. Raises Skip."""
    name = Path(db_path).name
    try:
        cells = store.load_cells(db_path)
        runs = store.load_runs(db_path)
    except BenchError as exc:  # name the file as the user gave it, not its full path
        raise Skip(str(exc).replace(str(Path(db_path).resolve()), str(db_path))) from None
    if cells.empty:
        raise Skip(f"{name} holds no measured cells yet (run `bpttbench sweep` first)")
    ok = cells[cells["status"] == "ok"]
    if ok.empty:
        counts = cells["status"].value_counts().to_dict()
        raise Skip(f"no cell in {name} was measured successfully ({fmt.counts(counts)})")
    keys = [c for c in CONFIG_COLUMNS if c in ok.columns]
    config_of = row_keys(ok, keys)
    ranked = sorted(
        ((len(g), str(g["created"].max()), cfg) for cfg, g in ok.groupby(config_of)),
        reverse=True,
    )
    in_slice = row_keys(cells, keys) == ranked[0][2]
    part = cells[in_slice].copy()
    config = {k: part[k].iloc[0] for k in keys}
    data = StoreData(
        cells=part,
        runs=runs[runs["run_id"].isin(part["run_id"].unique())],
        config=config,
        fits={},
        footer=store_footer(runs[runs["run_id"].isin(part["run_id"].unique())], config),
        all_cells=cells,
    )
    if len(ranked) > 1:
        left = int((~in_slice & (cells["status"] == "ok")).sum())
        data.notes.append(
            f"{left} measured cells in {len(ranked) - 1} other configuration(s) (machine, "
            f"thread counts or dtype) are in the store but not charted, so that every chart "
            f"compares like with like."
        )
    if "machine" in ok.columns and ok["machine"].nunique() > 1:
        data.notes.append(machines_note(ok, runs, config.get("machine")))
    data.notes.extend(kernels_notes(runs[runs["run_id"].isin(cells["run_id"].unique())]))
    _attach_fits(data, view, fits)
    return data


def machines_note(ok: pd.DataFrame, runs: pd.DataFrame, charted) -> str:
    """Which machines measured what (a store filled through a cluster holds several):
    per machine its CPU, its measured cells and their algorithms; the charted one named."""
    cpu_of = {}
    if "machine" in runs.columns and "cpu" in runs.columns:
        for m, cpu in zip(runs["machine"], runs["cpu"], strict=True):
            if isinstance(cpu, str) and cpu:
                cpu_of.setdefault(str(m), cpu)
    parts = []
    for m, g in sorted(ok.groupby(ok["machine"].astype(str)), key=lambda kv: -len(kv[1])):
        cpu = f" ({cpu_of[m]})" if m in cpu_of else ""
        algs = ", ".join(sorted(g["algorithm"].astype(str).unique()))
        mark = ", charted" if charted is not None and m == str(charted) else ""
        parts.append(f"{m}{cpu}: {len(g)} cells of {algs}{mark}")
    return f"Measured on {len(parts)} machines, each fitted on its own: " + "; ".join(parts) + "."


def kernels_of(runs: pd.DataFrame) -> dict[str, list[int]]:
    """The runs' BLAS kernels (``runs.blas_kernels``) -> their run ids; "not recorded"
    for runs made before schema 4 (or without OpenBLAS)."""
    out: dict[str, list[int]] = {}
    if runs is None or runs.empty:
        return out
    kernels = runs["blas_kernels"] if "blas_kernels" in runs.columns else [None] * len(runs)
    for run_id, k in zip(runs["run_id"], kernels, strict=True):
        label = str(k) if isinstance(k, str) and k else "not recorded"
        out.setdefault(label, []).append(int(run_id))
    return out


def id_ranges(ids: Iterable[int]) -> str:
    """``[1, 2, 3, 5]`` as ``"1-3, 5"``."""
    ids = sorted(set(ids))
    parts, start = [], None
    for i, x in enumerate(ids):
        if start is None:
            start = x
        if i + 1 == len(ids) or ids[i + 1] != x + 1:
            parts.append(str(start) if start == x else f"{start}-{x}")
            start = None
    return ", ".join(parts)


def kernels_notes(runs: pd.DataFrame) -> list[str]:
    """The BLAS kernels per run of the store's cells, and a warning where they differ:
    the same CPU runs DGEMM about 1.5x faster with OpenBLAS's SkylakeX kernels than with
    its Haswell ones, so cells (and GEMM peaks) of such runs do not compare."""
    found = kernels_of(runs)
    if not found:
        return []
    parts = [f"{k}: run{'s' if len(ids) > 1 else ''} {id_ranges(ids)}" for k, ids in found.items()]
    out = [f"BLAS kernels per run: {'; '.join(parts)}."]
    recorded = [k for k in found if k != "not recorded"]
    if len(recorded) > 1:
        out.append(
            f"**Warning**: the runs of this store used different BLAS kernels "
            f"({fmt.join(recorded)}); times, GFLOP/s and GEMM peaks of runs with different "
            f"kernels do not compare, and ratios between them (parallel speed-ups, "
            f"efficiencies) mix the kernels' speeds."
        )
    forced = [k for k in recorded if "OPENBLAS_CORETYPE=" in k]
    if forced:
        out.append(
            f"In {fmt.join(forced)}, OPENBLAS_CORETYPE forced the kernels, not OpenBLAS's own "
            f"choice for the CPU."
        )
    return out


def _attach_fits(data: StoreData, view: View, fits: Sequence[FitResult] | None) -> None:
    """The slice's fits: those handed in that belong to it, else a fit of the slice."""
    if fits is None:
        try:
            fits = fit_table(data.cells, view.registry, data.runs)
        except Exception as exc:  # a fit failure must not cost the charts
            data.notes.append(f"Exponent fits failed: {type(exc).__name__}: {exc}")
            fits = []
    else:
        mine = [f for f in fits if _in_config(f, data.config)]
        if len(mine) < len(fits):
            data.notes.append(
                f"{len(fits) - len(mine)} exponent fit(s) of other configurations are not shown."
            )
        fits = mine
    # The charts and tables keyed by algorithm show the Elman cell (the default);
    # the gated cells' fits go to the cell comparison (sections_cells).
    data.fits = {(f.algorithm, f.axis, f.metric): f for f in fits if f.label == f.algorithm}
    data.cell_fits = {
        (f.algorithm, f.cell, f.axis, f.metric): f for f in fits if f.label != f.algorithm
    }


def _in_config(f: FitResult, config: Mapping) -> bool:
    """Whether a fit was made on cells of the configuration ``config``."""
    mine = {
        "machine": f.machine,
        "numba_threads": f.numba_threads,
        "blas_threads": f.blas_threads,
        "dtype": f.dtype,
    }
    return all(mine[k] is None or _same(mine[k], config[k]) for k in config if k in mine)


def _same(a, b) -> bool:
    """Equal as numbers where both are (2 and 2.0), else as text."""
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def row_keys(df: pd.DataFrame, cols: Sequence[str]) -> pd.Series:
    """One string per row joining the values of ``cols`` (missing values as 'nan')."""
    keys = ["|".join(str(v) for v in row) for row in df[list(cols)].itertuples(index=False)]
    return pd.Series(keys, index=df.index, dtype=object)


def store_footer(runs: pd.DataFrame, config: Mapping) -> str:
    """The run metadata line printed under every chart."""
    if runs.empty:
        return f"machine {config.get('machine')}"
    r = runs.sort_values("run_id").iloc[-1]
    ids = sorted(runs["run_id"].astype(int))
    run_text = f"run {ids[0]}" if len(ids) == 1 else f"runs {ids[0]}-{ids[-1]}"
    commit = str(r.get("commit") or "unknown")[:10]
    parts = [
        f"machine {r.get('machine')} ({r.get('cpu')})",
        f"Numba threads {fmt.integer(config.get('numba_threads'))}, "
        f"BLAS threads {fmt.integer(config.get('blas_threads'))}",
        f"{config.get('dtype')}",
        f"Python {r.get('python')}, Numba {r.get('numba')}, NumPy {r.get('numpy')}, "
        f"SciPy {r.get('scipy')}",
        *([f"OpenBLAS {r.get('blas_kernels')}"] if isinstance(r.get("blas_kernels"), str) else []),
        f"commit {commit}",
        f"{run_text}, started {str(r.get('started'))[:16]}",
    ]
    return "bpttbench · " + " · ".join(parts)


def pick_sweep(
    ok: pd.DataFrame, view: View, alg: str, axis: str, fit=None, widest: bool = False
) -> pd.DataFrame:
    """The sweep to chart: the one the fit used, else the one with the most sizes.

    ``widest``: the one reaching the largest size (then the most sizes), whatever the
    fit used: a fit may sit in a dense sweep inside one regime (the n^2 online rules
    within the last-level cache) while a budget is read off the sweep that crosses it.
    """
    if fit is not None and not widest:
        rows = sweep_rows(ok, fit)
        if not rows.empty:
            return rows
    part = ok[(ok["algorithm"] == alg) & (ok["axis"] == axis)]
    if part.empty:
        return part
    moved = set(view.axis_vars(alg, axis))
    fixed_cols = [v for v in view.sizes if v in part.columns and v not in moved]
    groups = [g for _, g in part.groupby(row_keys(part, fixed_cols))] if fixed_cols else [part]

    def rank(g):
        most = (g["size"].nunique(), str(g["created"].max()))
        return (pd.to_numeric(g["size"], errors="coerce").max(), *most) if widest else most

    chosen = max(groups, key=rank)
    return chosen.sort_values(["size", "created"]).drop_duplicates("size", keep="last")


def fixed_sizes(sweep: pd.DataFrame, moved: Iterable[str], view: View) -> dict[str, int | str]:
    """Size variables held fixed in a sweep (those with one value)."""
    out = {}
    for v in view.sizes:
        if v in moved or v not in sweep.columns:
            continue
        vals = sweep[v].dropna().unique()
        if len(vals) == 1:
            out[v] = size_value(vals[0])
    return out


def size_dict(row: Mapping, view: View) -> dict[str, int | str]:
    """The sizes of one cell (a row of the cells frame); a categorical size stays text."""
    return {v: size_value(row[v]) for v in view.sizes if v in row and pd.notna(row[v])}


def median_positive(col) -> float | None:
    """Median of the positive values of a column, None if there are none."""
    if col is None:
        return None
    v = pd.to_numeric(col, errors="coerce")
    v = v[v > 0]
    return float(v.median()) if len(v) else None
