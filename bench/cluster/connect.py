"""Reaching a Dask cluster: the optional ``distributed`` import and the client.

Owns what every cluster run needs before its first job: the install hint when
the extra ``cluster`` is missing (:func:`require_distributed`), the name of the
worker resource that keeps a worker to one timed job (:data:`RESOURCE`), and
:func:`connect`, a client to a running scheduler or to a ``LocalCluster`` of
single-threaded worker processes that each offer one unit of that resource.
"""

from __future__ import annotations

import contextlib
import logging

from bpttbench.bench import BenchError

RESOURCE = "timing"
INSTALL_HINT = "pip install 'bpttbench[cluster]'"


def require_distributed():
    """``distributed``, or a :class:`BenchError` with the install hint when it is missing."""
    try:
        import distributed
    except ImportError:
        raise BenchError(
            f"the cluster options need Dask's distributed scheduler: {INSTALL_HINT}"
        ) from None
    return distributed


@contextlib.contextmanager
def connect(scheduler: str | None = None, local_workers: int | None = None, timeout="20s"):
    """A ``distributed.Client``: to the scheduler at ``scheduler``, or to a new
    ``LocalCluster`` of ``local_workers`` worker processes with one thread and
    the resource ``timing=1`` each (closed on exit)."""
    distributed = require_distributed()
    if (scheduler is None) == (local_workers is None):
        raise BenchError("give exactly one of a scheduler address and a number of local workers")
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise BenchError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        with client:
            yield client
        return
    if local_workers < 1:
        raise BenchError(f"--local-cluster must be >= 1, got {local_workers}")
    with (
        distributed.LocalCluster(
            n_workers=local_workers,
            threads_per_worker=1,
            processes=True,
            resources={RESOURCE: 1},
            dashboard_address=None,
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client
