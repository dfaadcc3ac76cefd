"""Algorithms from other packages: the entry-point group ``bpttbench.algorithms``.

The unit tests load entry points made here (``importlib.metadata.EntryPoint``
objects that name modules written to a temporary folder); the acceptance test
installs a plugin the way pip would, as a dist-info folder on ``PYTHONPATH``,
and drives the command line and the benchmark suite in subprocesses, with no
edit anywhere in ``bench/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import bpttbench
import pytest
from bpttbench.bench.view import View
from bpttbench.registry import ENTRY_POINT_GROUP, PluginWarning, load_plugins

TWIN_MODULE = """
import dataclasses

import bpttbench

SPEC = dataclasses.replace(bpttbench.ALGORITHMS["bptt"], name="bptt_twin", title="BPTT twin")


def make():
    return dataclasses.replace(SPEC, name="bptt_made", title="BPTT made")


NOT_A_SPEC = 42


def broken():
    raise RuntimeError("the plugin's own bug")


BAD_AXIS = dataclasses.replace(SPEC, name="bad_axis", exponents={("zz", "time"): None})
TAKEN = dataclasses.replace(SPEC, name="bptt")
"""


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """A module ``twin_plugin`` on sys.path holding good and bad plugin objects."""
    (tmp_path / "twin_plugin.py").write_text(TWIN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "twin_plugin"
    sys.modules.pop("twin_plugin", None)


def entry(name: str, value: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def core() -> dict:
    return {k: v for k, v in bpttbench.ALGORITHMS.items() if k in ("bptt", "tbptt", "rtrl")}


def test_a_spec_and_a_callable_returning_one_are_added_after_the_core(plugin_module):
    reg = core()
    added = load_plugins(
        reg, [entry("twin", f"{plugin_module}:SPEC"), entry("made", f"{plugin_module}:make")]
    )
    assert added == ["bptt_made", "bptt_twin"]  # loaded in order of the entry points' names
    assert list(reg) == ["bptt", "tbptt", "rtrl", "bptt_made", "bptt_twin"]
    assert reg["bptt_twin"].title == "BPTT twin"
    assert reg["bptt_twin"].func is bpttbench.bptt


@pytest.mark.parametrize(
    ("attr", "why"),
    [
        ("NOT_A_SPEC", "expected an AlgorithmSpec"),
        ("broken", "the plugin's own bug"),
        ("BAD_AXIS", "unknown axis 'zz'"),
        ("TAKEN", "already registered"),
        ("NO_SUCH_NAME", "AttributeError"),
    ],
)
def test_a_broken_plugin_warns_with_its_name_and_the_core_is_untouched(plugin_module, attr, why):
    reg = core()
    bad, good = entry("bad_one", f"{plugin_module}:{attr}"), entry("twin", f"{plugin_module}:SPEC")
    with pytest.warns(PluginWarning, match=rf"plugin 'bad_one' .*{why}"):
        added = load_plugins(reg, [bad, good])
    assert added == ["bptt_twin"]  # the good plugin still loads
    assert reg["bptt"] is bpttbench.ALGORITHMS["bptt"]


def test_a_plugin_that_cannot_be_imported_warns(tmp_path):
    reg = core()
    with pytest.warns(PluginWarning, match=r"plugin 'gone' \(no_such_module_xyz:SPEC\).*Module"):
        assert load_plugins(reg, [entry("gone", "no_such_module_xyz:SPEC")]) == []
    assert list(reg) == ["bptt", "tbptt", "rtrl"]


def test_no_plugins_installed_leaves_the_registry_as_it_is(monkeypatch):
    monkeypatch.setattr(metadata, "entry_points", lambda group: [])
    reg = core()
    assert load_plugins(reg) == []
    assert list(reg) == ["bptt", "tbptt", "rtrl"]


def test_a_spec_without_the_optional_fields_works():
    spec = bpttbench.ALGORITHMS["bptt"]
    bare = dataclasses.replace(
        spec, name="bare", style=None, pairs=(), peers={}, chart_axes=None, axis_labels={}
    )
    assert bare.own_chart_axes() == ("T", "n")  # the first two of its axes


# --- acceptance: a plugin installed as pip would, and no edit in bench/ -----------------

REPO = Path(__file__).resolve().parents[1]
TWIN = """
import dataclasses

import bpttbench

SPEC = dataclasses.replace(bpttbench.ALGORITHMS["bptt"], name="bptt_twin", title="BPTT twin")
"""


@pytest.fixture(scope="module")
def twin_site(tmp_path_factory):
    """A folder holding the plugin module and its dist-info, as ``pip install`` leaves them."""
    site = tmp_path_factory.mktemp("site")
    (site / "bptt_twin_plugin.py").write_text(TWIN)
    info = site / "bptt_twin_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bptt-twin-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nbptt_twin = bptt_twin_plugin:SPEC\n"
    )
    return site


def run_with_plugin(site: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def cli(site: Path, tmp: Path, *args: str) -> str:
    return run_with_plugin(site, ["-m", "bpttbench.bench.cli", *args], tmp).stdout


def test_a_plugin_is_swept_fitted_reported_and_benchmarked_with_no_edit_in_bench(
    twin_site, tmp_path
):
    db = str(tmp_path / "twin.sqlite")
    # sweep: the twin's presets come from its spec (BPTT's, copied); only the sizes are cut.
    out = cli(
        twin_site, tmp_path, "sweep", "--algorithms", "bptt", "bptt_twin", "--axes", "T",
        "--points", "T=16,32,64,128", "--min-time", "0.01", "--db", db, "--quiet",
    )  # fmt: skip
    assert "0 failed" in out
    plan = cli(twin_site, tmp_path, "sweep", "--algorithms", "bptt_twin", "--dry-run", "--db", db)
    assert "bptt_twin" in plan and "n=64" in plan  # BPTT's quick sweep along T at n = 64
    # fit --json has the twin's rows
    rows = json.loads(cli(twin_site, tmp_path, "fit", "--json", "--db", db))
    twin = {(r["algorithm"], r["axis"], r["metric"]) for r in rows if r["algorithm"] == "bptt_twin"}
    assert {("bptt_twin", "T", "time"), ("bptt_twin", "T", "memory")} <= twin
    # the report draws it, in a style of its own
    cli(twin_site, tmp_path, "report", "--db", db, "--out", str(tmp_path / "report"))
    md = (tmp_path / "report" / "report.md").read_text()
    assert "BPTT twin" in md
    reg = dict(bpttbench.ALGORITHMS)
    reg["bptt_twin"] = dataclasses.replace(reg["bptt"], name="bptt_twin", title="BPTT twin")
    view = View.of(reg)
    assert view.style("bptt_twin") != view.style("bptt")
    svg = (tmp_path / "report" / "charts" / "time_vs_T.svg").read_text().lower()
    for name in ("bptt", "bptt_twin"):
        assert f"stroke: {view.style(name).colour.lower()}" in svg, name
    # the pytest-benchmark suite collects the twin's cases from its spec
    collected = run_with_plugin(
        twin_site,
        ["-m", "pytest", "bench/", "--collect-only", "-q", "-p", "no:cacheprovider"],
        REPO,
    ).stdout
    cases = [line for line in collected.splitlines() if "[bptt_twin-vs-" in line]
    n_cases = sum(len(c.values) for c in bpttbench.ALGORITHMS["bptt"].bench_cases)
    assert len(cases) == n_cases > 0


def test_a_broken_installed_plugin_leaves_the_command_line_working(tmp_path):
    site = tmp_path / "site"
    info = site / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "broken_plugin.py").write_text("raise ImportError('a dependency is missing')\n")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nbroken = broken_plugin:SPEC\n")
    done = run_with_plugin(site, ["-m", "bpttbench.bench.cli", "sweep", "--dry-run"], tmp_path)
    assert "plan quick" in done.stdout and "rtrl" in done.stdout
    assert "PluginWarning" in done.stderr and "plugin 'broken'" in done.stderr
    assert "a dependency is missing" in done.stderr
