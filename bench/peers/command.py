"""``bpttbench peers`` on the command line: its options, the loop over the planned cells, the table.

The grid, the measurement of one cell and the ``peers`` rows live in the package
(``bpttbench.bench.peers``), which re-exports :func:`add_arguments`,
:func:`command` and :func:`format_table` from here.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bpttbench.bench import DEFAULT_DB, BenchError, fmt
from bpttbench.bench.measure import available_cpus, check_threads, openblas_kernels
from bpttbench.bench.peers import (
    _TOOL_ALGORITHMS,
    _TOOL_ALIASES,
    ALGORITHMS,
    CELLS,
    DEFAULT_K,
    DEVICES,
    DTYPE,
    DTYPES,
    GRID_TIMING,
    GRIDS,
    INSTALL_HINT,
    TOLERANCES,
    TOOLS,
    Cell,
    connect,
    load_tools,
    measure,
    plan,
    write_peer,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bpttbench peers``."""
    parser.add_argument("--db", default=DEFAULT_DB, help="results database (default: %(default)s)")
    parser.add_argument(
        "--tools", nargs="+", default=list(TOOLS), metavar="TOOL",
        help="peers to run: pytorch (or torch), jax (default: both, those installed)",
    )  # fmt: skip
    parser.add_argument(
        "--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS,
        help="algorithms to compare (default: all): PyTorch has bptt and tbptt, JAX bptt and rtrl",
    )  # fmt: skip
    parser.add_argument("--T", type=int, nargs="+", help="sequence lengths (override the grid)")
    parser.add_argument("--n", type=int, nargs="+", help="state sizes (override the grid)")
    parser.add_argument("--B", type=int, nargs="+", help="batch sizes (override the grid)")
    parser.add_argument(
        "--k", type=int, help=f"truncation k of tbptt, BPTT(k; k) (default {DEFAULT_K})"
    )
    parser.add_argument("--m", type=int, default=8, help="input size (default: %(default)s)")
    parser.add_argument("--p", type=int, default=8, help="output size (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="problem seed (default: %(default)s)")
    parser.add_argument(
        "--min-time", type=float, default=None,
        help="seconds of timed rounds for the peer and for bpttbench, each, per cell "
        "(default 1.0; 0.2 with --quick, 0.1 with --grid gpu)",
    )  # fmt: skip
    parser.add_argument(
        "--min-rounds", type=int, default=None,
        help="at least this many rounds (default 5; 3 with --grid gpu)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=1, metavar="N",
        help="threads for Numba, BLAS, torch and XLA (default: 1, as for sweeps: "
        "single-threaded timings are barely disturbed by other programs)",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help="a small grid at shorter T, for a first look in seconds (= --grid quick)",
    )  # fmt: skip
    parser.add_argument(
        "--grid", choices=tuple(GRIDS), default=None,
        help="named grid: default (issue 5's), quick, or gpu (the CPU/GPU crossover: "
        "n = 16..1024, both B, gated cells; meant for --device cuda --dtype float64 float32)",
    )  # fmt: skip
    parser.add_argument(
        "--device", choices=DEVICES, default="cpu",
        help="where the peers run (default cpu). bpttbench always runs on the CPU; with cuda "
        "a row's ratio is peer GPU time / bpttbench CPU time. Without a GPU, cuda prints "
        "one line and exits 1, writing nothing",
    )  # fmt: skip
    parser.add_argument(
        "--dtype", nargs="+", choices=DTYPES, default=[DTYPE], metavar="DTYPE",
        help="float64 and/or float32, each a pass over the grid (default float64); "
        "float32 peers must agree to 1e-3 relative, float64 to 1e-8",
    )  # fmt: skip
    parser.add_argument(
        "--cells", nargs="+", choices=CELLS, default=None, metavar="CELL",
        help="recurrent cells: elman, gru, lstm (default: the grid's; gru and lstm are "
        "PyTorch's bptt and tbptt and JAX's bptt, and need a bpttbench with init_gru / "
        "init_lstm)",
    )  # fmt: skip


def format_table(rows: Sequence[dict]) -> str:
    """The results as an aligned text table."""
    head = ("tool", "algorithm", "sizes", "median", "bpttbench", "ratio", "max_rel_err", "compile")
    lines = [head]
    for r in rows:
        ratio = r.get("ratio_vs_bpttbench")
        lines.append((
            r["tool"], r["algorithm"],
            Cell(r["tool"], r["algorithm"], r["T"], r["n"], r["B"], r.get("k"),
                 r.get("cell") or "elman", r.get("dtype") or DTYPE).label(),
            fmt.seconds(r.get("median_s")) if r.get("status") == "ok" else r.get("status", "?"),
            fmt.seconds(r.get("bpttbench_median_s")),
            f"{ratio:.2f}x" if ratio is not None else "-",
            f"{r['max_rel_err']:.1e}" if r.get("max_rel_err") is not None else "-",
            fmt.seconds(r.get("compile_s")),
        ))  # fmt: skip
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = [
        "  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on this platform
        return None


def _resolve_tools(names: Sequence[str]) -> list[str]:
    tools = []
    for name in names:
        tool = _TOOL_ALIASES.get(name.lower())
        if tool is None:
            raise BenchError(f"unknown peer {name!r}: choose from pytorch (torch), jax")
        if tool not in tools:
            tools.append(tool)
    return tools


def _check_args(args) -> None:
    for name in ("T", "n", "B"):
        for v in getattr(args, name) or ():
            if v < 1:
                raise BenchError(f"--{name} must be >= 1, got {v}")
    if args.quick and args.grid not in (None, "quick"):
        raise BenchError(f"give --quick or --grid {args.grid}, not both")
    for name in ("k", "m", "p", "threads", "min_rounds"):
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if args.min_time is not None and not 0 <= args.min_time <= 86400:
        raise BenchError(f"--min-time must be from 0 to 86400 seconds, got {args.min_time}")
    check_threads(args.threads, available_cpus())


def command(args: argparse.Namespace) -> int:
    """Run ``bpttbench peers``; returns the exit code.

    0 also when no peer is installed; 1 when ``--device cuda`` finds no GPU
    (nothing is measured or written).

    On the CPU the whole run is pinned to ``--threads`` cores (``affinity``):
    the peers' own thread pools, which no flag limits, and bpttbench's kernel,
    timed interleaved in this process, then share the same cores. The affinity
    the process had is given back when the command returns. With ``--device
    cuda`` nothing is pinned: the peer computes on the GPU.
    """
    from bpttbench.bench.peers.affinity import Pinned

    _check_args(args)
    cpus = available_cpus()
    threads = args.threads or cpus
    with Pinned(threads if args.device == "cpu" else None) as pin:
        return _run(args, threads, cpus, pin)


@dataclass(frozen=True)
class _PeerRun:
    """What one ``bpttbench peers`` run sets up once and every row records."""

    numba_threads: int
    blas_threads: int
    tool_threads: dict[str, int]  # the threads each peer computes with
    cpu_set: str | None  # the CPUs the run is pinned to, else those it may use
    run_cpus: int
    openblas: str | None
    min_time: float
    min_rounds: int
    meta: dict
    run_ts: str


def _run(args: argparse.Namespace, threads: int, cpus: int, pin) -> int:
    tools = _resolve_tools(args.tools)
    grid = args.grid or ("quick" if args.quick else "default")
    dtypes = list(dict.fromkeys(args.dtype))
    modules, exit_code = _installed_peers(tools, args.device, threads)
    if exit_code is not None:
        return exit_code
    cells = _planned_cells(args, modules, grid, dtypes)
    if not cells:
        return 0
    run = _start_run(args, modules, threads, cpus, pin, grid)
    _print_plan(args, cells, dtypes, modules, run, pin)
    _warn_if_busy(threads, cpus)
    rows = _measure_cells(args, cells, modules, run)
    print()
    print(format_table(rows))
    print(
        "\nratio = peer median / bpttbench median, bpttbench on the CPU "
        "(above 1: bpttbench is faster); "
        f"results in table 'peers' of {args.db}"
    )
    return 0


def _installed_peers(tools: list[str], device: str, threads: int) -> tuple[dict, int | None]:
    """The peer modules that import and run on ``device``, and the exit code when none do."""
    from bpttbench.bench.peers import gpu

    gpu.before_import(device)
    if "jax" in tools and "jax" not in sys.modules and threads == 1:
        # XLA sizes its pool when jax is first imported: one thread means no Eigen pool.
        # Newer XLA runtimes keep other pools this flag does not reach; the pinning
        # (affinity.Pinned, entered before the import) is what holds them to one core.
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    modules, missing = load_tools(tools)
    if not modules:
        print(
            f"bpttbench peers compares the kernels with {' and '.join(tools)}, "
            f"which {'is' if len(tools) == 1 else 'are'} not installed.\n"
            f"Install the peers with:  {INSTALL_HINT}"
        )
        return {}, 0
    for tool in missing:
        print(f"note: {tool} is not installed, skipping it ({INSTALL_HINT} installs it)")
    modules, why = gpu.select(modules, device)
    if not modules:
        print(gpu.no_gpu_line(why))
        return {}, gpu.NO_GPU_EXIT
    for note in gpu.skip_notes(why):
        print(note)
    return modules, None


def _planned_cells(args: argparse.Namespace, modules: dict, grid: str, dtypes: list[str]) -> list:
    """The cells to measure, less those the installed bpttbench cannot run (said why)."""
    from bpttbench.bench.peers import gated

    cells = plan(
        list(modules), args.algorithms, args.T, args.n, args.B, args.k,
        grid=grid, dtypes=dtypes, cells=args.cells,
    )  # fmt: skip
    cells, note = gated.drop_unavailable(cells)
    if note:
        print(note)
    if not cells:
        have = ", ".join(f"{t}: {' '.join(_TOOL_ALGORITHMS[t])}" for t in modules)
        print(f"nothing to run: no installed peer has {' '.join(args.algorithms)} ({have})")
    return cells


def _start_run(args, modules: dict, threads: int, cpus: int, pin, grid: str) -> _PeerRun:
    """Set every pool's threads, pin the threads that started, and take the run's record."""
    from bpttbench.bench.measure import run_metadata, set_threads
    from bpttbench.bench.peers import affinity

    numba_threads, blas_threads = set_threads(threads)
    tool_threads = {}
    for tool, mod in modules.items():
        if tool == "pytorch":
            tool_threads[tool] = mod.set_threads(numba_threads)
        else:  # XLA's own pools, as many cores as the run is pinned to
            tool_threads[tool] = threads if pin.cpus is not None else cpus
    pin.again()  # the threads the imports and set_threads started
    min_time, min_rounds = GRID_TIMING[grid]
    return _PeerRun(
        numba_threads=numba_threads,
        blas_threads=blas_threads,
        tool_threads=tool_threads,
        cpu_set=pin.cpus or affinity.current(),
        run_cpus=threads if pin.cpus is not None else cpus,
        openblas=openblas_kernels(),
        min_time=args.min_time if args.min_time is not None else min_time,
        min_rounds=args.min_rounds if args.min_rounds is not None else min_rounds,
        meta=run_metadata(),
        run_ts=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _print_plan(args, cells: list, dtypes: list[str], modules: dict, run: _PeerRun, pin) -> None:
    """One line of what runs where, and the tolerance every peer is checked to."""
    from bpttbench.bench.peers import gpu

    versions = ", ".join(
        f"{t} {mod.version()} ({run.tool_threads[t]} threads)" for t, mod in modules.items()
    )
    devices = gpu.device_names(modules, args.device)
    print(
        f"bpttbench peers: {len(cells)} cells, {' and '.join(dtypes)}, m={args.m} p={args.p}; "
        f"Numba {run.numba_threads} / BLAS {run.blas_threads} threads; {versions}; "
        f"peers on {devices}, bpttbench on the CPU; "
        + (f"pinned to CPU {pin.cpus}" if pin.cpus is not None else "not pinned")
    )
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if forced:
        print(
            f"note: OPENBLAS_CORETYPE={forced} is set: bpttbench's GEMMs run OpenBLAS's "
            f"{run.openblas} kernels, not the ones OpenBLAS would pick for this CPU"
        )
    tols = " / ".join(f"{TOLERANCES[d]:g} ({d})" for d in dtypes)
    print(f"check: gradients must agree with bpttbench to {tols} relative before a peer is timed")


def _warn_if_busy(threads: int, cpus: int) -> None:
    busy = _loadavg()
    if busy is not None and busy + threads > cpus + 0.5:
        print(
            f"warning: the 1-minute load average is {busy:.2f} on {cpus} CPUs: "
            f"other processes leave fewer than {threads} free, so the timings will be noisy "
            "(PyTorch's OpenMP pool suffers most; --threads 1 is the least disturbed)"
        )


def _measure_cells(args, cells: list, modules: dict, run: _PeerRun) -> list[dict]:
    """Measure each cell and write its row as it comes, so an interrupt keeps those done."""
    from bpttbench.bench.peers import gpu

    devices_by_tool = {t: gpu.device_name(mod, args.device) for t, mod in modules.items()}
    conn = connect(args.db)
    rows = []
    try:
        for i, cell in enumerate(cells, 1):
            print(f"[{i}/{len(cells)}] {cell.tool} {cell.algorithm} {cell.label()} ...", flush=True)
            load_at_start = _loadavg()
            try:
                row = measure(
                    cell, modules[cell.tool], m=args.m, p=args.p, seed=args.seed,
                    min_time=run.min_time, min_rounds=run.min_rounds, device=args.device,
                    check_cpu=(run.numba_threads, run.blas_threads) == (1, 1),
                )  # fmt: skip
            except Exception as exc:  # one cell's failure (out of memory, a GPU error) is a row
                row = {
                    "tool": cell.tool, "algorithm": cell.algorithm, "T": cell.T, "n": cell.n,
                    "B": cell.B, "k": cell.k, "m": args.m, "p": args.p, "dtype": cell.dtype,
                    "cell": cell.cell, "device": devices_by_tool[cell.tool],
                    "status": "error", "reason": gpu.error_reason(exc),
                    "tool_version": modules[cell.tool].version(),
                }  # fmt: skip
            if row["status"] != "ok":
                print(f"    {row['reason']}")
            row.update(
                run_ts=run.run_ts, threads=run.tool_threads[cell.tool],
                numba_threads=run.numba_threads, blas_threads=run.blas_threads,
                machine=run.meta["machine"], cpu=run.meta["cpu"], commit=run.meta["commit"],
                loadavg=load_at_start, created=datetime.now(UTC).isoformat(), cpus=run.run_cpus,
                versions=gpu.versions_json(
                    modules[cell.tool], run.meta,
                    {"affinity": run.cpu_set, "openblas": run.openblas},
                ),
            )  # fmt: skip
            write_peer(conn, row)
            rows.append(row)
    finally:
        conn.close()
    return rows
