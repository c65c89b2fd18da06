"""Resumable, checksummed downloads, and fetching the public corpora into their expected layout.

:func:`download` streams a URL into ``<dest>.part``, resumes a partial ``.part`` file with an HTTP
``Range`` request (a server that ignores ``Range`` and answers 200 simply restarts it), retries a
broken connection a few times, verifies the SHA-256 when one is given (a mismatch deletes the
data and raises :class:`DownloadError`), and only then renames ``.part`` to ``dest``
(``os.replace``: a half-written ``dest`` never exists). Standard library only (``urllib``).

:func:`fetch_corpus` puts a public corpus where :func:`emodarts_core.data.corpora.load_corpus` reads it
and does nothing when it is already there.

**Checksums, honestly.** No official checksum of these archives was available offline when this
module was written, so :data:`SOURCES` carries none. Instead the first download records the file's
size and SHA-256 in ``<root>/.emodarts_fetch.json``; a later download of the same file (e.g. after
deleting the corpus) must match it. Pass ``sha256=`` to :func:`fetch_corpus` to pin a known value.
The URLs themselves are from the corpora's home pages as remembered, not re-checked (no internet
here): the RAVDESS Zenodo record 1188976 is well known, the EmoDB and CREMA-D addresses less so.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from emodarts_core.common.files import atomic_write_text
from emodarts_core.data.corpora import load_corpus
from emodarts_core.data.corpora.common import CorpusError

USER_AGENT = "emodarts-core (https://github.com; research download)"
RECORD_FILE = ".emodarts_fetch.json"


class DownloadError(RuntimeError):
    """A download that failed, did not match its checksum, or cannot be done automatically."""


@dataclass(frozen=True)
class Source:
    """Where a public corpus comes from. ``sha256`` is None where no checksum is known."""

    url: str
    kind: str                  # "zip": one archive to unpack; "crema_d": per-file from the repo
    note: str
    sha256: str | None = None


SOURCES: dict[str, Source] = {
    "ravdess": Source(
        url="https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1",
        kind="zip",
        note="RAVDESS speech, 24 actors x 60 files, 48 kHz WAV (Zenodo record 1188976, CC BY-NC-SA 4.0); "
             "unpacks to Actor_01..Actor_24",
    ),
    "emodb": Source(
        url="http://emodb.bilderbar.info/download/download.zip",
        kind="zip",
        note="EmoDB, 535 utterances (emodb.bilderbar.info; free for research, cite Burkhardt et al. "
             "2005); unpacks to wav/, lablaut/, labsilb/, silb/, erkennung.txt, erklaerung.txt",
    ),
    "crema_d": Source(
        url="https://media.githubusercontent.com/media/CheyneyComputerScience/CREMA-D/master",
        kind="crema_d",
        note="CREMA-D, 7442 clips (github.com/CheyneyComputerScience/CREMA-D, Open Database License); "
             "the audio is in Git LFS, so each AudioWAV file is fetched from the LFS media host, the "
             "file list from processedResults/summaryTable.csv",
    ),
}

LICENSED_HELP: dict[str, str] = {
    "iemocap": (
        "IEMOCAP is licensed by USC SAIL and cannot be downloaded automatically. Request it at "
        "https://sail.usc.edu/iemocap/ (release form), unpack IEMOCAP_full_release.tar.gz and pass "
        "the folder that holds Session1..Session5 (or its parent) as root. Expected layout: "
        "Session<n>/dialog/EmoEvaluation/<dialog>.txt and Session<n>/sentences/wav/<dialog>/<utt>.wav"
    ),
    "msp_improv": (
        "MSP-IMPROV is licensed by the UT Dallas MSP lab and cannot be downloaded automatically. "
        "Request it at https://ecs.utdallas.edu/research/researchlabs/msp-lab/ (academic licence) "
        "and pass the MSP-IMPROV folder as root. Expected layout: Evalution.txt (or Evaluation.txt) "
        "and Audio/session<n>/S<ss><E>/<R|S|T|P>/MSP-IMPROV-*.wav"
    ),
    "msp_podcast": (
        "MSP-Podcast is licensed by the UT Dallas MSP lab and cannot be downloaded automatically. "
        "Request it at https://ecs.utdallas.edu/research/researchlabs/msp-lab/ (academic licence) "
        "and pass the release folder as root. Expected layout: Labels/labels_consensus.csv (or "
        "labels_concensus.csv) and Audios/MSP-PODCAST_*.wav (or Audio/)"
    ),
}


def sha256_of(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def _progress_bar(total: int | None, initial: int, name: str, enabled: bool) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:                                    # pragma: no cover - tqdm is a dependency
        enabled = False
    if not enabled:
        class _Null:
            def update(self, n: int) -> None: ...
            def close(self) -> None: ...
        return _Null()
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name, leave=False)


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    resume: bool = True,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
    chunk_size: int = 1 << 16,
) -> Path:
    """Download ``url`` to ``dest`` (a file path, or an existing folder: the URL's file name is
    used) and return the final path.

    An existing ``dest`` is kept when it matches ``sha256`` (or when no checksum is given).
    ``resume``: continue ``<dest>.part`` with a ``Range`` request (else start over). A connection
    that breaks is retried ``retries`` times, resuming each time; when they run out the partial
    file stays for the next call. Raises :class:`DownloadError` on an HTTP error, on running out
    of retries, and on a checksum mismatch (after deleting the bad data).
    """
    dest = Path(dest).expanduser()
    if dest.is_dir():
        name = Path(urlsplit(url).path).name
        if not name:
            raise DownloadError(f"download: cannot take a file name from {url!r}; pass a file path as dest")
        dest = dest / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    expected = sha256.lower() if sha256 else None
    if dest.is_file():
        if expected is None or sha256_of(dest) == expected:
            return dest
        dest.unlink()                                      # stale or corrupt: fetch again
    part = dest.with_name(dest.name + ".part")
    if not resume and part.exists():
        part.unlink()

    failures = 0
    while True:
        start = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": USER_AGENT}
        if start:
            headers["Range"] = f"bytes={start}-"
        try:
            done = _fetch_once(url, part, start, headers, timeout, chunk_size, progress, dest.name)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and start:                  # nothing left to send: .part is whole
                break
            raise DownloadError(f"download: {url} answered HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            done, reason = False, exc
        else:
            reason = "the connection closed before the announced length"
        if done:
            break
        failures += 1
        if failures > retries:
            raise DownloadError(
                f"download: {url} failed after {retries} retries ({reason}); "
                f"{part.stat().st_size if part.exists() else 0} bytes kept in {part}, call again to resume"
            )
        time.sleep(min(0.2 * 2 ** failures, 5.0))

    if expected is not None:
        actual = sha256_of(part)
        if actual != expected:
            part.unlink()
            raise DownloadError(f"download: checksum mismatch for {url}: expected sha256 {expected}, "
                                f"got {actual}; the download was deleted")
    os.replace(part, dest)
    return dest


def _fetch_once(url: str, part: Path, start: int, headers: dict[str, str], timeout: float,
                chunk_size: int, progress: bool, name: str) -> bool:
    """One request; True when the body was read to its end."""
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        status = getattr(resp, "status", 200)
        if start and status == 206:
            content_range = resp.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {start}-"):
                raise DownloadError(f"download: {url} sent range {content_range!r}, asked for {start}-")
            mode = "ab"
        else:                                              # 200: the whole file again
            start, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        bar = _progress_bar(total, start, name, progress)
        got = start
        try:
            with open(part, mode) as fh:
                while chunk := resp.read(chunk_size):
                    fh.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
    return total is None or got >= total


# ---------------------------------------------------------------------------------------------
def _records(root: Path) -> dict[str, Any]:
    path = root / RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_records(root: Path, data: dict[str, Any]) -> None:
    atomic_write_text(root / RECORD_FILE, json.dumps(data, indent=1, sort_keys=True))


def _checked_download(url: str, dest: Path, root: Path, key: str, sha256: str | None,
                      progress: bool) -> Path:
    """Download and verify against ``sha256`` or, failing that, the value recorded at the first
    download; record size and SHA-256 when nothing was known."""
    records = _records(root)
    known = sha256 or records.get(key, {}).get("sha256")
    path = download(url, dest, sha256=known, progress=progress)
    if key not in records:
        records[key] = {"url": url, "size": path.stat().st_size, "sha256": sha256_of(path),
                        "first_download": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _write_records(root, records)
    return path


def extract_zip(archive: str | Path, dest: str | Path) -> list[Path]:
    """Unpack ``archive`` into ``dest`` refusing members that would land outside it (and skipping
    ``__MACOSX`` resource forks); return the top-level entries created."""
    dest = Path(dest).resolve()
    top: set[Path] = set()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            if member.filename.startswith("__MACOSX/"):
                continue
            target = (dest / member.filename).resolve()
            if dest not in target.parents and target != dest:
                raise DownloadError(f"extract_zip: {archive} member {member.filename!r} escapes {dest}")
            top.add(dest / Path(member.filename).parts[0])
            zf.extract(member, dest)
    return sorted(top)


def _corpus_present(name: str, root: Path) -> bool:
    try:
        return len(load_corpus(name, root, skip_bad=True)) > 0
    except CorpusError:
        return False


def fetch_corpus(
    name: str,
    root: str | Path,
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    keep_archive: bool = False,
) -> Path:
    """Download and unpack public corpus ``name`` (``"ravdess"``, ``"emodb"``, ``"crema_d"``) into
    ``root`` in the layout its loader reads, and return ``root``.

    Idempotent: when ``load_corpus(name, root)`` already finds the corpus nothing is downloaded.
    ``url`` replaces the source address (a mirror; for CREMA-D the base URL of the repository
    files). For a licensed corpus (``iemocap``, ``msp_improv``, ``msp_podcast``) it raises
    :class:`DownloadError` with instructions for obtaining it and the layout expected.
    """
    key = name.lower().replace("-", "_")
    if key in LICENSED_HELP:
        raise DownloadError(LICENSED_HELP[key])
    if key not in SOURCES:
        raise DownloadError(f"fetch_corpus: unknown corpus {name!r}; public ones: {', '.join(SOURCES)}; "
                            f"licensed: {', '.join(LICENSED_HELP)}")
    source = SOURCES[key]
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    if _corpus_present(key, root):
        return root
    src_url = url or source.url
    sha = sha256 or source.sha256
    if source.kind == "zip":
        archive_name = Path(urlsplit(src_url).path).name or f"{key}.zip"
        downloads = root / ".downloads"
        archive = _checked_download(src_url, downloads / archive_name, root, f"{key}:{archive_name}",
                                    sha, progress)
        extract_zip(archive, root)
        if not keep_archive:
            archive.unlink()
            if downloads.is_dir() and not any(downloads.iterdir()):
                downloads.rmdir()
    else:
        _fetch_crema_d(src_url, root, progress)
    if not _corpus_present(key, root):
        raise DownloadError(f"fetch_corpus: downloaded {key} into {root}, but its loader finds no "
                            "utterances there; the archive layout may have changed")
    return root


CREMA_NAME_RE = re.compile(r"\b(\d{4}_[A-Z]{3}_[A-Z]{3}_[A-Z]{2})\b")


def _fetch_crema_d(base: str, root: Path, progress: bool) -> None:
    base = base.rstrip("/")
    table = _checked_download(f"{base}/processedResults/summaryTable.csv",
                              root / "processedResults" / "summaryTable.csv", root,
                              "crema_d:summaryTable.csv", None, False)
    _checked_download(f"{base}/VideoDemographics.csv", root / "VideoDemographics.csv", root,
                      "crema_d:VideoDemographics.csv", None, False)
    names = sorted(set(CREMA_NAME_RE.findall(table.read_text(errors="replace"))))
    if not names:
        raise DownloadError(f"fetch_corpus: no AAAA_SSS_EEE_LL names found in {table}")
    audio = root / "AudioWAV"
    audio.mkdir(exist_ok=True)
    bar = _progress_bar(len(names), 0, "CREMA-D files", progress)
    try:
        for stem in names:
            download(f"{base}/AudioWAV/{stem}.wav", audio / f"{stem}.wav", progress=False)
            bar.update(1)
    finally:
        bar.close()


def remove_partial(dest: str | Path) -> None:
    """Delete ``<dest>.part`` (to force a fresh start instead of a resume)."""
    part = Path(str(dest) + ".part")
    if part.exists():
        part.unlink()


__all__ = ["DownloadError", "SOURCES", "Source", "download", "extract_zip", "fetch_corpus",
           "remove_partial", "sha256_of"]
