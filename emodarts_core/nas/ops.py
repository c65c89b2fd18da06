"""The operation registry: every candidate operation of the search space, by name.

Two registries map an operation's name (the name that appears unchanged in configs, genotypes,
graphs and the book) to a constructor:

- ``CNN_OPS[name](C, stride, affine) -> nn.Module`` maps ``(B, C, F, T)`` to
  ``(B, C, ceil(F / stride), ceil(T / stride))`` (:mod:`emodarts_core.nas.cnn_ops`). ``affine``
  is the BatchNorm flag: ``False`` in the supernet, ``True`` in the fixed network.
- ``SEQ_OPS[name](H) -> nn.Module`` maps ``(B, T, H)`` to ``(B, T, H)``
  (:mod:`emodarts_core.nas.seq_ops`).

:func:`cnn_op` and :func:`seq_op` build one by name, with a clear error for an unknown name. The
mixed edges over these candidates are in :mod:`emodarts_core.nas.mixed`.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from emodarts_core.nas.cnn_ops import DilConv, FactorizedReduce, Identity, PoolBN, SepConv, Zero
from emodarts_core.nas.seq_ops import AttentiveRecurrent, Recurrent

CnnOpFactory = Callable[[int, int, bool], nn.Module]

CNN_OPS: dict[str, CnnOpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: PoolBN("max", C, stride, affine),
    "avg_pool_3x3": lambda C, stride, affine: PoolBN("avg", C, stride, affine),
    "skip_connect": lambda C, stride, affine: (
        Identity() if stride == 1 else FactorizedReduce(C, C, affine)),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine),
}

SeqOpFactory = Callable[[int], nn.Module]

SEQ_OPS: dict[str, SeqOpFactory] = {
    "none": lambda H: Zero(1),
    "skip_connect": lambda H: Identity(),
    **{f"lstm_{k}": (lambda H, k=k: Recurrent("lstm", H, k)) for k in range(1, 5)},
    **{f"rnn_{k}": (lambda H, k=k: Recurrent("rnn", H, k)) for k in range(1, 5)},
    **{f"lstm_att_{k}": (lambda H, k=k: AttentiveRecurrent("lstm", H, k)) for k in (1, 2)},
    **{f"rnn_att_{k}": (lambda H, k=k: AttentiveRecurrent("rnn", H, k)) for k in (1, 2)},
}


def cnn_op(name: str, C: int, stride: int, affine: bool) -> nn.Module:
    """Build the CNN op ``name``; a clear error for a name not in :data:`CNN_OPS`."""
    if name not in CNN_OPS:
        raise ValueError(f"unknown CNN op {name!r}; known: {sorted(CNN_OPS)}")
    return CNN_OPS[name](C, stride, affine)


def seq_op(name: str, H: int) -> nn.Module:
    """Build the sequence op ``name``; a clear error for a name not in :data:`SEQ_OPS`."""
    if name not in SEQ_OPS:
        raise ValueError(f"unknown sequence op {name!r}; known: {sorted(SEQ_OPS)}")
    return SEQ_OPS[name](H)
