"""bpttbench harness: sweep planning, measurement, results store, exponent fits, CLI.

The harness reaches the algorithms only through ``kernels.ALGORITHMS``; see
``bench.sweep`` (planning, presets, budget guard), ``bench.measure`` (one cell:
timing pass and tracemalloc memory pass), ``bench.store`` (SQLite),
``bench.fit`` (log-log slopes and equivalence verdicts) and ``bench.cli``.
"""

DEFAULT_DB = "bpttbench.sqlite"


class BenchError(Exception):
    """Bad input a user can fix: the CLI prints the message on one line and exits 2."""
