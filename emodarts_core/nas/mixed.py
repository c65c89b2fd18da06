"""Mixed operations: the DARTS continuous relaxation of one edge.

A mixed edge computes ``sum_o w_o * o(x)`` over its candidate operations ``o``, with ``w`` the
edge's row of softmaxed architecture weights (:mod:`emodarts_core.nas.relaxation`):
:class:`MixedOp` over the CNN candidates, :class:`SeqMixedOp` over the sequential ones. The
``none`` candidate is never evaluated (its output is exactly zero).

Exact shortcuts (same numbers as evaluating every candidate on its own): the candidates that
start with a ReLU share one; the edges leaving one state share that ReLU and their pooled
candidates (:class:`~emodarts_core.fast.source_cache.SourceCache`, for the ops that
:func:`shareable` allows); the sum is fused on CPU
(:func:`~emodarts_core.fast.weighted_sum.weighted_sum`); and a sequence edge runs its recurrent
stacks together (:func:`~emodarts_core.fast.recurrent.run_recurrent`).
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from emodarts_core.fast.recurrent import run_recurrent
from emodarts_core.fast.source_cache import SourceCache
from emodarts_core.fast.weighted_sum import weighted_sum
from emodarts_core.nas.cnn_ops import PoolBN
from emodarts_core.nas.ops import cnn_op, seq_op
from emodarts_core.nas.seq_ops import AttentiveRecurrent, Recurrent


def shareable(op: nn.Module) -> bool:
    """Whether edges leaving the same state may share ``op``'s output (:class:`SourceCache`):
    pooling followed by a BatchNorm without learned scale and shift (the supernet's)."""
    return isinstance(op, PoolBN) and not op.bn.affine


class _Mixed(nn.Module):
    """Shared logic: the weighted sum over candidates, with ``none`` never evaluated."""

    primitives: tuple[str, ...]

    def _setup(self, primitives: Sequence[str], build: Callable[[str], nn.Module]) -> None:
        self.primitives = tuple(primitives)
        if len(set(self.primitives)) != len(self.primitives):
            raise ValueError(f"{type(self).__name__}: duplicate op names in {self.primitives}")
        self.indices = [i for i, name in enumerate(self.primitives) if name != "none"]
        if not self.indices:
            raise ValueError(f"{type(self).__name__}: needs at least one op besides 'none'")
        self.ops = nn.ModuleList(build(self.primitives[i]) for i in self.indices)
        # ops that begin with a ReLU of the input share one (exact: it is the same tensor)
        self.share_relu = [hasattr(op, "forward_relu") for op in self.ops]
        if sum(self.share_relu) < 2:
            self.share_relu = [False] * len(self.ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                cache: SourceCache | None = None) -> torch.Tensor:
        """``sum_o weights[o] * o(x)`` over the candidates; ``weights`` has one entry per primitive
        (``none`` included: its share of the softmax simply contributes nothing). ``cache``: the
        :class:`SourceCache` of ``x`` shared with the other edges leaving the same state."""
        if weights.shape != (len(self.primitives),):
            raise ValueError(f"{type(self).__name__}: weights of shape {tuple(weights.shape)} do "
                             f"not match {len(self.primitives)} primitives")
        if cache is not None and cache.x is not x:
            raise ValueError(f"{type(self).__name__}: the cache belongs to another input")
        return weighted_sum(weights[self.indices], self.candidates(x, cache))

    def candidates(self, x: torch.Tensor, cache: SourceCache | None = None) -> Iterator[torch.Tensor]:
        """The evaluated ops' outputs on ``x``, in the order of :attr:`ops` (lazily, so that an
        evaluation without gradients does not hold them all at once)."""
        if cache is None and any(self.share_relu):
            cache = SourceCache(x)                   # this edge's candidates still share the ReLU
        for i, op, share in zip(self.indices, self.ops, self.share_relu):
            if share:
                yield op.forward_relu(cache.relu())
            elif cache is not None and shareable(op):
                yield cache.output(self.primitives[i], op)
            else:
                yield op(x)


class MixedOp(_Mixed):
    """A CNN edge of the supernet: ``sum_o softmax(alpha)_o * o(x)`` over ``primitives``.

    ``forward(x, weights)`` takes the already softmaxed weights of this edge. The ``none``
    candidate is not evaluated (its output is exactly zero), which saves its strided copy.
    """

    def __init__(self, C: int, stride: int, primitives: Sequence[str], affine: bool = False) -> None:
        super().__init__()
        self._setup(primitives, lambda name: cnn_op(name, C, stride, affine))


class SeqMixedOp(_Mixed):
    """A SeqNN edge of the supernet: the weighted sum of sequence ops, ``(B, T, H) -> (B, T, H)``."""

    def __init__(self, H: int, primitives: Sequence[str]) -> None:
        super().__init__()
        self._setup(primitives, lambda name: seq_op(name, H))

    def candidates(self, x: torch.Tensor, cache: SourceCache | None = None) -> Iterator[torch.Tensor]:
        """The ops' outputs on ``x`` (``cache`` is not used: no sequence op is shared between
        edges); the recurrent stacks of all recurrent candidates run in one
        :func:`run_recurrent` call (batched together on CPU), then each op finishes its own."""
        rec = [k for k, op in enumerate(self.ops) if isinstance(op, (Recurrent, AttentiveRecurrent))]
        stacks = dict(zip(rec, run_recurrent([self.ops[k].rnn for k in rec], x)))
        for k, op in enumerate(self.ops):
            yield op.finish(stacks.pop(k)) if k in stacks else op(x)
