"""A sweep killed with SIGKILL at any moment, inside a write or not, resumes to the store an
uninterrupted sweep makes: nothing lost, nothing duplicated, every cell agreeing with its
visits, SQLite's integrity check ok (issue 8).

The sweeps are real processes: ``tests/fake_cli.py`` is the command line with the fake
registry, whose store transactions pause before COMMIT and say so on stderr, so that half
of the kills land inside a write; the other half land at random moments.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

from bpttbench.bench import store
from fakes import assert_consistent

HERE = Path(__file__).resolve().parent
KILLS = 20
PAUSE = 0.05  # seconds each write waits before its COMMIT: a kill lands inside one often
GRID = """
[settings]
min_time = 0.001
round_time = 0.0001
min_rounds = 2
visits = 2

[[sweep]]
algorithm = "fake_rnn"
axis = "T"
values = [4, 8, 16, 32]
fixed = { n = 8 }

[[sweep]]
algorithm = "fake_mlp"
axis = "width"
values = [4, 8, 16, 32]
"""


def sweep(grid: Path, db: Path, pause: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "BPTTBENCH_TEST_COMMIT_PAUSE": str(pause)}
    argv = [sys.executable, str(HERE / "fake_cli.py"), "sweep", "--grid", str(grid), "--quiet"]
    return subprocess.Popen(
        [*argv, "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def wait_for_commit(proc: subprocess.Popen, n: int) -> bool:
    """Wait until the sweep's n-th write transaction is about to commit; False if it ended."""
    return any(line.strip() == f"commit-pending {n}" for line in proc.stderr)


def kill(proc: subprocess.Popen) -> bool:
    """SIGKILL the sweep; False if it had already finished."""
    alive = proc.poll() is None
    proc.kill()
    proc.communicate()
    if not alive:
        assert proc.returncode == 0
    return alive


def finished(db: Path) -> dict:
    """What a reader sees: the measured cells, by key."""
    df = store.load_cells(db)
    assert not df.duplicated("created").any() or len(df) == len(set(df.index))
    keys = store.cell_key  # the columns a key is made of are all in the frame
    del keys
    ok = df[df.status == "ok"]
    return {
        (r.algorithm, r.axis, r.size): (r.median_s, r.created, r.rounds) for r in ok.itertuples()
    }


def test_twenty_sigkills_then_resume_give_the_uninterrupted_store(tmp_path):
    t0 = time.monotonic()
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    reference_db = tmp_path / "reference.sqlite"
    reference = sweep(grid, reference_db)  # runs beside the kills

    db = tmp_path / "killed.sqlite"
    rng = random.Random(8)
    kills, inside, kept, trace = 0, 0, {}, []
    while kills < KILLS:
        proc = sweep(grid, db, pause=PAUSE)
        if kills % 2 == 0:  # inside the n-th write: the store's open, the lease, the run, a visit
            reached = wait_for_commit(proc, rng.randint(1, 10))
            killed = kill(proc) and reached
            inside += killed
        else:  # at a random moment among the cells' visits, once the run row is written
            wait_for_commit(proc, 3)
            time.sleep(rng.uniform(0.0, 0.5))
            killed = kill(proc)
        if not killed:
            continue
        kills += 1
        now = finished(db)
        assert {k: now[k] for k in kept} == kept, "a finished cell was lost or changed"
        kept = now
        trace.append(len(kept))
        assert_consistent(db)

    before_resume = len(kept)
    resumed = sweep(grid, db)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    reference.communicate(timeout=120)
    assert reference.returncode == 0

    final, expected = finished(db), finished(reference_db)
    assert set(final) == set(expected)  # nothing lost, nothing more
    assert {k: final[k] for k in kept} == kept
    assert assert_consistent(db) == assert_consistent(reference_db) == 8
    cells = store.load_cells(db)
    assert len(cells) == 8 and (cells.status == "ok").all() and (cells.visits == 2).all()
    runs = len(store.load_runs(db))
    print(
        f"{kills} kills ({inside} inside a transaction), {before_resume} of 8 cells finished "
        f"by then (after each kill: {trace}), {runs} runs, {time.monotonic() - t0:.0f} s"
    )
