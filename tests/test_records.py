"""emodarts_core.results.records: the committed records found in a clone, or fetched (offline here: a
source archive laid out as GitHub's, served by a file:// URL) into a cache folder."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import yaml

import emodarts_core
from emodarts_core.data.download import DownloadError
from emodarts_core.results.collect import collect
from emodarts_core.results.records import (LOCAL, REPOSITORY, archive_url, records_path,
                                           records_root, resolve)

ROOT = Path(__file__).resolve().parents[1]
BATCH = "ravdess-cpu-speaker-norm"


def _source_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(f"emodarts-{emodarts_core.__version__}/{name}", data)
    return path


def test_a_clone_uses_its_own_records(tmp_path):
    clone = ROOT / "benchmarks" / "records"
    assert records_root(clone, cache=tmp_path / "cache") == clone
    assert not (tmp_path / "cache").exists()


def test_fetches_only_the_records_once_and_they_read_as_in_the_clone(tmp_path, capsys):
    src = ROOT / "benchmarks" / "records" / BATCH
    members = {f"benchmarks/records/{BATCH}/{p.relative_to(src).as_posix()}": p.read_bytes()
               for p in src.rglob("*") if p.is_file()}
    members["README.md"] = b"not a record"
    archive = _source_zip(tmp_path / "v.zip", members)
    cache = tmp_path / "cache"
    got = records_root(tmp_path / "no-clone", cache=cache, url=archive.as_uri(), progress=False)
    assert got == cache and (cache / ".complete").exists()
    assert not (cache / "README.md").exists() and not (cache / "source.zip").exists()
    fetched = collect(resolve(f"{LOCAL}/{BATCH}", got))
    here = collect(src)
    key = lambda rows: [(r.method, r.fold, r.seed, r.ua) for r in rows]     # noqa: E731
    assert key(fetched) == key(here)
    assert "fetching" in capsys.readouterr().out
    archive.unlink()                                    # a second call needs no archive
    assert records_root(tmp_path / "no-clone", cache=cache, url=archive.as_uri()) == cache
    assert capsys.readouterr().out == ""


def test_an_archive_without_records_is_an_error(tmp_path):
    archive = _source_zip(tmp_path / "v.zip", {"README.md": b"x"})
    with pytest.raises(DownloadError, match="no benchmarks/records/"):
        records_root(tmp_path / "none", cache=tmp_path / "c", url=archive.as_uri(), progress=False)
    assert not (tmp_path / "c" / ".complete").exists()


def test_a_member_escaping_the_cache_is_refused(tmp_path):
    archive = _source_zip(tmp_path / "v.zip", {"benchmarks/records/../../evil.txt": b"x"})
    with pytest.raises(DownloadError, match="escapes"):
        records_root(tmp_path / "none", cache=tmp_path / "c", url=archive.as_uri(), progress=False)


def test_resolve_maps_only_the_committed_records():
    assert resolve(f"{LOCAL}/{BATCH}/x", "/cache") == Path("/cache") / BATCH / "x"
    assert resolve("runs/smoke/experiments", "/cache") == Path("runs/smoke/experiments")


def test_archive_url_is_the_books_repository_at_the_installed_tag():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert REPOSITORY == config["repository"]["url"]
    assert archive_url() == f"{REPOSITORY}/archive/refs/tags/v{emodarts_core.__version__}.zip"


def test_records_path_fetches_only_for_the_committed_records(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("emodarts_core.results.records.records_root",
                        lambda local, **kw: calls.append(local) or tmp_path / "cache")
    assert records_path("runs/smoke/experiments") == "runs/smoke/experiments"
    assert records_path("") == ""
    assert calls == []
    assert records_path(f"{LOCAL}/{BATCH}") == str(tmp_path / "cache" / BATCH)
    assert calls == [LOCAL]
