"""The command line under hostile input (issue 8): outputs that would destroy data, paths that
are not files, numbers out of range, interrupts. Every refusal is one line on stderr, exit 2,
and nothing written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bpttbench.bench import cli, store
from fakes import make_registry

REPO = Path(__file__).resolve().parent.parent
FAST = "[settings]\nmin_time = 0.001\nround_time = 0.0001\nmin_rounds = 2\nvisits = 1\n"
TINY_GRID = FAST + '[[sweep]]\nalgorithm = "bptt"\naxis = "T"\nvalues = [4, 8, 16, 32]\n'


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("bpttbench: error: "), err
    return err[0]


@pytest.fixture
def db(tmp_path) -> Path:
    """A store with one run and three measured cells of the fake registry."""
    from bpttbench.bench import sweep

    path = tmp_path / "s.sqlite"
    grid = {
        "settings": {"min_time": 1e-3, "round_time": 1e-4, "min_rounds": 2},
        "sweep": [{"algorithm": "fake_rnn", "axis": "T", "values": [4, 8, 16, 32]}],
    }
    reg = make_registry()
    plan = sweep.parse_grid(grid, reg, "test")
    sweep.run_sweep(plan, path, reg, measure_peak=False, progress=False)
    return path


@pytest.fixture
def tiny_grid(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_GRID)
    return path


# --- 1. no output path is ever the store, nor a file the tool did not write ----------


def test_export_onto_the_store_is_refused_however_it_is_spelled(db, tmp_path, capsys, monkeypatch):
    before = digest(db)
    link = tmp_path / "hard.sqlite"
    os.link(db, link)
    sym = tmp_path / "sym.sqlite"
    sym.symlink_to(db)
    monkeypatch.chdir(tmp_path)
    for out in (str(db), "s.sqlite", "./sub/../s.sqlite", str(link), str(sym)):
        (tmp_path / "sub").mkdir(exist_ok=True)
        assert cli.main(["export", "--db", str(db), "-o", out]) == 2
        assert "store" in one_error_line(capsys)
        assert cli.main(["export", "--db", str(db), "-o", out, "--force"]) == 2
        assert "store" in one_error_line(capsys)
    assert digest(db) == before


def test_export_refuses_a_file_it_did_not_write_unless_forced(db, tmp_path, capsys):
    out = tmp_path / "notes.csv"
    out.write_text("my notes, not a bpttbench export\n")
    assert cli.main(["export", "--db", str(db), "-o", str(out)]) == 2
    assert "--force" in one_error_line(capsys)
    assert out.read_text() == "my notes, not a bpttbench export\n"
    assert cli.main(["export", "--db", str(db), "-o", str(out), "--force"]) == 0
    assert out.read_text().startswith("run_id,algorithm,axis,size,")
    capsys.readouterr()
    # A file the tool wrote is its own: exporting again (either table) needs no --force.
    assert cli.main(["export", "--db", str(db), "-o", str(out), "--table", "runs"]) == 0
    assert out.read_text().startswith("run_id,started,")
    assert cli.main(["export", "--db", str(db), "-o", str(out)]) == 0


def test_report_refuses_a_report_md_it_did_not_write_and_the_store(db, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("# my own notes\n")
    assert cli.main(["report", "--db", str(db), "--out", str(out)]) == 2
    assert "--force" in one_error_line(capsys)
    assert (out / "report.md").read_text() == "# my own notes\n"
    assert cli.main(["report", "--db", str(db), "--out", str(db)]) == 2
    one_error_line(capsys)
    before = digest(db)
    assert cli.main(["report", "--db", str(db), "--out", str(db.parent), "--force"]) in (0, 2)
    assert digest(db) == before


# --- 7. paths that are not what they should be ----------------------------------------


@pytest.mark.parametrize("command", ["fit", "export", "sweep"])
def test_dev_null_as_the_store_is_refused(command, tiny_grid, capsys):
    argv = [command, "--db", os.devnull]
    if command == "sweep":
        argv += ["--grid", str(tiny_grid)]
    assert cli.main(argv) == 2
    assert "not a regular file" in one_error_line(capsys)


def test_a_fifo_as_the_store_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "fifo.sqlite"
    os.mkfifo(fifo)
    proc = subprocess.run(
        [sys.executable, "-m", "bpttbench.bench.cli", "fit", "--db", str(fifo)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert "not a regular file" in proc.stderr and "Traceback" not in proc.stderr


def test_export_to_a_directory_or_a_missing_folder_is_one_line(db, tmp_path, capsys):
    assert cli.main(["export", "--db", str(db), "-o", str(tmp_path)]) == 2
    assert "directory" in one_error_line(capsys)
    assert cli.main(["export", "--db", str(db), "-o", str(tmp_path / "no" / "x.csv")]) == 2
    assert "does not exist" in one_error_line(capsys)


def test_report_out_an_existing_file_is_one_line(db, tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert cli.main(["report", "--db", str(db), "--out", str(f)]) == 2
    assert "not a directory" in one_error_line(capsys)
    assert f.read_text() == "x"


UNPRIVILEGED = """
import json, sys
from bpttbench.bench import cli
out = []
for argv in json.loads(sys.argv[1]):
    out.append(cli.main(argv))
print(json.dumps(out))
"""


CANNOT_DROP = 97  # exit status of the child when it could not give up root's file powers


def _drop_root_file_powers() -> None:  # pragma: no cover - runs in the child
    """As root, give up CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so permissions apply."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            os._exit(CANNOT_DROP)


def run_unprivileged(argvs: list[list[str]], cwd: Path) -> subprocess.CompletedProcess:
    """Run cli.main on each argv in a process for which read-only files are read-only.

    Root may write any file, so as root the child gives up that power first.
    """
    import json

    root = os.geteuid() == 0
    proc = subprocess.run(
        [sys.executable, "-c", UNPRIVILEGED, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        preexec_fn=_drop_root_file_powers if root else None,
    )
    if proc.returncode == CANNOT_DROP:
        pytest.skip("running as root without the right to drop CAP_DAC_OVERRIDE")
    return proc


# preexec_fn makes subprocess fork through Python, and JAX (imported by the peers
# tests earlier in a session) warns at every fork; the child only drops two
# capabilities and execs, so the warning does not apply.
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_read_only_paths_are_one_line_errors(db, tiny_grid, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    store_ro = work / "store.sqlite"
    shutil.copy(db, store_ro)
    store_ro.chmod(0o444)
    grid = work / "tiny.toml"
    shutil.copy(tiny_grid, grid)
    grid.chmod(0o444)
    csv_ro = work / "old.csv"
    csv_ro.write_text("run_id,algorithm,axis,size\n")
    csv_ro.chmod(0o444)
    ro_dir = work / "ro-dir"
    ro_dir.mkdir()
    ro_dir.chmod(0o555)
    before = digest(store_ro)
    argvs = [
        ["sweep", "--grid", str(grid), "--db", str(store_ro), "--quiet"],
        ["export", "--db", str(store_ro), "-o", str(csv_ro)],
        ["export", "--db", str(store_ro), "-o", str(ro_dir / "x.csv")],
        ["report", "--db", str(store_ro), "--out", str(ro_dir)],
        ["fit", "--db", str(store_ro)],
    ]
    proc = run_unprivileged(argvs, work)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("bpttbench: error:")]
    assert proc.stdout.strip().splitlines()[-1] == "[2, 2, 2, 2, 0]", proc.stderr
    assert len(errors) == 4, proc.stderr
    assert all("read-only" in e or "not writable" in e for e in errors), errors
    assert digest(store_ro) == before


# --- 6. numbers out of range -------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        ["--points", f"T=8,16,32,{2**64}"],
        ["--points", "T=16:99999999999999999999:4"],
        ["--points", "T=16:1024:100000000"],
        ["--fixed", f"n={2**64}"],
        ["--fixed", "n=1e3"],
        ["--max-memory", "inf"],
        ["--max-memory", "1e400"],
        ["--max-memory", "nan"],
        ["--min-time", "inf"],
        ["--min-time", "nan"],
        ["--max-cell-seconds", "inf"],
        ["--seed", "-1"],
        ["--seed", str(2**64)],
        ["--threads", "1000"],
    ],
)
def test_numbers_out_of_range_are_one_line_errors_before_anything_is_written(
    extra, tiny_grid, tmp_path, capsys
):
    db = tmp_path / "r.sqlite"
    assert cli.main(["sweep", "--grid", str(tiny_grid), "--db", str(db), "--quiet", *extra]) == 2
    one_error_line(capsys)
    assert not db.exists()


@pytest.mark.parametrize("value", [2**64, -3, 0])
def test_a_grid_file_with_sizes_out_of_range_is_refused(value, tmp_path, capsys):
    grid = tmp_path / "g.toml"
    grid.write_text(
        FAST + f'[[sweep]]\nalgorithm = "bptt"\naxis = "T"\nvalues = [4, 8, 16, {value}]\n'
    )
    db = tmp_path / "r.sqlite"
    assert cli.main(["sweep", "--grid", str(grid), "--db", str(db)]) == 2
    one_error_line(capsys)
    assert not db.exists()


# --- 8. interrupts -----------------------------------------------------------------------


def interrupt(*_args, **_kwargs):
    raise KeyboardInterrupt


def main_catching(argv) -> int:
    try:
        return cli.main(argv)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped cli.main")


def test_ctrl_c_while_the_report_module_loads_is_a_clean_exit(monkeypatch, tmp_path, capsys):
    real = cli.importlib.import_module

    def slow_import(name, *args):
        if name.endswith(".report"):
            raise KeyboardInterrupt
        return real(name, *args)

    monkeypatch.setattr(cli.importlib, "import_module", slow_import)
    assert main_catching(["report", "--db", str(tmp_path / "x.sqlite")]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "resume" not in err and "saved" not in err


def test_ctrl_c_in_fit_does_not_claim_cells_were_saved(db, monkeypatch, capsys):
    from bpttbench.bench import fit

    monkeypatch.setattr(fit, "fit_table", interrupt)
    assert main_catching(["fit", "--db", str(db)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "resume" not in err and "saved" not in err


def test_ctrl_c_in_a_sweep_says_the_finished_cells_are_saved(
    tiny_grid, tmp_path, monkeypatch, capsys
):
    from bpttbench.bench import measure

    monkeypatch.setattr(measure, "measure_visit", interrupt)
    db = tmp_path / "r.sqlite"
    argv = ["sweep", "--grid", str(tiny_grid), "--db", str(db), "--quiet"]
    assert main_catching(argv) == 130
    err = capsys.readouterr().err
    assert "saved" in err and "resume" in err


def test_ctrl_c_during_export_leaves_no_half_written_file(db, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cells.csv"
    monkeypatch.setattr(store.pd.DataFrame, "to_csv", interrupt)
    assert main_catching(["export", "--db", str(db), "-o", str(out)]) == 130
    assert not out.exists()
    assert list(tmp_path.glob("*.csv*")) == []
