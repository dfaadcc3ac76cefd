"""``bpttbench quality``: fidelity, vanishing gradients, online learning, the store, the command.

Tiny budgets throughout: the preset's figures are measured by the command, not here.
"""

from __future__ import annotations

import json
from dataclasses import replace

import bpttbench
import helpers
import numpy as np
import pytest
from bpttbench.bench import BenchError, cli, store
from bpttbench.bench.quality import cells as qcells
from bpttbench.bench.quality import fidelity as fid
from bpttbench.bench.quality import learning, runner, vanishing
from bpttbench.bench.quality.settings import (
    Setting,
    bptt_chunk,
    delayed_add,
    network,
    online,
    spectral_radius,
    tbptt,
)

TASK = delayed_add(2, 4)
TINY = learning.Training(steps=40, B=2, n=6, lr=1e-2, rho=0.5)


@pytest.fixture
def window():
    data = TASK.make(20, 1, 0)
    return network(6, 1, 1, 0, rho=0.9), data.xs, data.ys


@pytest.mark.parametrize(
    "setting", [online("rtrl", 1), online("snap2", 1), tbptt(40, 1), bptt_chunk(20)], ids=str
)
def test_fidelity_of_exact_algorithms_is_one(window, setting):
    p, xs, ys = window
    f = fid.fidelity(setting, p, xs, ys)
    assert abs(f["cosine"] - 1.0) < 1e-12
    assert f["rel_err"] < 1e-12
    assert abs(f["norm_ratio"] - 1.0) < 1e-12


def test_a_planted_sign_error_in_an_approximation_is_detected(window, monkeypatch):
    p, xs, ys = window
    honest = fid.fidelity(online("snap1", 1), p, xs, ys)
    real = bpttbench.snap1

    def flipped(params, xs, ys):  # the recurrent gradient's sign flipped (readout exact)
        loss, g = real(params, xs, ys)
        return loss, g._replace(W_ih=-g.W_ih, W_hh=-g.W_hh, b_h=-g.b_h)

    monkeypatch.setattr(bpttbench, "snap1", flipped)
    planted = fid.fidelity(online("snap1", 1), p, xs, ys)
    assert honest["cosine"] > 0.5
    assert planted["cosine"] < 0.0
    assert planted["rel_err"] > 1.0 > honest["rel_err"]


def test_stochastic_bias_is_apart_from_spread(window):
    p, xs, ys = window
    f = fid.fidelity(online("uoro", 1), p, xs, ys, seeds=16)
    assert f["seeds"] == 16 and f["spread"] > 0
    assert f["bias_rel_err"] < f["rel_err"]  # averaging seeds removes variance, not bias


def test_truncation_shorter_than_the_window_is_not_exact(window):
    p, xs, ys = window
    f = fid.fidelity(tbptt(2, 1), p, xs, ys)
    assert f["rel_err"] > 1e-6


def test_spectral_radius_is_rescaled():
    assert spectral_radius(network(8, 1, 1, 3, rho=1.25).W_hh) == pytest.approx(1.25)


def test_vanishing_rate_follows_the_spectral_radius():
    data = TASK.make(40, 4, 0)
    small = vanishing.measure(0.5, 16, 40, data, 0)
    large = vanishing.measure(1.5, 16, 40, data, 0)
    assert small["fitted_rate"] < 1.0 and small["predicted_rate"] < large["predicted_rate"]
    assert small["fitted_rate"] < large["fitted_rate"]
    assert len(small["curve"]) == 40 and small["curve"][-1] < small["curve"][0]


def test_learning_run_reports_its_measurements():
    r = learning.train(tbptt(4, 2), TASK, TINY, seed=0)
    assert not r["diverged"] and r["steps_run"] == 40
    assert np.isfinite(r["final_loss"]) and r["time_per_step_s"] > 0 and r["peak_bytes"] > 0
    assert r["baselines"]["nothing"] == 0.078125 and r["threshold"] == pytest.approx(0.046875)
    assert -1.0 <= r["cosine"] <= 1.0


def test_a_diverging_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    huge = learning.Training(steps=40, B=2, n=6, optimizer="sgd", lr=1e12, clip=None, rho=0.5)
    jobs = [
        runner.Job("learning", TASK, online("rflo", 1), 0, huge),
        runner.Job("learning", TASK, online("snap1", 1), 0, TINY),
    ]
    rows = runner.run_quality(jobs, tmp_path / "q.sqlite")
    by = {r["label"]: r for r in rows}
    assert by["rflo"]["diverged"] and by["rflo"]["final_loss"] is None and by["rflo"]["reason"]
    assert not by["snap1"]["diverged"] and by["snap1"]["final_loss"] is not None


def _jobs():
    return [runner.Job("learning", TASK, tbptt(2, 1), seed, TINY) for seed in (0, 1)] + [
        runner.Job("fidelity", TASK, online("uoro", 1), 0, TINY, window=12, fid_seeds=2)
    ]


def test_resume_skips_finished_rows(tmp_path):
    db = tmp_path / "q.sqlite"
    ran: list[str] = []

    def counting(job):
        ran.append(job.kind)
        if len(ran) == 2:
            raise KeyboardInterrupt  # killed during the second job
        return runner.run_job(job)

    with pytest.raises(KeyboardInterrupt):
        runner.run_quality(_jobs(), db, runner=counting)
    assert len(runner.load_rows(db)) == 1
    ran.clear()
    rows = runner.run_quality(_jobs(), db, runner=lambda j: ran.append(j.kind) or runner.run_job(j))
    assert len(ran) == 2 and len(rows) == 3
    ran.clear()
    runner.run_quality(_jobs(), db, runner=lambda j: ran.append(j.kind) or runner.run_job(j))
    assert ran == [] and len(runner.load_rows(db)) == 3
    runs = store.load_runs(db)
    assert set(runs["preset"]) == {"quality:custom"} and runs["machine"].notna().all()


def _fake(job):
    return {"final_loss": 0.5, "cosine": 1.0, "time_per_step_s": 1e-6, "baselines": {"x": 1}}


def test_quality_refuses_a_store_a_live_sweep_is_writing(tmp_path):
    db = tmp_path / "q.sqlite"
    holder = store.connect(db)
    store.acquire_lease(holder)  # this process stands in for a live sweep
    try:
        ran: list[str] = []
        with pytest.raises(BenchError, match="being written by another sweep"):
            runner.run_quality(_jobs(), db, runner=lambda j: ran.append(j.kind) or _fake(j))
        assert ran == [] and runner.load_rows(db) == []
    finally:
        store.release_lease(holder)
        holder.close()
    assert len(runner.run_quality(_jobs(), db, runner=_fake)) == 3  # the lease was given back


def test_text_in_a_numeric_quality_column_is_refused_on_reading(tmp_path):
    import sqlite3

    db = tmp_path / "q.sqlite"
    runner.run_quality(_jobs(), db, runner=_fake)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE quality SET final_loss = 'low'")
    conn.commit()
    conn.close()
    with pytest.raises(BenchError, match=r"quality\.final_loss"):
        runner.load_rows(db)


def test_quality_json_has_the_published_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "preset_jobs", lambda name: _jobs())
    db = tmp_path / "q.sqlite"
    assert cli.main(["quality", "--json", "--db", str(db)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3
    need = {"task", "lags", "algorithm", "cell", "setting", "final_loss", "baselines", "cosine",
            "rel_err", "time_per_step_s", "peak_bytes", "diverged"}  # fmt: skip
    for r in rows:
        assert need <= set(r)
    learn = [r for r in rows if r["kind"] == "learning"]
    assert learn[0]["lags"] == [2, 4] and learn[0]["setting"]["k1"] == 1
    assert learn[0]["setting"]["k2"] == 2 and learn[0]["cell"] == "elman"
    assert learn[0]["k1"] == 1 and isinstance(learn[0]["k1"], int)
    assert isinstance(learn[0]["diverged"], bool) and learn[0]["baselines"]["nothing"] > 0


def test_quality_refuses_an_unknown_task(tmp_path, capsys):
    assert cli.main(["quality", "--task", "nope", "--db", str(tmp_path / "q.sqlite")]) == 2
    assert "nope" in capsys.readouterr().err


def test_the_quick_preset_holds_the_acceptance_data():
    jobs = runner.preset_jobs("quick")
    learn = [j for j in jobs if j.kind == "learning"]
    labels = {j.setting.name for j in learn}
    want = {"tbptt k=2", "tbptt k=6", "tbptt k=12", "rtrl", "bptt-chunk 16"}
    assert want | {"uoro", "kf_rtrl", "r_kf", "snap1", "snap2", "rflo"} <= labels
    assert {j.seed for j in learn} >= {0, 1}
    assert all(j.task.lags() == (5, 9) and j.training.n == 32 for j in learn)
    assert all(j.training.optimizer == "adam" for j in learn)
    assert isinstance(learn[0].setting, Setting)


# --- the report's Quality section ---------------------------------------------------------


def test_report_quality_section_with_rows(tmp_path):
    from bpttbench.bench import report

    db = tmp_path / "q.sqlite"
    jobs = [runner.Job("learning", TASK, s, 0, TINY) for s in (tbptt(2, 1), tbptt(6, 1))]
    jobs += [runner.Job("learning", TASK, online("rtrl", 1), 0, TINY)]
    jobs += [runner.Job("fidelity", TASK, online("snap1", 1), 0, TINY, window=12)]
    jobs += [runner.Job("vanishing", TASK, Setting("bptt"), 0, TINY, window=12)]
    runner.run_quality(jobs, db)
    rep = report.make_report(db, [], tmp_path / "out")
    quality = {c.name: c for c in rep.charts if c.section == "Quality"}
    assert set(quality) == set(runner_names()) and all(not c.skipped for c in quality.values())
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Quality" in md and "theirs (sketched-rtrl)" in md and "fitted rate" in md
    assert (tmp_path / "out" / "charts" / "quality_frontier.png").exists()


def test_report_quality_section_without_rows(tmp_path):
    from bpttbench.bench import report

    rep = report.make_report(tmp_path / "none.sqlite", [], tmp_path / "out")
    quality = [c for c in rep.charts if c.section == "Quality"]
    assert len(quality) == 4 and all("no quality rows" in c.skipped for c in quality)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "## Quality" not in md and "no quality rows" in md


def runner_names():
    from bpttbench.bench import quality_report

    return quality_report.NAMES


def test_run_adds_a_quality_pass_unless_told_not_to(tmp_path, monkeypatch, capsys):
    from bpttbench.bench import sweep

    tiny = {
        "settings": {"min_time": 0.001, "round_time": 0.0005, "min_rounds": 2, "visits": 1},
        "sweep": [{"algorithm": "bptt", "axis": "T", "values": [4, 8, 16, 32], "fixed": {"n": 4}}],
    }
    monkeypatch.setattr(sweep, "preset_grid", lambda name, registry: tiny)
    monkeypatch.setattr(runner, "preset_jobs", lambda name: _jobs())
    db = tmp_path / "r.sqlite"
    argv = ["run", "--db", str(db), "--no-report", "--quiet"]
    assert cli.main([*argv, "--no-quality"]) == 0
    assert "quality pass" not in capsys.readouterr().out and runner.load_rows(db) == []
    assert cli.main(argv) == 0
    assert "quality pass: 3 rows" in capsys.readouterr().out
    assert len(runner.load_rows(db)) == 3


# --- the gated cells ---------------------------------------------------------------

GATED = ("gru", "lstm")


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_numpy_cells_forward_gives_the_kernels_loss(cell):
    # The learning runs score the online predictions with this forward pass.
    data = TASK.make(12, 2, 0)
    p = network(5, 1, 1, 0, rho=0.9, cell=cell)
    yhat, _, _ = qcells.run(p, qcells.zero_state(p, 2), data.xs)
    want = bpttbench.bptt(p, data.xs, data.ys)[0]
    assert 0.5 * float(np.sum((yhat - data.ys) ** 2)) == pytest.approx(want, rel=1e-12)


def test_numpy_elman_forward_runs_the_leak():
    data = TASK.make(12, 2, 0)
    p = helpers.with_alpha(network(5, 1, 1, 0, rho=0.9), 0.4)
    yhat, _, _ = qcells.run(p, qcells.zero_state(p, 2), data.xs)
    want = bpttbench.bptt(p, data.xs, data.ys)[0]
    assert 0.5 * float(np.sum((yhat - data.ys) ** 2)) == pytest.approx(want, rel=1e-12)


def _torch_state_errors(torch, p, xs, ys, cell):
    """dL_T/dh_t (and, for the LSTM, the partial dL_T/dc_t holding h_t) by autograd."""
    n, m = p.W_out.shape[1], xs.shape[2]
    mod = (torch.nn.GRUCell if cell == "gru" else torch.nn.LSTMCell)(m, n).double()
    with torch.no_grad():
        for f in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(mod, f).copy_(torch.from_numpy(getattr(p, f)))
    B = xs.shape[1]
    h = torch.zeros(B, n, dtype=torch.float64)
    c = torch.zeros(B, n, dtype=torch.float64)
    hs, cs = [], []
    for t in range(xs.shape[0]):
        x = torch.from_numpy(xs[t])
        if cell == "gru":
            h = mod(x, h)
        else:
            h, c = mod(x, (h, c))
            c.retain_grad()
            cs.append(c)
        h.retain_grad()
        hs.append(h)
    e = h @ torch.from_numpy(p.W_out).T + torch.from_numpy(p.b_out) - torch.from_numpy(ys[-1])
    (0.5 * (e**2).sum()).backward()
    return hs, cs


@pytest.mark.parametrize("cell", GATED)
def test_gated_state_errors_match_torch_autograd(cell):
    torch = helpers.reference("torch")
    data = TASK.make(10, 2, 0)
    p = network(4, 1, 1, 0, rho=1.2, cell=cell)
    dhs, dcs, stored = vanishing.state_errors(p, data.xs, data.ys)
    hs, cs = _torch_state_errors(torch, p, data.xs, data.ys, cell)
    T = len(hs)
    for lag in range(T):
        t = T - 1 - lag
        np.testing.assert_allclose(dhs[lag], hs[t].grad.numpy(), rtol=1e-10, atol=1e-14)
        if cell == "lstm":
            s = stored[t]
            partial = cs[t].grad.numpy() - hs[t].grad.numpy() * s["o"] * (1.0 - s["tc"] ** 2)
            np.testing.assert_allclose(dcs[lag], partial, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("cell", GATED)
def test_gated_spectral_radius_scales_each_gate_block(cell):
    p = network(6, 1, 1, 3, rho=1.25, cell=cell)
    for b in range(p.weight_hh.shape[0] // 6):
        assert spectral_radius(p.weight_hh[b * 6 : (b + 1) * 6]) == pytest.approx(1.25)


@pytest.mark.parametrize("cell", GATED)
def test_gated_vanishing_rows_and_the_linearised_rate(cell):
    data = TASK.make(30, 4, 0)
    small = vanishing.measure(0.5, 8, 30, data, 0, cell)
    large = vanishing.measure(1.5, 8, 30, data, 0, cell)
    assert small["fitted_rate"] < large["fitted_rate"]
    assert small["predicted_rate"] == pytest.approx(small["carry"] + 0.5 * small["gain"])
    assert 0.0 < small["carry"] < 1.0 and small["gain"] > 0.0
    # The mean-field rate tracks the fitted one at these sizes (within 0.08 measured).
    for r in (small, large):
        assert r["predicted_rate"] == pytest.approx(r["fitted_rate"], abs=0.1)


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("setting", [online("rtrl", 1), tbptt(20, 1)], ids=str)
def test_gated_fidelity_of_exact_algorithms_is_one(cell, setting):
    data = TASK.make(20, 1, 0)
    p = network(4, 1, 1, 0, rho=0.9, cell=cell)
    f = fid.fidelity(setting, p, data.xs, data.ys)
    assert f["cosine"] == pytest.approx(1.0, abs=1e-12) and f["rel_err"] < 1e-12


@pytest.mark.parametrize("cell", GATED)
def test_gated_truncation_shorter_than_the_window_is_not_exact(cell):
    data = TASK.make(20, 1, 0)
    p = network(4, 1, 1, 0, rho=0.9, cell=cell)
    assert fid.fidelity(tbptt(2, 1), p, data.xs, data.ys)["rel_err"] > 1e-3


@pytest.mark.parametrize("cell", GATED)
def test_gated_learning_run_through_the_truncated_stream(cell):
    r = learning.train(tbptt(4, 2), TASK, replace(TINY, cell=cell), seed=0)
    assert not r["diverged"] and r["steps_run"] == 40 and np.isfinite(r["final_loss"])
    assert -1.0 <= r["cosine"] <= 1.0 and r["peak_bytes"] > 0


def test_gated_learning_refuses_an_online_rule():
    with pytest.raises(ValueError, match="Elman cell only"):
        learning.train(online("rtrl", 1), TASK, replace(TINY, cell="gru"), seed=0)


def test_report_quality_section_renders_gated_rows_and_two_lag_pairs(tmp_path):
    from bpttbench.bench import report

    db = tmp_path / "q.sqlite"
    wide = delayed_add(2, 5)
    jobs = [runner.Job("learning", t, tbptt(k, 1), 0, TINY) for t in (TASK, wide) for k in (2, 6)]
    jobs += [runner.Job("learning", TASK, tbptt(2, 1), 0, replace(TINY, cell="gru"))]
    jobs += [runner.Job("fidelity", TASK, online("rtrl", 1), 0, replace(TINY, cell="lstm"),
                        window=12)]  # fmt: skip
    jobs += [runner.Job("vanishing", TASK, Setting("bptt"), 0, replace(TINY, cell=c), window=12)
             for c in ("elman", "lstm")]  # fmt: skip
    runner.run_quality(jobs, db)
    assert {r["cell"] for r in runner.load_rows(db)} == {"elman", "gru", "lstm"}
    rep = report.make_report(db, [], tmp_path / "out")
    quality = {c.name: c for c in rep.charts if c.section == "Quality"}
    assert all(not c.skipped for c in quality.values())
    md = (tmp_path / "out" / "report.md").read_text()
    assert "gru tbptt k=2" in md and "lstm rtrl" in md and "| lstm | 0.5 |" in md
    assert "| 2,4 | elman | adam | 6 |" in md and "| 2,5 | elman | adam | 6 |" in md


def _fake_result(job):
    """Plausible measurements without training: the report's input from a plan, fast."""
    if job.kind == "learning":
        base = job.task.make(job.task.period() * 2, 1, 0).baselines
        return {"final_loss": 0.01 * (1 + job.seed), "baselines": dict(base), "threshold": 0.05,
                "steps_to_threshold": 100, "time_per_step_s": 1e-4 * (job.setting.k2 or 3),
                "peak_bytes": 1000 + job.training.n, "cosine": 0.9, "diverged": False}  # fmt: skip
    if job.kind == "fidelity":
        return {"cosine": 0.9, "rel_err": 0.3, "norm_ratio": 1.0, "bias_cosine": 0.9,
                "bias_rel_err": 0.3, "spread": 0.0}  # fmt: skip
    return {"curve": [0.9**i for i in range(job.window)], "fitted_rate": 0.9,
            "predicted_rate": 0.8}  # fmt: skip


def test_report_renders_from_a_store_holding_the_full_plan(tmp_path):
    # Every row of the full preset, faked: the section must hold them all.
    from bpttbench.bench import report

    db = tmp_path / "q.sqlite"
    jobs = runner.preset_jobs("full")
    rows = runner.run_quality(jobs, db, "full", runner=_fake_result)
    assert len(rows) == len(jobs)
    rep = report.make_report(db, [], tmp_path / "out")
    quality = {c.name: c for c in rep.charts if c.section == "Quality"}
    assert set(quality) == set(runner_names()) and all(not c.skipped for c in quality.values())
    md = (tmp_path / "out" / "report.md").read_text()
    for text in ("lstm tbptt k=6", "gru bptt-chunk 16", "| gru | 1.5 |", "| 3,12 | elman |"):
        assert text in md


def test_full_preset_holds_the_gated_cells_and_the_truncation_sweeps():
    jobs = runner.preset_jobs("full")
    for cell in GATED:
        kinds = {j.kind for j in jobs if j.training.cell == cell}
        assert kinds == {"learning", "fidelity", "vanishing"}
        learn = {
            j.setting.algorithm for j in jobs if j.training.cell == cell and j.kind == "learning"
        }
        assert learn == {"tbptt"}  # the online rules' streams are Elman's
    k_at = {}
    for j in jobs:
        if j.kind == "learning" and j.setting.name.startswith("tbptt k="):
            k_at.setdefault(j.task.lags(), set()).add(j.setting.k2)
    assert {2, 4, 6, 8, 10, 12} <= k_at[(5, 9)] and {2, 5, 13} <= k_at[(3, 12)]


def test_uoro_runs_with_its_own_adam_step():
    for name in ("quick", "full"):
        learn = [j for j in runner.preset_jobs(name) if j.kind == "learning"]
        lrs = {j.training.lr for j in learn if j.setting.algorithm == "uoro"
               and j.training.optimizer == "adam"}  # fmt: skip
        assert lrs == {1e-3}
        assert {j.training.lr for j in learn if j.setting.algorithm == "rtrl"
                and j.training.optimizer == "adam"} == {3e-3}  # fmt: skip


def test_summary_table_keeps_cells_and_lag_pairs_apart():
    def row(cell, lags, loss):
        return {"kind": "learning", "task": "delayed_add", "lags": lags, "cell": cell,
                "label": "tbptt k=6", "optimizer": "adam", "final_loss": loss, "cosine": 1.0,
                "time_per_step_s": 1e-4, "diverged": False}  # fmt: skip

    text = runner.summary_table(
        [row("elman", [5, 9], 0.01), row("gru", [5, 9], 0.03), row("elman", [3, 12], 0.02)]
    )
    lines = text.splitlines()[1:]
    assert len(lines) == 3 and any("gru tbptt k=6" in x and "0.0300" in x for x in lines)
    assert any("3,12" in x and "0.0200" in x for x in lines)
