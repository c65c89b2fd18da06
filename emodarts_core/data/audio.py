"""Reading speech files: decode, check, downmix, resample, and cut or pad to a fixed length.

Every corpus in the book reaches the models through :func:`read_audio`, so this is where bad
files are caught, each with an :class:`AudioError` that names the file and what is wrong with it:
a file that cannot be decoded, one with no samples, a silent one, one holding NaN or infinite
samples, one at the wrong sample rate (when the caller demands an exact rate) and one that is too
short or too long (when the caller gives limits).

Decoding uses ``soundfile`` (libsndfile: WAV, FLAC, OGG, MP3, ...). ``torchaudio.load`` is not
used on purpose: recent torchaudio routes it through ``torchcodec``, an extra native dependency.
Multi-channel audio is downmixed by the mean of its channels, and audio at another rate is
resampled once, with ``soxr`` at its "HQ" quality. These are the choices ``librosa.load`` makes by
default (librosa >= 0.10), so a waveform from :func:`read_audio` equals the one the paper's
feature code obtained with ``librosa.load(path, sr=...)``, sample for sample, including the
output length ``ceil(n * new_rate / old_rate)``.

:func:`pad_or_cut` then applies the paper's length rule: keep the first ``n`` samples, or pad with
zeros at the end.
"""
from __future__ import annotations

import math
from os import PathLike
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

__all__ = ["AudioError", "read_audio", "pad_or_cut", "audio_info", "DEFAULT_MIN_PEAK"]

#: A file whose absolute peak is below this (about -80 dBFS) counts as silent. The smallest
#: non-zero 16-bit sample is 3.1e-5, so only digital silence or near-silence is rejected.
DEFAULT_MIN_PEAK: float = 1e-4

# Extra input read past ``duration_s`` before resampling, so the resampling filter sees the same
# neighbourhood at the cut as it would on the whole file (soxr HQ's filter is far shorter).
_RESAMPLE_MARGIN_S = 0.05


class AudioError(ValueError):
    """A file that cannot be used as speech input. ``path`` and ``problem`` say which and why."""

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def audio_info(path: str | PathLike[str]) -> sf._SoundFileInfo:
    """Header information of an audio file (rate, frames, channels), or :class:`AudioError`."""
    p = Path(path)
    if not p.is_file():
        raise AudioError(p, "file not found" if not p.exists() else "not a regular file")
    try:
        return sf.info(str(p))
    except Exception as exc:  # libsndfile raises several types for corrupt or unknown formats
        raise AudioError(p, f"cannot decode audio ({_short(exc, p)})") from exc


def read_audio(
    path: str | PathLike[str],
    sample_rate: int,
    *,
    duration_s: float | None = None,
    expect_rate: int | None = None,
    min_duration_s: float | None = None,
    max_duration_s: float | None = None,
    min_peak: float = DEFAULT_MIN_PEAK,
) -> np.ndarray:
    """Decode ``path`` to a float32 mono waveform at ``sample_rate`` Hz.

    Args:
        path: an audio file soundfile can decode.
        sample_rate: the rate of the returned waveform; the file is resampled (soxr HQ) when its
            own rate differs.
        duration_s: when given, only the first ``duration_s`` seconds are decoded and returned
            (the file's remainder is never read, which is what makes long files cheap). The
            result may be shorter; :func:`pad_or_cut` brings it to a fixed length.
        expect_rate: when given, a file whose own rate differs is an error instead of being
            resampled (for corpora whose rate is part of their definition).
        min_duration_s, max_duration_s: limits on the file's whole duration, in seconds.
        min_peak: a decoded segment whose absolute peak is below this counts as silent.

    Returns:
        ``np.ndarray`` of shape ``(n,)``, dtype float32.

    Raises:
        AudioError: naming the file and the problem (missing, undecodable, empty, silent, NaN or
            infinite samples, wrong rate, too short, too long).
    """
    if sample_rate <= 0:
        raise ValueError(f"read_audio: sample_rate must be positive, got {sample_rate}")
    if duration_s is not None and duration_s <= 0:
        raise ValueError(f"read_audio: duration_s must be positive, got {duration_s}")
    p = Path(path)
    if not p.is_file():
        raise AudioError(p, "file not found" if not p.exists() else "not a regular file")
    try:
        with sf.SoundFile(str(p)) as f:
            file_rate, total = int(f.samplerate), int(f.frames)
            if expect_rate is not None and file_rate != expect_rate:
                raise AudioError(p, f"sample rate is {file_rate} Hz, expected {expect_rate} Hz")
            if total <= 0:
                raise AudioError(p, "empty: the file holds 0 samples")
            seconds = total / file_rate
            if min_duration_s is not None and seconds < min_duration_s:
                raise AudioError(p, f"too short: {seconds:.3f} s < minimum {min_duration_s} s")
            if max_duration_s is not None and seconds > max_duration_s:
                raise AudioError(p, f"too long: {seconds:.3f} s > maximum {max_duration_s} s")
            n_read = total
            if duration_s is not None:
                n_read = min(total, math.ceil((duration_s + _RESAMPLE_MARGIN_S) * file_rate))
            data = f.read(frames=n_read, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as exc:
        raise AudioError(p, f"cannot decode audio ({_short(exc, p)})") from exc

    if data.shape[0] == 0:
        raise AudioError(p, "empty: no samples could be decoded")
    y = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if not np.isfinite(y).all():
        bad = int(np.count_nonzero(~np.isfinite(y)))
        raise AudioError(p, f"contains {bad} NaN or infinite sample(s)")
    peak = float(np.abs(y).max())
    if peak < min_peak:
        raise AudioError(p, f"silent: peak amplitude {peak:.3g} < {min_peak:.3g}")

    if file_rate != sample_rate:
        y = _resample(y, file_rate, sample_rate)
    if duration_s is not None:
        y = y[: int(round(duration_s * sample_rate))]
    return np.ascontiguousarray(y, dtype=np.float32)


def _resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """soxr HQ resampling with librosa's output length rule ``ceil(n * target / orig)``."""
    out = soxr.resample(y, orig_sr, target_sr, quality="HQ")
    n = int(math.ceil(y.shape[0] * target_sr / orig_sr))
    if out.shape[0] >= n:
        return out[:n]
    return np.pad(out, (0, n - out.shape[0]))


def pad_or_cut(y: np.ndarray, n_samples: int) -> np.ndarray:
    """The first ``n_samples`` of ``y``, zero-padded at the end when ``y`` is shorter (the paper's
    rule: longer utterances keep only their first segment). Returns a new float32 array."""
    if n_samples <= 0:
        raise ValueError(f"pad_or_cut: n_samples must be positive, got {n_samples}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"pad_or_cut: expected a 1-D waveform, got shape {tuple(y.shape)}")
    out = np.zeros(n_samples, dtype=np.float32)
    n = min(n_samples, y.shape[0])
    out[:n] = y[:n]
    return out


def _short(exc: BaseException, path: Path | None = None) -> str:
    """The first line of ``exc``'s message, without libsndfile's repetition of the file name
    (the :class:`AudioError` names the file already)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if path is not None:
        first = first.replace(f"Error opening {str(path)!r}: ", "")
    return first[:200]
