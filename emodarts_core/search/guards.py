"""Collapse diagnostics for DARTS searches, and the DARTS+ early-stopping guard.

Long DARTS searches tend to drift towards cells made of skip connections and pooling (operations
without parameters, which win early because they need no training). Two per-epoch numbers make
the drift visible, and the search loop records both in ``history.json`` whatever guard is used:

- **skip count** (and the broader **parameter-free count**) of each derived cell: how many of the
  kept edges are ``skip_connect`` (resp. skip or pooling);
- **alpha entropy** of each cell type: the mean over edges of the entropy (in nats) of that edge's
  softmaxed operation weights. It starts at ``log(n_ops)`` (alphas near zero: every op equally
  weighted) and falls as edges commit to one operation.

:class:`DartsPlusGuard` implements the DARTS+ rule (Liang et al. 2019): stop the search once the
normal cell holds at least ``max_skips`` skip connections; optionally also once the derived
genotype has stayed the same for ``stable_epochs`` epochs (a proxy for DARTS+'s "the ranking of
the alphas has held for ~10 epochs"). Its state survives resume via ``state_dict``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from emodarts_core.config import SearchConfig
from emodarts_core.nas.genotype import CellGenotype, Genotype

__all__ = [
    "CELL_TYPES", "PARAMETER_FREE_OPS", "is_parameter_free", "skip_count", "param_free_count",
    "alpha_entropy", "CollapseStats", "collapse_stats", "DartsPlusGuard", "make_guard",
]

CELL_TYPES: tuple[str, ...] = ("normal", "reduce", "seq")

#: Operations without learnable parameters (``none`` never appears in a derived genotype).
PARAMETER_FREE_OPS: frozenset[str] = frozenset({"skip_connect", "max_pool_3x3", "avg_pool_3x3", "none"})


def is_parameter_free(op: str) -> bool:
    """True for skip connections, pooling and ``none``."""
    return op in PARAMETER_FREE_OPS or op.startswith(("max_pool", "avg_pool"))


def skip_count(cell: CellGenotype) -> int:
    """Number of kept edges of ``cell`` that are ``skip_connect``."""
    return sum(op == "skip_connect" for op in cell.ops())


def param_free_count(cell: CellGenotype) -> int:
    """Number of kept edges of ``cell`` whose operation has no parameters (skip or pooling)."""
    return sum(is_parameter_free(op) for op in cell.ops())


def _as_matrix(weights: torch.Tensor | np.ndarray | list) -> torch.Tensor:
    if isinstance(weights, torch.Tensor):
        return weights.detach().cpu().double()
    return torch.as_tensor(np.asarray(weights, dtype=np.float64))


def alpha_entropy(weights: torch.Tensor | np.ndarray | list, from_logits: bool = False) -> float:
    """Mean over edges (rows) of the softmax entropy in nats.

    Args:
        weights: an (edges, ops) matrix of softmaxed alphas (rows sum to 1), or raw alphas when
            ``from_logits`` is True.
        from_logits: apply the softmax first.

    Uniform rows give ``log(n_ops)``; one-hot rows give 0.
    """
    w = _as_matrix(weights)
    if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] == 0:
        raise ValueError(f"alpha_entropy: weights must be a non-empty (edges, ops) matrix, got shape "
                         f"{tuple(w.shape)}")
    if from_logits:
        w = torch.softmax(w, dim=-1)
    else:
        ones = torch.ones(w.shape[0], dtype=w.dtype)
        if (w < -1e-9).any() or not torch.allclose(w.sum(-1), ones, atol=1e-4):
            raise ValueError("alpha_entropy: rows are not probability vectors; pass from_logits=True "
                             "for raw alphas")
    p = w.clamp_min(0.0)
    ent = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)
    return float(ent.mean())


@dataclass(frozen=True)
class CollapseStats:
    """Per-cell-type collapse diagnostics of one epoch (keys: ``normal``, ``reduce``, ``seq``)."""

    skip_count: dict[str, int]
    param_free_count: dict[str, int]
    alpha_entropy: dict[str, float]
    max_entropy: dict[str, float] = field(default_factory=dict)   # log(n_ops): the uniform value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collapse_stats(genotype: Genotype, alpha_weights: Mapping[str, Any] | None = None,
                   from_logits: bool = False) -> CollapseStats:
    """Diagnostics for a genotype and (optionally) its alphas.

    Args:
        genotype: the derived genotype of the epoch.
        alpha_weights: ``{"normal", "reduce", "seq"}`` -> (edges, ops) softmaxed weights, e.g.
            ``SuperNet.alpha_weights()`` or one epoch's ``alphas`` entry of ``history.json``.
            Cell types missing here get no entropy.
        from_logits: the matrices are raw alphas.
    """
    cells = {"normal": genotype.normal, "reduce": genotype.reduce, "seq": genotype.seq}
    entropy: dict[str, float] = {}
    max_entropy: dict[str, float] = {}
    for kind, w in (alpha_weights or {}).items():
        if kind not in cells:
            raise ValueError(f"collapse_stats: unknown cell type {kind!r}; expected one of {CELL_TYPES}")
        entropy[kind] = alpha_entropy(w, from_logits=from_logits)
        max_entropy[kind] = math.log(_as_matrix(w).shape[-1])
    return CollapseStats(
        skip_count={k: skip_count(c) for k, c in cells.items()},
        param_free_count={k: param_free_count(c) for k, c in cells.items()},
        alpha_entropy=entropy,
        max_entropy=max_entropy,
    )


class DartsPlusGuard:
    """DARTS+ early stopping.

    Call :meth:`update` once per epoch with that epoch's genotype; it returns True once the search
    should stop, and keeps returning True afterwards. ``reason`` and ``stopped_epoch`` say why and
    when.

    Args:
        max_skips: stop once the *normal* cell holds at least this many ``skip_connect`` edges
            (DARTS+ uses 2).
        stable_epochs: if > 0, also stop once the genotype has been identical for this many
            consecutive epochs (DARTS+ uses about 10). 0 disables the rule.
    """

    def __init__(self, max_skips: int = 2, stable_epochs: int = 0) -> None:
        if max_skips < 1:
            raise ValueError(f"DartsPlusGuard: max_skips must be >= 1, got {max_skips}")
        if stable_epochs < 0:
            raise ValueError(f"DartsPlusGuard: stable_epochs must be >= 0, got {stable_epochs}")
        self.max_skips = max_skips
        self.stable_epochs = stable_epochs
        self.stopped_epoch: int | None = None
        self.reason: str | None = None
        self._last: dict[str, Any] | None = None
        self._same_for = 0

    @property
    def triggered(self) -> bool:
        return self.stopped_epoch is not None

    def update(self, epoch: int, genotype: Genotype) -> bool:
        """Record one epoch's genotype; True when the search should stop now (or already has)."""
        if self.triggered:
            return True
        current = genotype.to_dict()
        self._same_for = self._same_for + 1 if current == self._last else 1
        self._last = current
        skips = skip_count(genotype.normal)
        if skips >= self.max_skips:
            self.stopped_epoch = epoch
            self.reason = f"normal cell has {skips} skip connections (>= {self.max_skips})"
        elif self.stable_epochs and self._same_for >= self.stable_epochs:
            self.stopped_epoch = epoch
            self.reason = f"genotype unchanged for {self._same_for} epochs"
        return self.triggered

    def state_dict(self) -> dict[str, Any]:
        """Plain-JSON / ``weights_only``-safe state."""
        return {"max_skips": self.max_skips, "stable_epochs": self.stable_epochs,
                "stopped_epoch": self.stopped_epoch, "reason": self.reason,
                "last": self._last, "same_for": self._same_for}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = {"max_skips", "stopped_epoch", "last", "same_for"} - set(state)
        if missing:
            raise ValueError(f"DartsPlusGuard.load_state_dict: missing key(s) {sorted(missing)}")
        self.max_skips = int(state["max_skips"])
        self.stable_epochs = int(state.get("stable_epochs", 0))
        self.stopped_epoch = None if state["stopped_epoch"] is None else int(state["stopped_epoch"])
        self.reason = state.get("reason")
        self._last = state["last"]
        self._same_for = int(state["same_for"])


def make_guard(search: SearchConfig) -> DartsPlusGuard | None:
    """The guard a search config asks for (``collapse_guard``: None or ``"darts+"``)."""
    if search.collapse_guard is None:
        return None
    if search.collapse_guard == "darts+":
        return DartsPlusGuard(max_skips=search.max_skips)
    raise ValueError(f"unknown collapse_guard {search.collapse_guard!r}; choose None or 'darts+'")
