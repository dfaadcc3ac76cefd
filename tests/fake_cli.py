"""``bpttbench`` with the fake registry, for tests that run the command line as a real process.

    python tests/fake_cli.py sweep --grid GRID --db DB ...

is ``python -m bpttbench.bench.cli sweep ...`` with the algorithms of ``tests/fakes.py``
(cheap NumPy calls), the machine's GEMM/GEMV peaks not timed and git not asked for the
commit. With the environment
variable ``BPTTBENCH_TEST_COMMIT_PAUSE=<seconds>``, every write transaction of the store
prints ``commit-pending <n>`` on stderr and sleeps that long before its COMMIT, so that a
test can kill the process inside a write.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fakes
from bpttbench.bench import cli, measure, store


def main() -> int:
    registry = fakes.make_registry()
    cli._registry = lambda: registry
    measure.machine_peak = lambda *args, **kwargs: (10.0, 1.0)
    measure.git_commit = lambda: None
    pause = float(os.environ.get("BPTTBENCH_TEST_COMMIT_PAUSE", "0"))
    if pause > 0:
        count = 0

        def before_commit(conn) -> None:
            nonlocal count
            count += 1
            print(f"commit-pending {count}", file=sys.stderr, flush=True)
            time.sleep(pause)

        store._before_commit = before_commit
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
