"""MFCC features: torch vs librosa reference, the parallel pipeline, the cache, normalisation."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emodarts_core.config import FEATURE_PROFILES, FeatureConfig, override
from emodarts_core.data import feature_cache
from emodarts_core.data.audio import AudioError, pad_or_cut, read_audio
from emodarts_core.data.corpora.record import LoadReport, Utterance
from emodarts_core.data.feature_cache import FeatureCache
from emodarts_core.data.features import Features, extract_features
from emodarts_core.data.mfcc import MFCC
from emodarts_core.data.mfcc_reference import librosa_mfcc, max_pool_time, relative_error
from emodarts_core.data.normalization import Normalizer, normalize_per_speaker, speaker_step

SMOKE = FEATURE_PROFILES["smoke"]


def speechlike(seconds: float, sr: int, seed: int = 0, gain: float = 0.4) -> np.ndarray:
    """Voiced, speech-like signal: gliding harmonics under a syllable envelope, formant-like
    emphasis around 500 Hz and 1.5 kHz, and a little noise (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 110 + 60 * rng.uniform() + 30 * np.sin(2 * np.pi * 0.8 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = np.zeros_like(t)
    for k in range(1, 30):
        fk = k * f0.mean()
        if fk > 0.45 * sr:
            break
        amp = np.exp(-((fk - 500) / 300) ** 2) + 0.5 * np.exp(-((fk - 1500) / 400) ** 2) + 0.05 / k
        y += amp * np.sin(k * phase)
    syll = 3 + 2 * rng.uniform()
    y *= np.clip(np.sin(2 * np.pi * syll * t + rng.uniform(0, 6)), 0, None) ** 1.5
    y += 0.01 * rng.standard_normal(t.size)
    return (gain * y / np.abs(y).max()).astype(np.float32)


def write_corpus(root: Path, n: int, sr: int = 16000, seed: int = 0, ext: str = "flac") -> list[Path]:
    """``n`` 16-bit files of 0.4 .. 1.6 s (shorter and longer than the smoke profile's 1 s)."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        seconds = 0.4 + 1.2 * i / max(1, n - 1)
        p = root / f"utt{i:02d}.{ext}"
        sf.write(str(p), speechlike(seconds, sr, seed + i), sr, subtype="PCM_16")
        paths.append(p)
    return paths


def reference(paths, cfg: FeatureConfig) -> np.ndarray:
    """The plain librosa route, file by file."""
    librosa = pytest.importorskip("librosa")
    return np.stack([librosa_mfcc(librosa.load(str(p), sr=cfg.sample_rate)[0], cfg) for p in paths])


# --- the torch MFCC against librosa ----------------------------------------------------------
@pytest.mark.parametrize("profile", ["smoke", "16k", "paper"])
def test_mfcc_matches_librosa(profile):
    cfg = FEATURE_PROFILES[profile]
    ys = [speechlike(s, cfg.sample_rate, seed) for seed, s in enumerate([0.6 * cfg.duration_s,
                                                                         1.3 * cfg.duration_s])]
    x = torch.from_numpy(np.stack([pad_or_cut(y, cfg.n_samples) for y in ys]))
    ours = MFCC(cfg)(x).numpy()
    ref = np.stack([librosa_mfcc(y, cfg) for y in ys])
    assert ours.shape == ref.shape == (2, *cfg.shape)
    assert ours.dtype == np.float32
    assert relative_error(ours, ref).max() < 1e-3
    # the padding shortcut changes nothing
    short = MFCC(cfg)(x, lengths=[min(len(y), cfg.n_samples) for y in ys]).numpy()
    np.testing.assert_allclose(short, ours, rtol=0, atol=1e-4)


def test_mfcc_top_db_is_per_utterance():
    """A loud and a quiet utterance in one batch get each their own floor (as librosa)."""
    cfg = SMOKE
    loud = speechlike(0.5, cfg.sample_rate, 1, gain=0.9)
    quiet = speechlike(0.5, cfg.sample_rate, 2, gain=0.001)
    x = torch.from_numpy(np.stack([pad_or_cut(loud, cfg.n_samples), pad_or_cut(quiet, cfg.n_samples)]))
    mfcc = MFCC(cfg)
    both = mfcc(x)
    alone = mfcc(x[1:])
    torch.testing.assert_close(both[1:], alone, rtol=1e-5, atol=1e-3)
    assert relative_error(both[1].numpy(), librosa_mfcc(quiet, cfg)).item() < 1e-3
    # a floor shared by the batch would have cut the quiet one: its range reaches below
    # the loud one's peak - top_db
    librosa = pytest.importorskip("librosa")
    db = [librosa.power_to_db(librosa.feature.melspectrogram(
        y=row.numpy(), sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        n_mels=cfg.n_mels, pad_mode="constant"), top_db=None) for row in x]
    assert db[1].min() < db[0].max() - cfg.top_db
    # and the floor matters: without it the loud one's padding sits at -100 dB
    no_floor = MFCC(override(cfg, top_db=None))(x[:1])
    assert (no_floor - both[:1]).abs().max() > 1.0
    ref = librosa_mfcc(loud, override(cfg, top_db=None))
    assert relative_error(no_floor[0].numpy(), ref).item() < 1e-3


def test_mfcc_rejects_wrong_length():
    with pytest.raises(ValueError, match=r"\(B, 16000\)"):
        MFCC(SMOKE)(torch.zeros(2, 1000))


def test_max_pool_time_drops_remainder():
    m = np.arange(10, dtype=np.float32).reshape(1, 10)
    np.testing.assert_array_equal(max_pool_time(m, 4), [[3, 7]])
    assert max_pool_time(m, 1) is m


def test_relative_error_metric():
    a = np.ones((2, 3, 4))
    b = a.copy()
    b[1] *= 2
    np.testing.assert_allclose(relative_error(a, b), [0.0, 0.5])


# --- the pipeline -----------------------------------------------------------------------------
def test_extract_features_matches_reference_in_order(tmp_path):
    paths = write_corpus(tmp_path / "wav", 7)
    order = [3, 0, 6, 1, 5, 2, 4]
    recs = [Utterance(path=paths[i], label="x", speaker="s", corpus="t", utt_id=str(i)) for i in order]
    got = extract_features(recs, SMOKE, workers=2, chunk_size=2, progress=False)
    assert isinstance(got, Features)
    assert got.tensor.shape == (7, *SMOKE.shape) and got.tensor.dtype == torch.float32
    assert got.kept == list(range(7)) and len(got.report) == 0
    ref = reference([paths[i] for i in order], SMOKE)
    assert relative_error(got.tensor.numpy(), ref).max() < 1e-3
    # one worker, one chunk: the same numbers
    single = extract_features([str(paths[i]) for i in order], SMOKE, workers=1, chunk_size=16,
                              progress=False)
    torch.testing.assert_close(single.tensor, got.tensor, rtol=0, atol=1e-4)


def test_resampled_input_matches_reference(tmp_path):
    """Files at 22.05 kHz and stereo go through the same resampling as librosa.load."""
    cfg = SMOKE
    p1 = tmp_path / "a.wav"
    sf.write(str(p1), speechlike(0.8, 22050, 3), 22050)
    p2 = tmp_path / "b.wav"
    sf.write(str(p2), np.stack([speechlike(1.2, 22050, 4), speechlike(1.2, 22050, 5)], 1), 22050)
    got = extract_features([p1, p2], cfg, progress=False).tensor.numpy()
    assert relative_error(got, reference([p1, p2], cfg)).max() < 1e-3


def _with_bad_files(tmp_path: Path) -> tuple[list[Path], dict[int, str]]:
    good = write_corpus(tmp_path / "wav", 4)
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(8000, np.float32), 16000)
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + os.urandom(300))
    nan = tmp_path / "nan.wav"
    y = speechlike(0.5, 16000)
    y[10] = np.nan
    sf.write(str(nan), y, 16000, subtype="FLOAT")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16000)
    paths = [good[0], silent, good[1], corrupt, good[2], nan, empty, tmp_path / "gone.wav", good[3]]
    bad = {1: "silent", 3: "cannot decode", 5: "NaN", 6: "empty", 7: "not found"}
    return paths, bad


@pytest.mark.parametrize("cached", [False, True])
def test_bad_files_raise_or_are_skipped_and_reported(tmp_path, cached):
    paths, bad = _with_bad_files(tmp_path)
    cache_dir = tmp_path / "cache" if cached else None
    threads = torch.get_num_threads()
    with pytest.raises(AudioError) as info:
        extract_features(paths, SMOKE, cache_dir=cache_dir, workers=2, chunk_size=2, progress=False)
    assert info.value.path in {str(paths[i]) for i in bad}
    assert torch.get_num_threads() == threads, "torch's thread count is restored after an error"

    report = LoadReport()
    report.skip("earlier.wav", "from the corpus loader")
    got = extract_features(paths, SMOKE, cache_dir=cache_dir, workers=2, chunk_size=2,
                           skip_bad=True, report=report, progress=False)
    good = [i for i in range(len(paths)) if i not in bad]
    assert got.kept == good
    assert got.report is report and len(report) == 1 + len(bad)
    reasons = dict(report.skipped[1:])
    for i, words in bad.items():
        assert words in reasons[str(paths[i])]
    assert relative_error(got.tensor.numpy(), reference([paths[i] for i in good], SMOKE)).max() < 1e-3


# --- the cache --------------------------------------------------------------------------------
def _age(path: Path, seconds: float = 60.0) -> None:
    """Pretend a file was last modified ``seconds`` ago (so the content memo may trust it)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_warm_cache_serves_without_decoding(tmp_path, monkeypatch):
    paths = write_corpus(tmp_path / "wav", 5)
    for p in paths:
        _age(p)
    cache_dir = tmp_path / "cache"
    cold = extract_features(paths, SMOKE, cache_dir=cache_dir, progress=False)
    assert len(list(cache_dir.rglob("*.npy"))) == 5
    assert not list(cache_dir.rglob(".*")), "temporary files must not remain"
    assert (cache_dir / FeatureCache.INDEX).exists()

    def boom(*args, **kwargs):
        raise AssertionError("decoded or hashed although the cache is warm")

    monkeypatch.setattr("emodarts_core.data.features.read_audio", boom)
    monkeypatch.setattr(feature_cache, "_hash_file", boom)      # the memo answers, no file is read
    warm = extract_features(paths, SMOKE, cache_dir=cache_dir, progress=False)
    torch.testing.assert_close(warm.tensor, cold.tensor, rtol=0, atol=0)


def test_changed_config_is_not_served_stale(tmp_path):
    paths = write_corpus(tmp_path / "wav", 3)
    cache_dir = tmp_path / "cache"
    a = extract_features(paths, SMOKE, cache_dir=cache_dir, progress=False)
    other = override(SMOKE, top_db=40.0)
    b = extract_features(paths, other, cache_dir=cache_dir, progress=False)
    assert FeatureCache.config_key(other) != FeatureCache.config_key(SMOKE)
    assert (a.tensor - b.tensor).abs().max() > 1.0
    assert relative_error(b.tensor.numpy(), reference(paths, other)).max() < 1e-3
    assert len({p.parent.parent.name for p in cache_dir.rglob("*.npy")}) == 2


def test_changed_file_is_not_served_stale(tmp_path):
    paths = write_corpus(tmp_path / "wav", 3, ext="wav")     # WAV: size depends on length only
    for p in paths:
        _age(p)
    cache_dir = tmp_path / "cache"
    before = extract_features(paths, SMOKE, cache_dir=cache_dir, progress=False).tensor
    # rewrite one file in place with other content of the same length (same size, same inode)
    size, inode = paths[1].stat().st_size, paths[1].stat().st_ino
    sf.write(str(paths[1]), speechlike(0.4 + 1.2 / 2, 16000, seed=99), 16000, subtype="PCM_16")
    assert paths[1].stat().st_ino == inode
    assert paths[1].stat().st_size == size
    after = extract_features(paths, SMOKE, cache_dir=cache_dir, progress=False).tensor
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]], rtol=0, atol=0)
    assert (after[1] - before[1]).abs().max() > 1.0
    assert relative_error(after[1].numpy(), reference([paths[1]], SMOKE)[0]).item() < 1e-3


def test_cache_is_keyed_by_content_not_path(tmp_path):
    paths = write_corpus(tmp_path / "wav", 2)
    cache = FeatureCache(tmp_path / "cache")
    copy = tmp_path / "copy.flac"
    copy.write_bytes(paths[0].read_bytes())
    assert cache.content_hash(copy) == cache.content_hash(paths[0])
    assert cache.content_hash(paths[1]) != cache.content_hash(paths[0])
    image = np.random.default_rng(0).standard_normal(SMOKE.shape).astype(np.float32)
    cache.put(paths[0], SMOKE, image)
    np.testing.assert_array_equal(FeatureCache(tmp_path / "cache").get(copy, SMOKE), image)
    assert cache.get(paths[1], SMOKE) is None


def test_corrupt_cache_entry_is_recomputed(tmp_path):
    paths = write_corpus(tmp_path / "wav", 2)
    cache_dir = tmp_path / "cache"
    good = extract_features(paths, SMOKE, cache_dir=cache_dir, progress=False).tensor
    for entry in cache_dir.rglob("*.npy"):
        entry.write_bytes(b"\x93NUMPY garbage")
    again = extract_features(paths, SMOKE, cache_dir=cache_dir, progress=False).tensor
    torch.testing.assert_close(again, good, rtol=0, atol=0)


def test_racy_files_are_not_memoised(tmp_path):
    p = write_corpus(tmp_path / "wav", 1)[0]          # just written: inside the racy window
    cache = FeatureCache(tmp_path / "cache")
    cache.content_hash(p)
    cache.flush()
    assert not (tmp_path / "cache" / FeatureCache.INDEX).exists()
    _age(p)
    cache.content_hash(p)
    cache.flush()
    index = json.loads((tmp_path / "cache" / FeatureCache.INDEX).read_text())
    assert index["entries"][os.path.abspath(p)][3] == cache.content_hash(p)


# --- normalisation ----------------------------------------------------------------------------
def test_normalizer_uses_training_statistics_only(tmp_path):
    g = torch.Generator().manual_seed(0)
    n_coef, n_frames = 6, 9
    offsets = torch.arange(n_coef, dtype=torch.float32)[:, None]
    train = torch.randn(20, n_coef, n_frames, generator=g) * 2 + offsets
    test = torch.randn(10, n_coef, n_frames, generator=g) * 7 + 50     # very different speakers
    features = torch.cat([train, test])
    train_idx = list(range(20))
    norm = Normalizer.fit(features[train_idx])
    torch.testing.assert_close(norm.mean, train.mean(dim=(0, 2)))
    torch.testing.assert_close(norm.std, train.std(dim=(0, 2), unbiased=False))
    z = norm(features)
    assert z.shape == features.shape
    torch.testing.assert_close(z[:20].mean(dim=(0, 2)), torch.zeros(n_coef), atol=1e-5, rtol=0)
    torch.testing.assert_close(z[:20].std(dim=(0, 2), unbiased=False), torch.ones(n_coef),
                               atol=1e-5, rtol=0)
    assert z[20:].mean() > 5, "test data is standardised with training statistics, not its own"
    # changing the test side changes nothing in the statistics
    features[20:] = 0
    again = Normalizer.fit(features[train_idx])
    torch.testing.assert_close(again.mean, norm.mean)
    # a (B, 1, C, T) batch works too, and a constant coefficient does not divide by zero
    const = torch.ones(4, 1, 3, 5)
    nz = Normalizer.fit(const)
    assert torch.isfinite(nz(const)).all()

    # round trip through a weights_only checkpoint
    torch.save(norm.state_dict(), tmp_path / "n.pt")
    loaded = Normalizer.from_state_dict(torch.load(tmp_path / "n.pt", weights_only=True))
    torch.testing.assert_close(loaded(features), norm(features))
    with pytest.raises(ValueError, match="coefficients"):
        norm(torch.zeros(2, n_coef + 1, n_frames))


def test_per_speaker_normalisation_removes_what_is_constant_in_a_voice():
    g = torch.Generator().manual_seed(1)
    n_coef, n_frames = 5, 7
    base = torch.randn(12, n_coef, n_frames, generator=g)
    speakers = ["a"] * 4 + ["b"] * 5 + ["c"] * 3
    z = normalize_per_speaker(base, speakers)
    assert z.dtype == torch.float32 and z.shape == base.shape
    for s in "abc":
        rows = [i for i, t in enumerate(speakers) if t == s]
        torch.testing.assert_close(z[rows].mean(dim=(0, 2)), torch.zeros(n_coef), atol=1e-5, rtol=0)
        torch.testing.assert_close(z[rows].std(dim=(0, 2), unbiased=False), torch.ones(n_coef),
                                   atol=1e-5, rtol=0)
    # a speaker-wide per-coefficient offset and gain (a voice, a microphone) leaves no trace,
    # and the other speakers are untouched by it
    moved = base.clone()
    moved[4:9] = moved[4:9] * torch.linspace(0.5, 3.0, n_coef)[:, None] + torch.arange(n_coef)[:, None] * 10
    torch.testing.assert_close(normalize_per_speaker(moved, speakers), z, atol=1e-4, rtol=0)
    # a row is only ever compared with its own speaker: reordering rows reorders the output
    perm = torch.randperm(12, generator=g)
    torch.testing.assert_close(normalize_per_speaker(base[perm], [speakers[i] for i in perm]),
                               z[perm])
    # the "training" setting leaves the images as they are for the fitted Normalizer
    assert speaker_step(base, speakers, FeatureConfig()) is base
    torch.testing.assert_close(speaker_step(base, speakers, FeatureConfig(normalization="speaker")), z)
    with pytest.raises(ValueError, match="speaker names"):
        normalize_per_speaker(base, speakers[:-1])
    with pytest.raises(ValueError, match="normalization"):
        FeatureConfig(normalization="utterance")


def test_normalization_is_not_part_of_the_cache_key():
    cfg = FEATURE_PROFILES["smoke"]
    same = override(cfg, normalization="speaker")
    assert FeatureCache.config_key(same) == FeatureCache.config_key(cfg)
    assert FeatureCache.config_key(override(cfg, n_mfcc=cfg.n_mfcc + 1)) != FeatureCache.config_key(cfg)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_librosa(tmp_path):
    cfg = FEATURE_PROFILES["paper"]
    paths = write_corpus(tmp_path / "wav", 3)
    ref = reference(paths, cfg)
    ys = [read_audio(p, cfg.sample_rate, duration_s=cfg.duration_s) for p in paths]
    x = torch.from_numpy(np.stack([pad_or_cut(y, cfg.n_samples) for y in ys])).cuda()
    ours = MFCC(cfg).cuda()(x)
    assert ours.device.type == "cuda"
    assert relative_error(ours.cpu().numpy(), ref).max() < 1e-3
    got = extract_features(paths, cfg, device="cuda", progress=False)
    assert relative_error(got.tensor.numpy(), ref).max() < 1e-3


def test_failed_cache_write_leaves_no_file(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path / "cache")
    image = np.zeros(SMOKE.shape, dtype=np.float32)
    cache.save(SMOKE, "cd" * 16, image)                # the config directory and one entry

    def interrupted(f, *args, **kwargs):
        f.write(b"\x93NUMPY half")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.save(SMOKE, "ab" * 16, image)
    assert not cache.entry_path(SMOKE, "ab" * 16).exists()
    assert not list((tmp_path / "cache").rglob(".*")), "temporary files must not remain"
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()) == [
        "cd" * 16 + ".npy", "config.json"]


def test_cache_accepts_any_valid_npy_of_the_right_shape(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    image = np.arange(np.prod(SMOKE.shape), dtype=np.float32).reshape(SMOKE.shape)
    entry = cache.entry_path(SMOKE, "ab" * 16)
    entry.parent.mkdir(parents=True, exist_ok=True)
    np.save(entry, np.asfortranarray(image))          # another header: the np.load path
    np.testing.assert_array_equal(cache.load(SMOKE, "ab" * 16), image)
    np.save(entry, image[:, :-1])                      # wrong shape: not served
    assert cache.load(SMOKE, "ab" * 16) is None
    np.save(entry, image.astype(np.float64))           # wrong dtype: not served
    assert cache.load(SMOKE, "ab" * 16) is None
    cache.save(SMOKE, "ab" * 16, image)                # what save writes takes the fast path
    assert entry.read_bytes().startswith(feature_cache._npy_header(SMOKE.shape))
    np.testing.assert_array_equal(cache.load(SMOKE, "ab" * 16), image)
