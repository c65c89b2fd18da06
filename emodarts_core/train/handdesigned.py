"""A strong hand-designed MFCC network, sized like the searched ones: CNN -> BiLSTM -> attention.

:class:`CNNBiLSTMAtt` is the usual hand-built speech-emotion model of the MFCC literature:

- a CNN front end of ``blocks`` blocks ``Conv2d(3 x 3, padding 1, no bias)`` -> ``BatchNorm2d``
  -> ReLU -> ``MaxPool2d(2)`` (ceil mode, so tiny inputs keep a frame) over the MFCC image, with
  ``width`` channels in the first block and ``2 * width`` in the others;
- each remaining time step (``C * F'`` values) fed to a bidirectional LSTM of ``2 * width``
  units per direction;
- additive attention pooling over the frames (Bahdanau-style: ``score_t = v . tanh(W h_t + b)``,
  softmax over time, the weighted sum of the ``h_t``): every frame gets a positive weight and the
  weights sum to 1, so no frame is ignored or masked;
- dropout and one linear layer to the logits.

Its single size knob is ``width``. :func:`match_size` picks the width whose parameter count is
closest to a target (the count grows monotonically with the width, so a bisection finds it);
:func:`typical_searched_size` gives the default target: the mean parameter count of the networks
the profile's final space derives from :data:`TYPICAL_DRAWS` genotypes drawn uniformly with a
fixed generator (seed :data:`TYPICAL_SEED`, the same for every run seed, so every seed of a fold
trains the same architecture), counted like ``metrics.json``'s ``n_parameters`` (every parameter
of the trained model, an auxiliary head included when the profile trains one).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from emodarts_core.config import final_space
from emodarts_core.nas.genotype import sample_genotype
from emodarts_core.nas.network import Network
from emodarts_core.nas.supernet import check_input_shape

#: The default target is the mean size of this many uniformly drawn genotypes' networks ...
TYPICAL_DRAWS = 5
#: ... drawn with a generator seeded with this (independent of the run's seed).
TYPICAL_SEED = 0
#: Widths :func:`match_size` considers.
MAX_WIDTH = 1024


class CNNBiLSTMAtt(nn.Module):
    """CNN front end -> bidirectional LSTM over time -> attention pooling -> linear head.

    Args:
        n_classes: number of emotion classes.
        input_shape: ``(n_mfcc, n_frames)``.
        width: channels of the first conv block (the others have ``2 * width``); the LSTM has
            ``2 * width`` units per direction and the attention ``2 * width`` hidden units.
        blocks: conv blocks (each halves both axes, rounding up).
        dropout: dropout before the output layer.
    """

    def __init__(self, n_classes: int, input_shape: tuple[int, int], width: int = 16,
                 blocks: int = 3, dropout: float = 0.3) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"CNNBiLSTMAtt: n_classes must be >= 1, got {n_classes}")
        self.input_shape = check_input_shape(tuple(int(v) for v in input_shape), "CNNBiLSTMAtt")
        n_mfcc, n_frames = self.input_shape
        if width < 1 or blocks < 1:
            raise ValueError(f"CNNBiLSTMAtt: width and blocks must be >= 1, got {width}, {blocks}")
        self.drop_path_prob = 0.0                 # the training loop sets it; unused here
        layers: list[nn.Module] = []
        c_in, f = 1, n_mfcc
        for i in range(blocks):
            c_out = width if i == 0 else 2 * width
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            c_in, f = c_out, math.ceil(f / 2)
        self.cnn = nn.Sequential(*layers)
        hidden = 2 * width
        self.lstm = nn.LSTM(c_in * f, hidden, batch_first=True, bidirectional=True)
        self.att_proj = nn.Linear(2 * hidden, hidden)
        self.att_score = nn.Linear(hidden, 1, bias=False)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, n_classes))

    def attend(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, n_classes)`` and attention weights ``(B, T')`` (each row sums to 1)."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError("CNNBiLSTMAtt: expected input (B, 1, n_mfcc, n_frames), "
                             f"got {tuple(x.shape)}")
        h = self.cnn(x)                                    # (B, C, F', T')
        b, c, f, t = h.shape
        seq, _ = self.lstm(h.permute(0, 3, 1, 2).reshape(b, t, c * f))   # (B, T', 2H)
        weights = torch.softmax(self.att_score(torch.tanh(self.att_proj(seq))).squeeze(-1), dim=1)
        pooled = torch.bmm(weights.unsqueeze(1), seq).squeeze(1)          # (B, 2H)
        return self.head(pooled), weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for ``x`` of shape ``(B, 1, n_mfcc, n_frames)``."""
        return self.attend(x)[0]

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """``(logits, None)``: no auxiliary head."""
        return self.forward(x), None


def count_parameters(model: nn.Module) -> int:
    """Every parameter of ``model`` (as ``metrics.json``'s ``n_parameters`` counts them)."""
    return int(sum(p.numel() for p in model.parameters()))


def size_of(width: int, n_classes: int, input_shape: tuple[int, int], **kwargs: Any) -> int:
    """The parameter count of ``CNNBiLSTMAtt(n_classes, input_shape, width, **kwargs)``."""
    with torch.device("meta"):                     # shapes only: no memory, no initialisation
        return count_parameters(CNNBiLSTMAtt(n_classes, input_shape, width=width, **kwargs))


def match_size(target_params: int, n_classes: int, input_shape: tuple[int, int],
               **kwargs: Any) -> int:
    """The width (1 .. :data:`MAX_WIDTH`) whose network's parameter count is closest to
    ``target_params`` (the smaller width on a tie); ``kwargs`` go to :class:`CNNBiLSTMAtt`."""
    if target_params < 1:
        raise ValueError(f"match_size: target_params must be >= 1, got {target_params}")
    lo, hi = 1, MAX_WIDTH                          # smallest width with size >= target
    while lo < hi:
        mid = (lo + hi) // 2
        if size_of(mid, n_classes, input_shape, **kwargs) >= target_params:
            hi = mid
        else:
            lo = mid + 1
    candidates = [w for w in (lo - 1, lo) if w >= 1]
    return min(candidates, key=lambda w: (abs(size_of(w, n_classes, input_shape, **kwargs)
                                              - target_params), w))


def typical_searched_size(profile, n_classes: int, input_shape: tuple[int, int],
                          draws: int = TYPICAL_DRAWS, seed: int = TYPICAL_SEED) -> int:
    """The mean parameter count (rounded) of the networks ``profile``'s final space derives from
    ``draws`` genotypes drawn uniformly (:func:`emodarts_core.nas.genotype.sample_genotype`) with a
    generator seeded ``seed``; an auxiliary head counts when the profile trains one."""

    if draws < 1:
        raise ValueError(f"typical_searched_size: draws must be >= 1, got {draws}")
    gen = torch.Generator().manual_seed(int(seed))
    space = final_space(profile)
    sizes = []
    for _ in range(draws):
        geno = sample_genotype(profile.space, gen)
        with torch.device("meta"):
            net = Network(geno, space, n_classes, input_shape, aux=profile.train.aux_weight > 0)
        sizes.append(count_parameters(net))
    return int(round(sum(sizes) / len(sizes)))


class CNNLSTM(nn.Module):
    """Hand-designed CNN-LSTM over MFCC images, with time kept as time.

    Layout: ``Conv2d(1, conv_channels, kernel 2, stride 2, padding 2)`` -> ReLU -> ``MaxPool2d(2)``
    (ceil mode, so tiny inputs keep a frame) -> per frame: the ``conv_channels * F'`` values ->
    ``LSTM(hidden, bidirectional)`` -> mean over frames -> ``Linear(2 * hidden, fc)`` -> ReLU ->
    ``Dropout(dropout)`` -> ``Linear(fc, n_classes)`` (logits). With ``head_norm`` a
    ``BatchNorm1d`` normalises the pooled vector before the first linear layer: the same help the
    ``cpu`` profile's searched networks get (``SearchSpaceConfig.head_norm``), not part of the
    paper's layout, so it is off by default (``baseline --kind cnn_lstm --head-norm``).

    Args:
        n_classes: number of emotion classes.
        input_shape: ``(n_mfcc, n_frames)``.
        conv_channels: conv output channels (the public code uses 1).
        hidden: LSTM units per direction (public: 128).
        fc: width of the hidden fully connected layer (public: 32).
        dropout: dropout before the output layer (public: 0.3).
        head_norm: a ``BatchNorm1d`` on the pooled vector (not in the paper's layout).
    """

    def __init__(self, n_classes: int, input_shape: tuple[int, int], conv_channels: int = 1,
                 hidden: int = 128, fc: int = 32, dropout: float = 0.3,
                 head_norm: bool = False) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"CNNLSTM: n_classes must be >= 1, got {n_classes}")
        self.input_shape = check_input_shape(tuple(int(v) for v in input_shape), "CNNLSTM")
        n_mfcc, n_frames = self.input_shape
        self.drop_path_prob = 0.0                 # the training loop sets it; unused here
        self.conv = nn.Sequential(
            nn.Conv2d(1, conv_channels, kernel_size=2, stride=2, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        with torch.no_grad():
            _, c, f, _ = self.conv(torch.zeros(1, 1, n_mfcc, n_frames)).shape
        self.lstm = nn.LSTM(c * f, hidden, batch_first=True, bidirectional=True)
        self.head_norm = nn.BatchNorm1d(2 * hidden) if head_norm else nn.Identity()
        self.head = nn.Sequential(nn.Linear(2 * hidden, fc), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(fc, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for ``x`` of shape ``(B, 1, n_mfcc, n_frames)``."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"CNNLSTM: expected input (B, 1, n_mfcc, n_frames), got {tuple(x.shape)}")
        h = self.conv(x)                                   # (B, C, F', T')
        b, c, f, t = h.shape
        seq = h.permute(0, 3, 1, 2).reshape(b, t, c * f)   # (B, T', C * F'): one step per frame
        out, _ = self.lstm(seq)
        return self.head(self.head_norm(out.mean(dim=1)))

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """``(logits, None)``: no auxiliary head."""
        return self.forward(x), None
