"""The weighted sum of a mixed edge's candidates, ``sum_i w_i * h_i``, fused on CPU (exact).

A mixed edge, and a search node run in branches, end in this sum over a dozen candidate outputs.
With gradients on the CPU, :func:`weighted_sum` computes it with a hand-written backward
(:class:`_WeightedSum`: fewer kernels per term than autograd's, same values up to rounding),
otherwise as the plain expression (``tests/test_ops.py``).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch.autograd.function import once_differentiable


class _WeightedSum(torch.autograd.Function):
    """``sum_i weights[i] * hs[i]`` with a hand-written backward (CPU).

    Autograd's version saves the same tensors but runs a multiply and an add per term forward
    and, backward, two multiplies and a reduction per term. Here the forward is one fused
    ``out += w_i * h_i`` per term, and the backward one multiply (the gradient of ``h_i``) and
    one dot product (the gradient of ``w_i``, as a multiply and PyTorch's sum) per term.
    """

    @staticmethod
    def forward(ctx, weights: torch.Tensor, *hs: torch.Tensor) -> torch.Tensor:
        w = weights.tolist()
        out = torch.mul(hs[0], w[0])
        for wi, h in zip(w[1:], hs[1:]):
            out.add_(h, alpha=wi)
        ctx.save_for_backward(weights, *hs)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        weights, *hs = ctx.saved_tensors
        w = weights.tolist()
        d_weights = None
        if ctx.needs_input_grad[0]:
            # Not torch.dot: BLAS's dot sums in an order that depends on the memory alignment
            # of its operands, so the same numbers at other addresses (a resumed run) gave
            # other roundings. PyTorch's own sum does not depend on it.
            d_weights = torch.stack([(grad * h).sum() for h in hs]).to(weights.dtype)
        d_hs = [torch.mul(grad, wi) if need else None
                for wi, need in zip(w, ctx.needs_input_grad[1:])]
        return (d_weights, *d_hs)


def weighted_sum(weights: torch.Tensor, hs: Iterable[torch.Tensor]) -> torch.Tensor:
    """``sum_i weights[i] * hs[i]`` (``weights`` 1-D, ``hs`` tensors of one shape and dtype).

    With gradients on CPU: the fused :class:`_WeightedSum` (same values up to rounding; first
    derivatives only, like the other hand-written backward passes here: the search never
    differentiates twice, its second order uses finite differences). Otherwise the plain
    expression, consuming ``hs`` lazily, so that a generator of candidates evaluated without
    gradients holds one candidate at a time.
    """
    n = weights.shape[0]
    if torch.is_grad_enabled() and weights.device.type == "cpu":
        hs = list(hs)
        if len(hs) != n or not hs:
            raise ValueError(f"weighted_sum: {n} weights for {len(hs)} tensors")
        if all(h.device.type == "cpu" and h.shape == hs[0].shape and h.dtype == hs[0].dtype
               for h in hs):
            return _WeightedSum.apply(weights, *hs)
    out, count = None, 0
    for count, h in enumerate(hs, start=1):
        if count > n:
            break
        term = weights[count - 1] * h
        out = term if out is None else out + term
    if count != n or out is None:
        raise ValueError(f"weighted_sum: {n} weights for {'more' if count > n else count} tensors")
    return out
