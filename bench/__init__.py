"""The bpttbench harness: sweep planning, measurement, results store, fits, report, CLI.

Installed as ``bpttbench.bench`` (the ``bench/`` folder of the repository). It
reaches the algorithms only through the registry, ``bpttbench.ALGORITHMS``: sizes,
presets, cost models and benchmark cases all come from the specs there. Modules:
``sweep`` (planning, presets, budget guard, the loop), ``measure`` (one cell: a
timing pass and a tracemalloc memory pass), ``store`` (SQLite), ``fit`` (log-log
slopes and equivalence verdicts), ``report`` and ``charts``, ``peers`` and ``cli``.
"""

DEFAULT_DB = "bpttbench.sqlite"


class BenchError(Exception):
    """Bad input a user can fix: the CLI prints the message on one line and exits 2."""
