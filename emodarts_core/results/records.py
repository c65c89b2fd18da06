"""The committed run records (``benchmarks/records``) wherever the book's notebooks run.

A clone has them beside the notebooks (``../benchmarks/records`` from ``notebooks/``); a pip
install, as on Colab, does not. :func:`records_root` returns the clone's folder when it is
there, and otherwise fetches the repository's source archive at the installed library's tag
once (:func:`emodarts_core.data.download.download`: resumable), unpacks only its
``benchmarks/records`` into a cache folder and returns that. :func:`resolve` maps a notebook's
``../benchmarks/records/...`` parameter onto whichever root was found.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from emodarts_core import __version__
from emodarts_core.data.download import DownloadError, download

REPOSITORY = "https://github.com/emodarts/emodarts"      # as _config.yml's repository.url
LOCAL = "../benchmarks/records"                           # from notebooks/, in a clone
PREFIX = "benchmarks/records/"
DONE = ".complete"

__all__ = ["REPOSITORY", "LOCAL", "archive_url", "default_cache", "records_root", "resolve",
           "records_path"]


def archive_url(version: str = __version__, repository: str = REPOSITORY) -> str:
    """The source archive of the repository at the release tag ``v<version>`` (GitHub's)."""
    return f"{repository.rstrip('/')}/archive/refs/tags/v{version}.zip"


def default_cache(version: str = __version__) -> Path:
    """``$EMODARTS_RECORDS_DIR``, else ``~/.cache/emodarts/records-v<version>``."""
    env = os.environ.get("EMODARTS_RECORDS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "emodarts" / f"records-v{version}"


def records_root(local: str | Path = LOCAL, cache: str | Path | None = None,
                 url: str | None = None, progress: bool = True) -> Path:
    """The folder holding the committed records: ``local`` when it is a folder (a clone),
    else ``cache`` (default :func:`default_cache`) after fetching them there once from ``url``
    (default :func:`archive_url` of the installed version). Prints what it fetches."""
    local = Path(local)
    if local.is_dir():
        return local
    cache = Path(cache) if cache is not None else default_cache()
    if (cache / DONE).exists():
        return cache
    url = url or archive_url()
    print(f"Records: {local} not found (not a clone of the repository); fetching {url} into {cache}")
    cache.mkdir(parents=True, exist_ok=True)
    archive = download(url, cache / "source.zip", progress=progress)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        staged = Path(tmp) / "records"
        n = _extract_records(archive, staged)
        if n == 0:
            raise DownloadError(f"records_root: {url} holds no {PREFIX} files")
        for item in staged.iterdir():               # move into place, then mark it complete
            target = cache / item.name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            shutil.move(str(item), target)
    archive.unlink()
    (cache / DONE).write_text(f"{url}\n")
    print(f"Records: {n} files unpacked into {cache}")
    return cache


def _extract_records(archive: Path, dest: Path) -> int:
    """Unpack the members under ``<top>/benchmarks/records/`` of a source archive into ``dest``
    (without that prefix), refusing members that would land outside it; return the file count."""
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            parts = member.filename.split("/", 1)         # GitHub's top folder: <repo>-<tag>/
            if len(parts) < 2 or not parts[1].startswith(PREFIX) or member.is_dir():
                continue
            rel = parts[1][len(PREFIX):]
            target = (root / rel).resolve()
            if root not in target.parents:
                raise DownloadError(f"records_root: {archive} member {member.filename!r} escapes {dest}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            count += 1
    return count


def resolve(path: str | Path, root: str | Path, local: str | Path = LOCAL) -> Path:
    """``path`` with its ``local`` prefix (``../benchmarks/records``) replaced by ``root``; any
    other path (a reader's own batch, the smoke run's) is returned as it is."""
    path, local = Path(path), Path(local)
    try:
        rel = path.relative_to(local)
    except ValueError:
        return path
    return Path(root) / rel


def records_path(path: str, local: str | Path = LOCAL, **fetch) -> str:
    """A notebook parameter's path as it can be read here: one under ``local`` is mapped onto
    :func:`records_root` (fetching the records once where there is no clone); any other path,
    or an empty one, comes back unchanged. ``fetch``: passed to :func:`records_root`."""
    if not path or resolve(path, "", local) == Path(path):
        return path
    return str(resolve(path, records_root(local, **fetch), local))
