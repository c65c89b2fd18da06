"""The convolutional candidate operations of DARTS, on ``(B, C, F, T)`` maps (frequency, time).

Each maps ``(B, C, F, T)`` to ``(B, C, ceil(F / stride), ceil(T / stride))``: every strided op
rounds up, so inputs of any size work, odd ones included (the 16 kHz profile has 125 frames).
Convolutions have no bias: a BatchNorm always follows them. ``affine`` is the BatchNorm flag:
``False`` in the supernet (as in DARTS, so that the alphas and not BN scales decide an op's
strength), ``True`` in the fixed network. The registry of names is :mod:`emodarts_core.nas.ops`.

The ops compute their textbook form; on CPU some run it another way with the same arithmetic
(:mod:`emodarts_core.fast.layout`, :class:`emodarts_core.fast.batchnorm.BatchNorm2d`): average
pooling as a convolution in ``channels_last``, a reduction edge's dilated convolution and the
factorized reduce's strided 1 x 1 convolutions on the even pixels. The ops that start with a
ReLU also take it already computed (``forward_relu``), so that the edges leaving one state share
it (:mod:`emodarts_core.nas.mixed`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emodarts_core.fast.batchnorm import BatchNorm2d
from emodarts_core.fast.layout import (avg_pool_3x3_by_conv, dilated_conv, even_pixels,
                                        is_channels_last)


class ReLUConvBN(nn.Module):
    """ReLU -> ``k x k`` conv -> BN; with ``k = 1`` the cell-input preprocessing of DARTS."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class PoolBN(nn.Module):
    """3 x 3 max or average pooling (padding 1; average ignores the padding) followed by BN."""

    def __init__(self, kind: str, C: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        self.kind, self.stride = kind, stride
        if kind == "max":
            self.pool: nn.Module = nn.MaxPool2d(3, stride=stride, padding=1)
        elif kind == "avg":
            self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        else:
            raise ValueError(f"PoolBN: kind must be 'max' or 'avg', got {kind!r}")
        self.bn = BatchNorm2d(C, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "avg" and x.device.type == "cpu" and is_channels_last(x):
            return self.bn(avg_pool_3x3_by_conv(x, self.stride))
        return self.bn(self.pool(x))


class DilConv(nn.Module):
    """ReLU -> depthwise ``k x k`` conv with dilation -> pointwise 1 x 1 conv -> BN.

    ``dil_conv_3x3`` uses dilation 2 and padding 2 (a 5 x 5 receptive field), ``dil_conv_5x5``
    dilation 2 and padding 4 (9 x 9).
    """

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, affine: bool = True) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding, dilation=dilation,
                      groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_relu(self.op[0](x))

    def forward_relu(self, r: torch.Tensor) -> torch.Tensor:
        """The op given ``r = relu(x)`` already computed (a mixed op shares it between ops)."""
        return self.op[3](self.op[2](dilated_conv(self.op[1], r)))


class SepConv(nn.Module):
    """Two stacked DilConv blocks with dilation 1 (the stride applies to the first only)."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__()
        self.op = nn.Sequential(
            DilConv(C_in, C_in, kernel_size, stride, padding, dilation=1, affine=affine),
            DilConv(C_in, C_out, kernel_size, 1, padding, dilation=1, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)

    def forward_relu(self, r: torch.Tensor) -> torch.Tensor:
        """The op given ``r = relu(x)`` already computed (see :meth:`DilConv.forward_relu`)."""
        return self.op[1](self.op[0].forward_relu(r))


class Identity(nn.Module):
    """``skip_connect`` at stride 1. Drop-path is never applied to it (as in DARTS)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """``none``: an all-zero output (strided like the other ops of its edge).

    Works for CNN maps ``(B, C, F, T)`` (stride on both spatial axes) and, at stride 1, for any
    tensor, sequences included. Mixed ops never evaluate it: its contribution is exactly zero.
    """

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the spatial size without losing every other pixel: ``skip_connect`` at stride 2.

    ReLU, then two 1 x 1 stride-2 convolutions, the second on the input shifted by one pixel in
    both directions; their outputs (``C_out // 2`` and ``C_out - C_out // 2`` channels) are
    concatenated and batch-normalised. The shifted copy is zero-padded at the end first, so odd
    sizes give ``ceil(n / 2)`` like every other strided op (for even sizes this is exactly the
    DARTS operation: the padded zeros are never sampled).
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv2 = nn.Conv2d(C_in, C_out - C_out // 2, 1, stride=2, bias=False)
        self.bn = BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_relu(self.relu(x))

    def forward_relu(self, x: torch.Tensor) -> torch.Tensor:
        """The op given ``relu(x)`` already computed (see :meth:`DilConv.forward_relu`)."""
        # A 1 x 1 stride-2 convolution reads only the even rows and columns, so it is computed as
        # a stride-1 convolution of those (identical arithmetic). This also avoids a heap
        # corruption in oneDNN's strided 1 x 1 backward for channels-last input (torch 2.9, CPU).
        even = even_pixels(x, 0)
        shifted = even_pixels(x, 1)
        return self.bn(torch.cat([F.conv2d(even, self.conv1.weight),
                                  F.conv2d(shifted, self.conv2.weight)], dim=1))


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Drop whole samples of an op's output with probability ``p`` (scaled by ``1 / (1 - p)``).

    The mask is drawn on ``x``'s own device and dtype, so it works on CPU and CUDA alike; outside
    training or with ``p == 0`` the input is returned unchanged. Not in-place.
    """
    if not training or p <= 0.0:
        return x
    if p >= 1.0:
        raise ValueError(f"drop_path: probability must be < 1, got {p}")
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype)
    return x * mask.bernoulli_(keep) / keep
