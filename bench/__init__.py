"""The bpttbench harness: sweep planning, measurement, results store, fits, report, CLI.

Installed as ``bpttbench.bench`` (the ``bench/`` folder of the repository). It
reaches the algorithms only through the registry, ``bpttbench.ALGORITHMS``: sizes,
presets, cost models, benchmark cases, pairs, peers, axis labels and chart
styles all come from the specs there. Modules: ``sweep`` (planning, presets,
budget guard, the loop), ``measure`` (one cell: a timing pass and a tracemalloc
memory pass), ``store`` (SQLite), ``fit`` (log-log slopes and equivalence
verdicts), ``peers``, ``cli``, and the report: ``report`` (plan and build),
``view`` (the registry as the report reads it), ``slices`` (the store's slice
and its fits), ``benchjson`` (pytest-benchmark JSON), ``sections`` (the store's
charts), ``pairs`` (two algorithms side by side), ``markdown`` (report.md),
``summary`` (summary.json), ``fmt`` (numbers as text), ``charts`` and
``charts_compare`` (the figures).
"""

DEFAULT_DB = "bpttbench.sqlite"


class BenchError(Exception):
    """Bad input a user can fix: the CLI prints the message on one line and exits 2."""
