"""The online rules' performance targets: measured into a file, read off it by the report."""

from __future__ import annotations

import json

import pytest
from bpttbench.bench import online_efficiency, online_targets
from bpttbench.bench.view import NoSource


def stored(x_uoro=2.5, x_snap1=3.5, stream32=0.04, stream128=-0.01):
    return {
        "T": 200,
        "rounds": 9,
        "B": 1,
        "dtype": "float64",
        "clock": "cpu",
        "machine": "test",
        "per_step": {
            "64": {
                "forward_s_per_step": 1e-6,
                "gemm_gflops": 60.0,
                "gemv_gflops": 20.0,
                "rules": {
                    "uoro": {
                        "T": 200,
                        "s_per_step": x_uoro * 1e-6,
                        "x_forward": x_uoro,
                        "cold_x_forward": 3.2,  # shown, not judged (the steady state is)
                    },
                    "snap1": {"T": 200, "s_per_step": x_snap1 * 1e-6, "x_forward": x_snap1},
                    "kf_rtrl": {"T": 200, "s_per_step": 9e-6, "x_forward": 9.0},
                },
            }
        },
        # chunks of 16 are below the target's 32: their excess is shown, not judged
        "stream": {"64": {"uoro": {"16": 0.3, "32": stream32, "64": 0.0, "128": stream128}}},
    }


def test_the_targets_are_judged_from_the_stored_figures():
    rows = {r["rule"]: r for r in online_targets.forward_rows(stored())}
    assert rows["uoro"]["ok"] is True and rows["snap1"]["ok"] is False
    assert rows["kf_rtrl"]["ok"] is None  # no target for the cubic rules
    (s,) = online_targets.stream_rows(stored())
    assert s["ok"] is True
    (s,) = online_targets.stream_rows(stored(stream32=0.06))
    assert s["ok"] is False
    md = online_targets.table(stored())
    assert "| UORO | 64 | 2.50 us | 2.50 | 3.20 | meets |" in md
    assert "| SnAp-1 | 64 | 3.50 us | 3.50 | - | **misses** |" in md  # a file without cold
    assert "+4.0%" in md and "-1.0%" in md
    assert "met 1 of 2" in online_targets.caption(stored())


def test_the_report_reads_the_file_beside_the_store(tmp_path):
    db = tmp_path / "r.sqlite"
    with pytest.raises(NoSource, match="online_efficiency --targets --json"):
        online_targets.load(db)
    (tmp_path / online_targets.FILE_NAME).write_text(json.dumps(stored()))
    data = online_targets.load(db)
    fig = online_targets.figure(data)
    assert len(fig.axes) == 2


def test_the_measurement_writes_what_the_report_reads(tmp_path):
    out = tmp_path / online_targets.FILE_NAME
    argv = ["--targets", "--rules", "uoro", "--n", "8", "--T", "32", "--rounds", "1"]
    online_efficiency.main([*argv, "--json", str(out)])
    data = json.loads(out.read_text())
    (row,) = online_targets.forward_rows(data)
    assert row["rule"] == "uoro" and row["n"] == 8 and row["x_forward"] > 0
    (s,) = online_targets.stream_rows(data)
    assert set(s["excess"]) == set(online_efficiency.CHUNKS)
    assert online_targets.table(data)
