"""Many tanh-RNN layers run as one batched recurrence (exact; a CPU speed-up).

A SeqNN edge of the supernet holds six tanh-RNN candidates (``rnn_1..4`` and the bidirectional
``rnn_att_1/2``), all reading the same ``(B, T, H)`` input. PyTorch runs each layer of each as its
own loop over the ``T`` frames with a per-frame autograd graph, and at the supernet's sizes
(``H = 32``, ``T ~ 32``) the time goes to that per-frame overhead, not to arithmetic. Here every
layer at the same depth of its stack, in every candidate and direction, runs as *one* recurrence
over ``K`` independent layers:

- the input projections ``x W_ih^T + b_ih + b_hh`` are whole-sequence matrix products done
  before the loop (for the first layers, which share the input, one product for all);
- the loop over frames computes ``h_t = tanh(P_t + h_{t-1} W_hh^T)`` for all ``K`` layers with one
  batched matrix product (``torch.baddbmm``) per frame;
- a reverse direction is the same layer run on the time-reversed projections, flipped back after.

The recurrence is a custom autograd function with a hand-written backward pass through time, so
neither pass builds a per-frame graph. Same parameters and equations as ``nn.RNN`` (tanh, zero
initial state): outputs and gradients agree with PyTorch's module to rounding
(``tests/test_recurrent.py``, float64); only the dropout between stacked layers draws its masks
in another order (equal in law). About 2x faster than ``nn.RNN`` one by one for the six
candidates' forward + backward at the supernet's sizes (``benchmarks/kernels.py``, figures in
``benchmarks/RESULTS.md``). LSTMs are *not* banked: a prototype of the same bank for LSTM cells
(not kept) was slower than PyTorch's fused oneDNN LSTM kernel.

Entry point: :func:`run_recurrent`, ``[rnn(x)[0] for rnn in rnns]`` for the recurrent sequence
ops (:mod:`emodarts_core.nas.seq_ops`), which runs the bankable ones through :func:`run_stacks`
on CPU. On CUDA in training it runs stacked layers with dropout through :func:`layer_by_layer`,
so that torch's generator, not cuDNN's own state, draws the masks.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["tanh_rnn_bank", "run_stacks", "bankable", "run_recurrent", "layer_by_layer"]


class _TanhBank(torch.autograd.Function):
    """``h_t = tanh(P_t + h_{t-1} W^T)`` for ``K`` layers at once, time-major internally."""

    @staticmethod
    def forward(ctx, P: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        K, B, T, H = P.shape
        Pt = P.permute(2, 0, 1, 3).contiguous()                     # (T, K, B, H)
        Wt = W.transpose(1, 2)                                       # (K, H_in, H_out)
        out = torch.empty_like(Pt)
        h = P.new_zeros(K, B, H)
        for t in range(T):
            h = torch.baddbmm(Pt[t], h, Wt, out=out[t]).tanh_()
        ctx.save_for_backward(out, W)
        return out.permute(1, 2, 0, 3)                               # (K, B, T, H), a view

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, W = ctx.saved_tensors                                   # out: (T, K, B, H)
        T = out.shape[0]
        G = grad.permute(2, 0, 1, 3)                                 # (T, K, B, H)
        deriv = 1.0 - out * out                                      # tanh' at every frame
        dZ = torch.empty_like(out)
        dh = torch.zeros_like(out[0])
        for t in range(T - 1, -1, -1):
            dz = torch.mul(dh + G[t], deriv[t], out=dZ[t])
            dh = torch.bmm(dz, W)                                    # back into h_{t-1}
        prev = torch.cat([torch.zeros_like(out[:1]), out[:-1]])     # h_{t-1}, zeros at t = 0
        dW = torch.einsum("tkbi,tkbj->kij", dZ, prev)
        return dZ.permute(1, 2, 0, 3), dW


def tanh_rnn_bank(P: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``K`` independent tanh-RNN layers with zero initial state.

    ``P``: ``(K, B, T, H)``, each layer's input projection with both biases added
    (``x W_ih^T + b_ih + b_hh``); ``W``: ``(K, H, H)``, each layer's ``weight_hh``. Returns the
    hidden states ``(K, B, T, H)``. Differentiable in ``P`` and ``W`` (first order only).
    """
    if P.dim() != 4 or W.dim() != 3 or W.shape[0] != P.shape[0] or W.shape[1] != P.shape[3] \
            or W.shape[1] != W.shape[2]:
        raise ValueError(f"tanh_rnn_bank: expected P (K, B, T, H) and W (K, H, H), got "
                         f"{tuple(P.shape)} and {tuple(W.shape)}")
    return _TanhBank.apply(P, W)


def bankable(rnn: nn.Module) -> bool:
    """Whether :func:`run_stacks` can run ``rnn``: a batch-first tanh ``nn.RNN`` with biases
    whose input size equals its hidden size."""
    return (isinstance(rnn, nn.RNN) and rnn.mode == "RNN_TANH" and rnn.batch_first and rnn.bias
            and rnn.input_size == rnn.hidden_size)


def run_stacks(rnns: Sequence[nn.RNN], x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of several tanh-RNN stacks on the same input ``x`` ``(B, T, H)``, each as
    ``rnn(x)[0]`` gives it: ``(B, T, H)``, or ``(B, T, 2H)`` if bidirectional.

    The stacks may differ in depth and direction (all must be :func:`bankable`, hidden size
    ``H``). Layer ``l`` of every stack that has one, both directions, runs as one bank; between
    layers each stack applies its own dropout (in training mode), as PyTorch does.
    """
    for r in rnns:
        if not bankable(r) or r.hidden_size != x.shape[-1]:
            raise ValueError(f"run_stacks: cannot run {r} on input of shape {tuple(x.shape)}")
    inputs = [x] * len(rnns)                       # each stack's input to its current layer
    outputs: list[torch.Tensor | None] = [None] * len(rnns)
    for layer in range(max((r.num_layers for r in rnns), default=0)):
        # the units of this depth: (stack, direction), and their parameter-name suffixes
        units = [(n, d) for n, r in enumerate(rnns) if r.num_layers > layer
                 for d in range(2 if r.bidirectional else 1)]
        names = [f"l{layer}" + ("_reverse" if d else "") for _, d in units]
        w_ih = [getattr(rnns[n], f"weight_ih_{s}") for (n, _), s in zip(units, names)]
        bias = [getattr(rnns[n], f"bias_ih_{s}") + getattr(rnns[n], f"bias_hh_{s}")
                for (n, _), s in zip(units, names)]
        if layer == 0:                             # one product for all: they share the input
            proj = F.linear(x, torch.cat(w_ih), torch.cat(bias)).split(
                [w.shape[0] for w in w_ih], dim=-1)
        else:
            proj = [F.linear(inputs[n], w, b) for (n, _), w, b in zip(units, w_ih, bias)]
        P = torch.stack([p.flip(1) if d else p for p, (_, d) in zip(proj, units)])
        W = torch.stack([getattr(rnns[n], f"weight_hh_{s}") for (n, _), s in zip(units, names)])
        hidden = tanh_rnn_bank(P, W)               # (K, B, T, H)
        per_stack: dict[int, list[torch.Tensor]] = {}
        for k, (n, d) in enumerate(units):
            per_stack.setdefault(n, []).append(hidden[k].flip(1) if d else hidden[k])
        for n, parts in per_stack.items():
            y = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
            r = rnns[n]
            if layer < r.num_layers - 1:
                inputs[n] = F.dropout(y, r.dropout, r.training) if r.dropout else y
            else:
                outputs[n] = y
    return outputs  # type: ignore[return-value]


def run_recurrent(rnns: Sequence[nn.RNNBase], x: torch.Tensor) -> list[torch.Tensor]:
    """``[rnn(x)[0] for rnn in rnns]``, with zero initial states.

    On CPU the tanh RNNs among them run together as one batched recurrence (:func:`run_stacks`:
    same equations and parameters, ~2x faster at the supernet's sizes); LSTMs and every op on
    CUDA use PyTorch's fused kernels, except that a stacked op with dropout in training mode
    runs :func:`layer_by_layer` on CUDA.
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
    or an activation-checkpointing recomputation (:mod:`emodarts_core.fast.memory`) would draw
    other masks (and the first such call in a process allocates that state, which changes what the
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
