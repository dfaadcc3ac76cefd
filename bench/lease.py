"""The writer's lease: one sweep writes a results store at a time.

A sweep takes the lease (the single row of the ``lease`` table: a random owner
token, host, pid and the pid's start time) before it writes its run row, and
gives it back when it ends. Every write transaction checks the lease first
(:func:`check`): the holder's own writes renew it, anyone else's are refused
while the holder is alive. Alive means, on this host, that the pid exists, is
not a zombie, and started when the lease says (a reused pid is another
process); on another host, that the holder wrote within ``LEASE_STALE_S``. So a
sweep killed by SIGKILL leaves a lease that the next sweep on the store takes
over, and resuming is running the same command again.

Why refuse rather than share: two sweeps on one machine disturb each other's
timings, and the store's design has one writer (on a cluster, the client).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sqlite3
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from bpttbench.bench import BenchError

LEASE_STALE_S = 3600.0  # a lease on another host with no write for this long is stale
HOST = platform.node() or "unknown"


def holder(conn: sqlite3.Connection) -> dict | None:
    """The lease's row, or None when no one holds it."""
    cur = conn.execute("SELECT owner, host, pid, pid_started, started, beat FROM lease")
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


def new_lease() -> dict:
    """The lease row of this process, with a fresh owner token."""
    return {
        "id": 1,
        "owner": uuid.uuid4().hex,
        "host": HOST,
        "pid": os.getpid(),
        "pid_started": pid_started(os.getpid()),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "beat": time.time(),
    }


def check(conn: sqlite3.Connection, mine: str | None, path: Path) -> None:
    """Inside a write transaction: raise unless the writer holding ``mine`` (or no lease)
    may write now; renew the lease of its holder."""
    current = holder(conn)
    if current is not None and current["owner"] == mine:
        conn.execute("UPDATE lease SET beat = ? WHERE owner = ?", (time.time(), mine))
        return
    if mine is not None:
        who = "nobody" if current is None else f"pid {current['pid']} on {current['host']}"
        raise BenchError(
            f"{path}: this sweep lost the store's writer lease ({who} holds it now, having "
            "judged this sweep dead); stopping without writing"
        )
    if current is not None and alive(current):
        raise busy(path, current)


def busy(path: Path, current: Mapping) -> BenchError:
    return BenchError(
        f"{path} is being written by another sweep (pid {current['pid']} on "
        f"{current['host']}, since {current['started']}); wait for it to finish, "
        "or use another --db"
    )


def alive(current: Mapping) -> bool:
    """Whether the lease's holder may still write (module docstring)."""
    if current["host"] != HOST:
        return time.time() - float(current["beat"]) < LEASE_STALE_S
    pid = int(current["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    started = pid_started(pid)
    if started == "zombie":
        return False
    return not (current["pid_started"] and started and started != current["pid_started"])


def pid_started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), "zombie", or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return "zombie" if fields[0] in ("Z", "X") else fields[19]
