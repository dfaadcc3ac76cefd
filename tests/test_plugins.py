"""Algorithms from other packages: the entry-point group ``bpttbench.algorithms``.

The unit tests load entry points made here (``importlib.metadata.EntryPoint``
objects that name modules written to a temporary folder); the acceptance test
installs a plugin the way pip would, as a dist-info folder on ``PYTHONPATH``,
and drives the command line and the benchmark suite in subprocesses, with no
edit anywhere in ``bench/``.
"""

from __future__ import annotations

import dataclasses
import sys
from importlib import metadata

import bpttbench
import pytest
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
