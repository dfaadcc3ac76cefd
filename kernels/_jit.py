"""Numba options for every kernel, in one place.

- ``cache=True``: compiled machine code is written beside the sources, so the
  second process (a test run, a sweep) pays no JIT compile time.
- ``fastmath=False``: the kernels are exact references; the identity tests hold
  them to 1e-10, which reassociation would break.
- ``error_model="numpy"``: no Python-style ZeroDivisionError checks in hot loops.
- ``nogil=True``: a caller may run kernels from threads.
"""

from numba import njit

JIT_OPTIONS = {"cache": True, "fastmath": False, "error_model": "numpy", "nogil": True}


def jit(func):
    """Compile ``func`` in nopython mode with the project's options."""
    return njit(**JIT_OPTIONS)(func)
