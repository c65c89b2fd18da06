"""How the alphas weight an edge's candidate operations: DARTS' softmax and DrNAS' Dirichlet.

Every mixed edge of the supernet sums its operations' outputs with weights from one row of an
alpha matrix. DARTS (Liu et al. 2019) uses the softmax of the row. DrNAS (Chen et al. 2021)
treats the weights as a random draw from a Dirichlet distribution with concentration
``elu(alpha) + 1`` (positive for any alpha) and trains the concentration through the
reparameterised draw; the noise of the draw acts as a regulariser that keeps the search from
settling on whatever the weights fit first. In evaluation, and for deriving the genotype, the
distribution's mean stands for it.

SDARTS-RS (Chen & Hsieh 2020) adds uniform noise to the weights of the *weight* steps only, so
the weights learn to work for a neighbourhood of architectures around the current alphas and
the validation loss is smooth around them: :func:`smoothed`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from emodarts_core.config import RELAXATIONS


def concentration(alpha: torch.Tensor) -> torch.Tensor:
    """DrNAS' Dirichlet concentration of each row: ``elu(alpha) + 1`` (> 0)."""
    return F.elu(alpha) + 1.0


def relaxed_weights(alpha: torch.Tensor, relaxation: str, sample: bool) -> torch.Tensor:
    """Rows of operation weights (each sums to 1) for an ``(edges, ops)`` alpha matrix.

    ``"softmax"``: ``softmax(alpha)`` (``sample`` is ignored). ``"dirichlet"``: a reparameterised
    draw from ``Dirichlet(elu(alpha) + 1)`` when ``sample`` is True (torch's generator), else
    the distribution's mean.
    """
    if relaxation == "softmax":
        return F.softmax(alpha, dim=-1)
    if relaxation == "dirichlet":
        conc = concentration(alpha)
        if sample:
            return torch.distributions.Dirichlet(conc).rsample()
        return conc / conc.sum(-1, keepdim=True)
    raise ValueError(f"unknown relaxation {relaxation!r}; choose one of {RELAXATIONS}")


def selection_scores(alpha: torch.Tensor, relaxation: str) -> torch.Tensor:
    """Logits whose softmax is the relaxation's mean weights: what the genotype rule ranks.

    For the softmax these are the alphas themselves; for the Dirichlet, the log of its mean."""
    if relaxation == "softmax":
        return alpha
    return torch.log(relaxed_weights(alpha, relaxation, sample=False))


def smoothed(weights: torch.Tensor, eps: float) -> torch.Tensor:
    """``weights`` plus independent uniform noise in ``[-eps, eps]`` (SDARTS-RS; the noise is a
    constant for autograd, drawn from torch's generator)."""
    if eps <= 0:
        return weights
    noise = torch.empty_like(weights).uniform_(-eps, eps)
    return weights + noise


def beta_decay_gradient(alpha: torch.Tensor) -> torch.Tensor:
    """Gradient of beta-DARTS' regulariser for one alpha matrix, the mean over edges of
    ``logsumexp(alpha_edge)``: ``softmax(alpha) / n_edges``."""
    return F.softmax(alpha.detach(), dim=-1) / alpha.shape[0]
