"""Numba options for every kernel, in one place.

- ``fastmath=False``: the kernels are exact references; the identity tests hold
  them to 1e-10, which reassociation would break.
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
"""

from numba import njit
from numba.core import caching
from numba.core.dispatcher import Dispatcher

JIT_OPTIONS = {"fastmath": False, "error_model": "numpy", "nogil": True}


class _OutOfTreeImpl(caching.CompileResultCacheImpl):
    """Numba's cache of compiled functions, looking first outside the source tree."""

    _locator_classes = (
        caching.UserProvidedCacheLocator,  # NUMBA_CACHE_DIR
        caching.UserWideCacheLocator,  # e.g. ~/.cache/numba/<path of the source>
        caching.InTreeCacheLocator,
    )


class _OutOfTreeCache(caching.FunctionCache):
    _impl_class = _OutOfTreeImpl


def jit(func):
    """Compile ``func`` in nopython mode with the project's options, cached on disk."""
    kernel = njit(**JIT_OPTIONS)(func)
    if isinstance(kernel, Dispatcher):  # not under NUMBA_DISABLE_JIT
        kernel._cache = _OutOfTreeCache(kernel.py_func)
    return kernel
