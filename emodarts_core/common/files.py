"""Files written so that a killed process never leaves half of one, and read with errors that name them.

Every write goes through :func:`atomic_write`: a temporary file in the same directory, flushed
to disk (``fsync``), then ``os.replace``, so a reader sees the old file or the new one.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch

#: What a damaged run file's error tells the user to do (the CLI's ``--restart``).
RESTART_HINT = ("rerun the command that made this run with --restart to start it again from "
                "scratch (or delete the run directory)")


class RunFileError(ValueError):
    """A file of a run directory that cannot be read (damaged, truncated, not JSON, missing
    fields, refused by ``weights_only``); the message names the file and what to do."""


def jsonable(obj: Any) -> Any:
    """Tuples to lists, Paths to strings, recursively (JSON has no tuple)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


# ---------------------------------------------------------------------------------------------
# Atomic writes
def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` with ``write(f)`` on a temporary file in the same directory, flushed to disk
    (``fsync``), then ``os.replace`` it: a reader sees the old file or the new one, never half of
    one; the temporary file is removed when ``write`` fails (also on KeyboardInterrupt)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """JSON-dump ``obj`` (tuples as lists, NaN refused) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_numpy_save(path: str | Path, array: np.ndarray) -> None:
    """``np.save`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))


def read_json(path: str | Path) -> Any:
    """Read a JSON file, naming it in the error when it is missing or malformed
    (:class:`RunFileError`, a ``ValueError``, for a damaged file)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunFileError(f"{path} is not valid JSON ({e}); {RESTART_HINT}") from None
