"""``bpttbench peers``: the same model, weights and data through PyTorch and JAX.

Work in progress: the CLI entry points exist so ``bench.cli`` can wire them.
"""

from __future__ import annotations

import argparse

from bench import DEFAULT_DB

INSTALL_HINT = "pip install 'bpttbench[peers]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bpttbench peers``."""
    parser.add_argument("--db", default=DEFAULT_DB, help="results database (SQLite)")


def command(args: argparse.Namespace) -> int:
    """Run ``bpttbench peers``; returns the exit code."""
    print(f"bpttbench peers: not implemented yet (needs {INSTALL_HINT})")
    return 0
