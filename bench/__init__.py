"""The bpttbench harness: sweep planning, measurement, results store, fits, report, CLI.

Installed as ``bpttbench.bench`` (the ``bench/`` folder of the repository). It
reaches the algorithms only through the registry, ``bpttbench.ALGORITHMS``: sizes,
presets, cost models, benchmark cases, pairs, peers, axis labels and chart
styles all come from the specs there. Modules:

- measuring: ``grid`` (plans: presets, TOML grids, command-line overrides, and
  their checks), ``sweep`` (the loop that measures a plan into the store),
  ``budget`` (the guard that skips cells over the memory or time budget),
  ``progress`` (the sweep's status line), ``measure`` (one cell: a timing pass
  and a tracemalloc memory pass; the timer), ``cluster`` (sweeps on Dask
  workers, one timed visit per worker at a time);
- the results store: ``store`` (SQLite: open, write, read), ``schema`` (its
  tables, the checks every store passes, the migration), ``lease`` (one writer
  at a time), ``paths`` (what the command line may read and write);
- ``fit`` (log-log slopes and equivalence verdicts), ``peers``, ``cli``;
- the report: ``report`` (plan and build), ``view`` (the registry as the report
  reads it), ``slices`` (the store's slice and its fits), ``benchjson``
  (pytest-benchmark JSON), ``sections`` (the store's charts), ``pairs`` (two
  algorithms side by side), ``cells_compare`` (the gated cells against the
  Elman cell at equal sizes), ``markdown`` (report.md), ``summary``
  (summary.json), ``fmt`` (numbers, seconds and bytes as text), ``charts`` and
  ``charts_compare`` (the figures).
"""

DEFAULT_DB = "bpttbench.sqlite"


class BenchError(Exception):
    """Bad input a user can fix: the CLI prints the message on one line and exits 2."""
