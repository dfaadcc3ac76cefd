"""The budget guard counts everything a cell allocates (issue 8): the problem data and its
construction, the kernel's working memory, and the memory pass; checked against the peak
resident memory of real cells in fresh processes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import bpttbench
import numpy as np
import pytest
from bpttbench.bench import budget, sweep
from bpttbench.bench.measure import TimingSettings, peak_memory

REG = bpttbench.ALGORITHMS
GiB = 2**30


def estimate(spec, size, dtype="float64") -> float:
    return budget.cell_bytes(spec, size, dtype)


def cell(name, **size):
    spec = REG[name]
    full = {**spec.sizes, **size}
    return sweep.Cell(name, "T", full.get("T", 0), full, "float64")


def _arrays(obj):
    """The arrays of a problem, in order (parameters are named tuples, maybe nested)."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [a for x in obj for a in _arrays(x)]
    return []


@pytest.mark.parametrize("name", list(REG))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_problem_data_is_counted_as_make_problem_builds_it(name, dtype):
    spec = REG[name]
    size = dict(spec.sizes)
    arrays = _arrays(spec.make_problem(size, np.dtype(dtype).type, 0))
    assert sorted(budget.problem_arrays(spec, size)) == sorted(a.size for a in arrays)
    held, _ = budget.problem_bytes(spec, size, np.dtype(dtype).itemsize)
    assert held == sum(a.nbytes for a in arrays)


@pytest.mark.parametrize("name", list(REG))
def test_the_input_checks_make_no_copies_of_the_problem(name):
    """The guard counts no validated copies: a call allocates what the kernel's model says.

    The sizes put the data at a third or more of the model (wide inputs and outputs,
    one layer), so a copy of xs, ys or x would break the 10% margin.
    """
    spec = REG[name]
    big = {"T": 4096, "B": 16, "n": 4, "m": 64, "p": 64} if spec.family == "rnn" else {}
    size = {**spec.sizes, **big, **({"depth": 1, "B": 4096} if spec.family == "mlp" else {})}
    args = spec.make_problem(size, np.float64, 0)
    spec.func(*args)
    data = sum(a.nbytes for a in _arrays(args[1:]))
    model = spec.memory_bytes(size, 8)
    assert data > model / 3
    assert peak_memory(lambda: spec.func(*args)) <= 1.10 * model + 64 * 1024


@pytest.mark.parametrize("name", ["bptt", "rtrl", "tbptt"])
def test_a_billion_steps_is_refused_under_16_gib(name):
    c = cell(name, T=10**9, n=1)  # bptt's states: 7.45 GiB
    reason = sweep.budget_check(REG[name], c, [], 16 * GiB, 1e9, TimingSettings())
    assert reason is not None and "--max-memory" in reason
    # xs and ys alone hold T B (m + p) numbers.
    assert estimate(REG[name], c.size) >= 2 * 10**9 * 8


PEAK_RSS = """
import json, sys
import numpy as np
import bpttbench
from bpttbench.bench.measure import TimingSettings, measure_visit, set_threads

set_threads(1)  # as a sweep runs by default (at more, BPTT copies its batch blocks' inputs)

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

name, size, dtype = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
spec = bpttbench.ALGORITHMS[name]
# Compile at the default (small) sizes first: JIT memory is the process's, not the cell's.
args = spec.make_problem(dict(spec.sizes), np.dtype(dtype).type, 0)
spec.func(*args)
del args
try:  # forget the compiler's peak: the high-water mark restarts from the resident size now
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
base, high = status("VmRSS"), status("VmHWM")
settings = TimingSettings(min_time=0.01, round_time=0.001, min_rounds=2, max_rounds=3)
measure_visit(spec, size, dtype, 0, settings, False, True)
print(json.dumps({"base": base, "high_before": high, "peak": status("VmHWM")}))
"""

# Cells of 100 to 300 MB: the problem data leads in the first (tbptt keeps a window
# of states, xs and ys hold T B numbers each), the kernel's states in the second,
# the parameters (and their gradients) in the third.
RSS_CELLS = [
    ("tbptt", {"T": 400_000, "n": 16, "B": 16, "k1": 16, "k2": 16}),
    ("bptt", {"T": 80_000, "n": 16, "B": 16}),
    ("backprop", {"depth": 4, "width": 2048, "B": 1}),
]
FACTOR = 1.5  # the estimate bounds the measured growth, and exceeds it by at most this


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_the_estimate_bounds_the_peak_rss_of_real_cells():
    """Peak resident memory is read as VmHWM, not ``getrusage``'s ru_maxrss: a child
    started by vfork and exec inherits its parent's maximum there (the pytest process's)."""
    procs = []
    for name, size in RSS_CELLS:
        full = {**REG[name].sizes, **size}
        argv = [sys.executable, "-c", PEAK_RSS, name, json.dumps(full), "float64"]
        procs.append((name, full, subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)))
    for name, full, proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        got = json.loads(out)
        grew = got["peak"] - got["base"]
        guess = estimate(REG[name], full)
        assert got["peak"] > got["high_before"], "the cell did not raise the high-water mark"
        print(f"{name} {full}: peak RSS grew {grew / 2**20:.1f} MiB, estimate "
              f"{guess / 2**20:.1f} MiB, ratio {guess / grew:.2f}")  # fmt: skip
        assert grew <= guess <= FACTOR * grew, (name, grew, guess)
