"""The supernet: the whole joint CNN + SeqNN search space as one differentiable network.

Macro structure (input ``x``: ``(B, 1, n_mfcc, n_frames)``, i.e. batch, one channel, frequency,
time):

1. **Stem**: 3 x 3 conv (1 -> ``stem_multiplier * C`` channels) + BN.
2. **CNN cells**: ``cnn_layers`` :class:`~emodarts_core.nas.cells.SearchCell` s. Cells at indices
   ``cnn_layers // 3`` and ``2 * cnn_layers // 3`` are reduction cells (channels x 2, frequency
   and time halved, rounding up); the others are normal cells. Each cell reads the outputs of the
   two cells before it. All normal cells share ``alpha_normal``, all reduction cells
   ``alpha_reduce``.
3. **CNN -> SeqNN** (:class:`SeqInput`; *time stays time*): the outputs of the last two CNN cells
   are averaged over the frequency axis only, ``(B, C, F, T) -> (B, T, C)``, so every frame of the
   utterance remains a step of the sequence. If the earlier one has more frames, it is
   adaptive-average-pooled over time to the later one's ``T``; if a map's channel count differs
   from ``seq_hidden`` a linear projection maps it to ``seq_hidden`` (with the paper profile both
   maps have exactly 128 = ``seq_hidden`` channels, so there is none).
4. **SeqNN cells**: ``seq_cells`` :class:`~emodarts_core.nas.cells.SeqSearchCell` s on
   ``(B, T, seq_hidden)``, each reading the two previous states; all share ``alpha_seq``.
5. **Head**: mean over time, then (only when ``space.head_norm``, not part of the method; see
   :func:`head_norm`) a ``BatchNorm1d`` of that vector, then ``Linear(seq_hidden, n_classes)``
   (logits; the loss applies the softmax).

**Speed and memory options** (neither changes what is computed; ``tests/test_memory.py``):
``channels_last=True`` (the default) runs the CNN in the channels-last memory format, several
times faster on CPU for the depthwise and pointwise convolutions that dominate the step;
``memory_efficient=True`` checkpoints every mixed edge (:mod:`emodarts_core.fast.memory`), trading one
extra forward pass of the edges for most of the activation memory. ``SearchConfig.memory_efficient``
switches the latter for a search; the ``paper`` profile turns it on.

The alphas are parameters of this module (so ``state_dict`` and ``.to(device)`` carry them), but
:meth:`SuperNet.weights` and :meth:`SuperNet.alphas` keep the two sets apart for the two
optimisers of the bi-level search. In eval mode an utterance's logits do not depend on the other
utterances of its batch (every op, the sequence ops included, treats utterances separately).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from emodarts_core.config import RELAXATIONS, SearchSpaceConfig
from emodarts_core.fast.batchnorm import BatchNorm2d
from emodarts_core.nas.cells import SearchCell, SeqSearchCell
from emodarts_core.nas.genotype import Genotype, derive_cell, n_edges
from emodarts_core.nas.relaxation import relaxed_weights, selection_scores, smoothed

ALPHA_NAMES: tuple[str, ...] = ("alpha_normal", "alpha_reduce", "alpha_seq")


def reduction_indices(layers: int) -> frozenset[int]:
    """Indices of the reduction cells among ``layers`` CNN cells: ``layers // 3`` and ``2 * layers // 3``."""
    return frozenset({layers // 3, 2 * layers // 3})


def make_stem(C_stem: int) -> nn.Sequential:
    """The stem: 3 x 3 conv from the 1-channel MFCC image to ``C_stem`` channels, then BN."""
    return nn.Sequential(nn.Conv2d(1, C_stem, 3, padding=1, bias=False), BatchNorm2d(C_stem))


def check_input_shape(input_shape: Sequence[int], who: str) -> tuple[int, int]:
    """Validate ``input_shape = (n_mfcc, n_frames)`` and return it as a tuple of ints."""
    shape = tuple(input_shape)
    if len(shape) != 2 or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise ValueError(f"{who}: input_shape must be (n_mfcc, n_frames) positive ints, got {input_shape!r}")
    return shape  # type: ignore[return-value]


def check_batch(x: torch.Tensor, who: str) -> None:
    """Inputs are ``(B, 1, n_mfcc, n_frames)``; a clear error otherwise."""
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"{who}: expected input of shape (batch, 1, n_mfcc, n_frames), got "
                         f"{tuple(x.shape)}")


class SeqInput(nn.Module):
    """CNN feature maps -> SeqNN input sequences, keeping time as time.

    ``forward(s0, s1)`` takes the last two CNN cells' outputs ``(B, C0, F0, T0)`` and
    ``(B, C1, F1, T1)`` and returns two ``(B, T1, H)`` sequences: each map is averaged over
    frequency (axis 2), ``s0`` is adaptive-average-pooled over time to ``T1`` frames when
    ``T0 != T1``, and a map with ``C != H`` channels goes through ``Linear(C, H)``.
    """

    def __init__(self, C0: int, C1: int, H: int) -> None:
        super().__init__()
        self.proj0: nn.Module = nn.Linear(C0, H) if C0 != H else nn.Identity()
        self.proj1: nn.Module = nn.Linear(C1, H) if C1 != H else nn.Identity()

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f0, f1 = s0.mean(dim=2), s1.mean(dim=2)                      # (B, C, T): frequency pooled
        if f0.shape[-1] != f1.shape[-1]:
            f0 = F.adaptive_avg_pool1d(f0, f1.shape[-1])
        q0 = self.proj0(f0.transpose(1, 2).contiguous())             # (B, T, H)
        q1 = self.proj1(f1.transpose(1, 2).contiguous())
        return q0, q1


def head_norm(space: SearchSpaceConfig, affine: bool) -> nn.Module:
    """``BatchNorm1d`` of the pooled utterance vector when ``space.head_norm`` (see its comment in
    :class:`~emodarts_core.config.SearchSpaceConfig`), else the identity."""
    return nn.BatchNorm1d(space.seq_hidden, affine=affine) if space.head_norm else nn.Identity()


class TimeMean(nn.Module):
    """``(B, T, H) -> (B, H)``: the mean over the frames of each utterance."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class SuperNet(nn.Module):
    """The DARTS supernet over the joint CNN + SeqNN space (see the module docstring).

    Args:
        space: the search space (cells, nodes, channels, candidate ops, hidden size, dropout).
        n_classes: number of emotion classes.
        input_shape: ``(n_mfcc, n_frames)`` of the features. The network is fully convolutional
            and pools over time, so other sizes also run; this is the size it is built and
            inspected for.
        memory_efficient: checkpoint every mixed edge (CNN and SeqNN) in training; see
            :mod:`emodarts_core.fast.memory`. Can be changed later through the attribute of that name.
        channels_last: run the CNN part in the channels-last memory format (faster on CPU).
    """

    def __init__(self, space: SearchSpaceConfig, n_classes: int, input_shape: tuple[int, int],
                 *, memory_efficient: bool = False, channels_last: bool = True,
                 relaxation: str = "softmax") -> None:
        super().__init__()
        if relaxation not in RELAXATIONS:
            raise ValueError(f"SuperNet: relaxation must be one of {RELAXATIONS}, got {relaxation!r}")
        self.relaxation = relaxation
        # SDARTS-RS: the half-width of the uniform noise added to the operation weights in
        # training passes (set by the search loop around its weight steps only).
        self.smoothing_eps = 0.0
        if n_classes < 1:
            raise ValueError(f"SuperNet: n_classes must be >= 1, got {n_classes}")
        if space.cnn_layers < 1 or space.cnn_nodes < 1 or space.seq_nodes < 1 or space.seq_cells < 0:
            raise ValueError(f"SuperNet: need cnn_layers, cnn_nodes, seq_nodes >= 1 and seq_cells >= 0, "
                             f"got {space}")
        for field_name, ops in (("cnn_ops", tuple(space.cnn_ops)), ("seq_ops", space.seq_primitives)):
            if not ops or ops[-1] != "none":
                raise ValueError(f"SuperNet: space.{field_name} must end with 'none', got {ops}")
        self.space, self.n_classes = space, n_classes
        self.input_shape = check_input_shape(input_shape, "SuperNet")
        self._primitives = {"normal": tuple(space.cnn_ops), "reduce": tuple(space.cnn_ops),
                            "seq": space.seq_primitives}

        C, H = space.init_channels, space.seq_hidden
        C_stem = space.stem_multiplier * C
        self.stem = make_stem(C_stem)
        reductions = reduction_indices(space.cnn_layers)
        self.cells = nn.ModuleList()
        channels = [C_stem, C_stem]                                  # outputs of the states so far
        C_cur, reduction_p = C, False
        for i in range(space.cnn_layers):
            reduction = i in reductions
            if reduction:
                C_cur *= 2
            cell = SearchCell(space.cnn_nodes, channels[-2], channels[-1], C_cur, reduction_p,
                              reduction, space.cnn_ops, space.dropout)
            self.cells.append(cell)
            channels.append(cell.out_channels)
            reduction_p = reduction
        self.seq_in = SeqInput(channels[-2], channels[-1], H)
        self.seq_cells = nn.ModuleList(
            SeqSearchCell(space.seq_nodes, H, self._primitives["seq"], space.dropout)
            for _ in range(space.seq_cells))
        self.pool = TimeMean()
        self.head_norm = head_norm(space, affine=False)
        self.classifier = nn.Linear(H, n_classes)

        n_cnn, n_seq = len(self._primitives["normal"]), len(self._primitives["seq"])
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(n_edges(space.cnn_nodes), n_cnn))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(n_edges(space.cnn_nodes), n_cnn))
        self.alpha_seq = nn.Parameter(1e-3 * torch.randn(n_edges(space.seq_nodes), n_seq))
        self.channels_last = channels_last
        self.memory_efficient = memory_efficient

    @property
    def memory_efficient(self) -> bool:
        """Whether every mixed edge runs under activation checkpointing in training."""
        return self._memory_efficient

    @memory_efficient.setter
    def memory_efficient(self, on: bool) -> None:
        self._memory_efficient = bool(on)
        for cell in list(self.cells) + list(self.seq_cells):
            cell.checkpoint_edges = self._memory_efficient

    # -- the forward pass ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor] | None = None
                ) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for ``x`` of shape ``(B, 1, n_mfcc, n_frames)``.

        ``weights``: operation weights ``{"normal", "reduce", "seq"}`` to mix with instead of
        :meth:`mixing_weights` (perturbation-based selection masks one operation or edge)."""
        check_batch(x, "SuperNet")
        w = self.mixing_weights() if weights is None else weights
        return self.seq_part(*self.run_cells(*self.stem_states(x), w), w)

    # The forward pass in three parts, so that a caller can start it at a later cell with the
    # states of an earlier pass (emodarts_core.search.perturbation).
    def stem_states(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two input states of the first cell: the stem's output, twice."""
        s = self.stem(x)
        if self.channels_last:
            s = s.contiguous(memory_format=torch.channels_last)
        return s, s

    def run_cells(self, s0: torch.Tensor, s1: torch.Tensor, w: dict[str, torch.Tensor],
                  cells: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """The CNN cells ``self.cells[cells]`` from the states ``(s0, s1)``: the last two states."""
        for cell in self.cells[cells]:
            s0, s1 = s1, cell(s0, s1, w["reduce"] if cell.reduction else w["normal"])
        return s0, s1

    def seq_part(self, s0: torch.Tensor, s1: torch.Tensor, w: dict[str, torch.Tensor]
                 ) -> torch.Tensor:
        """The logits from the last two CNN states: the sequential cells and the head."""
        q0, q1 = self.seq_in(s0, s1)
        for cell in self.seq_cells:
            q0, q1 = q1, cell(q0, q1, w["seq"])
        return self.classifier(self.head_norm(self.pool(q1)))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the logits of ``x`` against integer labels ``y``."""
        return F.cross_entropy(self(x), y)

    # -- the two parameter sets ---------------------------------------------------------------
    def weights(self) -> list[nn.Parameter]:
        """The network weights (everything except the alphas), for the weight optimiser."""
        return [p for name, p in self.named_parameters() if name not in ALPHA_NAMES]

    def alphas(self) -> list[nn.Parameter]:
        """``[alpha_normal, alpha_reduce, alpha_seq]``, for the architect's optimiser."""
        return [self.alpha_normal, self.alpha_reduce, self.alpha_seq]

    def _named_alphas(self) -> dict[str, nn.Parameter]:
        return {"normal": self.alpha_normal, "reduce": self.alpha_reduce, "seq": self.alpha_seq}

    def alpha_weights(self) -> dict[str, torch.Tensor]:
        """The operation weights the alphas stand for, ``{"normal", "reduce", "seq"}`` (rows =
        edges, columns = ops, rows sum to 1): their softmax, or with the Dirichlet relaxation the
        distribution's mean. The genotype is derived from these."""
        return {k: relaxed_weights(a, self.relaxation, sample=False)
                for k, a in self._named_alphas().items()}

    def mixing_weights(self) -> dict[str, torch.Tensor]:
        """The weights a forward pass mixes the operations with: :meth:`alpha_weights` in
        evaluation; in training a Dirichlet draw (relaxation ``"dirichlet"``) and/or the
        SDARTS-RS noise (``smoothing_eps`` > 0)."""
        if not self.training:
            return self.alpha_weights()
        w = {k: relaxed_weights(a, self.relaxation, sample=True)
             for k, a in self._named_alphas().items()}
        if self.smoothing_eps > 0:
            w = {k: smoothed(v, self.smoothing_eps) for k, v in w.items()}
        return w

    @property
    def primitives(self) -> dict[str, tuple[str, ...]]:
        """The candidate op names of each alpha's columns, keyed ``{"normal", "reduce", "seq"}``."""
        return dict(self._primitives)

    def genotype(self) -> Genotype:
        """The discrete architecture: top-2 edges per node, strongest non-``none`` op each."""
        p = self._primitives
        scores = {k: selection_scores(a, self.relaxation) for k, a in self._named_alphas().items()}
        return Genotype(
            normal=derive_cell(scores["normal"], p["normal"], self.space.cnn_nodes, k=2),
            reduce=derive_cell(scores["reduce"], p["reduce"], self.space.cnn_nodes, k=2),
            seq=derive_cell(scores["seq"], p["seq"], self.space.seq_nodes, k=2),
        )
