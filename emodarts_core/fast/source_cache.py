"""What the mixed edges leaving one state of a search cell compute alike, computed once (exact).

:class:`SourceCache` holds a state, its ReLU and the outputs of its parameter-free candidates
(pooling followed by a non-affine BatchNorm) for the edges leaving it; which candidates may be
shared is the caller's to say (:func:`emodarts_core.nas.mixed.shareable`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SourceCache:
    """What the mixed edges leaving one state can share, computed once per forward pass.

    In a search cell a state feeds up to ``n_nodes`` edges, and every edge's candidates read it
    unchanged. Two things they compute are the same in every edge: the ReLU that the convolutional
    candidates apply first (:meth:`relu`), and the parameter-free candidates, pooling followed by
    a *non-affine* BatchNorm (:meth:`output`): on the same input a BatchNorm without scale and
    shift in training mode gives the same output whatever module computes it, and its running
    statistics, started equal and updated with the same batches, stay equal. So the first edge
    to need, say, ``max_pool_3x3`` of the state computes it with its own module, and every later
    edge takes that tensor and copies the running statistics into its own module, so that each
    edge's BatchNorm holds exactly what it would hold had it computed the op itself (the edges
    stay interchangeable: evaluation mode, checkpoints and the memory-efficient path, which does
    not share, see the same state). Exact; fewer kernels and fewer saved activations.
    """

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self._relu: torch.Tensor | None = None
        self._outputs: dict[str, tuple[torch.Tensor, nn.Module]] = {}

    def relu(self) -> torch.Tensor:
        if self._relu is None:
            self._relu = F.relu(self.x)
        return self._relu

    def output(self, name: str, op: nn.Module) -> torch.Tensor:
        """``op(x)`` for a shareable op (:func:`emodarts_core.nas.mixed.shareable`), computed by
        the first edge that asks for it (all edges leaving one state have the same stride, so
        the op's name identifies it)."""
        if name not in self._outputs:
            self._outputs[name] = (op(self.x), op)
            return self._outputs[name][0]
        out, owner = self._outputs[name]
        if owner is not op:
            with torch.no_grad():
                for mine, theirs in zip(op.buffers(), owner.buffers()):
                    mine.copy_(theirs)
        return out
