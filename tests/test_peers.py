"""`bpttbench peers`: the PyTorch and JAX peers give the kernels' gradients; the command's paths.

Tiny sizes only, and no wall-clock assertions: timing runs with --min-time 0.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from typing import ClassVar

import bpttbench
import numpy as np
import pytest
from bpttbench.bench import peers
from bpttbench.bench.peers import affinity
from helpers import reference

TOL = 1e-10


def _problem(T=7, B=2, m=3, n=4, p=2, seed=3):
    params = bpttbench.init_rnn(m, n, p, seed=seed)
    rng = np.random.default_rng(seed + 1)
    return params, rng.standard_normal((T, B, m)), rng.standard_normal((T, B, p))


def _parse(*argv):
    parser = argparse.ArgumentParser()
    peers.add_arguments(parser)
    return parser.parse_args(list(argv))


def _assert_same(got, want):
    loss, grads = got
    ref_loss, ref_grads = want
    assert peers.max_rel_err(loss, grads, ref_loss, ref_grads) < TOL


# --- the peers agree with the kernels -----------------------------------------------


def _torch_peer():
    """The PyTorch peer module: skipped without torch (outside CI); an import error
    of our own module is an error, never a skip."""
    reference("torch")
    from bpttbench.bench.peers import torch_impl

    return torch_impl


def test_torch_bptt_equals_kernel():
    torch_impl = _torch_peer()
    params, xs, ys = _problem()
    _assert_same(torch_impl.loss_and_grads("bptt", params, xs, ys), bpttbench.bptt(params, xs, ys))


@pytest.mark.parametrize("k", [1, 2, 3, 7, 10])  # 2, 3: ragged end; 7 = T; 10 > T
def test_torch_chunked_detach_equals_kernel_tbptt(k):
    torch_impl = _torch_peer()
    params, xs, ys = _problem()
    got = torch_impl.loss_and_grads("tbptt", params, xs, ys, k=k)
    _assert_same(got, bpttbench.tbptt(params, xs, ys, k))


def test_torch_accepts_a_2d_sequence():
    torch_impl = _torch_peer()
    params, xs, ys = _problem(B=1)
    got = torch_impl.loss_and_grads("bptt", params, xs[:, 0], ys[:, 0])
    _assert_same(got, bpttbench.bptt(params, xs, ys))


def test_jax_bptt_equals_kernel():
    reference("jax")
    from bpttbench.bench.peers import jax_impl

    params, xs, ys = _problem()
    _assert_same(jax_impl.loss_and_grads("bptt", params, xs, ys), bpttbench.bptt(params, xs, ys))


def test_jax_rtrl_equals_kernel():
    reference("jax")
    from bpttbench.bench.peers import jax_impl

    params, xs, ys = _problem()
    _assert_same(jax_impl.loss_and_grads("rtrl", params, xs, ys), bpttbench.rtrl(params, xs, ys))


def _gated_problem(cell, T=7, B=3, m=3, n=5, p=2, seed=2, dtype=np.float64):
    """bpttbench's GRU / LSTM params (torch's layout and initialisation) and a batch."""
    params = getattr(bpttbench, f"init_{cell}")(m, n, p, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    xs, ys = rng.standard_normal((T, B, m)), rng.standard_normal((T, B, p))
    return params, xs.astype(dtype), ys.astype(dtype)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_jax_gated_bptt_equals_kernel(cell):
    """lax.scan over THEORY.md's gated steps + value_and_grad: bpttbench's gradient."""
    reference("jax")
    from bpttbench.bench.peers import jax_impl

    params, xs, ys = _gated_problem(cell)
    loss, grads = jax_impl.loss_and_grads("bptt", params, xs, ys)
    assert [g.shape for g in grads] == [np.shape(a) for a in params]
    _assert_same((loss, grads), bpttbench.bptt(params, xs, ys))
    # float32 stays float32, within the peers' float32 tolerance
    params, xs, ys = _gated_problem(cell, dtype=np.float32)
    loss, grads = jax_impl.loss_and_grads("bptt", params, xs, ys)
    assert {g.dtype for g in grads} == {np.dtype(np.float32)}
    ref_loss, ref_grads = bpttbench.bptt(params, xs, ys)
    assert peers.max_rel_err(loss, grads, ref_loss, ref_grads) < peers.TOLERANCES["float32"]


def test_jax_runs_rtrl_on_the_elman_cell_only():
    reference("jax")
    from bpttbench.bench.peers import jax_impl

    params, xs, ys = _gated_problem("lstm", T=3, n=2)
    with pytest.raises(ValueError, match="'rtrl' on the Elman cell only, not the LSTM"):
        jax_impl.make("rtrl", params, xs, ys)
    bad = params._replace(weight_ih=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="weight_ih has 5 rows for n = 2"):
        jax_impl.make("bptt", bad, xs, ys)
    assert jax_impl.cell_of(_problem()[0]) == "elman"
    planned = peers.plan(["jax"], cells=["elman", "gru"], T=[5], n=[3], B=[2])
    assert {(c.cell, c.algorithm) for c in planned} == {
        ("elman", "bptt"), ("elman", "rtrl"), ("gru", "bptt"),
    }  # fmt: skip


def test_peers_refuse_an_algorithm_they_do_not_have():
    torch_impl = _torch_peer()
    params, xs, ys = _problem()
    with pytest.raises(ValueError, match="no 'rtrl'"):
        torch_impl.make("rtrl", params, xs, ys)


# --- the check, the grid, the table --------------------------------------------------


def test_max_rel_err():
    ref = (np.array([1.0, -2.0]), np.array([[4.0]]))
    assert peers.max_rel_err(3.0, ref, 3.0, ref) == 0.0
    got = (np.array([1.0, -2.0 + 2e-6]), np.array([[4.0]]))
    assert peers.max_rel_err(3.0, got, 3.0, ref) == pytest.approx(1e-6)
    assert peers.max_rel_err(3.0 + 3e-3, ref, 3.0, ref) == pytest.approx(1e-3)
    assert peers.max_rel_err(3.0, (np.array([np.nan, 0.0]), ref[1]), 3.0, ref) == np.inf


class _FakeTool:
    """A peer that is off by a relative 1e-6 in one gradient."""

    @staticmethod
    def version():
        return "0"

    class _Peer:
        compile_s = None

        def __init__(self, params, xs, ys):
            self.params, self.xs, self.ys = params, xs, ys
            self.timed = 0

        def run(self):
            self.timed += 1

        def check(self):
            loss, g = bpttbench.bptt(self.params, self.xs, self.ys)
            return loss, (g.W_ih * (1 + 1e-6), *g[1:])

    made: ClassVar[list] = []

    @classmethod
    def make(cls, algorithm, params, xs, ys, k=None):
        peer = cls._Peer(params, xs, ys)
        cls.made.append(peer)
        return peer


def test_a_disagreeing_peer_is_not_timed():
    cell = peers.Cell("fake", "bptt", T=5, n=3, B=1, k=None)
    row = peers.measure(cell, _FakeTool, m=2, p=2, min_time=0.0, min_rounds=1)
    assert row["status"] == "mismatch"
    assert row["max_rel_err"] == pytest.approx(1e-6, rel=1e-3)
    assert "not timed" in row["reason"]
    assert "median_s" not in row
    assert _FakeTool.made[-1].timed == 0


class _ExactTool(_FakeTool):
    """A peer that agrees with the kernel: it is timed, with the sweeps' timer."""

    class _Peer(_FakeTool._Peer):
        def check(self):
            return bpttbench.bptt(self.params, self.xs, self.ys)

    made: ClassVar[list] = []


def test_an_agreeing_peer_is_timed_in_rounds_alternating_with_the_kernel(monkeypatch):
    from bpttbench.bench import measure

    order = []
    real_run = measure._run
    monkeypatch.setattr(
        measure, "_run", lambda fn, number: order.append(fn) or real_run(fn, number)
    )
    cell = peers.Cell("exact", "bptt", T=5, n=3, B=1, k=None)
    row = peers.measure(cell, _ExactTool, m=2, p=2, min_time=0.0, min_rounds=3, check_cpu=True)
    assert row["status"] == "ok" and row["max_rel_err"] < TOL
    assert row["rounds"] >= 3 and row["median_s"] > 0 and row["bpttbench_median_s"] > 0
    assert row["q25_s"] <= row["median_s"] <= row["q75_s"]
    assert row["ratio_vs_bpttbench"] == row["median_s"] / row["bpttbench_median_s"]
    peer_run = _ExactTool.made[-1].run
    rounds = [fn == peer_run for fn in order[-6:]]  # after calibration: A, B, A, B, ...
    assert rounds == [True, False] * 3


def test_default_grid_is_issue_5s():
    cells = peers.plan(["pytorch", "jax"])
    got = {(c.tool, c.cell, c.algorithm, c.T, c.B, c.k): [] for c in cells}
    for c in cells:
        got[(c.tool, c.cell, c.algorithm, c.T, c.B, c.k)].append(c.n)
    gated = {  # issue 10's: nn.GRU and nn.LSTM, and JAX's lax.scan BPTT of the same cells
        (tool, cell, *key): ns
        for cell in ("gru", "lstm")
        for tool, key, ns in (
            ("pytorch", ("bptt", 1000, 1, None), [64, 256]),
            ("pytorch", ("bptt", 100, 32, None), [64, 256, 512]),
            ("pytorch", ("tbptt", 1000, 1, 32), [64, 256]),
            ("jax", ("bptt", 1000, 1, None), [64, 256]),
            ("jax", ("bptt", 100, 32, None), [64, 256, 512]),
        )
    }
    assert got == {
        ("pytorch", "elman", "bptt", 1000, 1, None): [16, 64, 256],
        ("jax", "elman", "bptt", 1000, 1, None): [16, 64, 256],
        ("pytorch", "elman", "bptt", 100, 32, None): [64, 128, 256, 512],
        ("jax", "elman", "bptt", 100, 32, None): [64, 128, 256, 512],
        ("pytorch", "elman", "tbptt", 1000, 1, 32): [16, 64, 256],
        ("jax", "elman", "rtrl", 50, 1, None): [16, 32, 64],
        **gated,
    }


def test_grid_overrides_replace_every_group_without_duplicates():
    cells = peers.plan(["pytorch"], ["bptt", "tbptt"], T=[20], n=[4, 8], B=[1], k=5)
    # the default grid's gated groups give the same sizes once per gated cell
    assert sorted(c.cell for c in cells) == ["elman"] * 4 + ["gru"] * 4 + ["lstm"] * 4
    cells = [c for c in cells if c.cell == "elman"]
    assert [(c.algorithm, c.T, c.n, c.B, c.k) for c in cells] == [
        ("bptt", 20, 4, 1, None),
        ("bptt", 20, 8, 1, None),
        ("tbptt", 20, 4, 1, 5),
        ("tbptt", 20, 8, 1, 5),
    ]
    assert peers.plan(["jax"], ["tbptt"]) == []


def test_format_table_shows_status_of_refused_rows():
    row = {"tool": "jax", "algorithm": "rtrl", "T": 5, "n": 3, "B": 1, "k": None,
           "status": "mismatch", "max_rel_err": 1e-3}  # fmt: skip
    text = peers.format_table([row])
    assert "mismatch" in text and "1.0e-03" in text


# --- the command -----------------------------------------------------------------------


def _hide(monkeypatch, *names):
    """Make ``import torch`` / ``import jax`` fail, as if they were not installed."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)
    for tool in ("torch_impl", "jax_impl"):
        monkeypatch.delitem(sys.modules, f"bpttbench.bench.peers.{tool}", raising=False)


def test_without_peers_prints_the_install_hint_and_exits_0(monkeypatch, tmp_path, capsys):
    _hide(monkeypatch, "torch", "jax")
    db = tmp_path / "r.sqlite"
    assert peers.command(_parse("--db", str(db), "--quick")) == 0
    out = capsys.readouterr().out
    assert "pip install 'bpttbench[peers]'" in out
    assert not db.exists()


def test_with_one_peer_it_runs_that_one_and_stores_rows(monkeypatch, tmp_path, capsys):
    reference("torch")
    _hide(monkeypatch, "jax")
    db = tmp_path / "r.sqlite"
    args = _parse(
        "--db", str(db), "--T", "6", "--n", "3", "--B", "2", "--k", "4", "--m", "2", "--p", "2",
        "--algorithms", "bptt", "tbptt", "rtrl", "--min-time", "0", "--min-rounds", "1",
        "--cells", "elman",
    )  # fmt: skip
    assert peers.command(args) == 0
    out = capsys.readouterr().out
    assert "jax is not installed" in out and "pip install 'bpttbench[peers]'" in out
    df = peers.load_peers(db)
    assert sorted(df["algorithm"]) == ["bptt", "tbptt"]
    assert set(df["tool"]) == {"pytorch"}
    assert (df["status"] == "ok").all()
    assert (df["max_rel_err"] < peers.TOLERANCE).all()
    assert (df["median_s"] > 0).all() and (df["ratio_vs_bpttbench"] > 0).all()
    assert list(df[["T", "n", "B"]].iloc[0]) == [6, 3, 2]
    assert df["k"].fillna(-1).tolist() == [-1, 4]  # k only for tbptt
    for col in ("tool", "algorithm", "T", "n", "B", "dtype", "median_s",
                "ratio_vs_bpttbench", "max_rel_err", "threads", "tool_version"):  # fmt: skip
        assert col in df.columns


def test_load_peers_without_a_peers_table_is_empty(tmp_path):
    from bpttbench.bench.store import connect

    db = tmp_path / "r.sqlite"
    connect(db).close()
    df = peers.load_peers(db)
    assert df.empty and {"tool", "median_s", "ratio_vs_bpttbench"} <= set(df.columns)


def test_rows_are_keyed_by_run_and_cell(tmp_path):
    db = tmp_path / "r.sqlite"
    conn = peers.connect(db)
    row = {"run_ts": "t0", "tool": "jax", "algorithm": "bptt", "T": 5, "n": 3, "B": 1, "k": None,
           "dtype": "float64", "status": "ok", "median_s": 1.0, "created": "c"}  # fmt: skip
    peers.write_peer(conn, row)
    peers.write_peer(conn, {**row, "median_s": 2.0})  # the same cell again: replaced
    peers.write_peer(conn, {**row, "run_ts": "t1"})  # another run: a new row
    conn.close()
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT run_ts, median_s FROM peers ORDER BY run_ts").fetchall() == [
            ("t0", 2.0),
            ("t1", 1.0),
        ]


def test_bad_arguments_are_refused():
    from bpttbench.bench import BenchError

    with pytest.raises(BenchError, match="--n"):
        peers.command(_parse("--n", "0"))
    with pytest.raises(BenchError, match="unknown peer"):
        peers.command(_parse("--tools", "tensorflow"))


# --- one thread, one core: the run is pinned, and given back ------------------------


def _affinity_of_all_threads():
    """Each live thread's cores; a thread that ends between the listing and the query
    (another library's worker winding down) is left out, as affinity.Pinned leaves it."""
    import os

    out = {}
    for t in os.listdir("/proc/self/task"):
        try:
            out[int(t)] = frozenset(os.sched_getaffinity(int(t)))
        except (ProcessLookupError, FileNotFoundError):
            pass
    return out


@pytest.mark.skipif(not affinity.supported(), reason="no CPU affinity on this platform")
def test_pinned_holds_every_thread_to_its_cores_and_gives_them_back():
    import threading

    Pinned, cpu_list = affinity.Pinned, affinity.cpu_list
    before = _affinity_of_all_threads()
    allowed = sorted(before[min(before)])
    ready, done = threading.Event(), threading.Event()
    worker = threading.Thread(target=lambda: (ready.set(), done.wait()))  # a pool's thread
    worker.start()
    ready.wait()
    try:
        with Pinned(1) as pin:
            assert pin.cpus == str(allowed[0])
            late = threading.Thread(target=done.wait)  # started while pinned
            late.start()
            assert set(_affinity_of_all_threads().values()) == {frozenset(allowed[:1])}
        assert set(_affinity_of_all_threads().values()) == {frozenset(allowed)}
        if len(allowed) >= 2:
            with Pinned(2) as pin:
                assert pin.cpus == cpu_list(allowed[:2])
                assert set(_affinity_of_all_threads().values()) == {frozenset(allowed[:2])}
    finally:
        done.set()
        worker.join()
        late.join()
    assert _affinity_of_all_threads()[min(before)] == before[min(before)]
    with Pinned(None) as pin:  # --device cuda: nothing pinned
        assert pin.cpus is None
        assert _affinity_of_all_threads()[min(before)] == before[min(before)]


def test_cpu_list_is_the_kernels_notation():
    cpu_list = affinity.cpu_list
    assert cpu_list([0]) == "0"
    assert cpu_list([3, 0, 1, 2, 6, 8, 9]) == "0-3,6,8-9"
    assert cpu_list([]) == ""


@pytest.mark.skipif(not affinity.supported(), reason="no CPU affinity on this platform")
def test_a_one_thread_peers_run_is_pinned_to_one_core_and_restored(monkeypatch, tmp_path):
    """The peer and the kernel are timed on one core; the command gives the core set back."""
    import json
    import os

    command_module = sys.modules["bpttbench.bench.peers.command"]
    seen = []
    real_measure = command_module.measure

    def spy(cell, module, **kw):
        seen.append(_affinity_of_all_threads())
        return real_measure(cell, module, **kw)

    monkeypatch.setattr(command_module, "measure", spy)
    monkeypatch.setattr(command_module, "load_tools", lambda tools: ({"exact": _ExactTool}, []))
    monkeypatch.setattr(
        command_module, "plan",
        lambda *a, **kw: [peers.Cell("exact", "bptt", T=5, n=3, B=1, k=None)],
    )  # fmt: skip
    before = os.sched_getaffinity(0)
    db = tmp_path / "r.sqlite"
    args = _parse("--db", str(db), "--tools", "jax", "--min-time", "0", "--min-rounds", "1")
    assert peers.command(args) == 0
    assert seen and all(
        set(masks.values()) == {frozenset(sorted(before)[:1])} for masks in seen
    )  # every thread of the process on the first allowed core while timing
    assert os.sched_getaffinity(0) == before
    df = peers.load_peers(db)
    assert df["cpus"].tolist() == [1]
    versions = json.loads(df["versions"].iloc[0])
    assert versions["affinity"] == str(min(before))
    assert "openblas" in versions  # which GEMM kernels bpttbench ran
