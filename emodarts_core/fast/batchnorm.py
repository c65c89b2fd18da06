"""Training-mode batch normalisation of ``channels_last`` CPU maps, written for few channels, and
the BatchNorm module of the CNN candidates that uses it (:class:`BatchNorm2d`).

PyTorch's CPU batch-norm kernel vectorises over channels, so on ``channels_last`` maps with a
handful of channels (the ``cpu`` profile's cells have 4, 8 and 16) it runs far below memory speed,
and the contiguous-layout kernel needs two layout copies around it (``benchmarks/kernels.py``).
A ``channels_last`` map of shape ``(N, C, H, W)`` is, in memory, a row-major ``(N*H*W, C)``
matrix; here it is viewed as ``(N*H*W / k, k*C)`` rows (``k`` pixels per row, ``k*C >= 64`` where
the pixel count allows), so every per-channel statistic is a column sum folded ``k`` times and
every per-channel scale or shift is a row broadcast of a ``k``-times repeated vector: plain
vectorised elementwise kernels and column reductions, no copies.

The arithmetic is batch normalisation's: ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with
the biased batch variance, and the usual gradient
``dx = weight / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat))``. The running
statistics are updated by the caller (:class:`BatchNorm2d` below) exactly as ``nn.BatchNorm2d``
does (unbiased variance). Values agree with PyTorch's kernel to rounding
(``tests/test_ops.py``); only first derivatives are provided (DARTS' second order uses finite
differences, not double backward).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from emodarts_core.fast.layout import is_channels_last, relayout

__all__ = ["BatchNorm2d", "batch_norm_channels_last", "row_width"]


def row_width(pixels: int, C: int, target: int = 64) -> int:
    """How many pixels ``k`` one row of the wide view holds: a divisor of ``pixels``, the
    smallest with ``k * C >= target`` if there is one up to 4 times that, else the largest below."""
    need = max(1, -(-target // C))
    for k in range(need, 4 * need + 1):
        if pixels % k == 0:
            return k
    return max(k for k in range(1, need) if pixels % k == 0)


def _wide(x: torch.Tensor, k: int) -> torch.Tensor:
    """``(N, C, H, W)`` channels-last -> the ``(N*H*W/k, k*C)`` view of the same memory."""
    C = x.shape[1]
    return x.permute(0, 2, 3, 1).reshape(-1, k * C)


def _per_channel(column_sums: torch.Tensor, k: int) -> torch.Tensor:
    """Fold the ``k*C`` column sums of the wide view into ``C`` channel sums."""
    return column_sums.view(k, -1).sum(0)


class _ChannelsLastBatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                eps: float, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        N, C, H, W = x.shape
        M = N * H * W
        xw = _wide(x, k)
        mean = _per_channel(xw.sum(0), k) / M
        centred = xw - mean.repeat(k)
        var = _per_channel((centred * centred).sum(0), k) / M
        invstd = torch.rsqrt(var + eps)
        scale = invstd if weight is None else invstd * weight
        y = centred.mul_(scale.repeat(k))
        if bias is not None:
            y.add_(bias.repeat(k))
        out = y.view(N, H, W, C).permute(0, 3, 1, 2)            # channels_last (N, C, H, W)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.k = k
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor, _gm: torch.Tensor, _gv: torch.Tensor):
        x, weight, mean, invstd = ctx.saved_tensors
        k = ctx.k
        N, C, H, W = x.shape
        M = N * H * W
        dy = _wide(grad.contiguous(memory_format=torch.channels_last), k)
        xhat = (_wide(x, k) - mean.repeat(k)).mul_(invstd.repeat(k))
        sum_dy = _per_channel(dy.sum(0), k)
        sum_dy_xhat = _per_channel((dy * xhat).sum(0), k)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            scale = invstd if weight is None else invstd * weight
            dx = torch.addcmul(dy, xhat, (-sum_dy_xhat / M).repeat(k))
            dx.sub_((sum_dy / M).repeat(k)).mul_(scale.repeat(k))
            dx = dx.view(N, H, W, C).permute(0, 3, 1, 2)
        if weight is not None and ctx.needs_input_grad[1]:
            dw = sum_dy_xhat
        if ctx.needs_input_grad[2]:
            db = sum_dy
        return dx, dw, db, None, None


def batch_norm_channels_last(x: torch.Tensor, weight: torch.Tensor | None = None,
                             bias: torch.Tensor | None = None, eps: float = 1e-5
                             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training-mode batch norm of a ``channels_last`` map ``x`` ``(N, C, H, W)`` over its batch
    statistics. Returns ``(y, mean, var)``: ``y`` in ``channels_last``, and the batch mean and
    *biased* variance per channel (not differentiable) for the running statistics."""
    if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last):
        raise ValueError(f"batch_norm_channels_last: a channels_last (N, C, H, W) map expected, "
                         f"got shape {tuple(x.shape)} with strides {x.stride()}")
    N, C, H, W = x.shape
    if N * H * W < 2:
        raise ValueError(f"batch_norm_channels_last: expected more than 1 value per channel in "
                         f"training, got input of shape {tuple(x.shape)}")
    return _ChannelsLastBatchNorm.apply(x, weight, bias, eps, row_width(N * H * W, C))


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and state-dict keys, same arithmetic) that is
    fast for ``channels_last`` input on CPU.

    PyTorch's CPU batch-norm kernel for ``channels_last`` maps is several times slower when the
    channel count is not a multiple of 8 (C = 2, 4, 12: its vectorised path covers channels in
    groups of 8) and within ~15 % of the best option when it is (C = 8 to 128;
    ``benchmarks/kernels.py``, figures in ``benchmarks/RESULTS.md``). So for a ``channels_last``
    CPU input with ``C % 8 != 0``, training mode normalises with
    :func:`batch_norm_channels_last` (wide-row view, no layout copies) and updates the running
    statistics as ``nn.BatchNorm2d`` does; evaluation mode normalises in the contiguous layout
    (same kernel, same numbers) and hands the result back as ``channels_last``. Otherwise, and
    on CUDA, this is exactly ``nn.BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (x.device.type == "cpu" and x.shape[1] % 8 and is_channels_last(x)):
            return super().forward(x)
        if not (self.training or self.running_mean is None):
            y = super().forward(relayout(x, torch.contiguous_format))
            return relayout(y, torch.channels_last)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:                      # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        y, mean, var = batch_norm_channels_last(x, self.weight, self.bias, self.eps)
        if self.training and self.running_mean is not None:
            n = x.numel() // x.shape[1]
            with torch.no_grad():                          # nn.BatchNorm2d: unbiased variance
                self.running_mean.mul_(1.0 - factor).add_(mean, alpha=factor)
                self.running_var.mul_(1.0 - factor).add_(var * (n / (n - 1)), alpha=factor)
        return y
