"""The fixed network: the final model built from a searched :class:`~emodarts_core.nas.genotype.Genotype`.

Same macro structure as the :class:`~emodarts_core.nas.supernet.SuperNet` (stem, ``cnn_layers`` CNN
cells with reductions at ``cnn_layers // 3`` and ``2 * cnn_layers // 3``, frequency pooling that
keeps time, ``seq_cells`` SeqNN cells, mean over time, the optional head norm, linear head), but
every edge is the one discrete operation the genotype kept, BatchNorm is affine, and two
regularisers of DARTS' final training are available:

- **drop-path**: during training, the output of every CNN op except the identity is zeroed for a
  whole utterance with probability :attr:`Network.drop_path_prob` (set per epoch by the training
  loop; the mask is drawn on the input's device, so CPU and CUDA both work);
- **auxiliary head** (``aux=True``): a small classifier on the output of the second reduction
  cell (ReLU, adaptive average pooling to 2 x 2 so any input size works, 1 x 1 conv to 128, BN,
  ReLU, 2 x 2 conv to 768, BN, ReLU, Linear), whose loss the training loop adds with a weight.
  :meth:`Network.forward_with_aux` returns its logits; :meth:`Network.forward` never computes it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emodarts_core.config import SearchSpaceConfig
from emodarts_core.nas.cells import FixedCell, FixedSeqCell
from emodarts_core.nas.genotype import CellGenotype, Genotype
from emodarts_core.nas.ops import CNN_OPS, SEQ_OPS
from emodarts_core.nas.supernet import (SeqInput, TimeMean, check_batch, check_input_shape,
                                        head_norm, make_stem, reduction_indices)


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier, made size-agnostic with adaptive pooling to 2 x 2.

    ``(B, C_in, F, T) -> (B, n_classes)``. In training mode it needs a batch of at least 2 (its
    last BatchNorm sees a 1 x 1 map).
    """

    def __init__(self, C_in: int, n_classes: int, hidden: tuple[int, int] = (128, 768)) -> None:
        super().__init__()
        h1, h2 = hidden
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(C_in, h1, 1, bias=False), nn.BatchNorm2d(h1), nn.ReLU(inplace=True),
            nn.Conv2d(h1, h2, 2, bias=False), nn.BatchNorm2d(h2), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(h2, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def _check_ops(cell: CellGenotype, registry: dict, where: str) -> None:
    for j, node in enumerate(cell.nodes):
        for op, _ in node:
            if op not in registry:
                raise ValueError(f"Network: genotype.{where} node {j} uses unknown op {op!r}; "
                                 f"known: {sorted(registry)}")


def check_genotype(genotype: Genotype) -> None:
    """``ValueError`` naming the first operation of ``genotype`` that no registry knows (CNN
    ops in the normal and reduction cells, sequence ops in the SeqNN cell)."""
    _check_ops(genotype.normal, CNN_OPS, "normal")
    _check_ops(genotype.reduce, CNN_OPS, "reduce")
    _check_ops(genotype.seq, SEQ_OPS, "seq")


class Network(nn.Module):
    """The final model for ``genotype`` in ``space`` (see the module docstring).

    Args:
        genotype: the architecture; its ``normal`` / ``reduce`` cells set the CNN cells, its
            ``seq`` cell all SeqNN cells. Node counts come from the genotype.
        space: channels, layers, number of SeqNN cells, ``seq_hidden`` and dropout.
        n_classes: number of classes.
        input_shape: ``(n_mfcc, n_frames)``; other sizes also run (fully convolutional).
        aux: build the auxiliary head after the second reduction cell.
        channels_last: run the CNN cells in the channels-last memory format, as the
            :class:`~emodarts_core.nas.supernet.SuperNet` does (same numbers; several times faster
            convolutions on CPU, see :mod:`emodarts_core.fast.layout`).
    """

    def __init__(self, genotype: Genotype, space: SearchSpaceConfig, n_classes: int,
                 input_shape: tuple[int, int], aux: bool = True, *,
                 channels_last: bool = True) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"Network: n_classes must be >= 1, got {n_classes}")
        if space.cnn_layers < 1 or space.seq_cells < 0:
            raise ValueError(f"Network: need cnn_layers >= 1 and seq_cells >= 0, got {space}")
        check_genotype(genotype)
        self.genotype, self.space, self.n_classes = genotype, space, n_classes
        self.input_shape = check_input_shape(input_shape, "Network")
        self.drop_path_prob: float = 0.0
        self.channels_last = channels_last

        C, H = space.init_channels, space.seq_hidden
        C_stem = space.stem_multiplier * C
        self.stem = make_stem(C_stem)
        reductions = reduction_indices(space.cnn_layers)
        self.aux_index = 2 * space.cnn_layers // 3                 # the second reduction cell
        self.cells = nn.ModuleList()
        channels = [C_stem, C_stem]
        C_cur, reduction_p = C, False
        self.aux_head: AuxiliaryHead | None = None
        for i in range(space.cnn_layers):
            reduction = i in reductions
            if reduction:
                C_cur *= 2
            cell_genotype = genotype.reduce if reduction else genotype.normal
            cell = FixedCell(cell_genotype, channels[-2], channels[-1], C_cur, reduction_p,
                             reduction, space.dropout)
            self.cells.append(cell)
            channels.append(cell.out_channels)
            reduction_p = reduction
            if aux and i == self.aux_index:
                self.aux_head = AuxiliaryHead(cell.out_channels, n_classes)
        self.seq_in = SeqInput(channels[-2], channels[-1], H)
        self.seq_cells = nn.ModuleList(FixedSeqCell(genotype.seq, H, space.dropout)
                                       for _ in range(space.seq_cells))
        self.pool = TimeMean()
        self.head_norm = head_norm(space, affine=True)
        self.classifier = nn.Linear(H, n_classes)

    def _run(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        check_batch(x, "Network")
        aux_logits = None
        s0 = s1 = self.stem(x)
        if self.channels_last:
            s0 = s1 = s0.contiguous(memory_format=torch.channels_last)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if with_aux and self.aux_head is not None and i == self.aux_index:
                aux_logits = self.aux_head(s1)
        q0, q1 = self.seq_in(s0, s1)
        for cell in self.seq_cells:
            q0, q1 = q1, cell(q0, q1)
        return self.classifier(self.head_norm(self.pool(q1))), aux_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for ``x`` of shape ``(B, 1, n_mfcc, n_frames)``."""
        return self._run(x, with_aux=False)[0]

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, aux_logits)``; ``aux_logits`` is ``None`` when the network has no aux head."""
        return self._run(x, with_aux=True)

    def loss(self, x: torch.Tensor, y: torch.Tensor, aux_weight: float = 0.0,
             class_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy (optionally class-weighted), plus ``aux_weight`` times the auxiliary
        head's cross-entropy when ``aux_weight > 0`` and the head exists."""
        logits, aux_logits = self._run(x, with_aux=aux_weight > 0)
        loss = F.cross_entropy(logits, y, weight=class_weights)
        if aux_logits is not None:
            loss = loss + aux_weight * F.cross_entropy(aux_logits, y, weight=class_weights)
        return loss
