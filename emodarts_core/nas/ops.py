"""The operation registry: every candidate operation of the search space, CNN and sequential.

Two registries map an operation's name (the name that appears unchanged in configs, genotypes,
graphs and the book) to a constructor:

- ``CNN_OPS[name](C, stride, affine) -> nn.Module`` maps ``(B, C, F, T)`` to
  ``(B, C, ceil(F / stride), ceil(T / stride))``. ``affine`` is the BatchNorm flag: ``False`` in
  the supernet (as in DARTS, so that the alphas and not BN scales decide an op's strength),
  ``True`` in the fixed network.
- ``SEQ_OPS[name](H) -> nn.Module`` maps ``(B, T, H)`` to ``(B, T, H)``: a sequence of ``T``
  frames of ``H`` features per utterance, batch first. Every sequence op treats each utterance of
  a batch on its own (no op mixes utterances), so predictions never depend on batch-mates.

Every strided op rounds up (``ceil``), so inputs of any size work, odd ones included (the 16 kHz
profile has 125 frames). :class:`MixedOp` and :class:`SeqMixedOp` are the DARTS relaxation of an
edge: the softmax-weighted sum of all candidates.

Speed on CPU (exact; see ``benchmarks/RESULTS.md``). The supernet runs its CNN in the
``channels_last`` memory format, where oneDNN's depthwise and pointwise convolutions are several
times faster than in the default layout. Two kernels are slower in that layout, so the ops work
around them without changing what they compute: :class:`BatchNorm2d` normalises a
``channels_last`` CPU input whose channel count is not a multiple of 8 with its own vectorised
kernel (:mod:`emodarts_core.fast.batchnorm`); 3 x 3 average pooling runs as a depthwise convolution
with a ones kernel divided by the count of valid (non-padding) pixels, which is the definition
of ``count_include_pad=False`` pooling. The ReLU that every convolutional candidate applies
first is computed once per state and shared (:meth:`DilConv.forward_relu`), as are the pooled
candidates of all edges leaving one state (:class:`SourceCache`); the candidates' weighted sum
is one fused function on CPU (:func:`weighted_sum`); and on CPU the tanh-RNN stacks of all
recurrent candidates run as one batched recurrence (:func:`run_recurrent`,
:mod:`emodarts_core.fast.recurrent`).
"""
from __future__ import annotations

import warnings
from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from emodarts_core.fast.batchnorm import batch_norm_channels_last
from emodarts_core.fast.recurrent import bankable, run_stacks

# ---------------------------------------------------------------------------------------------
# CNN building blocks (DARTS). Convolutions have no bias: a BatchNorm always follows them.

_CL = torch.channels_last


def _is_channels_last(x: torch.Tensor) -> bool:
    """True for a 4-D tensor stored channels-last and not also plain contiguous (C > 1)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=_CL)


class _EvenPixels(torch.autograd.Function):
    """The autograd function behind :func:`even_pixels`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, offset: int) -> torch.Tensor:
        ctx.offset, ctx.in_shape = offset, x.shape
        fmt = _CL if _is_channels_last(x) else torch.contiguous_format
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
        ctx.back = _CL if _is_channels_last(x) else torch.contiguous_format
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


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and state-dict keys, same arithmetic) that is
    fast for ``channels_last`` input on CPU.

    PyTorch's CPU batch-norm kernel for ``channels_last`` maps is several times slower when the
    channel count is not a multiple of 8 (C = 2, 4, 12: its vectorised path covers channels in
    groups of 8) and within ~15 % of the best option when it is (C = 8 to 128;
    ``benchmarks/kernels.py``, figures in ``benchmarks/RESULTS.md``). So for a ``channels_last``
    CPU input with ``C % 8 != 0``, training mode normalises with
    :func:`emodarts_core.fast.batchnorm.batch_norm_channels_last` (wide-row view, no layout copies) and
    updates the running statistics as ``nn.BatchNorm2d`` does; evaluation mode normalises in the
    contiguous layout (same kernel, same numbers) and hands the result back as
    ``channels_last``. Otherwise, and on CUDA, this is exactly ``nn.BatchNorm2d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (x.device.type == "cpu" and x.shape[1] % 8 and _is_channels_last(x)):
            return super().forward(x)
        if not (self.training or self.running_mean is None):
            return relayout(super().forward(relayout(x, torch.contiguous_format)), _CL)
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
        if self.kind == "avg" and x.device.type == "cpu" and _is_channels_last(x):
            return self.bn(avg_pool_3x3_by_conv(x, self.stride))
        return self.bn(self.pool(x))


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
        return self.op[3](self.op[2](self.depthwise(r)))

    def depthwise(self, r: torch.Tensor) -> torch.Tensor:
        """The depthwise convolution. At stride 2 with dilation 2 (a reduction edge's dil_conv)
        output pixel ``i`` reads input pixels ``2i + 2a - padding``: with an even padding these
        are exactly the even rows and columns. So the op equals an undilated stride-1
        convolution of ``r[:, :, ::2, ::2]`` with half the padding: same weights, same sums,
        and 3-7x faster on CPU than oneDNN's dilated strided kernel."""
        conv = self.op[1]
        if conv.stride == (2, 2) and conv.dilation == (2, 2) and conv.padding[0] % 2 == 0 \
                and conv.padding[0] == conv.padding[1]:
            return F.conv2d(even_pixels(r, 0), conv.weight, padding=conv.padding[0] // 2,
                            groups=conv.groups)
        return conv(r)


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


# ---------------------------------------------------------------------------------------------
# Sequence operations: (B, T, H) -> (B, T, H), batch first, each utterance on its own.


class Recurrent(nn.Module):
    """``lstm_k`` / ``rnn_k``: ``k`` stacked unidirectional LSTM or tanh-RNN layers.

    Hidden size = input size = ``H``, batch first, no dropout between layers; the op's output is
    the last layer's output sequence (the final hidden/cell states are discarded).
    """

    def __init__(self, kind: str, H: int, layers: int) -> None:
        super().__init__()
        self.rnn = _recurrent(kind, H, H, layers, bidirectional=False, dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.finish(run_recurrent([self.rnn], x)[0])

    def finish(self, o: torch.Tensor) -> torch.Tensor:
        """The op's output given its recurrent stack's output ``o`` (here ``o`` itself)."""
        return o


class AttentiveRecurrent(nn.Module):
    """``lstm_att_L`` / ``rnn_att_L``: a bidirectional recurrent stack with attention over time.

    With ``o_t`` (``2H`` features) the bidirectional output at frame ``t`` of an utterance of
    ``T`` frames, the op computes

    - scores ``e_t = v^T tanh(W_a o_t + b_a)`` (additive attention with a learned query ``v``),
    - weights ``a_t = exp(e_t) / sum_{s=1..T} exp(e_s)``: a softmax over the frames of that
      utterance only,
    - the context ``c = sum_t a_t o_t`` (``2H``), a summary of the whole utterance,
    - the output ``y_t = W_o [o_t ; c] + b_o`` (``4H -> H``): every frame combined with the
      utterance's context and projected back to ``H``, so the op maps ``(B, T, H) -> (B, T, H)``.

    ``L`` layers with dropout 0.3 between them (only when ``L > 1``, as PyTorch applies it). It
    works at any batch size and sequence length: nothing depends on ``B`` or ``T``. (The public
    code instead gated features with weights whose width fixed the batch size at 16.)
    """

    def __init__(self, kind: str, H: int, layers: int, dropout: float = 0.3) -> None:
        super().__init__()
        self.rnn = _recurrent(kind, H, H, layers, bidirectional=True,
                              dropout=dropout if layers > 1 else 0.0)
        self.score = nn.Sequential(nn.Linear(2 * H, H), nn.Tanh(), nn.Linear(H, 1, bias=False))
        self.out = nn.Linear(4 * H, H)

    def attend(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The recurrent outputs ``o`` ``(B, T, 2H)`` and attention weights ``a`` ``(B, T)``
        (each row sums to 1); useful for plotting where an utterance's attention falls."""
        o = run_recurrent([self.rnn], x)[0]
        return o, self.attention(o)

    def attention(self, o: torch.Tensor) -> torch.Tensor:
        """Attention weights ``(B, T)`` over the frames, given the recurrent outputs ``o``."""
        return torch.softmax(self.score(o).squeeze(-1), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.finish(run_recurrent([self.rnn], x)[0])

    def finish(self, o: torch.Tensor) -> torch.Tensor:
        """The op's output given its recurrent stack's output ``o`` ``(B, T, 2H)``."""
        a = self.attention(o)                                        # (B, T)
        context = torch.einsum("bt,btf->bf", a, o)                   # (B, 2H)
        context = context.unsqueeze(1).expand_as(o)                  # (B, T, 2H)
        return self.out(torch.cat([o, context], dim=-1))             # (B, T, H)


def run_recurrent(rnns: Sequence[nn.RNNBase], x: torch.Tensor) -> list[torch.Tensor]:
    """``[rnn(x)[0] for rnn in rnns]``, with zero initial states.

    On CPU the tanh RNNs among them run together as one batched recurrence
    (:func:`emodarts_core.fast.recurrent.run_stacks`: same equations and parameters, ~2x faster at the
    supernet's sizes); LSTMs and every op on CUDA use PyTorch's fused kernels, except that a
    stacked op with dropout in training mode runs :func:`layer_by_layer` on CUDA.
    """
    outs: list[torch.Tensor | None] = [None] * len(rnns)
    banked = [n for n, r in enumerate(rnns) if x.device.type == "cpu" and bankable(r)]
    if banked:
        for n, y in zip(banked, run_stacks([rnns[n] for n in banked], x)):
            outs[n] = y
    return [(layer_by_layer(r, x) if _cudnn_dropout(r, x) else r(x)[0]) if y is None else y
            for r, y in zip(rnns, outs)]


def _cudnn_dropout(rnn: nn.RNNBase, x: torch.Tensor) -> bool:
    """Would ``rnn(x)`` draw its between-layer dropout inside cuDNN?"""
    return x.is_cuda and rnn.training and rnn.dropout > 0 and rnn.num_layers > 1


def layer_by_layer(rnn: nn.RNNBase, x: torch.Tensor) -> torch.Tensor:
    """``rnn(x)[0]`` (zero initial states) computed one layer at a time, with the dropout between
    layers drawn by ``F.dropout`` from torch's generator.

    Same parameters and equations as ``rnn``. Used on CUDA in training mode: cuDNN draws the
    between-layer dropout of a stacked LSTM / RNN from its *own* random state, which neither
    ``torch.manual_seed`` nor a checkpoint's saved generator state controls, so a resumed run
    or an activation-checkpointing recomputation (:mod:`emodarts_core.fast.memory`) would draw other
    masks (and the first such call in a process allocates that state, which changes what the
    op saves for the backward pass and breaks the recomputation outright).
    """
    if not isinstance(rnn, (nn.LSTM, nn.RNN)) or getattr(rnn, "proj_size", 0):
        raise TypeError(f"layer_by_layer: plain nn.LSTM / nn.RNN expected, got {rnn!r}")
    lstm = isinstance(rnn, nn.LSTM)
    if not lstm and rnn.nonlinearity != "tanh":
        raise TypeError("layer_by_layer: only tanh RNNs are used here")
    dirs = 2 if rnn.bidirectional else 1
    names = [f"{w}_{{}}{d}" for d in ("", "_reverse")[:dirs]
             for w in ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if rnn.bias else ())]
    h = x
    for k in range(rnn.num_layers):
        layer = type(rnn)(rnn.input_size if k == 0 else dirs * rnn.hidden_size, rnn.hidden_size,
                          num_layers=1, bias=rnn.bias, batch_first=rnn.batch_first,
                          bidirectional=rnn.bidirectional, device="meta")   # shape only
        weights = {n.format("l0"): getattr(rnn, n.format(f"l{k}")) for n in names}
        with warnings.catch_warnings():     # one layer's weights are not cuDNN's flat buffer:
            warnings.filterwarnings("ignore", message="RNN module weights are not part")
            out = torch.func.functional_call(layer, weights, (h,))[0]   # cuDNN copies them
        h = F.dropout(out, rnn.dropout, rnn.training) if k < rnn.num_layers - 1 else out
    return h


def _recurrent(kind: str, input_size: int, hidden: int, layers: int, bidirectional: bool,
               dropout: float) -> nn.Module:
    if kind == "lstm":
        return nn.LSTM(input_size, hidden, num_layers=layers, batch_first=True,
                       bidirectional=bidirectional, dropout=dropout)
    if kind == "rnn":
        return nn.RNN(input_size, hidden, num_layers=layers, nonlinearity="tanh",
                      batch_first=True, bidirectional=bidirectional, dropout=dropout)
    raise ValueError(f"recurrent kind must be 'lstm' or 'rnn', got {kind!r}")


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


# ---------------------------------------------------------------------------------------------
# Mixed operations (the continuous relaxation of one edge)


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
        """``op(x)`` for a :func:`shareable` op, computed by the first edge that asks for it
        (all edges leaving one state have the same stride, so the op's name identifies it)."""
        if name not in self._outputs:
            self._outputs[name] = (op(self.x), op)
            return self._outputs[name][0]
        out, owner = self._outputs[name]
        if owner is not op:
            with torch.no_grad():
                for mine, theirs in zip(op.buffers(), owner.buffers()):
                    mine.copy_(theirs)
        return out


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
