"""The sequential candidate operations of the SeqNN cells, on ``(B, T, H)`` sequences.

Each maps ``(B, T, H)`` to ``(B, T, H)``: ``T`` frames of ``H`` features per utterance, batch
first. Every sequence op treats each utterance of a batch on its own (no op mixes utterances), so
predictions never depend on batch-mates. The registry of names is :mod:`emodarts_core.nas.ops`
(``none`` and ``skip_connect`` are the CNN ops :class:`~emodarts_core.nas.cnn_ops.Zero` and
:class:`~emodarts_core.nas.cnn_ops.Identity`).

A recurrent op is its recurrent stack (``rnn``) and what it does with the stack's output
(``finish``), so that a mixed edge can run the stacks of all its candidates together
(:func:`emodarts_core.fast.recurrent.run_recurrent`: on CPU the tanh RNNs as one batched
recurrence, same numbers).
"""
from __future__ import annotations

import torch
from torch import nn

from emodarts_core.fast.recurrent import run_recurrent


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


def _recurrent(kind: str, input_size: int, hidden: int, layers: int, bidirectional: bool,
               dropout: float) -> nn.Module:
    if kind == "lstm":
        return nn.LSTM(input_size, hidden, num_layers=layers, batch_first=True,
                       bidirectional=bidirectional, dropout=dropout)
    if kind == "rnn":
        return nn.RNN(input_size, hidden, num_layers=layers, nonlinearity="tanh",
                      batch_first=True, bidirectional=bidirectional, dropout=dropout)
    raise ValueError(f"recurrent kind must be 'lstm' or 'rnn', got {kind!r}")
