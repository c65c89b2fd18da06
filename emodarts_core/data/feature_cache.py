"""The on-disk cache of MFCC images, keyed by (feature configuration, file content).

:func:`extraction_settings` and :data:`FEATURE_VERSION` decide the configuration's key,
the BLAKE2b hash of a file's bytes its content key; :class:`FeatureCache` stores one ``.npy``
image per pair (layout, memo and trust rules in its docstring). Every write goes through
:mod:`emodarts_core.common.files` (temporary file, ``fsync``, ``os.replace``).
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import threading
import time
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from emodarts_core.common.files import atomic_numpy_save, atomic_write_text
from emodarts_core.config import FeatureConfig, to_dict
from emodarts_core.data.audio import AudioError

__all__ = ["FEATURE_VERSION", "extraction_settings", "FeatureCache"]

#: Part of every cache key: bump it when the feature computation changes, so old entries are
#: never served for the new definition.
FEATURE_VERSION = 1


def extraction_settings(cfg: FeatureConfig) -> dict[str, Any]:
    """The fields of ``cfg`` that decide the cached image (all but ``normalization``)."""
    d = to_dict(cfg)
    d.pop("normalization", None)
    return d


@functools.lru_cache(maxsize=None)
def _npy_header(shape: tuple[int, ...]) -> bytes:
    """The exact bytes ``np.save`` writes before the data of a float32 array of ``shape``."""
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()[: -4 * int(np.prod(shape))]


def _hash_file(path: str | PathLike[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class FeatureCache:
    """Feature images on disk, keyed by (feature configuration, file content).

    Layout::

        cache_dir/
          content-index.json         path -> (size, mtime_ns, inode, content hash) memo
          <config key>/config.json   the FeatureConfig the entries below were made with
          <config key>/ab/abcdef....npy  one float32 (n_mfcc, n_frames) image per file content

    *Correctness is decided by content.* An entry's name is the BLAKE2b hash of the file's
    bytes, inside a directory named by the hash of the feature configuration and
    :data:`FEATURE_VERSION`; a changed configuration or a changed file therefore looks up a
    different name and can never be served a stale image. Renamed or copied files reuse entries.

    *Speed comes from a memo.* Hashing every file on every run would read the whole corpus, so
    the content hash is memoised by ``(path, size, mtime_ns, inode)``, which any rewrite or
    replacement of a file changes. Like git's index, a file modified in the last
    ``racy_window_s`` seconds before hashing is not memoised (its timestamp could still
    coincide with a later same-size edit); it is simply hashed again next time. A warm run then
    costs one ``stat`` and one small ``.npy`` read per file (its header compared byte for byte
    with the one :meth:`save` writes, ``np.load`` only as a fallback). One file per entry,
    rather than shards, keeps writes independent and atomic, lets several processes share a
    cache without locks and makes invalidation a matter of naming; a 64 KB read per file
    still reaches thousands of files per second (see ``benchmarks/RESULTS.md``).

    Every write is atomic (:func:`~emodarts_core.common.files.atomic_write`: temporary file in
    the same directory, ``fsync``, then ``os.replace``), so a crashed or concurrent writer never
    leaves a half-written entry under a real name; a concurrent update of the memo can at worst
    drop memo lines, which only costs a re-hash.
    """

    INDEX = "content-index.json"

    def __init__(self, cache_dir: str | PathLike[str], *, racy_window_s: float = 2.0) -> None:
        self.root = Path(cache_dir)
        self.racy_window_s = racy_window_s
        self._memo: dict[str, list] | None = None
        self._new_memo: dict[str, list] = {}
        self._lock = threading.Lock()
        self._config_dirs: dict[FeatureConfig, str] = {}
        #: Entries found damaged by :meth:`load` (file, reason); each was computed again.
        self.bad_entries: list[tuple[str, str]] = []

    # -- keys -----------------------------------------------------------------------------
    @staticmethod
    def config_key(cfg: FeatureConfig) -> str:
        """A short hash of the extraction settings and :data:`FEATURE_VERSION`.

        ``normalization`` is left out: it acts after the cache, on whole splits.
        """
        blob = json.dumps({"version": FEATURE_VERSION, "config": extraction_settings(cfg)},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def content_hash(self, path: str | PathLike[str]) -> str:
        """BLAKE2b-128 of the file's bytes, memoised by (path, size, mtime_ns, inode)."""
        p = os.fspath(path)
        try:
            st = os.stat(p)
        except FileNotFoundError as exc:
            raise AudioError(p, "file not found") from exc
        except OSError as exc:
            raise AudioError(p, f"cannot read ({exc})") from exc
        key = os.path.abspath(p)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        memo = self._load_memo()
        hit = memo.get(key)
        if hit is not None and hit[:3] == stamp:
            return hit[3]
        try:
            digest = _hash_file(p)
        except OSError as exc:  # a directory, no permission, ...
            raise AudioError(p, f"cannot read ({exc})") from exc
        if time.time_ns() - st.st_mtime_ns > self.racy_window_s * 1e9:
            with self._lock:
                memo[key] = stamp + [digest]
                self._new_memo[key] = stamp + [digest]
        return digest

    def entry_path(self, cfg: FeatureConfig, content_hash: str) -> Path:
        """Where the image of content ``content_hash`` under ``cfg`` lives (existing or not)."""
        return Path(self._entry_file(cfg, content_hash))

    # -- entries --------------------------------------------------------------------------
    def load(self, cfg: FeatureConfig, content_hash: str) -> np.ndarray | None:
        """The cached image (read-only), or ``None`` when absent or unusable (it is then
        recomputed).

        The fast path reads the file in one go and checks its ``.npy`` header byte for byte
        against the header ``save`` writes for this shape; anything else goes through
        ``np.load`` and is accepted only with the right shape and dtype. Every value must be
        finite: an entry that exists but fails a check is never trusted, and its file is
        listed in :attr:`bad_entries` (with the reason) so the caller can say it was redone.
        """
        file = self._entry_file(cfg, content_hash)
        try:
            with open(file, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            return self._bad(file, f"unreadable ({exc})")
        shape = cfg.shape
        header = _npy_header(shape)
        if data.startswith(header) and len(data) == len(header) + 4 * shape[0] * shape[1]:
            arr = np.frombuffer(data, dtype=np.float32, offset=len(header)).reshape(shape)
        else:
            try:
                arr = np.load(io.BytesIO(data), allow_pickle=False)
            except (OSError, ValueError, EOFError):
                return self._bad(file, "not a readable .npy file")
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != np.float32:
                return self._bad(file, f"shape {getattr(arr, 'shape', None)} or dtype "
                                       f"{getattr(arr, 'dtype', None)} instead of {shape} float32")
        if not np.isfinite(arr).all():
            return self._bad(file, f"{int(np.count_nonzero(~np.isfinite(arr)))} NaN or "
                                   f"infinite value(s)")
        return arr

    def _bad(self, file: str, reason: str) -> None:
        with self._lock:
            self.bad_entries.append((str(file), reason))
        return None

    def save(self, cfg: FeatureConfig, content_hash: str, image: np.ndarray) -> None:
        """Store one image atomically."""
        image = np.asarray(image, dtype=np.float32)
        if image.shape != cfg.shape:
            raise ValueError(f"FeatureCache.save: image shape {image.shape} != config shape {cfg.shape}")
        atomic_numpy_save(self.entry_path(cfg, content_hash), image)

    def get(self, path: str | PathLike[str], cfg: FeatureConfig) -> np.ndarray | None:
        """The cached image for file ``path`` under ``cfg``, or ``None``."""
        return self.load(cfg, self.content_hash(path))

    def put(self, path: str | PathLike[str], cfg: FeatureConfig, image: np.ndarray) -> None:
        """Cache ``image`` as the features of file ``path`` under ``cfg``."""
        self.save(cfg, self.content_hash(path), image)

    def flush(self) -> None:
        """Write new memo lines to ``content-index.json`` (merged with what is on disk now)."""
        with self._lock:
            if not self._new_memo:
                return
            new, self._new_memo = self._new_memo, {}
        merged = self._read_index()
        merged.update(new)
        atomic_write_text(self.root / self.INDEX, json.dumps({"version": 1, "entries": merged}))

    # -- internals ------------------------------------------------------------------------
    def _config_dir(self, cfg: FeatureConfig) -> str:
        d = self._config_dirs.get(cfg)
        if d is None:
            d = os.path.join(self.root, self.config_key(cfg))
            info = os.path.join(d, "config.json")
            if not os.path.exists(info):
                atomic_write_text(info, json.dumps(
                    {"feature_version": FEATURE_VERSION, "config": extraction_settings(cfg)},
                    indent=2))
            self._config_dirs[cfg] = d
        return d

    def _entry_file(self, cfg: FeatureConfig, content_hash: str) -> str:
        return os.path.join(self._config_dir(cfg), content_hash[:2], content_hash + ".npy")

    def _read_index(self) -> dict[str, list]:
        try:
            data = json.loads((self.root / self.INDEX).read_text())
            entries = data.get("entries", {}) if data.get("version") == 1 else {}
            return entries if isinstance(entries, dict) else {}
        except (OSError, ValueError):
            return {}

    def _load_memo(self) -> dict[str, list]:
        if self._memo is None:
            with self._lock:
                if self._memo is None:
                    self._memo = self._read_index()
        return self._memo

