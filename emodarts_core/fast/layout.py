"""The channels-last memory format on CPU: telling it apart, changing layout without sending
gradients into the other one, and the strided and pooling kernels the CNN candidates run in it.

The supernet runs its CNN in ``channels_last``, where oneDNN's depthwise and pointwise
convolutions are several times faster than in the default layout. Some kernels are slower
there, or slower with gradients that arrive in the other layout; the helpers below work around
them without changing what is computed (``tests/test_ops.py``, ``tests/test_memory.py``):

- :func:`even_pixels` and :func:`relayout`: a slice and a layout change whose backward keeps the
  gradient in the input's layout;
- :func:`dilated_conv`: a stride-2, dilation-2 convolution as an undilated convolution of the
  even pixels (a reduction edge's ``dil_conv``);
- :func:`avg_pool_3x3_by_conv`: 3 x 3 average pooling that ignores the padding, as a depthwise
  convolution with a ones kernel divided by the count of valid pixels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_CL = torch.channels_last


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-D tensor stored channels-last and not also plain contiguous (C > 1)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=_CL)


class _EvenPixels(torch.autograd.Function):
    """The autograd function behind :func:`even_pixels`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, offset: int) -> torch.Tensor:
        ctx.offset, ctx.in_shape = offset, x.shape
        fmt = _CL if is_channels_last(x) else torch.contiguous_format
        ctx.fmt = fmt
        B, C, H, W = x.shape
        part = x[:, :, offset::2, offset::2]
        if offset == 0:
            return part.contiguous(memory_format=fmt)
        out = x.new_zeros(B, C, (H + 1) // 2, (W + 1) // 2).contiguous(memory_format=fmt)
        out[:, :, : part.shape[2], : part.shape[3]] = part
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        o = ctx.offset
        gx = grad.new_zeros(ctx.in_shape).contiguous(memory_format=ctx.fmt)
        target = gx[:, :, o::2, o::2]
        target.copy_(grad[:, :, : target.shape[2], : target.shape[3]])
        return gx, None


def even_pixels(x: torch.Tensor, offset: int) -> torch.Tensor:
    """``x[:, :, o::2, o::2]`` (``o = offset`` in 0, 1), zero-padded at the end to ``ceil(n / 2)``
    rows and columns, dense in ``x``'s memory format, with a backward that keeps that format.

    (A plain slice's backward builds a contiguous gradient, which sent channels-last gradients
    into mixed-layout CPU kernels 3-4x slower than either layout alone; and oneDNN's convolution
    backward crashed on some sliced channels-last views, torch 2.9.) Same values as the slice.
    """
    return _EvenPixels.apply(x, offset)


class _Relayout(torch.autograd.Function):
    """The autograd function behind :func:`relayout`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
        ctx.back = _CL if is_channels_last(x) else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad.contiguous(memory_format=ctx.back), None


def relayout(x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    """``x.contiguous(memory_format=fmt)`` whose backward returns the gradient in ``x``'s layout.

    Autograd's copy passes the gradient through in whatever layout it arrives, so after a layout
    change the ops below would receive gradients in the other layout, and CPU kernels that mix
    layouts (ReLU's backward for one) were 3-4x slower. Values are unchanged.
    """
    return _Relayout.apply(x, fmt)


def dilated_conv(conv: nn.Conv2d, r: torch.Tensor) -> torch.Tensor:
    """``conv(r)`` for a convolution without bias (a ``DilConv``'s depthwise one).

    At stride 2 with dilation 2 (a reduction edge's ``dil_conv``) output pixel ``i`` reads input
    pixels ``2i + 2a - padding``: with an even padding these are exactly the even rows and
    columns. So the convolution equals an undilated stride-1 convolution of
    ``r[:, :, ::2, ::2]`` with half the padding: same weights, same sums, and 3-7x faster on CPU
    than oneDNN's dilated strided kernel. Any other convolution runs as it is.
    """
    if conv.stride == (2, 2) and conv.dilation == (2, 2) and conv.padding[0] % 2 == 0 \
            and conv.padding[0] == conv.padding[1]:
        return F.conv2d(even_pixels(r, 0), conv.weight, padding=conv.padding[0] // 2,
                        groups=conv.groups)
    return conv(r)


def avg_pool_3x3_by_conv(x: torch.Tensor, stride: int) -> torch.Tensor:
    """3 x 3 average pooling, padding 1, ``count_include_pad=False``, as a depthwise convolution.

    The window sums come from a depthwise convolution with a ones kernel and are divided by the
    number of real (non-padding) pixels in each window, itself the same convolution applied to a
    map of ones. Mathematically identical to ``nn.AvgPool2d(3, stride, 1,
    count_include_pad=False)``; on CPU in ``channels_last`` it is ~4x faster than that kernel.
    """
    C = x.shape[1]
    ones = x.new_ones(C, 1, 3, 3)
    sums = F.conv2d(x, ones, stride=stride, padding=1, groups=C)
    counts = F.conv2d(x.new_ones(1, 1, *x.shape[2:]), ones[:1], stride=stride, padding=1)
    return sums / counts
