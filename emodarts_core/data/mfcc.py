"""The MFCC image in torch: batched, float32, on CPU or CUDA, the same numbers as librosa.

It computes what :func:`~emodarts_core.data.mfcc_reference.librosa_mfcc` computes, for a batch
of waveforms at once: one short-time FFT (``torch.stft`` on CUDA, scipy's float32 FFT on CPU,
which measured about 3x faster there), one matmul with librosa's own mel filterbank, the dB
conversion with the per-utterance ``top_db`` floor, one matmul with the orthonormal DCT matrix
and the pooling along time. It agrees with the reference to a relative error of about 2e-6
(tests demand < 1e-3).

The functions come first and hold the computation: :func:`mel_filterbank` and
:func:`dct_matrix` build the two matrices, :func:`power_spectrogram` the ``|STFT|^2`` and
:func:`mfcc_from_power` everything after it. :class:`MFCC` is a thin ``torch.nn.Module`` over
them that keeps the window and the matrices as buffers, so ``.to(device)`` moves them.

One exact shortcut makes short utterances cheaper (it changes no value): STFT frames that lie
entirely in the zero padding are not transformed at all -- their power is exactly zero, which
is what the FFT of zeros gives.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from emodarts_core.config import FeatureConfig
from emodarts_core.data.mfcc_reference import AMIN

__all__ = ["mel_filterbank", "dct_matrix", "power_spectrogram", "mfcc_from_power", "MFCC"]


def mel_filterbank(cfg: FeatureConfig) -> Tensor:
    """librosa's own mel filterbank (``librosa.filters.mel``, Slaney scale and norm) as a float32
    ``(n_mels, n_fft // 2 + 1)`` tensor."""
    import librosa  # heavy: imported when a filterbank is built

    mel = librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
        htk=False, norm="slaney", dtype=np.float32,
    )
    return torch.from_numpy(mel)


def dct_matrix(cfg: FeatureConfig) -> Tensor:
    """The first ``n_mfcc`` rows of the orthonormal DCT-II matrix of size ``n_mels``, float32."""
    import scipy.fft

    if cfg.n_mfcc > cfg.n_mels:
        raise ValueError(f"FeatureConfig: n_mfcc ({cfg.n_mfcc}) > n_mels ({cfg.n_mels})")
    dct = scipy.fft.dct(np.eye(cfg.n_mels), type=2, norm="ortho", axis=0)[: cfg.n_mfcc]
    return torch.from_numpy(dct.astype(np.float32))


def power_spectrogram(wave: Tensor, window: Tensor, cfg: FeatureConfig,
                      lengths: Sequence[int] | Tensor | None = None, *,
                      cpu_scipy_fft: bool = True) -> Tensor:
    """``|STFT|^2`` of ``(B, n)`` waveforms as ``(B, n_fft // 2 + 1, T)`` float32: centred
    frames weighted by ``window`` (length ``n_fft``), zero padding.

    Without ``lengths`` all ``1 + n // hop`` frames are returned. With ``lengths`` (how many
    leading samples of each row are real signal), ``T`` may be smaller: frames past ``T`` see
    only padding, and their power is exactly 0.

    On CUDA (or when gradients are needed, or with ``cpu_scipy_fft`` off) this is
    ``torch.stft``. On CPU the frames are cut with ``unfold`` and transformed with
    ``scipy.fft.rfft`` in float32, which measured about 3x faster than ``torch.stft`` on the
    same frames; the values agree to float rounding.
    """
    n = wave.shape[-1]
    used = n
    if lengths is not None:
        longest = int(torch.as_tensor(lengths).max())
        # a frame whose window starts at or after the last real sample sees only zeros
        used = min(n, max(longest + cfg.n_fft // 2, cfg.n_fft))
    x = wave[:, :used]
    if x.device.type != "cpu" or x.requires_grad or not cpu_scipy_fft:
        spec = torch.stft(
            x, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.n_fft,
            window=window, center=True, pad_mode="constant", return_complex=True,
        )
        return torch.view_as_real(spec).square().sum(-1)
    import scipy.fft

    half = cfg.n_fft // 2
    frames = torch.nn.functional.pad(x, (half, half)).unfold(-1, cfg.n_fft, cfg.hop_length)
    frames = (frames * window).numpy()                                  # (B, T, n_fft)
    spec = scipy.fft.rfft(frames, axis=-1)                              # complex64
    power = spec.real * spec.real + spec.imag * spec.imag               # float32
    return torch.from_numpy(power).transpose(-1, -2)


def mfcc_from_power(power: Tensor, mel_fb: Tensor, dct: Tensor, cfg: FeatureConfig) -> Tensor:
    """MFCC images ``(B, n_mfcc, n_frames)`` from power spectrograms ``(B, F, T)``.

    The mel bands (``mel_fb @ power``), dB relative to 1 with the floor :data:`AMIN`, the
    ``cfg.top_db`` floor relative to each utterance's own maximum (as ``librosa.power_to_db``
    does on one spectrogram), the DCT (``dct @ dB``) and the max-pool by ``cfg.time_pool`` along
    time. ``T`` may be short of the ``1 + n_samples // hop`` frames of a full utterance (frames
    of pure padding left out by :func:`power_spectrogram`): they are filled with the dB of zero
    power before the floor and the DCT.
    """
    mel = torch.matmul(mel_fb, power)                                  # (B, n_mels, T)
    db = 10.0 * torch.log10(torch.clamp(mel, min=AMIN))                # ref = 1: minus 0 dB
    missing = 1 + cfg.n_samples // cfg.hop_length - db.shape[-1]
    if missing > 0:  # frames of pure padding: power 0, i.e. 10 log10(amin) dB
        db = torch.nn.functional.pad(db, (0, missing), value=10.0 * math.log10(AMIN))
    if cfg.top_db is not None:
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - cfg.top_db)
    mfcc = torch.matmul(dct, db)                                       # (B, n_mfcc, T)
    p = cfg.time_pool
    if p > 1:
        t = (mfcc.shape[-1] // p) * p
        mfcc = mfcc[..., :t].unflatten(-1, (t // p, p)).amax(dim=-1)
    return mfcc


class MFCC(nn.Module):
    """Batched MFCC images in torch, numerically the same as
    :func:`~emodarts_core.data.mfcc_reference.librosa_mfcc`.

    ``forward(wave, lengths=None)`` maps ``(B, cfg.n_samples)`` float32 waveforms (already cut or
    padded) to ``(B, n_mfcc, n_frames)`` float32, on whatever device the module is on: it is
    :func:`power_spectrogram` then :func:`mfcc_from_power`, with the Hann window,
    :func:`mel_filterbank` and :func:`dct_matrix` stored as buffers.

    ``lengths`` (optional, one int per row) gives how many leading samples of each row are real
    signal, the rest being zero padding. The STFT then skips the frames that see only padding:
    their power is exactly zero either way, so the output is unchanged and short utterances
    cost less.

    ``cpu_scipy_fft`` (default on) lets CPU tensors take the faster scipy FFT in
    :meth:`power_spectrogram`; switch it off to run ``torch.stft`` everywhere.
    """

    def __init__(self, cfg: FeatureConfig, *, cpu_scipy_fft: bool = True) -> None:
        super().__init__()
        dct = dct_matrix(cfg)          # first: it checks n_mfcc <= n_mels
        self.cfg = cfg
        self.cpu_scipy_fft = cpu_scipy_fft
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True), persistent=False)
        self.register_buffer("mel_fb", mel_filterbank(cfg), persistent=False)
        self.register_buffer("dct", dct, persistent=False)

    def extra_repr(self) -> str:
        c = self.cfg
        return (f"sr={c.sample_rate}, n_fft={c.n_fft}, hop={c.hop_length}, n_mels={c.n_mels}, "
                f"n_mfcc={c.n_mfcc}, top_db={c.top_db}, time_pool={c.time_pool}")

    def power_spectrogram(self, wave: Tensor, lengths: Sequence[int] | Tensor | None = None) -> Tensor:
        """:func:`power_spectrogram` with this module's window and settings."""
        return power_spectrogram(wave, self.window, self.cfg, lengths,
                                 cpu_scipy_fft=self.cpu_scipy_fft)

    def forward(self, wave: Tensor, lengths: Sequence[int] | Tensor | None = None) -> Tensor:
        cfg = self.cfg
        if wave.ndim != 2 or wave.shape[-1] != cfg.n_samples:
            raise ValueError(
                f"MFCC: expected waveforms of shape (B, {cfg.n_samples}) "
                f"({cfg.duration_s} s at {cfg.sample_rate} Hz), got {tuple(wave.shape)}"
            )
        wave = wave.to(dtype=torch.float32)
        power = self.power_spectrogram(wave, lengths)                  # (B, F, T <= T_full)
        return mfcc_from_power(power, self.mel_fb, self.dct, cfg)
