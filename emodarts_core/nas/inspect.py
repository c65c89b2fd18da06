"""Looking inside a supernet or network: parameter counts per part and the shape after every stage.

Both work on :class:`~emodarts_core.nas.supernet.SuperNet` and :class:`~emodarts_core.nas.network.Network`
(they share attribute names: ``stem``, ``cells``, ``seq_in``, ``seq_cells``, ``pool``,
``head_norm``, ``classifier``, optionally ``aux_head`` and the ``alpha_*`` parameters).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

# top-level attribute -> part
_PARTS: dict[str, str] = {
    "stem": "stem",
    "cells": "cnn",
    "seq_in": "seq",
    "seq_cells": "seq",
    "pool": "head",
    "head_norm": "head",
    "classifier": "head",
    "aux_head": "aux",
}
PARTS: tuple[str, ...] = ("stem", "cnn", "seq", "head", "aux", "alphas")


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Number of scalar parameters per part: ``stem`` (stem conv + BN), ``cnn`` (CNN cells),
    ``seq`` (CNN -> SeqNN projection and SeqNN cells), ``head`` (head norm and classifier),
    ``aux`` (auxiliary head), ``alphas`` (architecture parameters), ``other`` (anything else,
    normally 0), and
    ``total`` (all of them) and ``weights`` (total minus alphas)."""
    counts = {part: 0 for part in PARTS}
    counts["other"] = 0
    for name, p in model.named_parameters():
        top = name.split(".", 1)[0]
        part = "alphas" if top.startswith("alpha_") else _PARTS.get(top, "other")
        counts[part] += p.numel()
    counts["total"] = sum(counts[part] for part in (*PARTS, "other"))
    counts["weights"] = counts["total"] - counts["alphas"]
    return counts


def _stage_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules whose outputs are the stages: top-level children, ModuleLists item by item."""
    stages = []
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            stages += [(f"{name}.{i}", sub) for i, sub in enumerate(child)]
        else:
            stages.append((name, child))
    return stages


def _shapes(name: str, out: Any) -> list[tuple[str, tuple[int, ...]]]:
    if isinstance(out, torch.Tensor):
        return [(name, tuple(out.shape))]
    if isinstance(out, (tuple, list)):
        return [item for i, o in enumerate(out) for item in _shapes(f"{name}[{i}]", o)]
    return []


@torch.no_grad()
def trace_shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Run ``model(x)`` once (in eval mode, no gradients) and list ``(stage, output shape)`` in
    the order the stages ran: ``("input", ...)``, ``stem``, ``cells.0`` ..., ``seq_in[0]``,
    ``seq_in[1]``, ``seq_cells.0`` ..., ``pool``, ``head_norm``, ``classifier``. The model's
    train/eval mode is restored afterwards. Stages that ``forward`` does not run (the auxiliary
    head) are absent.
    """
    trace: list[tuple[str, tuple[int, ...]]] = [("input", tuple(x.shape))]
    hooks = []
    for name, module in _stage_modules(model):
        def hook(_m: nn.Module, _inp: Any, out: Any, name: str = name) -> None:
            trace.extend(_shapes(name, out))
        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return trace


def format_trace(trace: list[tuple[str, tuple[int, ...]]]) -> str:
    """A two-column text table of :func:`trace_shapes` output."""
    width = max(len(name) for name, _ in trace)
    return "\n".join(f"{name:<{width}}  {tuple(shape)}" for name, shape in trace)
