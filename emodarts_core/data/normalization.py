"""Standardising MFCC images: by statistics of a fold's training side, and per speaker or corpus.

:func:`normalize_per_speaker` standardises each group of rows (a speaker's utterances, or a
corpus's) by that group's own per-coefficient statistics; :func:`speaker_step` applies the one
:attr:`~emodarts_core.config.FeatureConfig.normalization` asks for. :class:`Normalizer` is the
standardisation fitted on a fold's training utterances only and applied to every split (it
also travels in checkpoints). Both act on images after the cache, so neither is part of a
cache key.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from emodarts_core.config import FeatureConfig

__all__ = ["Normalizer", "normalize_per_speaker", "speaker_step"]


class Normalizer:
    """Per-coefficient standardisation: ``(x - mean[c]) / std[c]`` for MFCC coefficient ``c``.

    Fit it on the **training** utterances of a fold only, e.g.
    ``norm = Normalizer.fit(features[fold.train])``, then apply it to every split with
    ``norm(x)``: statistics from validation or test speakers would leak into the model.
    Mean and standard deviation are taken over utterances and frames (computed in float64);
    a coefficient with (near) zero spread is divided by ``eps`` instead of zero.

    ``state_dict()`` / ``load_state_dict()`` / ``from_state_dict()`` carry it in checkpoints
    (plain tensors and floats: loadable with ``torch.load(weights_only=True)``).
    """

    def __init__(self, mean: Tensor, std: Tensor, eps: float = 1e-5) -> None:
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean.shape != std.shape:
            raise ValueError(f"Normalizer: mean {tuple(mean.shape)} and std {tuple(std.shape)} differ")
        self.mean, self.std, self.eps = mean, std, float(eps)

    @classmethod
    def fit(cls, features: Tensor | np.ndarray, eps: float = 1e-5) -> "Normalizer":
        """Statistics of ``features``: ``(N, n_mfcc, n_frames)`` (or ``(N, 1, n_mfcc, n_frames)``)."""
        x = torch.as_tensor(features)
        if x.ndim == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 3:
            raise ValueError(f"Normalizer.fit: expected (N, n_mfcc, n_frames), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("Normalizer.fit: no training utterances (empty features)")
        x = x.to(torch.float64)
        mean = x.mean(dim=(0, 2))
        std = x.std(dim=(0, 2), unbiased=False).clamp_min(eps)
        return cls(mean, std, eps)

    @property
    def n_coefficients(self) -> int:
        return int(self.mean.numel())

    def __call__(self, x: Tensor) -> Tensor:
        """Standardise ``x`` of shape ``(..., n_mfcc, n_frames)``; returns float32 on ``x``'s device."""
        if x.shape[-2] != self.n_coefficients:
            raise ValueError(f"Normalizer: x has {x.shape[-2]} coefficients on axis -2, "
                             f"fitted on {self.n_coefficients}")
        mean = self.mean.to(x.device)[:, None]
        std = self.std.to(x.device)[:, None]
        return (x.to(torch.float32) - mean) / std

    transform = __call__

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.clone(), "std": self.std.clone(), "eps": self.eps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        other = Normalizer.from_state_dict(state)
        self.mean, self.std, self.eps = other.mean, other.std, other.eps

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "Normalizer":
        missing = {"mean", "std"} - set(state)
        if missing:
            raise KeyError(f"Normalizer state lacks {sorted(missing)}")
        return cls(state["mean"], state["std"], state.get("eps", 1e-5))


def normalize_per_speaker(features: Tensor, speakers: Sequence[str], eps: float = 1e-5) -> Tensor:
    """Standardise each speaker's utterances by that speaker's own per-coefficient statistics.

    ``features`` is ``(N, n_mfcc, n_frames)`` and ``speakers[i]`` names the speaker of row ``i``.
    Within each speaker the mean and spread are taken over their utterances and frames, exactly as
    :meth:`Normalizer.fit` does for a whole training side. This removes what is constant in a
    voice and a recording set-up (vocal tract, microphone) and keeps what varies between a
    speaker's utterances. It uses audio only, never labels, so a test speaker's statistics may
    come from their own (unlabelled) test utterances; the price is that a new speaker needs a
    few utterances before their first prediction. Returns float32.
    """
    x = torch.as_tensor(features)
    if x.ndim != 3:
        raise ValueError(f"normalize_per_speaker: expected (N, n_mfcc, n_frames), got {tuple(x.shape)}")
    if len(speakers) != x.shape[0]:
        raise ValueError(f"normalize_per_speaker: {len(speakers)} speaker names for {x.shape[0]} utterances")
    rows: dict[str, list[int]] = {}
    for i, s in enumerate(speakers):
        rows.setdefault(str(s), []).append(i)
    out = torch.empty(x.shape, dtype=torch.float32)
    for idx in rows.values():
        out[idx] = Normalizer.fit(x[idx], eps)(x[idx])
    return out


def speaker_step(features: Tensor, speakers: Sequence[str], cfg: FeatureConfig,
                 corpora: Sequence[str] | None = None) -> Tensor:
    """The first normalisation step ``cfg.normalization`` asks for: per speaker, per corpus
    (``corpora[i]`` names the corpus of row ``i``; the grouping of :func:`normalize_per_speaker`
    with corpus names in place of speakers), or none."""
    if cfg.normalization == "speaker":
        return normalize_per_speaker(features, speakers)
    if cfg.normalization == "corpus":
        if corpora is None:
            raise ValueError("speaker_step: normalization='corpus' needs the corpus of every row")
        return normalize_per_speaker(features, corpora)
    return features
