"""The data-source rule shared by the notebooks and the book build, and the run header."""
from __future__ import annotations

from pathlib import Path

import pytest

from emodarts_core.data.source import (GENERATED_DESCRIPTION, corpus_root, default_ravdess,
                                       is_ravdess_root, resolve_data_source, run_header)


def _ravdess(tmp_path: Path) -> Path:
    root = tmp_path / "ravdess"
    (root / "Actor_01").mkdir(parents=True)
    (root / "Actor_01" / "03-01-01-01-01-01-01.wav").write_bytes(b"")
    return root


def test_auto_prefers_ravdess_then_falls_back_to_generated(tmp_path, monkeypatch):
    monkeypatch.delenv("EMODARTS_RAVDESS", raising=False)
    root = _ravdess(tmp_path)
    src = resolve_data_source("auto", str(root))
    assert (src.corpus, src.root) == ("ravdess", str(root.resolve())) and src.is_real_speech
    assert src.line().startswith("Data source: ravdess — RAVDESS")
    # through the environment variable
    monkeypatch.setenv("EMODARTS_RAVDESS", str(root))
    assert resolve_data_source("auto").corpus == "ravdess"
    # a folder without Actor_* folders: generated
    monkeypatch.setenv("EMODARTS_RAVDESS", str(tmp_path / "empty"))
    src = resolve_data_source("auto")
    assert src.corpus == "generated" and src.root is None and not src.is_real_speech
    assert src.line() == f"Data source: generated — {GENERATED_DESCRIPTION}"


def test_explicit_ravdess_without_copy_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("EMODARTS_RAVDESS", raising=False)
    with pytest.raises(FileNotFoundError, match="data_root"):
        resolve_data_source("ravdess", str(tmp_path))
    with pytest.raises(ValueError, match="empty"):
        resolve_data_source("  ")


def test_licensed_corpus_root_may_be_the_parent_folder(tmp_path):
    (tmp_path / "iemocap").mkdir()
    assert corpus_root("iemocap", tmp_path) == tmp_path / "iemocap"
    assert corpus_root("msp_improv", tmp_path) == tmp_path
    src = resolve_data_source("IEMOCAP", str(tmp_path))
    assert src.corpus == "iemocap" and src.root == str((tmp_path / "iemocap").resolve())
    with pytest.raises(FileNotFoundError, match="needs data_root"):
        resolve_data_source("iemocap", "")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_data_source("iemocap", str(tmp_path / "nowhere"))


def test_default_ravdess_env_then_shared_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("EMODARTS_RAVDESS", raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    assert default_ravdess(repo) == ""
    shared = tmp_path / "shared" / "data" / "ravdess" / "Actor_02"
    shared.mkdir(parents=True)
    assert default_ravdess(repo) == str(shared.parent)
    assert is_ravdess_root(tmp_path / "shared" / "data") and not is_ravdess_root(repo)
    monkeypatch.setenv("EMODARTS_RAVDESS", "/elsewhere")
    assert default_ravdess(repo) == "/elsewhere"


def test_run_header_lists_data_and_parameters():
    src = resolve_data_source("generated")
    text = run_header(src, {"profile": "smoke", "fold": 0}, seed=3, device="cpu")
    lines = text.splitlines()
    assert lines[0] == src.line()
    assert "seed 3" in lines[1] and "device cpu" in lines[1]
    assert lines[-2:] == ["  profile = 'smoke'", "  fold = 0"]


def test_configure_threads_reads_the_environment(monkeypatch):
    import torch

    from emodarts_core.common.threads import configure_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("EMODARTS_THREADS", "1")
        assert configure_threads() == 1 == torch.get_num_threads()
        monkeypatch.delenv("EMODARTS_THREADS")
        assert configure_threads() == 1           # unset: left as it is
        monkeypatch.setenv("EMODARTS_THREADS", "two")
        with pytest.raises(ValueError, match="EMODARTS_THREADS"):
            configure_threads()
    finally:
        torch.set_num_threads(before)
