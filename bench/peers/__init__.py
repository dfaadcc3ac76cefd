"""``bpttbench peers``: the same model, weights and data through PyTorch and JAX.

For every cell of a grid (tool, algorithm, T, n, B, k), in one process:

1. The problem is made by the registry's ``make_problem`` (the weights and
   data a sweep uses) and handed, converted, to the peer.
2. Check: the peer's loss and gradients are compared with the bpttbench
   kernel's at the same dtype. ``max_rel_err`` is the largest, over the loss
   and the gradient arrays, of ``max|peer - kernel| / max|kernel|``. A peer
   that disagrees beyond ``TOLERANCES[dtype]`` (1e-8 in float64, 1e-3 in
   float32) is not timed (the row is stored with status ``mismatch`` and the
   reason printed).
3. Timing: ``bench.measure.time_interleaved``, the sweeps' timer with its
   rounds alternating peer and kernel (A, B, A, B, ...; each round long
   enough for the clock, the garbage collector off), until each has had
   ``--min-time`` seconds and ``--min-rounds`` rounds; single-threaded, a
   kernel round whose CPU time falls short of its wall time (the process was
   descheduled) is timed again. Medians and quartiles of the per-call times,
   and the ratio ``peer median / bpttbench median`` (above 1: bpttbench is
   faster). JAX compile time is excluded from the timing and reported on its own.

Peers: PyTorch (``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` + autograd for BPTT,
the chunked-detach idiom for truncated BPTT(k; k)) and JAX (``lax.scan`` +
``grad`` for BPTT, ``jacfwd`` / ``jvp`` forward-mode accumulation for RTRL);
see ``torch_impl`` and ``jax_impl``. They are the optional extra
``bpttbench[peers]``; without them the command says how to install them and
exits 0.

``--device cuda`` runs the peers that see a GPU there (PyTorch; JAX when
``jax.devices("gpu")`` has one); bpttbench's kernels always run on the CPU, so
a GPU row's ratio is peer GPU time / bpttbench CPU time. Without any GPU the
command says so in one line and exits 1, writing nothing (see ``gpu``).
``--grid gpu`` is the CPU/GPU crossover grid.

Results go to the table ``peers`` of the results database (its schema is
``bench.schema.PEERS``, written with the store's upsert), one row per (run, tool,
algorithm, cell, T, n, B, k, dtype, device); :func:`load_peers` reads it.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import bpttbench
from bpttbench.bench import DEFAULT_DB, BenchError, fmt, schema, store
from bpttbench.bench.measure import TimingSettings, available_cpus, check_threads, time_interleaved

INSTALL_HINT = "pip install 'bpttbench[peers]'"
TOLERANCE = 1e-8  # float64: largest relative disagreement a timed peer may have
# float32: two float32 computations of the same gradient differ by their rounding
# only. Measured on CPU over the gpu grid's Elman cells (T = 1000, B = 1, n = 16..1024;
# T = 100, B = 32, n = 64..1024; tbptt k = 32; JAX RTRL T = 50, n = 16..64), PyTorch
# and JAX against bpttbench's float32 kernels: at most 2.4e-6 relative, the size
# of bpttbench float32 against float64 (2.0e-6). 1e-3 leaves ~400x for a GPU's other
# summation orders, while a wrong term costs 1e-2 and more. TF32 (a 10-bit
# mantissa, ~1e-3 here) would sit at the limit: the peers switch it off instead.
TOLERANCES = {"float64": TOLERANCE, "float32": 1e-3}
DTYPE = "float64"
DTYPES = ("float64", "float32")
DEVICES = ("cpu", "cuda")
CELLS = ("elman", "gru", "lstm")
TOOLS = ("pytorch", "jax")
_MODULES = {"pytorch": "bpttbench.bench.peers.torch_impl", "jax": "bpttbench.bench.peers.jax_impl"}
# Which algorithms each tool computes, from the registry (AlgorithmSpec.peers).
_TOOL_ALGORITHMS = {
    tool: tuple(name for name, spec in bpttbench.ALGORITHMS.items() if tool in spec.peers)
    for tool in TOOLS
}
_TOOL_CELLS = {"pytorch": ("elman", "gru", "lstm"), "jax": ("elman",)}
_TOOL_ALIASES = {"torch": "pytorch", "pytorch": "pytorch", "jax": "jax"}
ALGORITHMS = tuple(name for name, spec in bpttbench.ALGORITHMS.items() if spec.peers)

ROUND_TIME = 0.01  # seconds a timed round lasts at least
MAX_ROUNDS = 10_000
# The columns of a peers row (bench.schema.PEERS: created, checked and written by the store).
PEER_COLUMNS = tuple(c for c in schema.PEERS.names if c != "peer_key")


# --- the grid ----------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """Cells of one algorithm: every n at the given T, B and k, for the given tools."""

    algorithm: str
    T: int
    B: int
    ns: tuple[int, ...]
    k: int | None = None
    cells: tuple[str, ...] = ("elman",)


@dataclass(frozen=True)
class Cell:
    tool: str
    algorithm: str
    T: int
    n: int
    B: int
    k: int | None
    cell: str = "elman"
    dtype: str = DTYPE

    def label(self) -> str:
        k = f" k={self.k}" if self.k is not None else ""
        cell = f"{self.cell} " if self.cell != "elman" else ""
        dtype = f" {self.dtype}" if self.dtype != DTYPE else ""
        return f"{cell}T={self.T} n={self.n} B={self.B}{k}{dtype}"


# Issue 5's targets. BPTT at B = 32 runs T = 100 (not 1000) to keep the grid to
# minutes: the per-step cost does not depend on T, so the ratio does not either.
DEFAULT_GRID = (
    Group("bptt", T=1000, B=1, ns=(16, 64, 256)),
    Group("bptt", T=100, B=32, ns=(64, 128, 256, 512)),
    Group("tbptt", T=1000, B=1, ns=(16, 64, 256), k=32),
    Group("rtrl", T=50, B=1, ns=(16, 32, 64)),
)
QUICK_GRID = (
    Group("bptt", T=200, B=1, ns=(16, 64)),
    Group("bptt", T=50, B=32, ns=(64,)),
    Group("tbptt", T=200, B=1, ns=(16, 64), k=32),
    Group("rtrl", T=20, B=1, ns=(16, 32)),
)
# CPU/GPU crossover (issue 14): where does a peer on a GPU overtake bpttbench on
# one CPU core? n up to 1024 for the Elman cell, the gated cells (GRU 3-4x, LSTM
# 5-8x its cost a call, measured on the cells branch) to 256 at T = 1000 and 512 at
# B = 32. With GRID_TIMING["gpu"] a slow cell costs ~7 calls a side (check, 2
# warm-ups, calibration, 3 rounds), a fast one ~0.3 s. Estimated from bpttbench's
# one-thread times (n = 1024: 0.8 s a call at T = 1000, B = 1; ~0.6 s at T = 100,
# B = 32) and the peers' compile times: about 4 minutes for both dtypes on a
# 16-core host with one H200, two thirds of it bpttbench's CPU side and JAX's
# compiles.
GPU_NS = (16, 32, 64, 128, 256, 512, 1024)
GPU_GRID = (
    Group("bptt", T=1000, B=1, ns=GPU_NS),
    Group("bptt", T=100, B=32, ns=GPU_NS[2:]),
    Group("tbptt", T=1000, B=1, ns=GPU_NS, k=32),
    Group("rtrl", T=50, B=1, ns=(16, 32, 64)),
    Group("bptt", T=1000, B=1, ns=(64, 256), cells=("gru", "lstm")),
    Group("bptt", T=100, B=32, ns=(64, 256, 512), cells=("gru", "lstm")),
    Group("tbptt", T=1000, B=1, ns=(64, 256), k=32, cells=("gru", "lstm")),
)
GRIDS = {"default": DEFAULT_GRID, "quick": QUICK_GRID, "gpu": GPU_GRID}
# (min_time, min_rounds) where the options do not say: the GPU grid times each
# side for 0.1 s and 3 rounds (a 0.8 s kernel call gets its 3 rounds, 7 calls).
GRID_TIMING = {"default": (1.0, 5), "quick": (0.2, 5), "gpu": (0.1, 3)}
DEFAULT_K = 32


def plan(
    tools: Sequence[str],
    algorithms: Sequence[str] = ALGORITHMS,
    T: Sequence[int] | None = None,
    n: Sequence[int] | None = None,
    B: Sequence[int] | None = None,
    k: int | None = None,
    quick: bool = False,
    *,
    grid: str | None = None,
    dtypes: Sequence[str] = (DTYPE,),
    cells: Sequence[str] | None = None,
) -> list[Cell]:
    """The cells to measure: the named grid (default, quick or gpu), with any axis overridden.

    ``T``, ``n`` and ``B`` replace the grid's values for every algorithm (the
    cells are the product), ``k`` the truncation of tbptt, ``cells`` the
    recurrent cells (elman, gru, lstm) of every group. Every cell is planned
    once per dtype, dtype by dtype. Duplicates are dropped; the order is the
    grid's.
    """
    out: list[Cell] = []
    for dtype in dtypes:
        for g in GRIDS[grid or ("quick" if quick else "default")]:
            if g.algorithm not in algorithms:
                continue
            kk = (k if k is not None else g.k or DEFAULT_K) if g.algorithm == "tbptt" else None
            for rnn in cells or g.cells:
                for tool in tools:
                    if g.algorithm not in _TOOL_ALGORITHMS[tool] or rnn not in _TOOL_CELLS[tool]:
                        continue
                    for TT in T or (g.T,):
                        for BB in B or (g.B,):
                            for nn in n or g.ns:
                                c = Cell(tool, g.algorithm, int(TT), int(nn), int(BB), kk)
                                c = replace(c, cell=rnn, dtype=dtype)
                                if c not in out:
                                    out.append(c)
    return out


# --- measuring ---------------------------------------------------------------------


def max_rel_err(loss, grads: Iterable, ref_loss, ref_grads: Iterable) -> float:
    """Largest ``max|x - ref| / max|ref|`` over the loss and each gradient array."""
    import numpy as np

    worst = 0.0
    pairs = [(np.asarray(loss), np.asarray(ref_loss))]
    pairs += [(np.asarray(g), np.asarray(r)) for g, r in zip(grads, ref_grads, strict=True)]
    for x, r in pairs:
        if x.shape != r.shape:
            return math.inf
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        diff = float(np.max(np.abs(x - r))) if r.size else 0.0
        if not math.isfinite(diff):
            return math.inf
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst


def load_tools(wanted: Sequence[str]) -> tuple[dict[str, object], list[str]]:
    """Import the peer modules of ``wanted``; return ({tool: module}, [missing tools])."""
    found, missing = {}, []
    for tool in wanted:
        try:
            found[tool] = importlib.import_module(_MODULES[tool])
        except ImportError:
            missing.append(tool)
    return found, missing


def _problem(cell: Cell, m: int, p: int, seed: int):
    """The registry's problem for the cell (the weights and data a sweep uses)."""
    import numpy as np

    if cell.cell != "elman":
        from bpttbench.bench.peers.gated import gated_problem

        return gated_problem(cell, m, p, seed)
    spec = bpttbench.ALGORITHMS[cell.algorithm]
    size = {"T": cell.T, "n": cell.n, "B": cell.B, "m": m, "p": p}
    if cell.k is not None:
        size.update(k1=cell.k, k2=cell.k)
    args = spec.make_problem(size, np.dtype(cell.dtype), seed)
    return spec.func, args


def measure(
    cell: Cell,
    module,
    m: int = 8,
    p: int = 8,
    seed: int = 0,
    min_time: float = 1.0,
    min_rounds: int = 5,
    tolerance: float | None = None,
    device: str = "cpu",
    check_cpu: bool = False,
) -> dict:
    """Check and time one cell; returns the fields of a ``peers`` row (no run metadata).

    The peer runs on ``device`` (cpu, cuda), bpttbench on the CPU; ``tolerance``
    defaults to ``TOLERANCES[cell.dtype]``. ``check_cpu`` (single-threaded runs):
    retime a kernel round that was descheduled; the peer's rounds are not checked,
    as JAX and a GPU compute in threads of their own.
    """
    if tolerance is None:
        tolerance = TOLERANCES[cell.dtype]
    func, args = _problem(cell, m, p, seed)
    params, xs, ys = args[:3]
    named = getattr(module, "device_name", None)
    row: dict = {
        "tool": cell.tool, "algorithm": cell.algorithm, "T": cell.T, "n": cell.n, "B": cell.B,
        "k": cell.k, "m": m, "p": p, "dtype": cell.dtype, "tool_version": module.version(),
        "cell": cell.cell, "device": named(device) if named else "cpu",
    }  # fmt: skip
    ref_loss, ref_grads = func(*args)  # also compiles the kernel on a cold cache

    def kernel():
        return func(*args)

    spec = bpttbench.ALGORITHMS.get(cell.algorithm)
    implementation = spec.peers.get(cell.tool, cell.algorithm) if spec else cell.algorithm
    if device == "cpu":
        peer = module.make(implementation, params, xs, ys, cell.k)
    else:
        peer = module.make(implementation, params, xs, ys, cell.k, device=device)
    row["compile_s"] = peer.compile_s
    loss, grads = peer.check()
    err = max_rel_err(loss, grads, ref_loss, ref_grads)
    row["max_rel_err"] = err
    if not err <= tolerance:
        row["status"] = "mismatch"
        row["reason"] = (
            f"{cell.tool} {cell.algorithm} disagrees with bpttbench: max relative error "
            f"{err:.3g} > {tolerance:g}; not timed"
        )
        return row
    settings = TimingSettings(
        min_time=min_time, round_time=ROUND_TIME, min_rounds=min_rounds, max_rounds=MAX_ROUNDS
    )
    a, b = time_interleaved(peer.run, kernel, settings, check_cpu=(False, check_cpu))
    row.update(status="ok", median_s=a.median_s, q25_s=a.q25_s, q75_s=a.q75_s, rounds=a.rounds)
    row.update(bpttbench_median_s=b.median_s, bpttbench_q25_s=b.q25_s, bpttbench_q75_s=b.q75_s)
    row["ratio_vs_bpttbench"] = a.median_s / b.median_s if b.median_s > 0 else None
    return row


# --- the store ---------------------------------------------------------------------


def connect(db_path):
    """Open the results database for writing (``bench.store``: checked, ``peers`` included)."""
    return store.connect(db_path)


def peer_key(row: dict) -> str:
    k = row.get("k")
    # Elman rows on the CPU keep the key they had before cells and devices were columns.
    extra = "".join(
        f"|{row[c]}" for c, default in _DEFAULT_VALUE.items() if row.get(c, default) != default
    )
    return (
        f"{row['run_ts']}|{row['tool']}|{row['algorithm']}|T={row['T']}|n={row['n']}"
        f"|B={row['B']}|k={'' if k is None else k}|{row['dtype']}{extra}"
    )


_DEFAULT_VALUE = {"cell": "elman", "device": "cpu"}


def write_peer(conn, row: dict) -> None:
    """Insert or replace one row (by its run, tool, algorithm, sizes, dtype, cell and device).

    Peers write their own table only, so a sweep's writer lease does not stop them.
    """
    with store.transaction(conn, guard=False):
        store.upsert(conn, schema.PEERS, {"peer_key": peer_key(row), **row})


def load_peers(db_path: str | os.PathLike = DEFAULT_DB):
    """The ``peers`` table as a DataFrame, one row per measured (or refused) peer cell.

    Columns: ``PEER_COLUMNS`` (tool, algorithm, T, n, B, k, dtype, status,
    median_s, ratio_vs_bpttbench, max_rel_err, ...). Only rows with status
    ``ok`` carry timings; ``mismatch`` rows were refused by the gradient check.
    Empty (with those columns) when no peers were run. Never creates a file.
    """
    return store.load_table(db_path, "peers", PEER_COLUMNS, "run_ts, created")


# --- the command -------------------------------------------------------------------


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
        "PyTorch only and need a bpttbench with init_gru / init_lstm)",
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
    """
    _check_args(args)
    tools = _resolve_tools(args.tools)
    grid = args.grid or ("quick" if args.quick else "default")
    dtypes = list(dict.fromkeys(args.dtype))

    from bpttbench.bench.measure import run_metadata, set_threads
    from bpttbench.bench.peers import gated, gpu

    gpu.before_import(args.device)

    threads = args.threads or available_cpus()
    if "jax" in tools and "jax" not in sys.modules and threads == 1:
        # XLA sizes its pool when jax is first imported: one thread means no Eigen pool.
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    modules, missing = load_tools(tools)
    if not modules:
        print(
            f"bpttbench peers compares the kernels with {' and '.join(tools)}, "
            f"which {'is' if len(tools) == 1 else 'are'} not installed.\n"
            f"Install the peers with:  {INSTALL_HINT}"
        )
        return 0
    for tool in missing:
        print(f"note: {tool} is not installed, skipping it ({INSTALL_HINT} installs it)")
    modules, why = gpu.select(modules, args.device)
    if not modules:
        print(gpu.no_gpu_line(why))
        return gpu.NO_GPU_EXIT
    for note in gpu.skip_notes(why):
        print(note)

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
        return 0

    numba_threads, blas_threads = set_threads(threads)
    tool_threads = {}
    for tool, mod in modules.items():
        if tool == "pytorch":
            tool_threads[tool] = mod.set_threads(numba_threads)
        else:  # XLA's own pool: all CPUs, or one with --threads 1
            tool_threads[tool] = 1 if threads == 1 else available_cpus()
    min_time, min_rounds = GRID_TIMING[grid]
    min_time = args.min_time if args.min_time is not None else min_time
    min_rounds = args.min_rounds if args.min_rounds is not None else min_rounds
    meta = run_metadata()
    run_ts = datetime.now(UTC).isoformat(timespec="seconds")
    versions = ", ".join(
        f"{t} {mod.version()} ({tool_threads[t]} threads)" for t, mod in modules.items()
    )
    devices = gpu.device_names(modules, args.device)
    print(
        f"bpttbench peers: {len(cells)} cells, {' and '.join(dtypes)}, m={args.m} p={args.p}; "
        f"Numba {numba_threads} / BLAS {blas_threads} threads; {versions}; "
        f"peers on {devices}, bpttbench on the CPU"
    )
    tols = " / ".join(f"{TOLERANCES[d]:g} ({d})" for d in dtypes)
    print(f"check: gradients must agree with bpttbench to {tols} relative before a peer is timed")

    busy = _loadavg()
    if busy is not None and busy + threads > available_cpus() + 0.5:
        print(
            f"warning: the 1-minute load average is {busy:.2f} on {available_cpus()} CPUs: "
            f"other processes leave fewer than {threads} free, so the timings will be noisy "
            "(PyTorch's OpenMP pool suffers most; --threads 1 is the least disturbed)"
        )
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
                    min_time=min_time, min_rounds=min_rounds, device=args.device,
                    check_cpu=(numba_threads, blas_threads) == (1, 1),
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
                run_ts=run_ts, threads=tool_threads[cell.tool], numba_threads=numba_threads,
                blas_threads=blas_threads, machine=meta["machine"], cpu=meta["cpu"],
                commit=meta["commit"], loadavg=load_at_start,
                created=datetime.now(UTC).isoformat(), cpus=available_cpus(),
                versions=gpu.versions_json(modules[cell.tool], meta),
            )  # fmt: skip
            write_peer(conn, row)
            rows.append(row)
    finally:
        conn.close()
    print()
    print(format_table(rows))
    print(
        "\nratio = peer median / bpttbench median, bpttbench on the CPU "
        "(above 1: bpttbench is faster); "
        f"results in table 'peers' of {args.db}"
    )
    return 0
