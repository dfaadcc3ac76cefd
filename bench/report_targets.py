"""The report's table of issue 14's performance targets, computed from the store.

One row per target: what it asks, what the store measured, the ratio of the
measured figure to the target (1 or more is met) and whether it is met. Every
figure comes from the store's cells, runs and peers; the only numbers typed in
are the targets themselves and the old kernel's times the issue quotes as the
baseline of the small-n target (:data:`OLD_BPTT_B1_T1000`). A target whose
cells or peers are missing reads "not measured", with what to run.

    exact RTRL, n >= 128, 2 threads   GFLOP/s / the same store's 2-thread DGEMM peak >= 70%
    exact RTRL, 16 cores              no 16-core machine: the 2-thread speed-up and what
                                      Amdahl's law, fitted to it, predicts at 16 threads
    BPTT, truncated BPTT              time at 1 thread / time at 2 >= 1.7 at B >= 32, n >= 256
    BPTT, B = 1, T = 1000, n 16..64   old kernel's time / this one's >= 1.4, one thread
    BPTT, B = 32, T = 100, n 64..512  JAX / bpttbench >= 1.2, PyTorch / bpttbench >= 1.5
                                      (float64; float32 beside, for information)
    GPU                               the peers' GPU rows, or the empty state

Where a target spans several cells, the measured figure is the worst of them
(a target "at n >= 128" is met only if every such cell meets it), with the
range beside.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from bpttbench.bench import store as results
from bpttbench.bench.report_gpu import cpu_rows, gpu_rows
from bpttbench.bench.report_parallel import _base_keys, gemm_peaks, thread_count
from bpttbench.bench.view import NoSource

NAME = "targets"
TITLE = "Performance targets (issue 14)"
NOT_MEASURED = "not measured"
# The old kernel's BPTT time at B = 1, T = 1000, one thread, as issue 14 quotes it (s).
OLD_BPTT_B1_T1000 = {16: 0.5e-3, 64: 2.3e-3}
THREADS_HINT = (
    "sweep with `--threads 1,2` (reports/reference/threads.toml)"  # the reference run's grid
)


@dataclass
class Row:
    target: str
    measured: str = NOT_MEASURED
    ratio: float | None = None  # measured / target: 1 or more is met
    note: str = ""
    predicted: bool = False  # a model's figure: never counted as met or missed

    @property
    def met(self) -> str:
        if self.ratio is None or not np.isfinite(self.ratio):
            return "-"
        if self.predicted:
            return "predicted only"
        return "yes" if self.ratio >= 1 else "no"

    def markdown(self) -> str:
        ratio = "-" if self.ratio is None or not np.isfinite(self.ratio) else f"{self.ratio:.2f}"
        return f"| {self.target} | {self.measured} | {ratio} | {self.met} | {self.note} |"


def _ok(cells: pd.DataFrame) -> pd.DataFrame:
    if cells is None or cells.empty:
        return pd.DataFrame(columns=["algorithm", "status", "median_s", "dtype", "threads", "base"])
    ok = cells[(cells["status"] == "ok") & (pd.to_numeric(cells["median_s"], errors="coerce") > 0)]
    ok = ok[ok["dtype"] == "float64"]
    if "cell" in ok.columns:  # the Elman cell (older stores have no cell column)
        ok = ok[ok["cell"].isna() | (ok["cell"] == "elman")]
    # what a cell is without its thread counts, taken before the threads column joins
    return ok.assign(base=_base_keys(ok)).assign(threads=thread_count(ok))


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return (
        pd.to_numeric(df[col], errors="coerce")
        if col in df.columns
        else pd.Series(np.nan, df.index)
    )


def rtrl_rows(ok: pd.DataFrame, runs: pd.DataFrame) -> list[Row]:
    """RTRL at n >= 128 with 2 threads against the 2-thread DGEMM peak; the 16-core row."""
    target = "Exact RTRL, n >= 128, 2 threads: GFLOP/s >= 70% of the 2-thread DGEMM peak"
    rt = ok[(ok["algorithm"] == "rtrl") & (_num(ok, "n") >= 128)]
    two = rt[rt["threads"] == 2]
    peaks = gemm_peaks(runs)
    fracs = []
    for _, c in two.iterrows():
        peak = peaks.get((str(c["machine"]), 2))
        g = pd.to_numeric(c["gflops"], errors="coerce")
        if peak and np.isfinite(g):
            fracs.append((g / peak, int(c["n"]), float(g), peak))
    first = Row(target, note=f"no RTRL cell at n >= 128 with 2 threads: {THREADS_HINT}")
    if fracs:
        worst, best = min(fracs), max(fracs)
        first = Row(
            target,
            f"{worst[0]:.0%} (n = {worst[1]}: {worst[2]:.3g} of {worst[3]:.3g} GFLOP/s); "
            f"best {best[0]:.0%} (n = {best[1]}); {len(fracs)} cells",
            worst[0] / 0.70,
        )
    elif not two.empty:
        first.note = "no 2-thread GEMM peak in the runs (swept with measure_peak off?)"
    target16 = "Exact RTRL, B >= 16 or n >= 128, 16 cores: >= 10x over one thread"
    second = Row(target16, note="no 16-core machine at hand; needs RTRL at 1 and 2 threads")
    speedups = []
    for _, g in rt.groupby("base"):
        t = g.drop_duplicates("threads", keep="last").set_index("threads")["median_s"]
        if 1 in t.index and 2 in t.index:
            speedups.append((float(t[1]) / float(t[2]), int(g["n"].iloc[0])))
    if speedups:
        s2, n = max(speedups, key=lambda x: x[1])  # the largest n: the most work to share
        serial = min(max(2.0 / s2 - 1.0, 0.0), 1.0)  # Amdahl: s2 = 1 / (f + (1 - f) / 2)
        s16 = 1.0 / (serial + (1.0 - serial) / 16.0)
        second = Row(
            target16,
            f"not measured on 16 cores; 2 threads: {s2:.2f}x at n = {n}; Amdahl's law fitted "
            f"to it (serial share {serial:.0%}) predicts {s16:.1f}x at 16",
            s16 / 10.0,
            "a prediction, not a measurement",
            predicted=True,
        )
    return [first, second]


def speedup_rows(ok: pd.DataFrame) -> list[Row]:
    """BPTT and truncated BPTT at B >= 32, n >= 256: the 2-thread speed-up over 1 thread."""
    out = []
    for alg, title in (("bptt", "BPTT"), ("tbptt", "Truncated BPTT")):
        target = f"{title}, B >= 32, n >= 256: 2 threads >= 1.7x over 1 thread"
        part = ok[(ok["algorithm"] == alg) & (_num(ok, "B") >= 32) & (_num(ok, "n") >= 256)]
        found = []
        for _, g in part.groupby("base"):
            t = g.drop_duplicates("threads", keep="last").set_index("threads")["median_s"]
            if 1 in t.index and 2 in t.index:
                found.append((float(t[1]) / float(t[2]), int(g["n"].iloc[0]), int(g["B"].iloc[0])))
        if not found:
            out.append(Row(target, note=f"no cell at 1 and 2 threads: {THREADS_HINT}"))
            continue
        worst, best = min(found), max(found)
        out.append(
            Row(
                target,
                f"{worst[0]:.2f}x (n = {worst[1]}, B = {worst[2]}); best {best[0]:.2f}x "
                f"(n = {best[1]}, B = {best[2]}); {len(found)} cells",
                worst[0] / 1.7,
            )
        )
    return out


def small_n_rows(ok: pd.DataFrame) -> list[Row]:
    """BPTT at B = 1, T = 1000, one thread, against the old kernel's quoted times."""
    part = ok[
        (ok["algorithm"] == "bptt") & (_num(ok, "B") == 1) & (_num(ok, "T") == 1000)
        & (ok["threads"] == 1)
    ]  # fmt: skip
    out = []
    for n in (16, 32, 64):
        target = f"BPTT, B = 1, T = 1000, n = {n}, 1 thread: >= 1.4x faster than the old kernel"
        c = part[_num(part, "n") == n]
        old = OLD_BPTT_B1_T1000.get(n)
        base = f"old {old * 1e3:.2g} ms" if old else "the issue quotes no old time at this n"
        if c.empty:
            out.append(Row(target, note=f"{base}; the full preset's bptt n sweep at T = 1000"))
            continue
        s = float(c["median_s"].iloc[-1])
        ratio = old / s / 1.4 if old else None
        out.append(
            Row(target, f"{s * 1e3:.3g} ms" + (f" ({old / s:.2f}x)" if old else ""), ratio, base)
        )
    return out


def peer_rows(peers: pd.DataFrame) -> list[Row]:
    """BPTT at B = 32, T = 100, n = 64..512, one thread, against JAX and PyTorch."""
    out = []
    df = cpu_rows(peers) if peers is not None else pd.DataFrame()
    if not df.empty:
        df = df[
            (df["status"] == "ok") & (df["algorithm"] == "bptt") & (_num(df, "B") == 32)
            & (_num(df, "T") == 100) & (_num(df, "n") >= 64) & (_num(df, "n") <= 512)
        ]  # fmt: skip
        if "cell" in df.columns:
            df = df[df["cell"].fillna("elman") == "elman"]
        if "numba_threads" in df.columns:
            df = df[_num(df, "numba_threads").fillna(1) == 1]
    for tool, title, want in (("jax", "JAX lax.scan + grad", 1.2), ("pytorch", "PyTorch", 1.5)):
        for dtype in ("float64", "float32"):
            target = f"BPTT, B = 32, T = 100, n = 64..512, 1 thread, {dtype}: >= {want}x {title}"
            if dtype == "float32":
                target += " (for information: the target is float64's)"
            part = df[(df["tool"] == tool) & (df["dtype"] == dtype)] if not df.empty else df
            if part.empty:
                out.append(Row(target, note=f"`bpttbench peers --tools {tool} --dtype {dtype}`"))
                continue
            part = part.sort_values("created").drop_duplicates("n", keep="last")
            r = list(zip(_num(part, "ratio_vs_bpttbench"), part["n"].astype(int), strict=True))
            worst, best = min(r), max(r)
            note = "peer time / bpttbench time"
            cpus = _num(part, "cpus").max()
            if np.isfinite(cpus) and cpus > 1:  # XLA's or torch's pools on more cores
                note += f"; the peer was not pinned ({int(cpus)} CPUs), bpttbench on 1 thread"
            out.append(
                Row(
                    target,
                    f"{worst[0]:.2f}x (n = {worst[1]}); best {best[0]:.2f}x (n = {best[1]}); "
                    f"{len(r)} sizes",
                    worst[0] / want if dtype == "float64" else None,
                    note,
                )
            )
    return out


def gpu_row(peers: pd.DataFrame) -> Row:
    target = "GPU peers: the CPU/GPU crossover (`bpttbench peers --device cuda`)"
    g = gpu_rows(peers) if peers is not None and not peers.empty else pd.DataFrame()
    if g.empty:
        # a GPU machine's run keeps its own store (`reports/gpu/run.sh` makes one)
        return Row(target, "no GPU rows in this store", None,
                   "the crossover chart shows its empty state; a GPU machine's run "
                   "is reported from its own store")  # fmt: skip
    ok = g[g["status"] == "ok"]
    devices = ", ".join(sorted(set(g["device"].astype(str))))
    return Row(target, f"{len(ok)} GPU rows ({devices})", None, "see the CPU/GPU crossover chart")


def rows(cells: pd.DataFrame, runs: pd.DataFrame, peers: pd.DataFrame) -> list[Row]:
    """Every target's row, from the store's cells, runs and peers."""
    ok = _ok(cells)
    return [*rtrl_rows(ok, runs), *speedup_rows(ok), *small_n_rows(ok), *peer_rows(peers),
            gpu_row(peers)]  # fmt: skip


def table(found: list[Row]) -> str:
    head = ["| target | measured | ratio to target | met | note |", "|---|---|---|---|---|"]
    return "\n".join(head + [r.markdown() for r in found])


def caption(found: list[Row]) -> str:
    met = sum(r.met == "yes" for r in found)
    missed = sum(r.met == "no" for r in found)
    absent = sum(r.measured == NOT_MEASURED for r in found)
    return (
        f"Issue 14's targets, float64, computed from the store: {met} met, {missed} missed, "
        f"{absent} not measured. The ratio is the measured figure over the target (1 or more "
        f"is met); where a target spans several cells the worst of them counts."
    )


def chart(ctx, db_path: str | Path):
    """The report's builder: no figure, the table (with "not measured" where data lack)."""
    from bpttbench.bench.peers import load_peers

    try:
        runs = results.load_runs(db_path)
        peers = load_peers(db_path)
    except Exception as exc:  # no database, or not ours: the report already said so
        raise NoSource(f"the store could not be read: {exc}") from None
    store = ctx.store
    cells = None
    if store is not None:
        cells = store.all_cells if store.all_cells is not None else store.cells
    found = rows(cells, runs, peers)
    return None, caption(found), table(found)
