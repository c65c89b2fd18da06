"""File locks: one writer per run directory, and shared things (a generated corpus, the feature
cache) made once when several jobs want them at the same time.

Both are ``fcntl.flock`` locks on a small file. The kernel drops such a lock when its process
dies, however it dies (killed, out of memory, a crashed machine's reboot), so a lock left behind
by a dead process is never "stale": the next process simply takes it. The lock file keeps the
holder's process id, host and start time, so a refused second writer can say who holds it.

Where ``flock`` is missing or refused (Windows, some network file systems), locking is skipped
and the code runs as it did before there were locks.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LockHeld", "RUN_LOCK", "exclusive", "run_lock"]

#: The lock file inside a run (or batch) directory.
RUN_LOCK = ".emodarts.lock"


class LockHeld(RuntimeError):
    """Another live process holds the lock; the message names it (pid, host, since when)."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "another process"


@contextlib.contextmanager
def exclusive(path: str | os.PathLike[str], *, wait: bool = True, what: str = "") -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if needed) for the ``with`` block.

    ``wait=True`` blocks until the lock is free (for short shared work: making a corpus, a
    cache); ``wait=False`` raises :class:`LockHeld` at once, naming the holder and ``what`` is
    locked.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        locked = False
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                locked = True
            except BlockingIOError:
                raise LockHeld(f"{what or path} is in use by {_holder(path)}; wait for it to "
                               f"end (a lock of a process that has died is taken over)") from None
            except OSError:      # flock not supported here (some network file systems)
                locked = False
        if locked:
            stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode(), 0)
        yield
    finally:
        os.close(fd)             # closing the descriptor releases the lock


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike[str]) -> Iterator[None]:
    """One command at a time on a run (or batch) directory: :class:`LockHeld` when another
    live process works in it. The directory is created if needed."""
    directory = Path(directory)
    with exclusive(directory / RUN_LOCK, wait=False, what=f"run directory {directory}"):
        yield
