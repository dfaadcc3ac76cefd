"""How a parallel kernel shares the machine between Numba's threads and BLAS's.

A parallel kernel (``@jit(parallel=True)``, its work split with ``prange``)
runs its parts on Numba's threads, and each part calls BLAS (``np.dot`` in a
jitted function calls SciPy's BLAS, an OpenBLAS). Left alone, each of those
calls would start BLAS's own threads too: t Numba threads times t BLAS threads
on t cores, the two levels fighting for the same cores. So while a kernel runs
its parts in parallel, BLAS is held to one thread (threadpoolctl, the same
library ``bench.measure.set_threads`` pins the counts with), and given back its
count afterwards. A kernel run on one Numba thread leaves BLAS as it is: one
big GEMM per step then uses BLAS's threads instead.

The parts are fixed by the thread count, not by the scheduler: part t always
takes the same contiguous run of work units and its own scratch, allocated by
the caller once per call (never inside the loops), so a result is reproducible
bit for bit at a given thread count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numba

_controller = None


def parallel_parts(units: int) -> int:
    """How many parts to split ``units`` independent work units into: one per Numba thread."""
    return max(1, min(numba.get_num_threads(), units))


@contextlib.contextmanager
def one_blas_thread(parts: int) -> Iterator[None]:
    """Hold BLAS to one thread while ``parts`` > 1 parts run in parallel (module docstring)."""
    if parts <= 1:
        yield
        return
    global _controller
    if _controller is None:
        # SciPy's BLAS is loaded on the first jitted BLAS call; load it now so that
        # the controller sees it. One controller: finding the libraries is the slow part.
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    with _controller.limit(limits=1, user_api="blas"):
        yield
