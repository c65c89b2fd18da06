"""The reference MFCC image, computed by librosa, and the measures that compare others with it.

The paper's features (see the book's method chapter) are librosa MFCCs of the first 8 s of each
utterance at 32 750 Hz: 128 Slaney mel bands of the power spectrogram (n_fft 2048, hop 512, Hann,
centred frames with zero padding), ``power_to_db`` with ``top_db`` 80 relative to the utterance's
own maximum, an orthonormal DCT-II keeping 128 coefficients, then a max-pool by 4 along time:
a 128 x 128 image. Every one of these numbers is a field of
:class:`~emodarts_core.config.FeatureConfig`.

:func:`librosa_mfcc` computes that image one waveform at a time; it is what the batched torch
implementation (:class:`~emodarts_core.data.mfcc.MFCC`) is checked against, with
:func:`relative_error`. :func:`max_pool_time` is the pooling step on a NumPy image.
"""
from __future__ import annotations

import numpy as np
from torch import Tensor

from emodarts_core.config import FeatureConfig
from emodarts_core.data.audio import pad_or_cut

__all__ = ["AMIN", "max_pool_time", "librosa_mfcc", "relative_error"]

#: ``librosa.power_to_db``'s default floor on the power before the logarithm.
AMIN = 1e-10


def max_pool_time(m: np.ndarray, factor: int) -> np.ndarray:
    """Max over non-overlapping groups of ``factor`` frames along the last axis; a remainder that
    does not fill a group is dropped (the paper's ``(1, factor)`` pooling)."""
    if factor < 1:
        raise ValueError(f"max_pool_time: factor must be >= 1, got {factor}")
    if factor == 1:
        return m
    t = (m.shape[-1] // factor) * factor
    return m[..., :t].reshape(*m.shape[:-1], t // factor, factor).max(axis=-1)


def librosa_mfcc(y: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """The reference MFCC image of one waveform, computed by librosa.

    ``y`` is a mono waveform at ``cfg.sample_rate``; it is first cut or zero-padded to
    ``cfg.n_samples`` (:func:`~emodarts_core.data.audio.pad_or_cut`). Then the mel power spectrogram
    (``librosa.feature.melspectrogram``: Slaney mel bands with Slaney area normalisation, power 2,
    Hann window, ``center=True`` with zero padding), ``librosa.power_to_db`` (ref 1, amin 1e-10,
    ``cfg.top_db`` below the utterance's maximum), the DCT-II ortho of ``librosa.feature.mfcc``,
    and finally :func:`max_pool_time` by ``cfg.time_pool``. This is what
    ``librosa.feature.mfcc(y=y, sr=..., n_mfcc=...)`` computes with these settings (which
    forwards no ``top_db`` of its own, hence the explicit steps).

    Returns a float32 array of shape ``cfg.shape`` = ``(n_mfcc, n_frames)``.
    """
    import librosa  # imported here: heavy, and only the reference needs it

    y = pad_or_cut(np.asarray(y, dtype=np.float32), cfg.n_samples)
    mel = librosa.feature.melspectrogram(
        y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.n_fft,
        window="hann", center=True, pad_mode="constant", power=2.0, n_mels=cfg.n_mels,
        fmin=cfg.fmin, fmax=cfg.fmax, htk=False, norm="slaney",
    )
    # power_to_db is called explicitly: librosa.feature.mfcc does not forward ``top_db``
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=AMIN, top_db=cfg.top_db)
    m = librosa.feature.mfcc(S=log_mel, n_mfcc=cfg.n_mfcc, dct_type=2, norm="ortho", lifter=0)
    return max_pool_time(m, cfg.time_pool).astype(np.float32, copy=False)


def relative_error(ours: np.ndarray | Tensor, ref: np.ndarray | Tensor) -> np.ndarray:
    """Per-utterance relative error ``||ours - ref|| / ||ref||`` (Frobenius norm over each
    utterance's image); inputs ``(n_mfcc, n_frames)`` or ``(N, n_mfcc, n_frames)``."""
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"relative_error: shapes differ, {a.shape} vs {b.shape}")
    a, b = a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])
    num = np.linalg.norm((a - b).reshape(len(a), -1), axis=1)
    den = np.linalg.norm(b.reshape(len(b), -1), axis=1)
    return num / np.maximum(den, 1e-30)
