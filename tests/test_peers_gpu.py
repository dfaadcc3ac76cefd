"""`bpttbench peers --device/--dtype/--grid gpu`, the float32 check and the gated-cell peers.

No GPU here: the CUDA path is tested as far as it reaches without one (the
options, the refusal, what a row records); float32 agreement runs on the CPU.
Tiny sizes only, and timing with --min-time 0.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import NamedTuple

import bpttbench
import numpy as np
import pytest
from bpttbench.bench import BenchError, peers
from bpttbench.bench.peers import gated, gpu
from helpers import reference


def _parse(*argv):
    parser = argparse.ArgumentParser()
    peers.add_arguments(parser)
    return parser.parse_args(list(argv))


def _problem(T=7, B=2, m=3, n=4, p=2, seed=3, dtype=np.float64):
    params = bpttbench.init_rnn(m, n, p, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    return (
        params,
        rng.standard_normal((T, B, m)).astype(dtype),
        rng.standard_normal((T, B, p)).astype(dtype),
    )


def _hide(monkeypatch, *names):
    """Make ``import torch`` / ``import jax`` fail, as if they were not installed."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)
    for tool in ("torch_impl", "jax_impl"):
        monkeypatch.delitem(sys.modules, f"bpttbench.bench.peers.{tool}", raising=False)


# --- options ----------------------------------------------------------------------------


def test_options_default_to_the_cpu_in_float64():
    args = _parse()
    assert args.device == "cpu" and args.dtype == ["float64"] and args.grid is None
    assert args.cells is None


def test_options_take_a_device_both_dtypes_and_the_gpu_grid():
    args = _parse("--device", "cuda", "--dtype", "float64", "float32", "--grid", "gpu")
    assert args.device == "cuda" and args.dtype == ["float64", "float32"] and args.grid == "gpu"
    assert _parse("--dtype", "float32").dtype == ["float32"]
    assert _parse("--cells", "gru", "lstm").cells == ["gru", "lstm"]


@pytest.mark.parametrize(
    "argv",
    [("--device", "tpu"), ("--dtype", "float16"), ("--grid", "huge"), ("--cells", "mgu")],
)
def test_options_refuse_unknown_values(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(*argv)
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_quick_and_another_grid_are_refused():
    with pytest.raises(BenchError, match="--quick or --grid gpu"):
        peers.command(_parse("--quick", "--grid", "gpu"))


# --- the grids --------------------------------------------------------------------------


def _groups(cells):
    got: dict = {}
    for c in cells:
        got.setdefault((c.dtype, c.tool, c.cell, c.algorithm, c.T, c.B, c.k), []).append(c.n)
    return got


def test_gpu_grid_is_issue_14s():
    got = _groups(peers.plan(["pytorch", "jax"], grid="gpu", dtypes=["float64", "float32"]))
    every = [16, 32, 64, 128, 256, 512, 1024]
    for dtype in ("float64", "float32"):
        for tool in ("pytorch", "jax"):
            assert got[(dtype, tool, "elman", "bptt", 1000, 1, None)] == every
            assert got[(dtype, tool, "elman", "bptt", 100, 32, None)] == every[2:]
        assert got[(dtype, "pytorch", "elman", "tbptt", 1000, 1, 32)] == every
        assert got[(dtype, "jax", "elman", "rtrl", 50, 1, None)] == [16, 32, 64]
        for cell in ("gru", "lstm"):  # BPTT for both tools, truncation PyTorch's
            for tool in ("pytorch", "jax"):
                assert got[(dtype, tool, cell, "bptt", 1000, 1, None)] == [64, 256]
                assert got[(dtype, tool, cell, "bptt", 100, 32, None)] == [64, 256, 512]
            assert got[(dtype, "pytorch", cell, "tbptt", 1000, 1, 32)] == [64, 256]
    assert ("float64", "pytorch", "elman", "rtrl", 50, 1, None) not in got
    assert len(got) == 2 * 16


def test_dtypes_are_passes_over_the_grid_in_order():
    cells = peers.plan(
        ["pytorch"], ["bptt"], T=[5], n=[3, 4], B=[1], dtypes=["float32", "float64"],
        cells=["elman"],
    )  # fmt: skip
    assert [(c.dtype, c.n) for c in cells] == [
        ("float32", 3), ("float32", 4), ("float64", 3), ("float64", 4),
    ]  # fmt: skip
    assert cells[0].label() == "T=5 n=3 B=1 float32"


def test_cells_option_replaces_the_grids_cells():
    cells = peers.plan(["pytorch", "jax"], ["bptt"], T=[5], n=[3], B=[1], cells=["elman", "lstm"])
    assert [(c.tool, c.cell) for c in cells] == [
        ("pytorch", "elman"), ("jax", "elman"), ("pytorch", "lstm"), ("jax", "lstm"),
    ]  # fmt: skip
    assert cells[-1].label() == "lstm T=5 n=3 B=1"


def test_gpu_grid_times_briefly():
    assert peers.GRID_TIMING["gpu"] == (0.1, 3)


# --- no GPU here: the refusal ------------------------------------------------------------


def test_device_cuda_without_a_gpu_prints_one_line_exits_1_and_writes_nothing(tmp_path, capsys):
    torch = reference("torch")
    reference("jax")
    from bpttbench.bench.peers import jax_impl

    if torch.cuda.is_available() or jax_impl.gpu_available():
        pytest.skip("this machine has a GPU")
    db = tmp_path / "r.sqlite"
    assert peers.command(_parse("--device", "cuda", "--db", str(db), "--quick")) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out
    assert "needs a GPU and none is visible" in out
    assert "torch.cuda.is_available() is False" in out and "JAX sees no GPU" in out
    assert not db.exists()


def test_device_cuda_with_only_torch_installed_is_refused_too(monkeypatch, tmp_path, capsys):
    torch = reference("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _hide(monkeypatch, "jax")
    db = tmp_path / "r.sqlite"
    assert peers.command(_parse("--device", "cuda", "--db", str(db), "--tools", "torch")) == 1
    assert "needs a GPU" in capsys.readouterr().out
    assert not db.exists()


class _Tool:
    def __init__(self, has_gpu):
        self.has_gpu = has_gpu

    def gpu_available(self):
        return self.has_gpu

    def device_name(self, device):
        return "cpu" if device == "cpu" else "cuda:0 Fake GPU"


def test_select_keeps_the_peers_that_see_a_gpu():
    mods = {"pytorch": _Tool(True), "jax": _Tool(False)}
    kept, why = gpu.select(mods, "cuda")
    assert list(kept) == ["pytorch"]
    assert gpu.skip_notes(why) == ["note: jax cannot run on the GPU (JAX sees no GPU), skipping it"]
    assert gpu.select(mods, "cpu") == (mods, {})
    assert gpu.device_names(kept, "cuda") == "cuda:0 Fake GPU"
    assert gpu.device_names(mods, "cpu") == "cpu"


def test_before_import_keeps_jax_from_taking_the_gpu(monkeypatch):
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    gpu.before_import("cpu")
    assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in __import__("os").environ
    gpu.before_import("cuda")
    assert __import__("os").environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_error_reasons():
    assert gpu.error_reason(MemoryError()) == "out of memory"
    oom = RuntimeError("CUDA out of memory. Tried to allocate 2 GiB\nmore")
    assert gpu.error_reason(oom) == "out of memory (RuntimeError)"
    assert gpu.error_reason(ValueError("bad\nthing")) == "ValueError: bad"


def test_torch_device_names_on_the_cpu():
    reference("torch")
    from bpttbench.bench.peers import torch_impl

    assert torch_impl.device_name("cpu") == "cpu"
    assert torch_impl.versions()["torch"] == torch_impl.version()


def test_torch_timed_calls_wait_for_the_gpu(monkeypatch):
    torch = reference("torch")
    from bpttbench.bench.peers import torch_impl

    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda dev=None: events.append(("sync", dev)))

    def call():
        events.append("call")
        return 1.0

    cpu = torch_impl.synced(call, torch.device("cpu"))
    assert cpu is call
    gpu_call = torch_impl.synced(call, torch.device("cuda:0"))
    assert gpu_call() == 1.0
    assert events == ["call", ("sync", torch.device("cuda:0"))]


# --- float32 on the CPU -----------------------------------------------------------------

F32 = peers.TOLERANCES["float32"]


def _f32_case(tool, algorithm, k=None, T=40, B=3, n=16):
    params, xs, ys = _problem(T=T, B=B, n=n, m=4, p=3, dtype=np.float32)
    kernel = {"bptt": bpttbench.bptt, "tbptt": bpttbench.tbptt, "rtrl": bpttbench.rtrl}[algorithm]
    want = kernel(params, xs, ys, k) if k else kernel(params, xs, ys)
    if tool == "pytorch":
        reference("torch")
        from bpttbench.bench.peers import torch_impl as mod
    else:
        reference("jax")
        from bpttbench.bench.peers import jax_impl as mod
    got = mod.loss_and_grads(algorithm, params, xs, ys, k)
    assert all(np.asarray(g).dtype == np.float32 for g in got[1])
    return peers.max_rel_err(*got, *want)


@pytest.mark.parametrize(
    "tool, algorithm, k",
    [
        ("pytorch", "bptt", None),
        ("pytorch", "tbptt", 6),
        ("jax", "bptt", None),
        ("jax", "rtrl", None),
    ],
)
def test_float32_peers_agree_with_the_float32_kernels(tool, algorithm, k):
    err = _f32_case(tool, algorithm, k, T=12 if algorithm == "rtrl" else 40)
    # Rounding only: far inside the tolerance, and not exact (it is float32 arithmetic).
    assert err < F32 / 100


class _Off:
    """A float32 peer whose W_hh gradient is off by a relative ``err``."""

    err = 0.0

    @staticmethod
    def version():
        return "0"

    @classmethod
    def make(cls, algorithm, params, xs, ys, k=None):
        class Peer:
            compile_s = None

            def run(self):
                pass

            def check(self):
                loss, g = bpttbench.bptt(params, xs, ys)
                return loss, (g.W_ih, g.W_hh * np.float32(1 + cls.err), *g[2:])

        return Peer()


@pytest.mark.parametrize("err, status", [(1e-5, "ok"), (1e-2, "mismatch")])
def test_float32_cells_are_checked_against_the_float32_tolerance(err, status, monkeypatch):
    monkeypatch.setattr(_Off, "err", err)
    cell = peers.Cell("fake", "bptt", T=5, n=3, B=1, k=None, dtype="float32")
    row = peers.measure(cell, _Off, m=2, p=2, min_time=0.0, min_rounds=1)
    assert row["status"] == status and row["dtype"] == "float32"
    assert row["max_rel_err"] == pytest.approx(err, rel=0.05)
    assert peers.TOLERANCES == {"float64": 1e-8, "float32": 1e-3}


def test_command_runs_both_dtypes_and_records_device_and_versions(monkeypatch, tmp_path, capsys):
    reference("torch")
    _hide(monkeypatch, "jax")
    db = tmp_path / "r.sqlite"
    args = _parse(
        "--db", str(db), "--T", "6", "--n", "3", "--B", "2", "--m", "2", "--p", "2",
        "--algorithms", "bptt", "--dtype", "float64", "float32", "--cells", "elman",
        "--min-time", "0", "--min-rounds", "1",
    )  # fmt: skip
    assert peers.command(args) == 0
    out = capsys.readouterr().out
    assert "float64 and float32" in out and "1e-08 (float64) / 0.001 (float32)" in out
    df = peers.load_peers(db)
    assert sorted(df["dtype"]) == ["float32", "float64"]
    assert (df["status"] == "ok").all() and (df["device"] == "cpu").all()
    assert (df["cell"] == "elman").all() and (df["cpus"] >= 1).all()
    f32 = df[df["dtype"] == "float32"].iloc[0]
    assert 0 < f32["max_rel_err"] < F32
    versions = json.loads(df["versions"].iloc[0])
    assert {"torch", "numba", "numpy", "python"} <= set(versions)
    assert df["machine"].notna().all() and df["cpu"].notna().all()


# --- the store --------------------------------------------------------------------------

_OLD_SCHEMA = """
CREATE TABLE peers (
    peer_key TEXT NOT NULL UNIQUE, run_ts TEXT NOT NULL, tool TEXT NOT NULL,
    algorithm TEXT NOT NULL, "T" INTEGER NOT NULL, n INTEGER NOT NULL, "B" INTEGER NOT NULL,
    k INTEGER, m INTEGER, p INTEGER, status TEXT NOT NULL, median_s REAL,
    ratio_vs_bpttbench REAL, created TEXT NOT NULL
)
"""


def test_an_older_peers_table_gains_the_new_columns_with_defaults(tmp_path):
    from bpttbench.bench.store import connect

    db = tmp_path / "old.sqlite"
    connect(db).close()  # a valid store, then made a schema-1 store with an older peers table
    with sqlite3.connect(db) as c:
        c.execute("DROP TABLE peers")
        c.execute("DROP TABLE lease")
        c.execute("PRAGMA user_version = 1")
        c.execute(_OLD_SCHEMA)
        c.execute(
            "INSERT INTO peers VALUES ('k', 't0', 'pytorch', 'bptt', 5, 3, 1, NULL, 2, 2, "
            "'ok', 1.0, 2.0, 'c')"
        )
    peers.connect(db).close()
    df = peers.load_peers(db)
    row = df.iloc[0]
    assert (row["device"], row["dtype"], row["cell"]) == ("cpu", "float64", "elman")
    assert row["ratio_vs_bpttbench"] == 2.0 and row["versions"] is None


def test_cpu_keys_are_unchanged_and_gpu_rows_get_their_own():
    row = {"run_ts": "t", "tool": "pytorch", "algorithm": "bptt", "T": 5, "n": 3, "B": 1,
           "k": None, "dtype": "float64"}  # fmt: skip
    old = "t|pytorch|bptt|T=5|n=3|B=1|k=|float64"
    assert peers.peer_key(row) == old
    assert peers.peer_key({**row, "device": "cpu", "cell": "elman"}) == old
    assert peers.peer_key({**row, "device": "cuda:0 X"}) == old + "|cuda:0 X"
    assert peers.peer_key({**row, "cell": "gru"}) == old + "|gru"


def test_cpu_and_gpu_rows_of_one_run_are_kept_apart(tmp_path):
    db = tmp_path / "r.sqlite"
    conn = peers.connect(db)
    row = {"run_ts": "t0", "tool": "pytorch", "algorithm": "bptt", "T": 5, "n": 3, "B": 1,
           "k": None, "dtype": "float32", "status": "ok", "median_s": 1.0,
           "created": "c"}  # fmt: skip
    peers.write_peer(conn, row)
    peers.write_peer(conn, {**row, "device": "cuda:0 Fake GPU", "median_s": 0.5})
    conn.close()
    df = peers.load_peers(db)
    assert sorted(zip(df["device"], df["median_s"], strict=True)) == [
        ("cpu", 1.0), ("cuda:0 Fake GPU", 0.5),
    ]  # fmt: skip


def test_merge_copies_rows_once_and_summary_names_the_crossover(tmp_path, capsys):
    src, dst = tmp_path / "cpu.sqlite", tmp_path / "gpu.sqlite"
    base = {"run_ts": "t0", "tool": "pytorch", "algorithm": "bptt", "T": 5, "B": 1, "k": None,
            "dtype": "float32", "status": "ok", "created": "c"}  # fmt: skip
    conn = peers.connect(dst)
    for n, ratio in ((64, 2.0), (256, 0.5)):
        peers.write_peer(conn, {**base, "n": n, "device": "cuda:0 X", "ratio_vs_bpttbench": ratio})
    conn.close()
    conn = peers.connect(src)
    peers.write_peer(conn, {**base, "n": 64, "ratio_vs_bpttbench": 3.0, "cpus": 16})
    conn.close()
    assert gpu.main(["merge", str(src), str(dst)]) == 0
    gpu.merge(src, dst)  # again: replaced, not doubled
    df = peers.load_peers(dst)
    assert sorted(df["device"]) == ["cpu", "cuda:0 X", "cuda:0 X"]
    assert df.loc[df["device"] == "cpu", "cpus"].tolist() == [16]
    assert gpu.main(["summary", str(dst)]) == 0
    out = capsys.readouterr().out
    assert "merged 1 peers rows" in out and "cpu float32 ok: 1" in out
    assert "pytorch: BPTT (T=5) B=1 float32: GPU faster from n ~ 128" in out


# --- the gated cells --------------------------------------------------------------------


class GatedParams(NamedTuple):
    """torch's layout, as bpttbench's GRUParams / LSTMParams have it."""

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray
    bias_hh: np.ndarray
    W_out: np.ndarray
    b_out: np.ndarray


def _gated(cell, m=2, n=3, p=2, seed=0, scale=0.6):
    g = 3 if cell == "gru" else 4
    rng = np.random.default_rng(seed)
    return GatedParams(
        rng.normal(0, scale, (g * n, m)), rng.normal(0, scale, (g * n, n)),
        rng.normal(0, scale, g * n), rng.normal(0, scale, g * n),
        rng.normal(0, scale, (p, n)), rng.normal(0, scale, p),
    )  # fmt: skip


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _step(cell, q, state, x):
    """One step of THEORY.md's gated cells (torch's equations), state (h, c) for both."""
    h, c = state
    n = q.weight_hh.shape[1]
    gi = x @ q.weight_ih.T + q.bias_ih
    gh = h @ q.weight_hh.T + q.bias_hh
    if cell == "gru":
        r = _sig(gi[:, :n] + gh[:, :n])
        z = _sig(gi[:, n : 2 * n] + gh[:, n : 2 * n])
        g = np.tanh(gi[:, 2 * n :] + r * gh[:, 2 * n :])
        return (1 - z) * g + z * h, c
    a = gi + gh
    i, f, g, o = (
        _sig(a[:, :n]),
        _sig(a[:, n : 2 * n]),
        np.tanh(a[:, 2 * n : 3 * n]),
        _sig(a[:, 3 * n :]),
    )
    c = f * c + i * g
    return o * np.tanh(c), c


def _run(cell, q, xs, state):
    hs = []
    for x in xs:
        state = _step(cell, q, state, x)
        hs.append(state[0])
    return np.array(hs), state


def _loss(q, hs, ys):
    e = hs @ q.W_out.T + q.b_out - ys
    return 0.5 * float(np.sum(e * e))


def _windows(T, k):
    """BPTT(k; k)'s updates as (first step run, first step in the loss, end)."""
    full = T - T % k
    out = [(s, s, s + k) for s in range(0, full, k)]
    if T % k:
        out.append((max(0, T - k), full, T))
    return out


def _reference(cell, q, xs, ys, k=None, step=1e-6):
    """(loss, grads) by central differences: per window of BPTT(k; k), from a fixed state."""
    T, B = xs.shape[:2]
    n = q.weight_hh.shape[1]
    zero = (np.zeros((B, n)), np.zeros((B, n)))
    starts = {0: zero}
    hs, _ = _run(cell, q, xs, zero)
    loss = _loss(q, hs, ys)
    state = zero
    for t in range(T):  # the state at every step, held fixed (detached) per window
        state = _step(cell, q, state, xs[t])
        starts[t + 1] = state
    grads = [np.zeros_like(a) for a in q]
    for first, lossfrom, end in _windows(T, k or T):

        def window_loss(qq, first=first, lossfrom=lossfrom, end=end):
            hh, _ = _run(cell, qq, xs[first:end], starts[first])
            return _loss(qq, hh[lossfrom - first :], ys[lossfrom:end])

        for a, arr in enumerate(q):
            for idx in np.ndindex(arr.shape):
                plus = [x.copy() for x in q]
                minus = [x.copy() for x in q]
                plus[a][idx] += step
                minus[a][idx] -= step
                grads[a][idx] += (
                    window_loss(GatedParams(*plus)) - window_loss(GatedParams(*minus))
                ) / (2 * step)
    return loss, tuple(grads)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("k", [None, 2, 3, 9])  # bptt; tbptt with a ragged end (2, 3) and k > T
def test_torch_gated_peers_equal_the_equations(cell, k):
    reference("torch")
    from bpttbench.bench.peers import torch_impl

    q = _gated(cell)
    rng = np.random.default_rng(1)
    xs, ys = rng.standard_normal((7, 2, 2)), rng.standard_normal((7, 2, 2))
    want = _reference(cell, q, xs, ys, k)
    got = torch_impl.loss_and_grads("tbptt" if k else "bptt", q, xs, ys, k)
    assert [g.shape for g in got[1]] == [a.shape for a in q]
    assert peers.max_rel_err(*got, *want) < 1e-7  # central differences: ~1e-9 here


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_torch_gated_bptt_equals_the_numpy_reference(cell):
    """Exactly (to rounding): naive_gated's hand-written BPTT, its own params type."""
    reference("torch")
    import naive_gated
    from bpttbench.bench.peers import torch_impl

    q = naive_gated.GatedParams(*_gated(cell, m=3, n=5, p=2, seed=4))
    rng = np.random.default_rng(5)
    xs, ys = rng.standard_normal((9, 3, 3)), rng.standard_normal((9, 3, 2))
    want = getattr(naive_gated, f"{cell}_bptt")(q, xs, ys)
    got = torch_impl.loss_and_grads("bptt", q, xs, ys)
    assert peers.max_rel_err(*got, *want) < 1e-10


def test_torch_tells_the_cell_by_its_shapes():
    reference("torch")
    from bpttbench.bench.peers import torch_impl

    assert torch_impl.cell_of(_gated("gru")) == "gru"
    assert torch_impl.cell_of(_gated("lstm")) == "lstm"
    assert torch_impl.cell_of(_problem()[0]) == "elman"
    bad = _gated("gru")._replace(weight_ih=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="neither a GRU"):
        torch_impl.cell_of(bad)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_jax_gated_bptt_equals_the_equations(cell):
    """Central differences of this file's NumPy steps: independent of bpttbench."""
    reference("jax")
    from bpttbench.bench.peers import jax_impl

    q = _gated(cell)
    rng = np.random.default_rng(1)
    xs, ys = rng.standard_normal((7, 2, 2)), rng.standard_normal((7, 2, 2))
    got = jax_impl.loss_and_grads("bptt", q, xs, ys)
    assert peers.max_rel_err(*got, *_reference(cell, q, xs, ys)) < 1e-7


def test_gated_cells_are_skipped_with_a_note_when_bpttbench_lacks_them(
    monkeypatch, tmp_path, capsys
):
    reference("torch")
    _hide(monkeypatch, "jax")
    for name in ("init_gru", "init_lstm"):
        monkeypatch.delattr(bpttbench, name, raising=False)
    db = tmp_path / "r.sqlite"
    args = _parse("--db", str(db), "--cells", "gru", "lstm", "--T", "5", "--n", "3", "--quick")
    assert peers.command(args) == 0
    out = capsys.readouterr().out
    assert "skipping the GRU and LSTM peers: this bpttbench has no init_gru / init_lstm" in out
    assert "nothing to run" in out
    cells, note = gated.drop_unavailable(peers.plan(["pytorch"], ["bptt"], cells=["elman", "gru"]))
    assert {c.cell for c in cells} == {"elman"} and "GRU" in note


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("algorithm", ["bptt", "tbptt"])
def test_torch_gated_peers_equal_bpttbenchs_kernels(cell, algorithm):
    """Runs once the gated cells are in bpttbench (issue 10); skipped before."""
    reference("torch")
    from bpttbench.bench.peers import torch_impl

    if not gated.available(cell):
        pytest.skip(f"this bpttbench has no init_{cell}")
    c = peers.Cell("pytorch", algorithm, T=7, n=4, B=2, k=3 if algorithm == "tbptt" else None)
    from dataclasses import replace

    for dtype, tol in (("float64", 1e-10), ("float32", F32 / 100)):
        func, args = gated.gated_problem(replace(c, cell=cell, dtype=dtype), 3, 2, seed=0)
        got = torch_impl.loss_and_grads(algorithm, *args[:3], c.k)
        assert peers.max_rel_err(*got, *func(*args)) < tol


# --- reports/gpu/run.sh, all but its CUDA step -------------------------------------------

SCRIPT = Path(__file__).resolve().parent.parent / "reports" / "gpu" / "run.sh"


def _run_script(tmp_path, allow_no_gpu):
    import os
    import shutil
    import subprocess

    torch = reference("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the script's CUDA step would run for real")
    if not (shutil.which("bash") and shutil.which("timeout")):
        pytest.skip("needs bash and timeout")
    out = tmp_path / "out"
    env = {
        **os.environ, "OUT": str(out), "PYTHON": sys.executable, "INSTALL": "0",
        "ALLOW_NO_GPU": allow_no_gpu, "DTYPES": "float64 float32",
        "GRID": "--grid quick --tools torch --algorithms bptt --T 5 --n 3 --B 1 "
        "--min-time 0 --min-rounds 1",
    }  # fmt: skip
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600
    )
    return done, out


@pytest.mark.slow
@pytest.mark.parametrize("allow_no_gpu, status", [("1", 0), ("0", 1)])
def test_gpu_script_runs_its_cpu_steps_without_a_gpu(tmp_path, allow_no_gpu, status):
    done, out = _run_script(tmp_path, allow_no_gpu)
    assert done.returncode == status, done.stdout + done.stderr
    text = done.stdout
    assert "CPU: " in text and "usable cores" in text and "nvidia-smi" in text
    assert "needs a GPU and none is visible" in text
    assert f"done, status {status}" in text
    # The CPU rows are measured, merged into gpu.sqlite and reported on, either way.
    df = peers.load_peers(out / "gpu.sqlite")
    assert sorted(zip(df["device"], df["dtype"], df["status"], strict=True)) == [
        ("cpu", "float32", "ok"), ("cpu", "float64", "ok"),
    ]  # fmt: skip
    assert not list(out.glob("cpu-*.sqlite"))  # merged, then removed
    assert (out / "cpu-float32.log").is_file()
    assert "gpu.sqlite: 2 peers rows" in text
    md = (out / "report.md").read_text()
    assert "No GPU rows measured" in md and (out / "charts" / "peers_gpu.png").is_file()
