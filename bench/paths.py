"""Paths the command line reads and writes, checked before anything is touched.

The results store must be a regular file (or not exist yet, for a sweep); a
device, FIFO or directory is refused, so ``--db /dev/null`` is an error and a
FIFO never blocks a reader. A store to be written must be writable, and so must
its folder (SQLite writes its journal beside it).

Outputs (``export -o``, ``report --out``, ``run --out``) follow one rule: an
output is never the results store, however the path is spelled (symbolic
links, ``..``, hard links: compared by device and inode), and an existing file
is overwritten only when it is empty, bpttbench wrote it (``ours``: a CSV
export, a report.md) or ``--force`` is given; a read-only file never is. The
folder must exist and be writable.
A file is written whole or not at all (:func:`write_atomically`), so an
interrupt never leaves half a CSV.

Every refusal is a :class:`bpttbench.bench.BenchError`: one line, exit status 2.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from bpttbench.bench import BenchError

# Files SQLite keeps beside a database; writing over one of them damages the store too.
SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")


def check_store(path: str | os.PathLike, write: bool) -> bool:
    """Raise BenchError unless ``path`` can be the results store; return whether it exists.

    For ``write``, a missing store is created later, so its folder must exist and be
    writable; for reading, a missing store is an error.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        if not write:
            raise BenchError(
                f"no results database at {path} (run `bpttbench sweep` first)"
            ) from None
        _check_folder(path, "results database")
        return False
    except OSError as exc:
        raise BenchError(f"cannot use results database {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise BenchError(f"{path} is a directory, not a results database")
    if not stat.S_ISREG(st.st_mode):
        raise BenchError(
            f"{path} is not a regular file (a device, FIFO or socket), not a results database"
        )
    if not os.access(path, os.R_OK):
        raise BenchError(f"cannot read results database {path}: permission denied")
    if write:
        if not os.access(path, os.W_OK):
            raise BenchError(f"results database {path} is read-only")
        folder = path.resolve().parent
        if not os.access(folder, os.W_OK | os.X_OK):
            raise BenchError(
                f"the folder {folder} of results database {path} is not writable "
                "(SQLite writes its journal beside the database)"
            )
    return True


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same resolved path, or the same inode."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_store(path: Path, store: str | os.PathLike | None) -> bool:
    if store is None:
        return False
    candidates = [Path(store)] + [Path(f"{store}{s}") for s in SQLITE_SIDE_FILES]
    return any(same_file(path, c) for c in candidates)


def _check_folder(path: Path, what: str) -> None:
    folder = path.resolve().parent
    if not folder.exists():
        raise BenchError(f"cannot write {what} {path}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise BenchError(f"cannot write {what} {path}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BenchError(f"cannot write {what} {path}: the folder {folder} is not writable")


def check_output_file(
    path: str | os.PathLike,
    *,
    store: str | os.PathLike | None,
    ours: Callable[[Path], bool],
    force: bool = False,
    what: str = "output",
) -> Path:
    """Raise BenchError unless ``path`` may be written (see the module's rule); return it."""
    path = Path(path)
    if _is_store(path, store):
        raise BenchError(f"{what} {path} is the results store {store}; refusing to write over it")
    try:
        st = path.stat()
    except FileNotFoundError:
        _check_folder(path, what)
        return path
    except OSError as exc:
        raise BenchError(f"cannot write {what} {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise BenchError(f"{what} {path} is a directory; give a file name")
    if not os.access(path, os.W_OK):
        raise BenchError(f"{what} {path} is read-only")
    if stat.S_ISREG(st.st_mode) and st.st_size > 0 and not force and not ours(path):
        raise BenchError(
            f"{what} {path} exists and was not written by bpttbench; pass --force to overwrite it"
        )
    _check_folder(path, what)
    return path


def check_output_dir(
    path: str | os.PathLike,
    *,
    store: str | os.PathLike | None,
    files: Iterable[tuple[str, Callable[[Path], bool]]],
    force: bool = False,
    what: str = "--out",
) -> Path:
    """Check a folder the tool writes into (created, with its parents, if missing).

    ``files`` are the (name, ours) pairs the tool writes in it; each follows
    :func:`check_output_file`'s rule. The store may not lie inside the folder's
    outputs.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise BenchError(f"{what} {path} is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise BenchError(f"{what} {path} is not writable")
        for name, ours in files:
            check_output_file(path / name, store=store, ours=ours, force=force, what=what)
        return path
    existing = path.resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BenchError(f"cannot create {what} {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BenchError(f"cannot create {what} {path}: the folder {existing} is not writable")
    return path


def starts_with(prefixes: Iterable[str]) -> Callable[[Path], bool]:
    """``ours`` for files whose first line starts with one of ``prefixes``."""
    prefixes = tuple(prefixes)

    def ours(path: Path) -> bool:
        try:
            with path.open("rb") as fh:
                head = fh.read(4096).decode("utf-8", errors="replace")
        except OSError:
            return False
        return head.startswith(prefixes)

    return ours


def write_atomically(path: str | os.PathLike, write: Callable[[TextIO], None]) -> Path:
    """Call ``write(fh)`` on a new file that replaces ``path`` only once it is complete.

    The text goes to a temporary file beside the target, which is renamed over it
    at the end, so a reader never sees half a file and an interrupt (Ctrl-C, an
    error) leaves the old file, or none, in place. A symbolic link is followed:
    its target is replaced. A FIFO or device is written directly.
    """
    path = Path(path)
    target = path.resolve()
    if target.exists() and not target.is_file():
        with target.open("w", newline="") as fh:
            write(fh)
        return path
    mode = (target.stat().st_mode & 0o777) if target.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_stdout_is_not(store: str | os.PathLike) -> None:
    """Refuse to print onto the store (``export > store.sqlite`` in a shell that appends)."""
    try:
        out = os.fstat(sys.stdout.fileno())
        st = os.stat(store)
    except (OSError, ValueError, AttributeError):  # no real stdout (pytest), or no store
        return
    if (out.st_dev, out.st_ino) == (st.st_dev, st.st_ino):
        raise BenchError(f"standard output is the results store {store}; refusing to write to it")
