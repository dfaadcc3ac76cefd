"""Sweeps on a Dask cluster (bench.cluster), against real clusters of 2 worker processes.

The first test runs ``bpttbench sweep --local-cluster 2`` (a LocalCluster of its
own); the others share one cluster whose two workers listen on two loopback
addresses, 127.0.0.2 and 127.0.0.3, so that they stand for two hosts (started
and closed by the ``client`` fixture). The cells are tiny real kernels; no
assertion depends on how fast anything ran. Without Dask the cluster tests
skip, except in CI, where they fail.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bpttbench.bench import BenchError, cli, cluster, fit, slices, store, sweep
from bpttbench.bench.view import View

FAST = {"min_time": 0.01, "round_time": 1e-3, "min_rounds": 2}
TINY = {
    "settings": {**FAST, "visits": 2},
    "sweep": [
        {"algorithm": "bptt", "axis": "T", "values": [4, 8, 16, 32], "fixed": {"n": 4}},
        {"algorithm": "bptt", "axis": "n", "values": [2, 3, 4, 6], "fixed": {"T": 4}},
    ],
}
HOSTS = ("127.0.0.2", "127.0.0.3")


def need_distributed():
    if os.environ.get("CI"):  # CI installs the cluster extra: these tests must run there
        import distributed

        return distributed
    return pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """A scheduler and two worker processes (one thread, timing=1) on two loopback hosts."""
    distributed = need_distributed()
    workers = {
        host: {
            "cls": distributed.Nanny,
            "options": {"host": host, "nthreads": 1, "resources": {"timing": 1}},
        }
        for host in HOSTS
    }
    scheduler = {
        "cls": distributed.Scheduler,
        "options": {"host": "127.0.0.1", "dashboard_address": None},
    }
    with (
        distributed.SpecCluster(workers=workers, scheduler=scheduler, silence_logs=40) as spec,
        distributed.Client(spec) as c,
    ):
        c.wait_for_workers(2, timeout=180)
        yield c


def registry():
    import bpttbench

    return bpttbench.ALGORITHMS


def plan_of(grid: dict) -> sweep.Plan:
    return sweep.parse_grid(grid, registry(), "test")


def cells_by_key(db) -> dict[str, tuple]:
    """cell_key -> (status, run_id, created, median_s); checks the file and one row per key."""
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute(
            "SELECT cell_key, status, run_id, created, median_s FROM cells"
        ).fetchall()
    finally:
        conn.close()
    keys = [r[0] for r in rows]
    assert len(keys) == len(set(keys))
    return {r[0]: r[1:] for r in rows}


def visits_by_key(db) -> dict[tuple, str]:
    conn = sqlite3.connect(db)
    try:
        return {
            (k, v): s for k, v, s in conn.execute("SELECT cell_key, visit, samples FROM visits")
        }
    finally:
        conn.close()


def expected_keys(plan, machine: str) -> set[str]:
    return {
        store.cell_key(c.algorithm, c.axis, c.size, c.dtype, 1, 1, machine)
        for c in plan.cells(registry())
    }


def sweep_on(client, plan, db, **kw):
    return cluster.run_cluster_sweep(plan, db, client, measure_peak=False, progress=False, **kw)


# --- the sweep -----------------------------------------------------------------------


def test_a_local_cluster_sweep_stores_the_cells_of_a_local_sweep(tmp_path, capsys):
    need_distributed()
    grid = tmp_path / "g.toml"
    grid.write_text(sweep.to_toml(plan_of(TINY), registry()))
    local, remote = tmp_path / "local.sqlite", tmp_path / "cluster.sqlite"
    argv = ["sweep", "--grid", str(grid), "--quiet"]
    assert cli.main([*argv, "--db", str(local)]) == 0
    assert cli.main([*argv, "--db", str(remote), "--local-cluster", "2"]) == 0
    out, err = capsys.readouterr()
    assert "on 2 worker(s)" in out and "8 cells measured" in out
    assert "several workers share" in err  # their timings disturb each other: said once

    want = cells_by_key(local)
    got = cells_by_key(remote)
    assert set(got) == set(want)  # one machine: the very same keys, one row each
    assert {s for s, *_ in got.values()} == {"ok"}
    assert set(visits_by_key(remote)) == set(visits_by_key(local))  # both visits of each
    runs, cells = store.load_runs(remote), store.load_cells(remote)
    assert len(runs) == 1 and runs.gemm_gflops.iloc[0] > 0  # the machine's peaks
    assert (runs.machine == store.load_runs(local).machine).all()
    assert (cells.median_s > 0).all() and (cells.visits == 2).all()
    assert (cells.efficiency > 0).all()
    # Memory is deterministic: the workers' peaks are the local sweep's, byte for byte.
    assert peaks_by_key(remote) == peaks_by_key(local)


def peaks_by_key(db) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT cell_key, peak_bytes FROM cells"))
    finally:
        conn.close()


# Small cells whose peaks are a few KB to a few hundred KB: a stray allocation
# of another thread of the worker (its event loop, its profiler) shows in them.
MEMORY_CELLS = (
    ("bptt", {"T": 32, "n": 16, "B": 2, "cell": "gru"}),
    ("tbptt", {"T": 64, "n": 16, "B": 1, "k1": 8, "k2": 8}),
    ("rtrl", {"T": 8, "n": 8, "B": 1, "cell": "lstm"}),
)

# The local peaks, measured as a local sweep measures them: in a process with one
# thread (this one runs the client's event loop, whose allocations would count).
LOCAL_PEAKS = """
import json, sys
import bpttbench
from bpttbench.bench import measure
measure.set_threads(1)
cells, settings = json.loads(sys.argv[1]), measure.TimingSettings(**json.loads(sys.argv[2]))
print(json.dumps([
    measure.measure_visit(bpttbench.ALGORITHMS[a], size, "float64", 3, settings)["peak_bytes"]
    for a, size in cells
]))
"""


def test_a_cells_peak_memory_on_a_worker_equals_its_local_peak(client):
    import json

    from bpttbench.bench import measure

    cells = [(name, {**registry()[name].sizes, **fixed}) for name, fixed in MEMORY_CELLS]
    argv = [sys.executable, "-c", LOCAL_PEAKS, json.dumps(cells), json.dumps(FAST)]
    want = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    settings = measure.TimingSettings(**FAST)
    tasks = [
        cluster.VisitTask(name, tuple(sorted(size.items())), "float64", 3, settings, 1, True)
        for name, size in cells
    ]
    for _ in range(2):  # twice: a second visit of each cell, on whichever worker
        got = [client.submit(cluster.run_visit, t, pure=False).result() for t in tasks]
        assert [g["visit"]["peak_bytes"] for g in got] == want, [g.get("error") for g in got]


def test_the_memory_helper_reports_what_a_call_raised_and_outlives_its_own_death():
    import os

    from bpttbench.bench.cluster import memprobe

    try:
        pid = memprobe.call(os.getpid)
        assert pid != os.getpid() and memprobe.call(os.getpid) == pid  # one helper, kept
        with pytest.raises(memprobe.Failed, match=r"^ValueError: invalid literal"):
            memprobe.call(int, "x")
        assert memprobe.call(os.getpid) == pid  # a call that raised leaves it running
        with pytest.raises(memprobe.Failed, match=r"helper process ended \(exit status 3\)"):
            memprobe.call(os._exit, 3)
        assert memprobe.call(os.getpid) not in (pid, os.getpid())  # started again
    finally:
        assert memprobe.close() == 0  # its input closed, it exits cleanly


# --- the generic layer ---------------------------------------------------------------


def test_a_plan_whose_sweeps_share_cells_measures_each_cell_once(tmp_path, client):
    # Two sweeps that meet in the same cells (as --fixed makes them): each cell once.
    twice = {
        "settings": {**FAST, "visits": 2},
        "sweep": [{"algorithm": "bptt", "axis": "T", "values": [4, 8, 16, 32], "fixed": {"n": 4}}]
        * 2,
    }
    plan = plan_of(twice)
    db = tmp_path / "twice.sqlite"
    summary = sweep_on(client, plan, db)
    got = cells_by_key(db)
    assert set(got) == expected_keys(plan, store.load_cells(db).machine.iloc[0])
    assert len(got) == 4 and {s for s, *_ in got.values()} == {"ok"}
    assert summary.measured == 4 and summary.errors == 0
    assert len(visits_by_key(db)) == 8  # two visits of each


def test_each_worker_runs_one_job_at_a_time(client):
    pool = cluster.OneAtATime(client)
    assert pool.slots() == 2

    def span(i):
        t0 = time.time()
        time.sleep(0.15)
        return os.getpid(), t0, time.time()

    jobs = [cluster.Job(span, (i,), tag=i) for i in range(6)]
    jobs.append(cluster.Job(int, ("not a number",), tag="bad"))
    outcomes = list(pool.run(jobs, poll=0.1))
    assert sorted(o.job.tag for o in outcomes if o.error is None) == list(range(6))
    (bad,) = [o for o in outcomes if o.error is not None]
    assert bad.job.tag == "bad" and bad.error.startswith("ValueError: invalid literal")
    by_pid: dict[int, list] = {}
    for o in outcomes:
        if o.error is None:
            pid, t0, t1 = o.value
            by_pid.setdefault(pid, []).append((t0, t1))
    assert len(by_pid) == 2  # both workers took jobs ...
    for spans in by_pid.values():  # ... and never two at once
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


# --- machines: keys, pinned visits, the resume rule ----------------------------------


def name_machines(client, machine_of_host: dict[str, str] | None) -> None:
    """Make each worker report the machine ``machine_of_host[its host]`` (None: its own)."""

    def rename(mapping, dask_worker):
        from bpttbench.bench.cluster import worker as worker_side

        worker_side._META = None
        if mapping is not None:
            worker_side.fingerprint(1)
            worker_side._META = {**worker_side._META, "machine": mapping[dask_worker.ip]}

    client.run(rename, machine_of_host)


def test_cells_are_stored_under_the_machine_of_the_worker_that_measured_them(tmp_path, client):
    plan = plan_of(TINY)
    db = tmp_path / "r.sqlite"
    try:
        name_machines(client, {HOSTS[0]: "node-a", HOSTS[1]: "node-b"})
        first = sweep_on(client, plan, db)
        assert first.machines == ["node-a", "node-b"] and first.measured == 8
        rows = cells_by_key(db)
        on = {m: {k for k in rows if k.endswith("|" + m)} for m in ("node-a", "node-b")}
        assert on["node-a"] and on["node-b"] and len(rows) == 8  # both took cells, once each
        # Both visits of a cell were made on its machine, and stored under its key.
        assert set(visits_by_key(db)) == {(k, v) for k in rows for v in (1, 2)}
        runs = store.load_runs(db)
        assert sorted(runs.machine) == ["node-a", "node-b"]  # one run row per machine
        fits = fit.fit_table(store.load_cells(db), registry())
        assert {r.machine for r in fits} <= {"node-a", "node-b"}
        # The report charts one machine and says which machine measured what.
        data = slices.load_store(db, View.of(registry()))
        (note,) = [n for n in data.notes if n.startswith("Measured on 2 machines")]
        parts = {p.split(" (")[0]: p for p in note.removesuffix(".").split(": ", 1)[1].split("; ")}
        assert set(parts) == {"node-a", "node-b"}
        for m, part in parts.items():
            charted = ", charted" if m == data.config["machine"] else ""
            assert part.endswith(f"): {len(on[m])} cells of bptt{charted}")

        # A rerun through the same cluster measures nothing, whichever worker has a cell.
        assert sweep_on(client, plan, db).resumed == 8
        # A cluster of node-a alone: node-b's cells are not its own, so it measures them.
        name_machines(client, {HOSTS[0]: "node-a", HOSTS[1]: "node-a"})
        third = sweep_on(client, plan, db)
        assert (third.resumed, third.measured) == (len(on["node-a"]), len(on["node-b"]))
        after = cells_by_key(db)
        assert {k: after[k] for k in rows} == rows  # nothing earlier replaced
        assert len(after) == 8 + len(on["node-b"])
    finally:
        name_machines(client, None)


def test_a_worker_killed_mid_cell_loses_only_that_cell(tmp_path, client):
    """The client holds the store's lease meanwhile: a local sweep on it is refused."""
    grid = {
        "settings": {"min_time": 0.5, "round_time": 1e-3, "min_rounds": 2, "visits": 1},
        "sweep": [{"algorithm": "bptt", "axis": "T", "values": [4, 8, 16, 32], "fixed": {"n": 4}}],
    }
    plan = plan_of(grid)
    db = tmp_path / "r.sqlite"
    done: dict = {}
    runner = threading.Thread(target=lambda: done.update(s=sweep_on(client, plan, db)))
    runner.start()
    try:
        victim = None
        deadline = time.monotonic() + 30
        while victim is None and time.monotonic() < deadline:
            running = client.run(
                lambda dask_worker: [str(ts.key) for ts in dask_worker.state.executing]
            )
            victim = next(((a, k[0]) for a, k in running.items() if k), None)
            time.sleep(0.05)
        assert victim is not None, "no visit started"
        address, task = victim
        time.sleep(0.2)  # well inside its 0.5 s of timing
        pid = client.run(os.getpid, workers=[address])[address]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BenchError, match="being written by another sweep"):
            sweep.run_sweep(plan, db, registry(), measure_peak=False, progress=False)
    finally:
        runner.join(120)
    assert not runner.is_alive()
    summary = done["s"]
    assert (summary.measured, summary.errors) == (4, 0)
    rows = cells_by_key(db)
    assert set(rows) == expected_keys(plan, store.load_cells(db).machine.iloc[0])
    assert {s for s, *_ in rows.values()} == {"ok"}
    killed_size = int(task.split("-")[2].removeprefix("T"))  # visit-bptt-T16-v1-...
    assert killed_size in set(store.load_cells(db)["size"])
    client.wait_for_workers(2, timeout=180)  # the nanny restarted it


def _visit_or_die(task):
    """A visit that kills its worker process at T = 16 (as the OOM killer would)."""
    from bpttbench.bench.cluster import worker

    if dict(task.size).get("T") == 16:
        os.kill(os.getpid(), signal.SIGKILL)
    return worker._real_run_visit(task)


def test_a_cell_whose_workers_keep_dying_is_stored_as_an_error(tmp_path, client):
    """Past the scheduler's allowed failures (0 here) the cell is an error row with the reason;
    the sweep goes on with the others."""

    def patch(dask_worker=None, undo=False):
        from bpttbench.bench.cluster import worker

        if undo:
            worker.run_visit = getattr(worker, "_real_run_visit", worker.run_visit)
        else:
            worker._real_run_visit = worker.run_visit
            worker.run_visit = _visit_or_die

    def allowed(n, dask_scheduler):
        old, dask_scheduler.allowed_failures = dask_scheduler.allowed_failures, n
        return old

    plan = plan_of({**TINY, "sweep": TINY["sweep"][:1]})
    db = tmp_path / "r.sqlite"
    old = client.run_on_scheduler(allowed, 0)
    try:
        client.run(patch)
        summary = sweep_on(client, plan, db)
    finally:
        client.run_on_scheduler(allowed, old)
        client.wait_for_workers(2, timeout=180)  # the nanny restarted the killed one
        client.run(patch, undo=True)
    assert (summary.measured, summary.errors) == (3, 1)
    cells = store.load_cells(db).set_index("size")
    assert cells.loc[16, "status"] == "error"
    assert cells.loc[16, "reason"].startswith("KilledWorker: the workers running it died 1 times")
    assert (cells.drop(index=16)["status"] == "ok").all()


def test_a_client_killed_mid_sweep_loses_nothing_and_the_rerun_resumes(tmp_path, client):
    grid = tmp_path / "g.toml"
    grid.write_text(
        "[settings]\nmin_time = 0.2\nround_time = 0.001\nmin_rounds = 2\nvisits = 2\n\n"
        '[[sweep]]\nalgorithm = "bptt"\naxis = "T"\nvalues = [4, 8, 16, 32, 64]\n'
        "fixed = { n = 4 }\n"
    )
    db = tmp_path / "r.sqlite"
    argv = ["sweep", "--grid", str(grid), "--db", str(db), "--quiet"]
    address = client.scheduler.address
    proc = subprocess.Popen(
        [sys.executable, "-m", "bpttbench.bench.cli", *argv, "--scheduler", address],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists() and len(_visits_or_none(db)) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()
    rows_before = cells_by_key(db)
    visits_before = visits_by_key(db)
    assert len(visits_before) < 10  # killed mid-sweep

    assert cli.main([*argv, "--scheduler", address]) == 0
    rows = cells_by_key(db)
    plan = sweep.load_grid_file(grid, registry())
    machine = store.load_cells(db).machine.iloc[0]
    assert set(rows) == expected_keys(plan, machine)
    assert {s for s, *_ in rows.values()} == {"ok"}
    assert {k: rows[k] for k in rows_before} == rows_before  # finished rows untouched
    visits = visits_by_key(db)
    assert len(visits) == 10 and {k: visits[k] for k in visits_before} == visits_before
    runs = store.load_runs(db)  # the killed client's run and the rerun's, each with peaks
    assert len(runs) == 2 and (runs.gemm_gflops > 0).all() and (runs.machine == machine).all()


def _visits_or_none(db) -> list:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT cell_key FROM visits").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []


# --- quality runs ---------------------------------------------------------------------


def quality_jobs():
    from bpttbench.bench.quality import learning, runner
    from bpttbench.bench.quality.settings import Setting, delayed_add, online, tbptt

    task, tiny = delayed_add(2, 4), learning.Training(steps=40, B=2, n=6, lr=1e-2, rho=0.5)
    return [
        *(runner.Job("learning", task, tbptt(2, 1), seed, tiny) for seed in (0, 1)),
        runner.Job("fidelity", task, online("uoro", 1), 0, tiny, window=12, fid_seeds=2),
        runner.Job("vanishing", task, Setting("bptt"), 0, tiny, window=12),
    ]


def test_quality_jobs_on_a_cluster_store_the_rows_of_a_local_run(tmp_path, client):
    from bpttbench.bench.quality import learning, runner
    from bpttbench.bench.quality.settings import Setting, delayed_add

    jobs = quality_jobs()
    local = {r[runner.KEY]: r for r in runner.run_quality(jobs, tmp_path / "local.sqlite")}
    db = tmp_path / "cluster.sqlite"
    bad = runner.Job(
        "learning", delayed_add(2, 4), Setting("bptt"), 0, learning.Training(optimizer="nope")
    )
    failed: list = []
    rows = cluster.run_cluster_quality([*jobs, bad], db, client, failed=failed)
    assert [(j, r.split(":")[0]) for j, r in failed] == [(bad, "KeyError")]  # not stored
    got = {r[runner.KEY]: r for r in rows}
    assert set(got) == set(local)  # one machine: the very same keys, one row each
    for key, want in local.items():
        assert got[key]["machine"] == want["machine"]
        for col in ("final_loss", "cosine", "rel_err", "norm_ratio", "curve"):
            if want.get(col) is not None:
                assert got[key][col] == pytest.approx(want[col], rel=1e-9), (key, col)
    runs = store.load_runs(db)
    assert list(runs.preset) == ["quality:custom"] and runs.cpu.notna().all()

    # A rerun runs only what is missing (the failed job), whichever worker ran the rest.
    said: list[str] = []
    again = cluster.run_cluster_quality([*jobs, bad], db, client, say=said.append)
    assert said[0].startswith("quality: 4 of 5 rows already stored") and len(again) == 4
    try:  # two machines: each row under the machine of the worker that ran it
        name_machines(client, {HOSTS[0]: "node-a", HOSTS[1]: "node-b"})
        two = tmp_path / "two.sqlite"
        by_machine = Counter(r["machine"] for r in cluster.run_cluster_quality(jobs, two, client))
        assert set(by_machine) == {"node-a", "node-b"} and sum(by_machine.values()) == 4
        assert sorted(store.load_runs(two).machine) == ["node-a", "node-b"]  # a run row each
    finally:
        name_machines(client, None)


def test_the_quality_command_runs_on_a_scheduler(tmp_path, client, capsys, monkeypatch):
    from bpttbench.bench.quality import runner

    monkeypatch.setattr(runner, "preset_jobs", lambda name: quality_jobs())
    db = tmp_path / "q.sqlite"
    argv = ["quality", "--db", str(db), "--scheduler", client.scheduler.address]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert "quality: 4 rows in" in out and "tbptt" in out
    assert "2 worker(s)" in err and err.count(" s on ") == 4  # each job ran on a worker
    assert len(runner.load_rows(db)) == 4


# --- fits never mix machines ---------------------------------------------------------


def test_cells_from_two_machines_are_fitted_apart():
    reg = registry()
    rows = []
    for machine, factor in (("alpha", 1.0), ("beta", 3.0)):
        for T in (256, 512, 1024, 2048, 4096):
            size = {"T": T, "n": 64, "B": 1, "m": 1, "p": 1}
            rows.append(
                {
                    "algorithm": "bptt",
                    "axis": "T",
                    "size": T,
                    **size,
                    "dtype": "float64",
                    "numba_threads": 1,
                    "blas_threads": 1,
                    "machine": machine,
                    "status": "ok",
                    "median_s": factor * 1e-6 * T,  # linear in T on both, 3x slower on beta
                    "peak_bytes": 8 * T * 64,
                    "flops": reg["bptt"].flop_count(size),
                    "created": f"2024-01-0{1 if machine == 'alpha' else 2}",
                }
            )
    results = [r for r in fit.fit_table(pd.DataFrame(rows), reg) if r.metric == "time"]
    assert sorted(r.machine for r in results) == ["alpha", "beta"]
    by_machine = {r.as_dict()["machine"]: r for r in results}
    for r in by_machine.values():
        assert r.slope == pytest.approx(1.0, abs=1e-9)
    gap = by_machine["beta"].intercept - by_machine["alpha"].intercept
    assert gap == pytest.approx(np.log(3.0))  # each fitted on its own machine's cells


# --- the command line ----------------------------------------------------------------


@pytest.mark.parametrize("command", [["sweep", "--algorithms", "bptt", "--axes", "T"], ["quality"]])
@pytest.mark.parametrize("option", [["--local-cluster", "2"], ["--scheduler", "tcp://x:8786"]])
def test_without_the_extra_the_options_print_the_install_hint(
    tmp_path, capsys, monkeypatch, option, command
):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    db = tmp_path / "r.sqlite"
    argv = [*command, "--db", str(db), *option]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and cluster.INSTALL_HINT in err[0]
    assert not db.exists()


def test_bad_cluster_options_exit_2(tmp_path, capsys):
    need_distributed()
    db = tmp_path / "r.sqlite"
    base = ["sweep", "--algorithms", "bptt", "--axes", "T", "--db", str(db)]
    assert cli.main([*base, "--local-cluster", "0"]) == 2
    with pytest.raises(SystemExit):  # argparse: the two options exclude each other
        cli.main([*base, "--local-cluster", "2", "--scheduler", "tcp://x:8786"])
    capsys.readouterr()
    foreign = tmp_path / "foreign.sqlite"
    foreign.write_bytes(b"hello\n")  # refused before any cluster starts, and left untouched
    assert cli.main([*base[:-1], str(foreign), "--local-cluster", "2"]) == 2
    assert foreign.read_bytes() == b"hello\n"
    with pytest.raises(BenchError, match="cannot reach"):
        with cluster.connect(scheduler="tcp://127.0.0.1:9", timeout="1s"):
            pass
    assert not db.exists()


# --- the acceptance check: do two stores' exponents agree? ----------------------------


def _fit(slope, low, high, verdict, metric="time", fixed=None):
    return fit.FitResult(
        algorithm="bptt",
        axis="T",
        metric=metric,
        slope=slope,
        ci_low=low,
        ci_high=high,
        theory=1.0,
        verdict=verdict,
        window=[0, 5],
        local_slopes=[],
        n_points=5,
        source="test",
        fixed=fixed or {"n": 4},
    )


def test_exponents_agree_only_with_the_same_verdict_and_slopes_in_both_intervals():
    from bpttbench.bench.cluster import agree

    def one(a, b):
        (pair,) = agree.pair_fits([a], [b])
        return pair.agree

    assert one(_fit(1.0, 0.95, 1.05, "PASS"), _fit(1.02, 0.98, 1.06, "PASS"))
    # An exact exponent (flops) has an interval of no width; rounding must not split them.
    assert one(_fit(1.0 + 1e-13, 1.0, 1.0, "PASS"), _fit(1.0, 1.0, 1.0, "PASS"))
    assert not one(_fit(1.0, 0.95, 1.05, "PASS"), _fit(1.02, 0.9, 1.2, "INCONCLUSIVE"))
    assert not one(_fit(1.0, 0.95, 1.05, "PASS"), _fit(1.07, 0.99, 1.1, "PASS"))  # 1.07 > 1.05
    assert not one(_fit(1.0, 0.99, 1.01, "PASS"), _fit(1.03, 0.9, 1.2, "PASS"))  # 1.03 > 1.01
    # Fits are matched by sweep: another metric or fixed size is another fit, missing here.
    pairs = agree.pair_fits(
        [_fit(1.0, 0.9, 1.1, "PASS")], [_fit(1.0, 0.9, 1.1, "PASS", fixed={"n": 8})]
    )
    assert len(pairs) == 2 and not any(p.agree for p in pairs)
    assert "no fit in the second store" in agree.format_pairs(pairs, ("local", "cluster"))
    with pytest.raises(BenchError, match="several machines"):
        agree.pair_fits([_fit(1.0, 0.9, 1.1, "PASS"), _fit(1.0, 0.9, 1.1, "PASS")], [])


def test_agreement_is_judged_by_metric_and_says_what_disagrees(tmp_path, monkeypatch, capsys):
    from bpttbench.bench.cluster import agree

    def judged(a, b):
        (pair,) = agree.pair_fits([a], [b])
        return pair.judgement

    nan = float("nan")
    assert judged(_fit(1.0, 0.9, 1.1, "PASS"), _fit(1.0, 0.95, 1.05, "PASS")) == ("agree", "")
    # Too few sizes to fit in both stores (slope NaN): the same verdict, so they agree.
    assert judged(_fit(nan, nan, nan, "INCONCLUSIVE"), _fit(nan, nan, nan, "INCONCLUSIVE"))[0] == (
        "agree"
    )
    assert judged(_fit(nan, nan, nan, "INCONCLUSIVE"), _fit(1.0, 0.9, 1.1, "PASS")) == (
        "differ",
        "fitted in the second store only",
    )
    # Overlapping intervals with another verdict: consistent, and it says why.
    j = judged(_fit(1.98, 1.76, 2.2, "INCONCLUSIVE"), _fit(1.76, 1.41, 2.11, "FAIL"))
    assert j == ("consistent", "verdicts differ (INCONCLUSIVE vs FAIL), slopes 1.98 vs 1.76")
    j = judged(_fit(2.09, 2.05, 2.13, "PASS"), _fit(1.79, 1.7, 1.88, "FAIL"))
    assert j == ("differ", "intervals disjoint, slopes 2.09 vs 1.79")

    # Deterministic metrics: slopes within 0.01 agree even outside a near-empty interval.
    assert judged(
        _fit(0.0, -0.001, 0.001, "PASS", "memory"), _fit(0.008, 0.006, 0.01, "PASS", "memory")
    ) == ("agree", "")
    assert judged(_fit(0.0, -0.001, 0.001, "PASS"), _fit(0.008, 0.006, 0.01, "PASS"))[0] == (
        "differ"
    )
    # Memory must agree fit for fit; time must be at least consistent, unless reported only.
    mem = [_fit(0.0, -0.001, 0.001, "PASS", "memory"), _fit(0.04, 0.01, 0.06, "PASS", "memory")]
    time_ = [_fit(1.0, 0.99, 1.01, "PASS"), _fit(0.93, 0.9, 0.96, "PASS")]
    pairs = [*agree.pair_fits(mem[:1], mem[1:]), *agree.pair_fits(time_[:1], time_[1:])]
    assert [p.acceptable() for p in pairs] == [False, False]
    assert [p.acceptable(time_required=False) for p in pairs] == [False, True]
    text = agree.format_pairs(pairs, ("local", "cluster"), time_note="2 workers on 2 cores")
    assert 'memory  bptt along T (float64, {"n": 4}): differ, intervals disjoint' in text
    assert agree.CRITERION in text
    assert text.splitlines()[-3:] == [
        "== memory: 0 of 1 agree, 1 differ (must all agree: NO)",
        "== time: 0 of 1 agree, 1 differ (reported only: 2 workers on 2 cores)",
        "== all: 0 of 2 fitted exponents agree",
    ]

    # The command: time reported only decides nothing; memory still does.
    stores = {"a.sqlite": [mem[0], time_[0]], "b.sqlite": [mem[0], time_[1]]}
    monkeypatch.setattr(agree, "_fits_of", lambda db: stores[db])
    assert agree.main(["a.sqlite", "b.sqlite"]) == 1  # time differs
    assert agree.main(["--time-reported-only", "shared cores", "a.sqlite", "b.sqlite"]) == 0
    assert (
        "== time: 0 of 1 agree, 1 differ (reported only: shared cores)" in capsys.readouterr().out
    )
    stores["b.sqlite"] = [mem[1], time_[1]]
    assert agree.main(["--time-reported-only", "shared cores", "a.sqlite", "b.sqlite"]) == 1
    assert agree.main(["--time-reported-only", "a.sqlite", "b.sqlite"]) == 2  # no WHY


# A stand-in for the interpreter of reports/cluster/run.sh: the sweeps write an empty
# store, the comparison prints canned lines and exits with $FAKE_AGREE_STATUS; every
# call is logged to $FAKE_LOG.
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >>"$FAKE_LOG"
if [[ "$2" == bpttbench.bench.cli ]]; then
    while [[ $# -gt 0 && "$1" != --db ]]; do shift; done
    : >"$2"
    echo "run 1: 3 cells measured"
    exit 0
fi
echo "bptt T memory ... agree"
echo "== memory: 3 of 3 agree (must all agree: yes)"
echo "== time: 1 of 3 agree, 2 differ (reported only: shared)"
echo "== all: 4 of 6 fitted exponents agree"
exit "$FAKE_AGREE_STATUS"
"""
RUN_SH = Path(__file__).resolve().parent.parent / "reports" / "cluster" / "run.sh"


def run_acceptance(tmp_path, workers: int, agree_status: int):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    out = tmp_path / f"out-{workers}-{agree_status}"
    env = {
        **os.environ,
        "OUT": str(out),
        "PYTHON": str(fake),
        "WORKERS": str(workers),
        "SWEEP": "--algorithms bptt",
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "FAKE_AGREE_STATUS": str(agree_status),
    }
    done = subprocess.run(["bash", str(RUN_SH)], env=env, capture_output=True, text=True)
    calls = (tmp_path / "calls.log").read_text().splitlines()
    (tmp_path / "calls.log").unlink()
    summary = out / "summary.txt"
    return done, calls, summary.read_text() if summary.exists() else None


def test_the_acceptance_script_ends_with_a_summary_to_quote(tmp_path):
    # More workers than any machine has cores: time is reported only, and said why.
    done, calls, summary = run_acceptance(tmp_path, 10_000, 0)
    assert done.returncode == 0, done.stderr
    assert "--local-cluster 10000" in calls[1] and "--algorithms bptt" in calls[0]
    assert calls[2].startswith("-m bpttbench.bench.cluster.agree --time-reported-only 10000 ")
    lines = summary.splitlines()
    assert lines[0].startswith("== summary: preset quick (--algorithms bptt), ")
    assert lines[1].startswith("machine: ") and "physical cores" in lines[1]
    assert re.fullmatch(
        r"wall time: local \d+ s, LocalCluster of 10000 workers \d+ s \(speed-up [\d.]+x\)",
        lines[2],
    )
    assert lines[3].startswith("note: 10000 workers shared ")
    assert lines[4:] == [
        "fitted exponents, memory: 3 of 3 agree (must all agree: yes)",
        "fitted exponents, time: 1 of 3 agree, 2 differ (reported only: shared)",
        "fitted exponents, all: 4 of 6 fitted exponents agree",
        "acceptance: passed",
    ]
    assert summary in done.stdout  # printed, and written to summary.txt

    # No sharing: time decides as well; a failed comparison fails the script.
    done, calls, summary = run_acceptance(tmp_path, 0, 1)
    assert done.returncode == 1 and "--time-reported-only" not in calls[2]
    assert "note:" not in summary and summary.endswith("acceptance: FAILED\n")
    # A store that cannot be read: its status, no summary.
    done, _, summary = run_acceptance(tmp_path, 0, 2)
    assert done.returncode == 2 and summary is None


def test_quality_times_from_several_machines_are_never_averaged():
    from bpttbench.bench import fmt, quality_report

    def row(machine, seed, tps):
        return {
            "task": "delayed_add", "label": "tbptt(2)", "seed": seed, "machine": machine,
            "final_loss": 0.5, "baselines": {"nothing": 1.0}, "cosine": 0.9,
            "time_per_step_s": tps, "peak_bytes": 1000,
        }  # fmt: skip

    df = pd.DataFrame([row("node-a", 0, 1e-3), row("node-a", 1, 3e-3), row("node-b", 2, 1.0)])
    kept, note = quality_report.one_machine_times(df)
    assert "measured on node-a only" in note and "1 rows run on node-b" in note
    line = quality_report._learning_table(kept).splitlines()[-1]
    assert f"| {fmt.seconds(2e-3)} |" in line and "| 3 | 0.5000 |" in line  # all 3 seeds' loss
    one = df[df.machine == "node-a"]
    assert quality_report.one_machine_times(one) == (one, "")  # one machine: as it was


def test_the_helper_runs_without_what_the_nanny_set_for_the_worker():
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its workers, which made small
    cells up to 1.8x slower; the helper drops it, and only where it holds the nanny's value."""
    from bpttbench.bench.cluster.memprobe import helper_environ

    nanny = {"MALLOC_TRIM_THRESHOLD_": 65536, "OPENBLAS_NUM_THREADS": 1}
    worker = {"MALLOC_TRIM_THRESHOLD_": "65536", "OPENBLAS_NUM_THREADS": "4", "PATH": "/bin"}
    env = helper_environ(worker, nanny)
    assert "MALLOC_TRIM_THRESHOLD_" not in env
    assert env["OPENBLAS_NUM_THREADS"] == "4" and env["PATH"] == "/bin"  # the user's own
    assert helper_environ({"PATH": "/bin"}, {}) == {"PATH": "/bin"}
