"""Audio reading: decoding, downmix, resampling like librosa.load, and every bad-input error."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emodarts_core.data.audio import AudioError, pad_or_cut, read_audio


def speechlike(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A voiced, speech-like test signal: a gliding harmonic source under a syllable envelope,
    plus a little noise (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum((0.6 / k) * np.sin(k * phase) for k in range(1, 12) if k * 300 < sr / 2)
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3.5 * t)) ** 2
    y = y * envelope + 0.01 * rng.standard_normal(t.size)
    return (0.4 * y / np.abs(y).max()).astype(np.float32)


def write(path: Path, y: np.ndarray, sr: int, subtype: str = "FLOAT") -> Path:
    sf.write(str(path), y, sr, subtype=subtype)
    return path


def test_same_rate_returns_the_samples(tmp_path):
    y = speechlike(0.5, 16000)
    got = read_audio(write(tmp_path / "a.wav", y, 16000), 16000)
    assert got.dtype == np.float32 and got.ndim == 1
    np.testing.assert_array_equal(got, y)


def test_stereo_is_downmixed_by_mean(tmp_path):
    left, right = speechlike(0.5, 16000, 1), speechlike(0.5, 16000, 2)
    got = read_audio(write(tmp_path / "st.wav", np.stack([left, right], 1), 16000), 16000)
    np.testing.assert_allclose(got, (left + right) / 2, atol=1e-7)


def test_resampling_matches_librosa_load(tmp_path):
    librosa = pytest.importorskip("librosa")
    path = write(tmp_path / "r.flac", speechlike(0.7, 16000), 16000, subtype="PCM_16")
    got = read_audio(path, 32750)
    ref, _ = librosa.load(str(path), sr=32750)
    assert got.shape == ref.shape == (math.ceil(0.7 * 16000 * 32750 / 16000),)
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_duration_reads_only_the_start(tmp_path):
    path = write(tmp_path / "long.wav", speechlike(2.0, 22050), 22050)
    full = read_audio(path, 16000)
    head = read_audio(path, 16000, duration_s=0.5)
    assert head.shape == (8000,)
    # the resampler sees the same neighbourhood at the cut: equal up to float rounding
    np.testing.assert_allclose(head, full[:8000], atol=1e-5)
    short = read_audio(path, 16000, duration_s=5.0)   # longer than the file: not padded here
    assert short.shape == full.shape


def test_pad_or_cut():
    y = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(pad_or_cut(y, 3), [1, 2, 3])
    np.testing.assert_array_equal(pad_or_cut(y, 7), [1, 2, 3, 4, 5, 0, 0])
    out = pad_or_cut(y, 5)
    np.testing.assert_array_equal(out, y)
    out[0] = 9
    assert y[0] == 1, "pad_or_cut must not alias its input"
    with pytest.raises(ValueError, match="1-D"):
        pad_or_cut(np.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match="n_samples"):
        pad_or_cut(y, 0)


# --- every bad input names the file and the problem ------------------------------------------
def _bad(tmp_path: Path, kind: str) -> tuple[Path, dict, str]:
    """A bad file of one ``kind``: (path, read_audio kwargs, expected words in the error)."""
    sr = 16000
    if kind == "missing":
        return tmp_path / "missing.wav", {}, "not found"
    if kind == "corrupt":
        p = tmp_path / "corrupt.wav"
        p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
        return p, {}, "cannot decode"
    if kind == "empty":
        return write(tmp_path / "empty.wav", np.zeros(0, np.float32), sr), {}, "empty"
    if kind == "silent":
        return write(tmp_path / "silent.wav", np.zeros(sr // 2, np.float32), sr), {}, "silent"
    if kind == "nan":
        y = speechlike(0.5, sr)
        y[100:103] = np.nan
        return write(tmp_path / "nan.wav", y, sr), {}, "NaN"
    if kind == "inf":
        y = speechlike(0.5, sr)
        y[7] = np.inf
        return write(tmp_path / "inf.wav", y, sr), {}, "infinite"
    if kind == "wrong_rate":
        return write(tmp_path / "rate.wav", speechlike(0.5, 8000), 8000), {"expect_rate": sr}, \
            "8000 Hz, expected 16000"
    if kind == "too_short":
        return write(tmp_path / "short.wav", speechlike(0.5, sr), sr), {"min_duration_s": 1.0}, \
            "too short"
    if kind == "too_long":
        return write(tmp_path / "long.wav", speechlike(0.5, sr), sr), {"max_duration_s": 0.25}, \
            "too long"
    raise AssertionError(kind)


BAD_KINDS = ["missing", "corrupt", "empty", "silent", "nan", "inf", "wrong_rate", "too_short",
             "too_long"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_raises_clear_error(tmp_path, kind):
    path, kwargs, words = _bad(tmp_path, kind)
    with pytest.raises(AudioError) as info:
        read_audio(path, 16000, **kwargs)
    err = info.value
    assert err.path == str(path)
    assert str(path) in str(err), "the message must name the file"
    assert words in err.problem


def test_limits_and_rate_pass_when_met(tmp_path):
    path = write(tmp_path / "ok.wav", speechlike(0.5, 16000), 16000)
    y = read_audio(path, 16000, expect_rate=16000, min_duration_s=0.4, max_duration_s=0.6)
    assert y.shape == (8000,)


def test_quiet_but_not_silent_is_accepted(tmp_path):
    y = speechlike(0.5, 16000) * 1e-2          # peak 4e-3, about -48 dBFS
    assert read_audio(write(tmp_path / "quiet.wav", y, 16000), 16000).shape == (8000,)


def test_bad_arguments(tmp_path):
    path = write(tmp_path / "ok.wav", speechlike(0.2, 16000), 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        read_audio(path, 0)
    with pytest.raises(ValueError, match="duration_s"):
        read_audio(path, 16000, duration_s=-1)


def test_audio_info(tmp_path):
    from emodarts_core.data.audio import audio_info

    info = audio_info(write(tmp_path / "i.wav", speechlike(0.25, 22050), 22050))
    assert (info.samplerate, info.frames, info.channels) == (22050, 5512, 1)
    with pytest.raises(AudioError, match="not found"):
        audio_info(tmp_path / "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="cannot decode"):
        audio_info(bad)


# --------------------------------------------------------------------------------------------- rates as shipped
# RAVDESS 48 kHz (a few files stereo), CREMA-D and EmoDB 16 kHz, TESS 24 414 Hz (one 96 kHz file,
# some AIFF behind a .wav name), and the 22 050 / 44 100 Hz of many re-distributed copies.
SHIPPED_RATES = (16000, 22050, 24414, 44100, 48000, 96000)


def _tone(seconds: float, sr: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", SHIPPED_RATES)
def test_shipped_rates_and_channels_are_resampled_to_the_profile_rate(tmp_path, rate, channels):
    from emodarts_core.config import get_profile

    target = get_profile("cpu").features.sample_rate
    y = _tone(0.5, rate)
    data = y if channels == 1 else np.stack([y, 0.5 * y], 1)      # downmix: 0.75 * tone
    path = write(tmp_path / "x.wav", data, rate, subtype="PCM_16")
    got = read_audio(path, target)
    assert got.dtype == np.float32 and got.shape == (math.ceil(len(y) * target / rate),)
    # the same tone, sampled at the target rate (away from the edges the filter touches)
    ref = _tone(0.5, target)[: len(got)] * (1.0 if channels == 1 else 0.75)
    mid = slice(len(got) // 10, -len(got) // 10)
    np.testing.assert_allclose(got[mid], ref[mid], atol=2e-3)
    # and to the paper profile's rate
    paper = get_profile("paper").features.sample_rate
    assert read_audio(path, paper).shape == (math.ceil(len(y) * paper / rate),)


@pytest.mark.parametrize("rate", [24414, 96000])
def test_aiff_data_behind_a_wav_name_is_decoded_by_content(tmp_path, rate):
    y = _tone(0.4, rate)
    path = tmp_path / "OAF_back_ps.wav"
    sf.write(str(path), np.stack([y, y], 1), rate, subtype="PCM_16", format="AIFF")
    assert path.read_bytes()[:4] == b"FORM"                         # AIFF, not RIFF
    wav = write(tmp_path / "same.wav", np.stack([y, y], 1), rate, subtype="PCM_16")
    np.testing.assert_array_equal(read_audio(path, 16000), read_audio(wav, 16000))
    assert read_audio(path, rate).shape == (len(y),)
