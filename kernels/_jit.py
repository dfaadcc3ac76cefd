"""Numba options for every kernel, in one place.

- ``fastmath=False``: the kernels are exact references; the identity tests hold
  them to 1e-10, which fast-math's other licences (no NaN, no infinity, reciprocal
  approximations) would break. The one exception reorders sums and fuses
  multiply-adds, as BLAS does: the hand-written products and dot of ``_matvec.py``.
- ``error_model="numpy"``: no Python-style ZeroDivisionError checks in hot loops.
- ``nogil=True``: a caller may run kernels from threads.
- Caching: compiled machine code is written to disk, so the second process (a
  test run, a sweep) pays no JIT compile time. Numba's default writes it into a
  ``__pycache__`` beside the sources, that is into ``site-packages/bpttbench``
  for an installed copy, and ``pip uninstall`` does not know those files: the
  folder they leave behind shadows a later editable install as an empty
  namespace package. So the cache goes to the user's cache folder
  (``NUMBA_CACHE_DIR`` when set, else Numba's user-wide cache, keyed by the
  source path), and only where neither is writable beside the sources. This is
  set per kernel, not in Numba's global configuration.
- Cache freshness: Numba checks a cached kernel against its own source file
  only, but a kernel embeds the jitted functions it calls from other modules
  (``bptt._bptt`` inlines ``_sweeps.forward_sweep``), so an edit there would
  leave it running the old code: a planted bug would not show and a fix would
  not take. Every cached kernel is therefore stamped with a digest of all the
  package's sources as well, and any edit recompiles.
"""

import functools
import hashlib
from pathlib import Path

from numba import njit
from numba.core import caching
from numba.core.cpu_options import ParallelOptions
from numba.core.dispatcher import Dispatcher

JIT_OPTIONS = {"fastmath": False, "error_model": "numpy", "nogil": True}
# Numba's parallel=True also turns every whole-array statement (``c[b] = 0.0``,
# ``h_prev[:] = h``) into a parallel loop, and each launches the thread pool: in
# RTRL's per-step serial part at n = 16 that cost ~1.4 us a step, +45% of the call
# (measured against the kernel before it had a prange). Only the prange loops, which
# the kernels split into parts themselves, are meant to run in parallel. Numba pops
# the keys of a dict it is given, and parses the options again for every signature
# it compiles, so each kernel gets its own ParallelOptions (which Numba copies).
PRANGE_ONLY = {
    "comprehension": False, "reduction": False, "inplace_binop": False, "setitem": False,
    "numpy": False, "stencil": False, "fusion": False, "prange": True,
}  # fmt: skip


@functools.cache
def _package_digest() -> str:
    """SHA-256 of every Python source of the package (read once per process)."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class _PackageStamp:
    """A cache locator whose stamp also changes when any source of the package does."""

    def get_source_stamp(self):
        return (super().get_source_stamp(), _package_digest())


def _stamped(locator: type) -> type:
    return type(locator.__name__, (_PackageStamp, locator), {})


def _numba_class(name: str) -> type:
    """A class of numba.core.caching (public since Numba 0.61, underscored before)."""
    return getattr(caching, name, None) or getattr(caching, "_" + name)


class _OutOfTreeImpl(caching.CompileResultCacheImpl):
    """Numba's cache of compiled functions, looking first outside the source tree."""

    _locator_classes = tuple(
        _stamped(locator)
        for locator in (
            _numba_class("UserProvidedCacheLocator"),  # NUMBA_CACHE_DIR
            _numba_class("UserWideCacheLocator"),  # e.g. ~/.cache/numba/<path of the source>
            _numba_class("InTreeCacheLocator"),
        )
    )


class _OutOfTreeCache(caching.FunctionCache):
    _impl_class = _OutOfTreeImpl


def jit(func=None, *, inline=False, parallel=False, reassociate=False):
    """Compile ``func`` in nopython mode with the project's options, cached on disk.

    ``@jit(inline=True)`` marks a small function that other kernels call once per
    step (a cell's pointwise step): Numba inlines its body into the caller, so
    the call costs no argument passing or reference counting of array views.

    ``@jit(parallel=True)`` compiles its ``prange`` loops to run on Numba's
    threads (kernels/_parallel.py says how the kernels share them with BLAS), and
    nothing else (:data:`PRANGE_ONLY`).

    ``@jit(reassociate=True)`` lets LLVM reorder sums and fuse multiply-adds in
    ``func`` alone, for a product written by hand in place of BLAS (kernels/_matvec.py),
    which reorders its sums the same way; every other kernel keeps ``fastmath=False``.
    """
    if func is None:
        return lambda f: jit(f, inline=inline, parallel=parallel, reassociate=reassociate)
    options = {**JIT_OPTIONS, "inline": "always"} if inline else dict(JIT_OPTIONS)
    if reassociate:
        options["fastmath"] = {"reassoc", "contract"}
    if parallel:
        options["parallel"] = ParallelOptions(dict(PRANGE_ONLY))
    kernel = njit(**options)(func)
    if isinstance(kernel, Dispatcher):  # not under NUMBA_DISABLE_JIT
        try:
            kernel._cache = _OutOfTreeCache(kernel.py_func)
        except RuntimeError:  # no file behind the function (a REPL): compile, don't cache
            pass
    return kernel
