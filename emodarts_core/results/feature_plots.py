"""Figures and checks for the feature chapter: what an utterance looks like at each stage of the
front end, and how closely three MFCC implementations agree.

- :func:`pick_examples`: one (or more) utterances per emotion class, chosen with a seed.
- :func:`feature_stages`: the waveform, the log-mel spectrogram and the MFCC image (before and
  after pooling over time) of one file, exactly as the feature pipeline computes them.
- :func:`plot_feature_stages`: one row per utterance, those stages side by side (``librosa.display``
  axes: seconds and Hz / mel frequencies); the MFCC image is shown standardised per coefficient
  (:func:`standardize_rows`), because coefficient 0 (the loudness, around -400) would otherwise set
  the colour scale and leave every other row one flat colour.
- :func:`torchaudio_mfcc`: the same MFCC computed by ``torchaudio.transforms.MFCC`` with settings
  that mirror librosa's (Slaney mel scale and norm, power spectrogram, ``top_db`` floor, DCT-II
  ortho), then the same pooling.
- :func:`compare_implementations`: per-utterance relative error of the batched
  :class:`~emodarts_core.data.mfcc.MFCC` and of torchaudio against :func:`librosa_mfcc`.
- :func:`plot_agreement`: the librosa image, ours (both standardised per coefficient by librosa's
  statistics), and their difference in units of each coefficient's spread.
- :func:`speaker_means` / :func:`plot_speaker_means`: each speaker's mean of every coefficient
  under one or more normalisations (what per-speaker normalisation removes).

All plotting functions return a :class:`matplotlib.figure.Figure` and work under ``Agg``.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from emodarts_core.config import FeatureConfig
from emodarts_core.data.audio import pad_or_cut, read_audio
from emodarts_core.data.corpora.record import Corpus, Utterance
from emodarts_core.data.mfcc import MFCC
from emodarts_core.data.mfcc_reference import librosa_mfcc, max_pool_time, relative_error

__all__ = ["pick_examples", "FeatureStages", "feature_stages", "standardize_rows", "plot_feature_stages",
           "torchaudio_mfcc", "Agreement", "compare_implementations", "plot_agreement",
           "speaker_means", "plot_speaker_means"]


def pick_examples(corpus: Corpus, per_class: int = 1, seed: int = 0,
                  classes: Sequence[str] | None = None) -> list[Utterance]:
    """``per_class`` utterances of each class (``classes``: default all, in corpus order), drawn
    with ``random.Random(seed)`` from the records of that class, in class order."""
    if per_class < 1:
        raise ValueError(f"pick_examples: per_class must be >= 1, got {per_class}")
    wanted = list(classes) if classes is not None else list(corpus.classes)
    unknown = [c for c in wanted if c not in corpus.classes]
    if unknown:
        raise ValueError(f"pick_examples: classes {unknown} are not in corpus {corpus.name!r} "
                         f"(has {list(corpus.classes)})")
    rng = random.Random(seed)
    out: list[Utterance] = []
    for label in wanted:
        pool = [r for r in corpus.records if r.label == label]
        out += rng.sample(pool, min(per_class, len(pool)))
    return out


@dataclass
class FeatureStages:
    """One utterance through the front end (arrays as float32 NumPy)."""

    wave: np.ndarray        # (n_samples,) after resampling and cutting / zero-padding
    log_mel: np.ndarray     # (n_mels, frames) dB, top_db-floored, before the DCT
    mfcc_full: np.ndarray   # (n_mfcc, frames) before pooling over time
    mfcc: np.ndarray        # (n_mfcc, n_frames): the model's input image
    n_real: int             # samples of real signal (the rest is padding)
    cfg: FeatureConfig


def feature_stages(path: str | PathLike[str], cfg: FeatureConfig) -> FeatureStages:
    """Read ``path`` and compute every stage with librosa (the reference pipeline)."""
    import librosa


    y = read_audio(path, cfg.sample_rate, duration_s=cfg.duration_s)
    n_real = min(len(y), cfg.n_samples)
    wave = pad_or_cut(y, cfg.n_samples)
    mel = librosa.feature.melspectrogram(
        y=wave, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        win_length=cfg.n_fft, window="hann", center=True, pad_mode="constant", power=2.0,
        n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, htk=False, norm="slaney")
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=cfg.top_db)
    full = librosa.feature.mfcc(S=log_mel, n_mfcc=cfg.n_mfcc, dct_type=2, norm="ortho", lifter=0)
    return FeatureStages(wave=wave, log_mel=log_mel.astype(np.float32),
                         mfcc_full=full.astype(np.float32),
                         mfcc=max_pool_time(full, cfg.time_pool).astype(np.float32),
                         n_real=n_real, cfg=cfg)


def standardize_rows(image: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """``image`` with every row (coefficient) shifted and scaled by the mean and standard deviation
    of the same row of ``reference`` (default: ``image`` itself) over time.

    A constant row (standard deviation 0) is only shifted. Used to draw MFCC images, whose rows
    differ in scale by two orders of magnitude.
    """
    ref = np.asarray(image if reference is None else reference, dtype=np.float64)
    img = np.asarray(image, dtype=np.float64)
    if ref.shape != img.shape or img.ndim != 2:
        raise ValueError(f"standardize_rows: expected two 2-D arrays of one shape, got {img.shape} "
                         f"and {ref.shape}")
    mean, std = ref.mean(axis=1, keepdims=True), ref.std(axis=1, keepdims=True)
    return ((img - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)


def plot_feature_stages(items: Sequence[Utterance | str | PathLike[str]], cfg: FeatureConfig,
                        labels: Sequence[str] | None = None) -> Figure:
    """One row per utterance: waveform, log-mel spectrogram, MFCC image after pooling.

    ``labels`` (default: each record's emotion, or the file name) title the rows.
    """
    import librosa.display
    from matplotlib.figure import Figure as _Figure

    if not items:
        raise ValueError("plot_feature_stages: no utterances given")
    if labels is not None and len(labels) != len(items):
        raise ValueError(f"plot_feature_stages: {len(labels)} labels for {len(items)} utterances")
    fig = _Figure(figsize=(10, 2.4 * len(items)), layout="constrained")
    axes = fig.subplots(len(items), 3, squeeze=False)
    for row, item in enumerate(items):
        path = item.path if isinstance(item, Utterance) else item
        name = labels[row] if labels is not None else (
            f"{item.label} (speaker {item.speaker})" if isinstance(item, Utterance) else Path(path).name)
        st = feature_stages(path, cfg)
        ax_w, ax_s, ax_m = axes[row]
        librosa.display.waveshow(st.wave, sr=cfg.sample_rate, ax=ax_w, color="tab:blue")
        if st.n_real < cfg.n_samples:
            ax_w.axvspan(st.n_real / cfg.sample_rate, cfg.duration_s, color="0.85", zorder=0,
                         label="zero padding")
            ax_w.legend(loc="upper right", fontsize=8)
        ax_w.set_title(f"{name}: waveform", fontsize=10)
        img = librosa.display.specshow(st.log_mel, sr=cfg.sample_rate, hop_length=cfg.hop_length,
                                       x_axis="time", y_axis="mel", fmax=cfg.fmax, ax=ax_s,
                                       cmap="magma")
        fig.colorbar(img, ax=ax_s, format="%+.0f dB")
        ax_s.set_title(f"log-mel spectrogram ({cfg.n_mels} bands)", fontsize=10)
        img = ax_m.imshow(standardize_rows(st.mfcc), origin="lower", aspect="auto", cmap="coolwarm",
                          vmin=-3, vmax=3, extent=(0, cfg.duration_s, -0.5, cfg.n_mfcc - 0.5),
                          interpolation="nearest")
        fig.colorbar(img, ax=ax_m, label="z per coefficient")
        ax_m.set_title(f"MFCC image {st.mfcc.shape[0]} x {st.mfcc.shape[1]}, "
                       f"each row standardised", fontsize=10)
        ax_m.set_xlabel("Time")
        ax_m.set_ylabel("coefficient")
    return fig


def torchaudio_mfcc(waves: torch.Tensor | np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """MFCC images of ``(B, n_samples)`` (or ``(n_samples,)``) waveforms by torchaudio.

    ``torchaudio.transforms.MFCC`` with a power spectrogram (Hann, centred, zero padding), Slaney
    mel scale and norm, ``AmplitudeToDB(top_db=cfg.top_db)`` and an orthonormal DCT-II, then
    max-pooled by ``cfg.time_pool``. Each utterance is transformed on its own, because the dB
    floor is relative to the loudest value of the tensor it is given.
    """
    import torchaudio


    x = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[-1] != cfg.n_samples:
        raise ValueError(f"torchaudio_mfcc: expected (B, {cfg.n_samples}) waveforms, got {tuple(x.shape)}")
    transform = torchaudio.transforms.MFCC(
        sample_rate=cfg.sample_rate, n_mfcc=cfg.n_mfcc, dct_type=2, norm="ortho", log_mels=False,
        melkwargs={"n_fft": cfg.n_fft, "hop_length": cfg.hop_length, "win_length": cfg.n_fft,
                   "n_mels": cfg.n_mels, "f_min": cfg.fmin, "f_max": cfg.fmax, "power": 2.0,
                   "center": True, "pad_mode": "constant", "norm": "slaney", "mel_scale": "slaney"})
    transform.amplitude_to_DB.top_db = cfg.top_db
    with torch.no_grad():
        out = np.stack([transform(w).numpy() for w in x])
    return max_pool_time(out, cfg.time_pool).astype(np.float32)


@dataclass
class Agreement:
    """Relative errors ``||impl - librosa|| / ||librosa||``, one per utterance."""

    ours: np.ndarray
    torchaudio: np.ndarray
    librosa_images: np.ndarray
    our_images: np.ndarray

    def summary(self) -> dict[str, dict[str, float]]:
        """Median and maximum relative error of each implementation."""
        return {name: {"median": float(np.median(v)), "max": float(np.max(v))}
                for name, v in (("emodarts_core.data.mfcc.MFCC", self.ours),
                                ("torchaudio.transforms.MFCC", self.torchaudio))}


def compare_implementations(paths: Sequence[str | PathLike[str] | Utterance],
                            cfg: FeatureConfig) -> Agreement:
    """Compute each file's MFCC image three ways and compare with librosa (see module docstring)."""

    if not paths:
        raise ValueError("compare_implementations: no files given")
    waves = np.stack([pad_or_cut(read_audio(p.path if isinstance(p, Utterance) else p,
                                            cfg.sample_rate, duration_s=cfg.duration_s),
                                 cfg.n_samples) for p in paths])
    ref = np.stack([librosa_mfcc(w, cfg) for w in waves])
    with torch.no_grad():
        ours = MFCC(cfg)(torch.from_numpy(waves)).numpy()
    ta = torchaudio_mfcc(waves, cfg)
    return Agreement(ours=relative_error(ours, ref), torchaudio=relative_error(ta, ref),
                     librosa_images=ref, our_images=ours)


def plot_agreement(agreement: Agreement, index: int = 0) -> Figure:
    """librosa's image, ours, and ours minus librosa for utterance ``index``.

    Both images are standardised per coefficient by librosa's statistics (one transform for both,
    see :func:`standardize_rows`), and the difference is divided by the same per-coefficient
    spread, so a small error in a quiet high coefficient is as visible as one in coefficient 0.
    The difference's colour scale is set by its 99th percentile (larger values saturate).
    """
    from matplotlib.figure import Figure as _Figure

    ref, ours = agreement.librosa_images[index], agreement.our_images[index]
    fig = _Figure(figsize=(10, 3.2), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, img, title in ((axes[0], ref, "librosa (reference)"),
                           (axes[1], ours, "emodarts_core MFCC")):
        im = ax.imshow(standardize_rows(img, ref), origin="lower", aspect="auto", cmap="coolwarm",
                       vmin=-3, vmax=3, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("frame")
    axes[0].set_ylabel("coefficient")
    fig.colorbar(im, ax=axes[:2], label="z per coefficient")
    std = np.asarray(ref, dtype=np.float64).std(axis=1, keepdims=True)
    diff = (np.asarray(ours, dtype=np.float64) - ref) / np.where(std > 0, std, 1.0)
    dl = max(float(np.percentile(np.abs(diff), 99)), 1e-12)
    im = axes[2].imshow(diff, origin="lower", aspect="auto", cmap="PiYG", vmin=-dl, vmax=dl,
                        interpolation="nearest")
    axes[2].set_title(f"ours - librosa\n(relative error {agreement.ours[index]:.1e})", fontsize=10)
    axes[2].set_xlabel("frame")
    fig.colorbar(im, ax=axes[2], label="per-coefficient spreads", format="%.0e", extend="both")
    return fig


def speaker_means(features: torch.Tensor, speakers: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """The sorted speaker names and a ``(n_speakers, n_mfcc)`` tensor: each speaker's mean of each
    coefficient over their utterances and frames (``features`` is ``(N, n_mfcc, n_frames)``)."""
    if len(speakers) != features.shape[0]:
        raise ValueError(f"speaker_means: {len(speakers)} speaker names for {features.shape[0]} utterances")
    names = sorted(set(speakers))
    position = {name: i for i, name in enumerate(names)}
    index = torch.tensor([position[s] for s in speakers])
    sums = torch.zeros(len(names), features.shape[1], dtype=torch.float64)
    sums.index_add_(0, index, features.to(torch.float64).mean(dim=2))
    counts = torch.bincount(index, minlength=len(names)).to(torch.float64)[:, None]
    return names, (sums / counts).to(torch.float32)


def plot_speaker_means(settings: dict[str, torch.Tensor], speakers: Sequence[str]) -> Figure:
    """One heat map per normalisation (``label -> (N, n_mfcc, n_frames)`` features): rows are
    speakers, columns coefficients, colour the speaker's mean of that coefficient, on one shared
    colour scale. Horizontal stripes are what a network could learn as "who is speaking"."""
    from matplotlib.figure import Figure as _Figure

    if not settings:
        raise ValueError("plot_speaker_means: no settings to plot")
    means = {label: speaker_means(x, speakers) for label, x in settings.items()}
    lim = max(float(m.abs().max()) for _, m in means.values()) or 1.0
    fig = _Figure(figsize=(min(10.0, 5.0 * len(means)), 0.2 * len(set(speakers)) + 1.8),
                  layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(means), sharey=True))
    for ax, (label, (names, m)) in zip(axes, means.items()):
        im = ax.imshow(m.numpy(), aspect="auto", cmap="coolwarm", vmin=-lim, vmax=lim,
                       interpolation="nearest")
        spread = float(m.std(dim=0).mean())
        ax.set_title(f"{label}\nmean spread between speakers {spread:.3f}", fontsize=10)
        ax.set_xlabel("MFCC coefficient")
        ax.set_yticks(range(len(names)), names, fontsize=8)
    axes[0].set_ylabel("speaker")
    fig.colorbar(im, ax=list(axes), label="speaker's mean (normalised units)")
    return fig
