"""Every parallel kernel at 1, 2 and 4 threads (Numba's and BLAS's): the same bits on
every call at a given count, and right at every count.

The parallel kernels: exact RTRL for the Elman cell, the GRU and the LSTM,
parallel over slabs (kernels/rtrl.py, rtrl_gru.py, rtrl_lstm.py), and BPTT,
truncated BPTT, RFLO and SnAp-1 parallel over batch blocks
(kernels/_batch_parallel.py). At each thread count every kernel runs twice and
must return the same bits both times (a race on shared scratch shows as a
difference, or as a wrong gradient), then equal its one-thread result and the
NumPy reference (tests/naive.py, naive_cells.py, naive_online.py) to the exact
tolerance. RTRL never regroups a sum, so it must equal its one-thread result
bit for bit; the batch blocks regroup the sums over the batch, so the other
kernels' results agree across counts to rounding only.

The sizes make ragged parts: 7 slabs per step (2 threads: 3 and 4; 4 threads:
1, 2, 2 and 2) and a batch of 37 rows (2 blocks of 18 and 19; 4 blocks of 9, 9,
9 and 10). Numba's pool cannot grow after it starts, and CI starts it at the
CPU count (2 here), so the 4-thread run happens in a child process started with
NUMBA_NUM_THREADS = 4; it loads the kernels from the on-disk cache.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import bpttbench
import naive
import naive_cells
import naive_online
import numba
import numpy as np
import pytest
from bpttbench import _batch_parallel, _parallel
from bpttbench.rtrl_gru import rtrl_gru
from bpttbench.rtrl_gru import slab_count as gru_slabs
from bpttbench.rtrl_lstm import rtrl_lstm
from bpttbench.rtrl_lstm import slab_count as lstm_slabs
from helpers import EXACT_RTOL, rnn_arrays, sequence
from naive import relative_error

pytestmark = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="Numba's pool has one thread (NUMBA_NUM_THREADS)"
)

# RTRL: Elman n = 14, m = 22 (rows of 37 columns, slabs of 2 blocks: 7 slabs); the
# gated cells n = 7, m = 5 at 64 columns a slab (GRU 21 blocks, LSTM 28: 7 slabs each).
RTRL_T, RTRL_B, P = 6, 3, 3
GATED_N, GATED_M, SLAB_COLS = 7, 5, 64
# BPTT and truncated BPTT: 37 rows, blocks of at least MIN_ROWS (8).
BATCH = {"T": 9, "B": 37, "n": 5, "m": 3, "p": 2}
K1, K2 = 3, 5


def _problems():
    rng = np.random.default_rng(1414)
    elman = bpttbench.RNNParams(*rnn_arrays(rng, 22, 14, P))
    rtrl_data = sequence(rng, RTRL_T, RTRL_B, 22, P)
    gated = {}
    for name, cell in (("gru", naive_cells.GRU), ("lstm", naive_cells.LSTM)):
        params = naive_cells.draw_params(cell, rng, GATED_M, GATED_N, P)
        gated[name] = (params, *sequence(rng, RTRL_T, RTRL_B, GATED_M, P))
    T, B, n, m, p = (BATCH[k] for k in ("T", "B", "n", "m", "p"))
    batch = {
        "elman": bpttbench.RNNParams(*rnn_arrays(rng, m, n, p)),
        "leaky": bpttbench.RNNParams(*rnn_arrays(rng, m, n, p), alpha=0.7),
        "gru": naive_cells.draw_params(naive_cells.GRU, rng, m, n, p),
        "lstm": naive_cells.draw_params(naive_cells.LSTM, rng, m, n, p),
    }
    batch_data = sequence(rng, T, B, m, p)
    return elman, rtrl_data, gated, batch, batch_data


ELMAN, RTRL_DATA, GATED, BATCH_PARAMS, BATCH_DATA = _problems()
NAIVE_CELL = {
    "elman": naive_cells.leaky(1.0),
    "leaky": naive_cells.leaky(0.7),
    "gru": naive_cells.GRU,
    "lstm": naive_cells.LSTM,
}
BPTT_TYPES = {"gru": bpttbench.GRUParams, "lstm": bpttbench.LSTMParams}


def _batch_params(name):
    params = BATCH_PARAMS[name]
    return BPTT_TYPES[name](*params) if name in BPTT_TYPES else params


def _kernels():
    """name -> () -> (loss, gradient arrays): every parallel kernel on its problem."""
    runs = {"rtrl-elman": lambda: bpttbench.rtrl(ELMAN, *RTRL_DATA)}
    for name, fn in (("gru", rtrl_gru), ("lstm", rtrl_lstm)):
        params, xs, ys = GATED[name]
        runs[f"rtrl-{name}"] = lambda fn=fn, a=params, xs=xs, ys=ys: fn(
            *a, xs, ys, slab_cols=SLAB_COLS
        )
    for name in NAIVE_CELL:
        runs[f"bptt-{name}"] = lambda name=name: bpttbench.bptt(_batch_params(name), *BATCH_DATA)
    for rule in ("rflo", "snap1"):
        runs[f"{rule}-leaky"] = lambda rule=rule: getattr(bpttbench, rule)(
            BATCH_PARAMS["leaky"], *BATCH_DATA
        )
    for name in ("elman", "lstm"):
        runs[f"tbptt-{name}"] = lambda name=name: bpttbench.tbptt(
            _batch_params(name), *BATCH_DATA, K1, K2
        )
    return runs


def _references():
    """name -> (loss, gradient arrays) of the NumPy references (float64, no threads)."""
    refs = {}
    lb, gb = naive.bptt(ELMAN, *RTRL_DATA)
    refs["rtrl-elman"] = (lb, list(gb[:5]))
    for name, cell in (("gru", naive_cells.GRU), ("lstm", naive_cells.LSTM)):
        params, xs, ys = GATED[name]
        lb, gb = naive_cells.bptt(cell, cell.params_type(*params), xs, ys)
        refs[f"rtrl-{name}"] = (lb, list(gb))
    for name, cell in NAIVE_CELL.items():
        params = cell.params_type(*BATCH_PARAMS[name][: 6 if name in BPTT_TYPES else 5])
        lb, gb = naive_cells.bptt(cell, params, *BATCH_DATA)
        refs[f"bptt-{name}"] = (lb, list(gb))
        if name in ("elman", "lstm"):
            lb, gb = naive_cells.tbptt(cell, params, *BATCH_DATA, K1, K2)
            refs[f"tbptt-{name}"] = (lb, list(gb))
    for rule in ("rflo", "snap1"):
        lb, gb = getattr(naive_online, rule)(BATCH_PARAMS["leaky"], *BATCH_DATA, alpha=0.7)
        refs[f"{rule}-leaky"] = (lb, list(gb[:5]))
    return refs


def _worst(actual, expected) -> float:
    """Largest relative error (inf-norm, per array) over a list of gradient arrays."""
    assert len(actual) == len(expected)
    return max(relative_error(a, b) for a, b in zip(actual, expected, strict=True))


def _arrays(grads) -> list[np.ndarray]:
    """The gradient arrays of a kernel's result (an RNNParams's alpha is not one)."""
    return [np.asarray(a) for a in grads if isinstance(a, np.ndarray)]


def results(threads: int) -> dict[str, list[np.ndarray]]:
    """Each kernel run twice at ``threads`` Numba and BLAS threads: [loss, *gradients].

    Raises AssertionError, naming the kernel, where the two runs differ in any bit.
    """
    import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS, so the limit sees it)
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    out = {}
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            for name, run in _kernels().items():
                first, second = ([np.float64(loss), *_arrays(g)] for loss, g in (run(), run()))
                for i, (a, b) in enumerate(zip(first, second, strict=True)):
                    assert np.array_equal(a, b), (
                        f"{name} at {threads} threads: array {i} differs between two calls"
                    )
                out[name] = second
    finally:
        numba.set_num_threads(before)
    return out


@pytest.fixture(scope="module")
def one_thread():
    return results(1)


@pytest.fixture(scope="module")
def references():
    return _references()


def _results_in_child(threads: int, tmp_path: Path) -> dict[str, list[np.ndarray]]:
    """``results(threads)`` in a fresh process whose Numba pool has ``threads`` threads."""
    tests = Path(__file__).resolve().parent
    out = tmp_path / f"threads-{threads}.npz"
    code = (
        "import sys; import numpy as np; sys.path.insert(0, sys.argv[1]); "
        "import test_threads as t; "
        "r = t.results(int(sys.argv[2])); "
        "np.savez(sys.argv[3], **{f'{k}/{i}': a for k, v in r.items() for i, a in enumerate(v)})"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tests), str(threads), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got: dict[str, list[np.ndarray]] = {}
    with np.load(out) as data:
        for key in sorted(data.files, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
            got.setdefault(key.split("/")[0], []).append(data[key])
    return got


@pytest.mark.parametrize("threads", [2, 4])
def test_parallel_kernels_same_bits_per_count_and_right_at_each(
    threads, one_thread, references, tmp_path
):
    if numba.config.NUMBA_NUM_THREADS >= threads:
        got = results(threads)
    else:
        got = _results_in_child(threads, tmp_path)
    assert sorted(got) == sorted(one_thread)
    for name, arrays in got.items():
        base = one_thread[name]
        if name.startswith("rtrl"):  # no sum regrouped: the same bits at every count
            for i, (a, b) in enumerate(zip(arrays, base, strict=True)):
                assert np.array_equal(a, b), f"{name}: array {i} differs between 1 and {threads}"
        else:
            assert relative_error(arrays[0], base[0]) <= EXACT_RTOL, name
            diff = _worst(arrays[1:], base[1:])
            assert diff <= EXACT_RTOL, f"{name}: 1 vs {threads} threads, {diff:.2e}"
        ref_loss, ref_grads = references[name]
        assert relative_error(arrays[0], ref_loss) <= EXACT_RTOL, f"{name}: loss vs NumPy"
        diff = _worst(arrays[1:], ref_grads)
        assert diff <= EXACT_RTOL, f"{name} at {threads} threads vs NumPy: {diff:.2e}"


def test_one_thread_matches_the_references(one_thread, references):
    for name, arrays in one_thread.items():
        ref_loss, ref_grads = references[name]
        assert relative_error(arrays[0], ref_loss) <= EXACT_RTOL, f"{name}: loss vs NumPy"
        diff = _worst(arrays[1:], ref_grads)
        assert diff <= EXACT_RTOL, f"{name} at 1 thread vs NumPy: {diff:.2e}"


def test_the_sizes_make_ragged_parts():
    """7 slabs for each RTRL kernel and 37 batch rows: parts of unequal size at 2 and 4."""
    assert gru_slabs(GATED_N, GATED_M, SLAB_COLS) == 7
    assert lstm_slabs(GATED_N, GATED_M, SLAB_COLS) == 7
    _, J = importlib.import_module("bpttbench.rtrl").start(ELMAN, RTRL_B)
    assert J.shape[1] == 7

    def parts(B, m=BATCH["m"]):
        return _batch_parallel.batch_parts(B, BATCH["n"], m, BATCH["p"])

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert parts(BATCH["B"]) == 1  # one thread: the serial path
        assert parts(2 * _batch_parallel.MIN_ROWS) == 1
        numba.set_num_threads(2)
        assert _parallel.parallel_parts(7) == 2
        assert parts(BATCH["B"]) == 2
        assert parts(_batch_parallel.MIN_ROWS + 1) == 1  # too few rows
        assert parts(BATCH["B"], m=4) == 1  # inputs and targets wider than the state
    finally:
        numba.set_num_threads(before)
    assert _batch_parallel._blocks(BATCH["B"], 2) == [(0, 18), (18, 37)]
    assert _batch_parallel._blocks(BATCH["B"], 4) == [(0, 9), (9, 18), (18, 27), (27, 37)]
