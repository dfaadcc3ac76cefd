"""Chart styles and labels come from the registry: distinct, stable, and for any number.

A style is a colour, a marker and a line style; ``charts.assign_styles`` gives
each algorithm its own by registry order (a spec's explicit ``style`` first),
so a plugin's algorithm never shares a style with a built-in one.
"""

from __future__ import annotations

import dataclasses
import itertools

import bpttbench
from bpttbench.bench.charts import OKABE_ITO, assign_styles, default_style
from bpttbench.bench.view import View
from bpttbench.costs import Style


def _key(style: Style) -> tuple:
    return (style.colour.lower(), style.marker, str(style.linestyle))


def _many(count: int) -> dict:
    bptt = bpttbench.ALGORITHMS["bptt"]
    return {f"alg{i}": dataclasses.replace(bptt, name=f"alg{i}") for i in range(count)}


def test_the_built_in_algorithms_keep_their_look():
    styles = assign_styles(bpttbench.ALGORITHMS)
    assert (styles["bptt"].colour, styles["bptt"].marker) == (OKABE_ITO["blue"], "o")
    assert (styles["rtrl"].colour, styles["rtrl"].marker) == (OKABE_ITO["vermillion"], "^")
    assert len({_key(s) for s in styles.values()}) == len(styles)


def test_every_algorithm_gets_its_own_style_whatever_their_number():
    for count in (1, 5, 72, 73, 300, 1000):
        styles = assign_styles(_many(count))
        assert len({_key(s) for s in styles.values()}) == count
    # Neighbours in the registry differ in colour and in marker (first 72).
    seq = [default_style(i) for i in range(72)]
    for a, b in itertools.pairwise(seq):
        assert a.colour != b.colour and a.marker != b.marker


def test_styles_are_stable_when_algorithms_are_added_after():
    few = assign_styles(_many(4))
    more = assign_styles(_many(40))
    assert all(more[name] == style for name, style in few.items())


def test_an_explicit_style_is_kept_and_a_copied_one_is_not_shared():
    own = Style("#123456", "*", "--")
    reg = dict(bpttbench.ALGORITHMS)
    reg["rtrl"] = dataclasses.replace(reg["rtrl"], style=own)
    reg["rtrl_twin"] = dataclasses.replace(reg["rtrl"], name="rtrl_twin")  # copies the style
    styles = assign_styles(reg)
    assert styles["rtrl"] == own
    assert styles["rtrl_twin"] != own
    assert len({_key(s) for s in styles.values()}) == len(reg)


def test_a_plugin_twin_differs_from_the_spec_it_copies():
    reg = dict(bpttbench.ALGORITHMS)
    reg["bptt_twin"] = dataclasses.replace(reg["bptt"], name="bptt_twin", title="BPTT twin")
    view = View.of(reg)
    assert view.style("bptt_twin") != view.style("bptt")
    assert view.style("bptt") == View.of(bpttbench.ALGORITHMS).style("bptt")


def test_names_found_only_in_the_data_get_free_styles_too():
    view = View.of(bpttbench.ALGORITHMS, extra=["from_json"])
    taken = {_key(view.style(n)) for n in bpttbench.ALGORITHMS}
    assert _key(view.style("from_json")) not in taken
    later = view.style("seen_later")
    assert _key(later) not in taken | {_key(view.style("from_json"))}


def test_axis_labels_come_from_the_spec_then_the_registry():
    reg = dict(bpttbench.ALGORITHMS)
    slots = dataclasses.replace(
        reg["bptt"],
        name="slots",
        axis_vars={**reg["bptt"].axis_vars, "c": ("c",)},
        axis_labels={"c": "checkpoint slots c"},
    )
    view = View.of({**reg, "slots": slots})
    assert view.axis_label("c") == "checkpoint slots c"
    assert view.axis_label("T") == "sequence length T (steps)"
    assert view.axis_name("n") == "state size n"
    assert "c" in view.axes() and view.axis_label("unknown") == "unknown"
