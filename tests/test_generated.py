"""The generated corpus: layout, determinism, rerun rules, loader, and that classes differ."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from emodarts_core.data.corpora import load_corpus
from emodarts_core.data.corpora.common import CorpusError
from emodarts_core.data.corpora.generated import generate_corpus, load_generated

SMALL = dict(n_speakers=4, per_class=2, seed=5)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return generate_corpus(tmp_path_factory.mktemp("gen") / "c", **SMALL)


def test_layout_manifest_and_audio(small):
    files = sorted(small.rglob("*.wav"))
    assert len(files) == 4 * 4 * 2
    assert (small / "spk_00" / "00_neutral_00.wav").is_file()
    manifest = json.loads((small / "manifest.json").read_text())
    assert manifest["params"]["seed"] == 5 and manifest["params"]["classes"] == ["neutral", "happy", "sad", "angry"]
    assert {s: v["gender"] for s, v in manifest["speakers"].items()} == {"00": "F", "01": "M", "02": "F", "03": "M"}
    for f in files:
        info = sf.info(f)
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        assert 1.0 <= info.duration <= 3.0
        y, _ = sf.read(f)
        assert np.abs(y).max() < 1.0 and np.sqrt(np.mean(y ** 2)) > 1e-3


def test_loader(small):
    c = load_corpus("generated", small)
    assert len(c) == 32 and c.classes == ("neutral", "happy", "sad", "angry")
    assert c.speakers == ["00", "01", "02", "03"]
    assert c.class_counts() == {"neutral": 8, "happy": 8, "sad": 8, "angry": 8}
    r = c.records[0]
    assert r.utt_id == "00_angry_00" and r.gender == "F" and r.path.is_file()
    assert len(load_generated(small, classes=("sad",))) == 8


def test_deterministic_and_seed_dependent(tmp_path):
    a = generate_corpus(tmp_path / "a", n_speakers=2, per_class=1, seed=1)
    b = generate_corpus(tmp_path / "b", n_speakers=2, per_class=1, seed=1)
    c = generate_corpus(tmp_path / "c", n_speakers=2, per_class=1, seed=2)
    name = "spk_01/01_happy_00.wav"
    assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / name).read_bytes() != (c / name).read_bytes()
    # A file does not depend on how many others are generated.
    d = generate_corpus(tmp_path / "d", n_speakers=3, per_class=2, seed=1)
    assert (a / name).read_bytes() == (d / name).read_bytes()


def test_rerun_rules(tmp_path):
    root = generate_corpus(tmp_path / "g", n_speakers=2, per_class=1, seed=0)
    wav = root / "spk_00" / "00_sad_00.wav"
    stamp = wav.stat().st_mtime_ns
    assert generate_corpus(root, n_speakers=2, per_class=1, seed=0) == root
    assert wav.stat().st_mtime_ns == stamp                                  # same parameters: no-op
    wav.unlink()
    generate_corpus(root, n_speakers=2, per_class=1, seed=0)               # incomplete: rewritten
    assert wav.is_file()
    with pytest.raises(CorpusError, match="overwrite=True"):
        generate_corpus(root, n_speakers=2, per_class=1, seed=1)
    (root / "notes.txt").write_text("mine")
    generate_corpus(root, n_speakers=1, per_class=1, seed=1, classes=("calm", "surprised"), overwrite=True)
    assert sorted(p.name for p in root.rglob("*.wav")) == ["00_calm_00.wav", "00_surprised_00.wav"]
    assert not (root / "spk_01").exists() and (root / "notes.txt").read_text() == "mine"
    assert load_generated(root).classes == ("calm", "surprised")


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="no style"):
        generate_corpus(tmp_path / "x", classes=("neutral", "joy"))
    with pytest.raises(CorpusError, match="manifest.json"):
        load_generated(tmp_path)
    root = generate_corpus(tmp_path / "y", n_speakers=2, per_class=1)
    (root / "spk_01" / "01_happy_00.wav").unlink()
    with pytest.raises(CorpusError, match="missing"):
        load_generated(root)
    c = load_generated(root, skip_bad=True)
    assert len(c) == 7 and len(c.report) == 1


def _level_and_brightness(path):
    y, sr = sf.read(path)
    spec = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / sr)
    return 10 * np.log10(np.mean(y ** 2)), float((spec * freqs).sum() / spec.sum())


def test_classes_shift_cues_in_the_documented_direction(small):
    c = load_generated(small)
    stats = {k: [] for k in c.classes}
    for r in c.records:
        stats[r.label].append(_level_and_brightness(r.path))
    mean = {k: np.mean(v, axis=0) for k, v in stats.items()}
    # angry: louder and brighter (flatter spectral tilt) than sad, on average over speakers.
    assert mean["angry"][0] > mean["sad"][0] + 3.0
    assert mean["angry"][1] > mean["sad"][1]
    # ... but not separable by loudness alone: the loudness ranges of the classes overlap.
    levels = {k: np.array(v)[:, 0] for k, v in stats.items()}
    assert levels["sad"].max() > levels["neutral"].min()
