"""The README's figures and the committed reference report come from the committed store.

- ``summary.json`` is regenerated from ``reports/reference/reference.sqlite`` and
  the committed benchmark JSON, and must equal the committed one;
- every figure the README quotes about the reference run is rendered here from
  that summary (:data:`FIGURES`) and must appear in the README's text, and every
  number between the README's figure markers must be one of them;
- the README's excerpt of ``bpttbench fit`` is what ``fit`` prints for that store;
- report.md regenerates from the store with the same text (the charts are not
  drawn here: their numbers are in the text).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bpttbench.bench import charts, fit, report
from bpttbench.bench.store import load_cells, load_runs

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "reports" / "reference"
DB = REFERENCE / "reference.sqlite"
BENCH_JSON = REFERENCE / "benchmark-reference.json"
README = ROOT / "README.md"
BEGIN, END = "<!-- figures:", "<!-- /figures -->"
REGENERATE = (
    "regenerate with: bpttbench report --db reports/reference/reference.sqlite "
    "--benchmark-json reports/reference/benchmark-reference.json --out reports/reference"
)


SIGNS = {"X": "\u00d7", "TO": "\u2013"}  # the README's times sign and en dash


def _threads(n: int) -> str:
    return "one thread" if n == 1 else f"{n} threads"


def _pct(x: float) -> str:
    return f"{x * 100:.0f}"


def _rtrl_vs_bptt(s) -> str:
    pair = s["pairs"]["rtrl_vs_bptt"]
    if pair["common_cells"] == 0:
        return "The reference run measured no (T, n, B) for both algorithms"
    return (
        f"The reference run measured {pair['common_cells']} sizes for both algorithms: RTRL "
        f"used less memory at {pair['a_lower']} of them, and {pair['agree']} of "
        f"{pair['compared']} fall on the side of the line that the models predict"
    )


def _cells(s, alg: str) -> str:
    """The gated cells' measured time ratio to the Elman cell's, beside the FLOP model's."""
    r = s["cells"]["ratios"][alg]
    return (
        "GRU {g[time_ratio][median]:.2g}{X} the Elman cell's time where the FLOP model "
        "predicts {g[flop_ratio][median]:.2g}{X}, LSTM {l[time_ratio][median]:.2g}{X} "
        "against {l[flop_ratio][median]:.2g}{X}"
    ).format(**SIGNS, g=r["gru"], l=r["lstm"])


def _slots(s, c: int) -> str:
    g = s["tradeoff"]["gruslys"]["slots"][f"c={c}"]
    return (
        f"c = {c} slots keep {_pct(1 - g['memory_saved'])}% of BPTT's peak memory for "
        f"{_pct(g['time_paid'])}% more time ({_pct(g['extra_forward'])}% more forward steps)"
    )


def _budget(s, alg: str) -> str:
    t = s["online_budget"]["algorithms"][alg]["time"]
    word = {"interpolated": "n = ", "at_least": "n \u2265 ", "below": "n < "}[t["bound"]]
    return f"{alg} {word}{t['n']:,.0f}"


# Each renders one phrase of the README from summary.json (``s``).
FIGURES = [
    lambda s: (
        f"the `{s['run']['preset']}` preset's sweeps ({s['run']['cells']} cells, "
        f"{s['run']['minutes']} minutes of measuring) on an {s['run']['cpu']} virtual "
        f"machine, {s['run']['dtype']}, {_threads(s['run']['numba_threads'])}"
    ),
    lambda s: (
        "{PASS} of {total} measured time and memory exponents PASS, {INCONCLUSIVE} "
        "INCONCLUSIVE, {FAIL} FAIL".format(**s["exponents"]["measured"])
    ),
    lambda s: "pass {PASS} of {total}".format(**s["exponents"]["model_check"]),
    lambda s: (
        "BPTT's line rises {b[theory]:g} decades per decade of n (fitted {b[slope]:.2f} "
        "[{b[ci_low]:.2f}, {b[ci_high]:.2f}]), RTRL's rises {r[theory]:g} ({r[slope]:.2f} "
        "[{r[ci_low]:.2f}, {r[ci_high]:.2f}])"
    ).format(**SIGNS, b=s["slopes"]["bptt"]["n"]["time"], r=s["slopes"]["rtrl"]["n"]["time"]),
    lambda s: "T > {c[T]:,.0f} at n = {c[n]}, B = {f[B]}".format(
        **SIGNS, c=s["pairs"]["rtrl_vs_bptt"]["crossover"], f=s["pairs"]["rtrl_vs_bptt"]["fixed"]
    ),
    _rtrl_vs_bptt,
    lambda s: (
        "measured at the same {p[common_cells]} sizes as BPTT along T: it used less memory at "
        "{p[a_lower]} of them, and {p[agree]} of {p[compared]} fall on the side of its "
        "boundary that the models predict; it took a median {p[time_ratio_median]:.2f}{X} "
        "BPTT's time"
    ).format(**SIGNS, p=s["pairs"]["tbptt_vs_bptt"]),
    lambda s: (
        f"({s['efficiency']['gemm_gflops']:.3g} GFLOP/s on {_threads(s['run']['numba_threads'])})"
    ),
    lambda s: (
        "RTRL runs at {r}{TO}{R}% of it, BPTT at {b}{TO}{B}% (lowest at n = {at[n]}, B = {at[B]}, "
        "T = {at[T]:,},"
    ).format(
        **SIGNS,
        r=_pct(s["efficiency"]["algorithms"]["rtrl"]["min"]),
        R=_pct(s["efficiency"]["algorithms"]["rtrl"]["max"]),
        b=_pct(s["efficiency"]["algorithms"]["bptt"]["min"]),
        B=_pct(s["efficiency"]["algorithms"]["bptt"]["max"]),
        at=s["efficiency"]["algorithms"]["bptt"]["min_at"],
    ),
    lambda s: (
        f"Against PyTorch {s['peers']['tools']['pytorch']['release']} (CPU, "
        f"{_threads(max(s['peers']['threads']))}, {s['run']['dtype']} unless said, gradients "
        f"equal to {s['peers']['max_rel_err']:.0e} or better, float32 included)"
    ),
    lambda s: (
        "BPTT at T = 1000, B = 1 is {r[n=16]:.3g}{X} faster at n = 16, {r[n=64]:.3g}{X} at "
        "n = 64, {r[n=256]:.3g}{X} at n = 256"
    ).format(**SIGNS, r=s["peers"]["groups"]["pytorch"]["bptt"]["T=1000,B=1"]["ratios"]),
    lambda s: (
        "at T = 100, B = 32, {g[min]:.2g}{TO}{g[max]:.2g}{X} faster for "
        "n = {g[n_min]}{TO}{g[n_max]}"
    ).format(**SIGNS, g=s["peers"]["groups"]["pytorch"]["bptt"]["T=100,B=32"]),
    lambda s: (
        "BPTT at T = 100, B = 32 takes {g[min]:.2g}{TO}{g[max]:.2g}{X} bpttbench's time "
        "for n = {g[n_min]}{TO}{g[n_max]}"
    ).format(**SIGNS, g=s["peers"]["groups"]["jax"]["bptt"]["T=100,B=32"]),
    lambda s: (
        "GRU and LSTM BPTT at T = 1000, B = 1 (`nn.GRU`, `nn.LSTM`): {g:.3g}{X} and "
        "{l:.3g}{X} faster at n = 64"
    ).format(
        **SIGNS,
        g=s["peers"]["groups"]["pytorch"]["bptt"]["T=1000,B=1,cell=gru"]["ratios"]["n=64"],
        l=s["peers"]["groups"]["pytorch"]["bptt"]["T=1000,B=1,cell=lstm"]["ratios"]["n=64"],
    ),
    lambda s: (
        "its GRU and LSTM at T = 100, B = 32 take {g[min]:.2g}{TO}{g[max]:.2g}{X} and "
        "{l[min]:.2g}{TO}{l[max]:.2g}{X} bpttbench's time for n = {g[n_min]}{TO}{g[n_max]}"
    ).format(
        **SIGNS,
        g=s["peers"]["groups"]["jax"]["bptt"]["T=100,B=32,cell=gru"],
        l=s["peers"]["groups"]["jax"]["bptt"]["T=100,B=32,cell=lstm"],
    ),
    lambda s: "BPTT: " + _cells(s, "bptt"),
    lambda s: "RTRL: " + _cells(s, "rtrl"),
    lambda s: _slots(s, 35),
    lambda s: "Gruslys et al. report {m}% saved for {t}% more time at T = {r[T]}".format(
        r=s["tradeoff"]["gruslys"]["reported"],
        m=_pct(s["tradeoff"]["gruslys"]["reported"]["memory_saved"]),
        t=_pct(s["tradeoff"]["gruslys"]["reported"]["time_paid"]),
    ),
    lambda s: "costs at most {t:g} ms per step of one sequence".format(
        t=s["online_budget"]["time_per_step_s"] * 1e3
    ),
    lambda s: _slots(s, 3),
    lambda s: "{u}, {s1}, {rf}, {kf}, {rk}".format(
        u=_budget(s, "uoro"),
        s1=_budget(s, "snap1"),
        rf=_budget(s, "rflo"),
        kf=_budget(s, "kf_rtrl"),
        rk=_budget(s, "r_kf"),
    ),
    lambda s: "exact RTRL {r}".format(r=_budget(s, "rtrl").split(" ", 1)[1]),
]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def summary() -> dict:
    return report.summarize(DB, [BENCH_JSON])


def _same(a, b, where="summary") -> None:
    """Equal, floats to a relative 1e-5 (the summary keeps six significant digits)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-5), where
    else:
        assert a == b, where


def test_the_committed_summary_is_what_the_store_gives(summary):
    committed = json.loads((REFERENCE / "summary.json").read_text())
    _same(committed, json.loads(json.dumps(summary)), f"summary ({REGENERATE})")


def test_every_figure_the_readme_quotes_is_the_summarys(summary):
    text = _flat(README.read_text())
    for render in FIGURES:
        phrase = render(summary)
        assert phrase in text, f"README does not say: {phrase!r}"


def test_every_number_in_the_readmes_figures_comes_from_the_summary(summary):
    readme = README.read_text()
    region = readme[readme.index(BEGIN) : readme.index(END)]
    region = _flat(re.sub(r"<!--.*?-->", " ", region, flags=re.S))
    covered = [False] * len(region)
    for render in FIGURES:
        phrase = render(summary)
        for m in re.finditer(re.escape(phrase), region):
            covered[m.start() : m.end()] = [True] * len(phrase)
    loose = [m.group() for m in re.finditer(r"\d[\d,.]*", region) if not covered[m.start()]]
    assert not loose, f"numbers in the README's figures that no FIGURES entry renders: {loose}"


def test_the_readmes_fit_excerpt_is_what_fit_prints_for_the_reference_store():
    results = fit.fit_table(load_cells(DB), None, load_runs(DB))  # as `bpttbench fit` does
    printed = set((fit.format_table(results) + "\n" + fit.headline(results)).splitlines())
    readme = README.read_text()
    block = readme.split("$ bpttbench fit --db reports/reference/reference.sqlite\n", 1)[1]
    lines = block.split("```", 1)[0].splitlines()
    assert len(lines) > 5
    for line in lines:
        assert line == "..." or line in printed, line


def test_the_reference_report_regenerates_with_the_same_text(tmp_path, monkeypatch):
    """report.md from the committed store equals the committed one (charts not drawn)."""

    def no_files(fig, out_dir, name):
        return [out_dir / f"{name}.png", out_dir / f"{name}.svg"]

    monkeypatch.setattr(charts, "save", no_files)
    out = tmp_path / "reference"
    rep = report.make_report(DB, [BENCH_JSON], out)
    assert rep.path.read_text() == (REFERENCE / "report.md").read_text(), REGENERATE
    for chart in (c for c in rep.drawn if c.files):  # every chart it links is committed
        assert (REFERENCE / "charts" / f"{chart.name}.png").is_file(), chart.name
