"""BPTT, truncated BPTT and the deterministic online rules in parallel over the batch.

The sequences of a batch are independent until their weight gradients are
summed, so the batch rows split into contiguous blocks, one per thread: block t
takes rows ``t B / parts`` up to ``(t + 1) B / parts`` (ragged when ``parts``
does not divide B), runs the same compiled single-thread kernel as one thread
does (``bptt._bptt``, ``tbptt._tbptt``: the chunked forward and backward
sweeps, kernels/_sweeps.py) on its own copy of its rows and its own buffers
and gradient accumulators, and the blocks' losses and gradients are then added
in block order. Nothing is shared but the read-only weights, and the order of
every sum is fixed by the thread count, so a result is the same bit for bit at
a given thread count; across thread counts it differs by rounding only (the
per-block sums are regrouped), within the exact tolerance.

The blocks run on a pool of Python threads, each calling the jitted kernel,
which releases the GIL (``nogil=True``, kernels/_jit.py): the one kernel
already compiled serves every block size, so the parallel path costs no
compile time of its own, and ragged blocks need no padding. BLAS is held to
one thread while the blocks run (kernels/_parallel.py), so that t blocks do
not each start t BLAS threads.

Why blocks rather than multithreaded BLAS: at B = 32..64, n = 256..512 one
step's recurrent product is a (B x n) x (n x G n) GEMM, small enough that two
BLAS threads meet at every step (T fork-joins a sweep, against one a call for
the blocks), and the pointwise step and the readout between the GEMMs stay
serial. Measured on the shared 2-core development machine under a load of 5
to 12 (so wall-clock ratios there say little; the reference run's threads axis
is the measurement): the blocks did 7 to 20% more CPU work in all than one
thread (BPTT at B = 32..64, n = 256..512, T = 50..100), which is a 1.7x to
1.9x speed-up on two free cores if the blocks balance.

Memory: each block pays a copy of its rows of xs and ys (T B (m + p) numbers
over all blocks: the caller's data once more; ``batch_parts`` splits only where
m + p <= n, so against BPTT's T B n stored states it is at most as much again,
and in practice, m and p small, a few percent) and a gradient accumulator (P
numbers per block beyond the first). The memory models (``bptt.memory``,
``tbptt.memory``) count one thread, as a sweep measures by default.

The deterministic online rules, RFLO and SnAp-1 on the Elman cell
(kernels/rflo.py, snap1.py), split the same way (``online``): each block runs
the rule's own ``start`` and ``advance`` on its rows. The random ones (UORO,
KF-RTRL, R-KF) do not: they draw one stream of signs for the whole batch, so a
block would draw other signs than one thread does, a different sample rather
than a rounding difference.

Only at threads > 1 (``numba.get_num_threads()``): at one thread the public
functions run their single-thread path untouched.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading

import numba
import numpy as np

from . import cells
from ._parallel import one_blas_thread
from ._sweeps import chunk_steps, make_buffers, zero_grads
from ._validate import check_result

# Fewest batch rows a block may have. Fewer rows make each step's recurrent
# GEMM a thin matrix-vector product whose cost is mostly the call, and a block
# of a few rows would not pay for its copies and its thread hand-off. (A
# choice, not a measured optimum: the threads axis of a sweep along B shows it.)
MIN_ROWS = 8

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()


def batch_parts(B: int, n: int, m: int, p: int) -> int:
    """How many batch blocks to run: one per Numba thread, each of at least MIN_ROWS rows.

    None (one) where the inputs and targets are wider than the state (m + p > n):
    then the copies of the blocks' rows would cost as much as the work and
    outweigh the states the kernel keeps, for little gain.
    """
    threads = numba.get_num_threads()
    if threads <= 1 or m + p > n:
        return 1
    return max(1, min(threads, B // MIN_ROWS))


def _executor(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    """A process-wide pool of at least ``workers`` threads (created once, grown if asked)."""
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers < workers:
            if _pool is not None:
                _pool.shutdown(wait=True)
            _pool = concurrent.futures.ThreadPoolExecutor(workers, "bpttbench-batch")
            _pool_workers = workers
        return _pool


def _blocks(B: int, parts: int) -> list[tuple[int, int]]:
    return [(t * B // parts, (t + 1) * B // parts) for t in range(parts)]


def _run(run_block, jobs) -> list:
    """``run_block(*job)`` for every job at once (block 0 on the calling thread), in order."""
    with one_blas_thread(len(jobs)):
        pool = _executor(len(jobs) - 1)
        futures = [pool.submit(run_block, *job) for job in jobs[1:]]
        try:
            results = [run_block(*jobs[0])]
        finally:  # never leave a block running past the BLAS limit
            concurrent.futures.wait(futures)
        return results + [f.result() for f in futures]


def _in_blocks(name, parts, cell, w, xs, ys, run_block):
    """Run ``run_block(xs_t, ys_t, g_t) -> (loss, finite)`` on each block; sum in block order."""
    B = xs.shape[1]
    jobs = []
    for b0, b1 in _blocks(B, parts):
        jobs.append(
            (np.ascontiguousarray(xs[:, b0:b1]), np.ascontiguousarray(ys[:, b0:b1]), zero_grads(w))
        )
    results = _run(run_block, jobs)
    # The fixed-order reduction: block 0, then + block 1, then + block 2, ...
    g = jobs[0][2]
    loss = results[0][0]
    finite = results[0][1]
    for (_, _, g_t), (loss_t, finite_t) in zip(jobs[1:], results[1:], strict=True):
        for acc, part in zip(g, g_t, strict=True):
            acc += part
        loss += loss_t
        finite = finite and finite_t
    grads = cells.as_params(g, cell)
    dt = w.W_out.dtype
    if not (finite and math.isfinite(loss)):
        check_result(name, loss, grads, dt)  # raises, naming what overflowed
    return float(loss), grads


def bptt(parts, cell, w, xs, ys):
    """``bptt.bptt`` on ``parts`` batch blocks (checked arguments, as ``bptt`` has them)."""
    from .bptt import _bptt

    T, _, m = xs.shape
    p, n = w.W_out.shape
    dt = w.W_out.dtype

    def run_block(xs_t, ys_t, g_t):
        Bt = xs_t.shape[1]
        buf = make_buffers(cell, T + 1, Bt, n, m, p, chunk_steps(Bt, T), dt)
        return _bptt(cell.id, cell.alpha, xs_t, ys_t, tuple(w), tuple(buf), tuple(g_t))

    return _in_blocks("bptt", parts, cell, w, xs, ys, run_block)


def tbptt(parts, cell, w, xs, ys, k1, k2):
    """``tbptt.tbptt`` on ``parts`` batch blocks (checked arguments, k1 and k2 clamped to T)."""
    from .tbptt import _tbptt

    _, _, m = xs.shape
    p, n = w.W_out.shape
    dt = w.W_out.dtype

    def run_block(xs_t, ys_t, g_t):
        Bt = xs_t.shape[1]
        buf = make_buffers(cell, k2 + 1, Bt, n, m, p, chunk_steps(Bt, k2), dt)
        return _tbptt(cell.id, cell.alpha, xs_t, ys_t, k1, k2, tuple(w), tuple(buf), tuple(g_t))

    return _in_blocks("tbptt", parts, cell, w, xs, ys, run_block)


def online(parts, start, advance, arrays, alpha, xs, ys):
    """A deterministic online rule (RFLO, SnAp-1: ``start`` and ``advance`` of its module)
    from t = 0 on ``parts`` batch blocks: each block carries its own state; the losses
    and gradients are added in block order. Returns (loss, RNNParams)."""
    jobs = [
        (np.ascontiguousarray(xs[:, b0:b1]), np.ascontiguousarray(ys[:, b0:b1]))
        for b0, b1 in _blocks(xs.shape[1], parts)
    ]

    def run_block(xs_t, ys_t):
        return advance(start(arrays, xs_t.shape[1]), arrays, alpha, xs_t, ys_t)

    results = _run(run_block, jobs)
    loss, grads = results[0]
    for loss_t, grads_t in results[1:]:
        for acc, part in zip(grads, grads_t, strict=True):
            if isinstance(acc, np.ndarray):
                acc += part
        loss += loss_t
    return float(loss), grads
