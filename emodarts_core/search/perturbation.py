"""Perturbation-based architecture selection (Wang et al. 2021, "Rethinking architecture
selection in differentiable NAS"): read the genotype off what the trained supernet *needs*, not
off the size of its alphas.

DARTS keeps, on every edge, the operation of largest alpha. Wang et al. show that an alpha's
size need not say how much its operation contributes to the supernet's accuracy, and select
instead by taking operations out: an operation's **strength** here is the rise of the supernet's
loss on held-out data when that operation alone is taken out of its edge's mixture (its weight set
to 0, every other weight as it was); an **edge's** strength is the rise when the whole edge is
taken out. Each node then keeps its two strongest edges (:func:`~emodarts_core.nas.genotype.top_k_cell`),
each with its strongest operation.

Wang et al. discretise one edge at a time and fine-tune the supernet in between; here every
edge is scored once on the finished supernet (their variant without fine-tuning), so selecting
costs no training, one evaluation pass per (edge, operation) and one per edge. The loss, not the
accuracy, is measured: on a few hundred utterances one operation rarely changes a decision, but
it always changes the loss. The held-out data is the search's own alpha split (the weights never
trained on it; the fold's validation and test speakers stay unseen).

:func:`select_by_perturbation` does it for a finished search run directory and writes
``perturbation.json`` beside its ``genotype.json``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from emodarts_core.common.progress import progress as progress_bar
from emodarts_core.data.datasets import FoldData, split_search
from emodarts_core.nas.genotype import Genotype, top_k_cell
from emodarts_core.nas.supernet import SuperNet
from emodarts_core.search.quality import PT_FILE as FILE
from emodarts_core.train.engine import to_device
from emodarts_core.train.fit import load_data
from emodarts_core.train.runs import RunDir, resolve_device

CELLS = ("normal", "reduce", "seq")


@dataclass(frozen=True)
class PerturbationResult:
    """What taking each operation and each edge out of the supernet costs in held-out loss."""

    base_loss: float                          # mean cross-entropy with nothing taken out
    op_scores: dict[str, list[list[float]]]   # cell -> edges x ops other than none: loss rise
    edge_scores: dict[str, list[float]]       # cell -> edges: loss rise with the edge taken out
    genotype: Genotype
    n: int                                    # utterances scored

    def to_dict(self) -> dict[str, Any]:
        return {"method": "perturbation (Wang et al. 2021), no fine-tuning; score: rise of the "
                          "mean cross-entropy on the alpha split",
                "base_loss": self.base_loss, "n": self.n, "op_scores": self.op_scores,
                "edge_scores": self.edge_scores, "genotype": self.genotype.to_dict()}


class _CachedPasses:
    """Evaluation passes of a supernet over ``(x, y)`` that start where a mask can first act:
    a mask on the ``seq`` weights leaves every CNN state as it was, one on the ``reduce``
    weights every state before the first reduction cell; those states are computed once, with
    the unmasked weights, and kept."""

    @torch.no_grad()
    def __init__(self, net: SuperNet, weights: Mapping[str, torch.Tensor], x: torch.Tensor,
                 y: torch.Tensor, batch_size: int, device: torch.device) -> None:
        self.net, self.y, self.device = net, y, device
        self.first_reduce = next((i for i, c in enumerate(net.cells) if c.reduction),
                                 len(net.cells))
        self.stem, self.before_reduce, self.cnn_out, self.labels = [], [], [], []
        net.eval()
        w = dict(weights)
        for start in range(0, len(x), batch_size):
            xb = to_device(x[start:start + batch_size], device)
            stem = net.stem_states(xb)
            before = net.run_cells(*stem, w, slice(0, self.first_reduce))
            self.stem.append(stem)
            self.before_reduce.append(before)
            self.cnn_out.append(net.run_cells(*before, w, slice(self.first_reduce, None)))
            self.labels.append(y[start:start + batch_size].to(device))

    @torch.no_grad()
    def mean_loss(self, weights: Mapping[str, torch.Tensor], changed: str) -> float:
        """Mean cross-entropy with ``weights``, of which only cell type ``changed`` differs
        from the weights the cache was built with."""
        w, net, total = dict(weights), self.net, 0.0
        for stem, before, out, yb in zip(self.stem, self.before_reduce, self.cnn_out,
                                         self.labels):
            if changed == "normal":
                out = net.run_cells(*stem, w)
            elif changed == "reduce":
                out = net.run_cells(*before, w, slice(self.first_reduce, None))
            logits = net.seq_part(*out, w)
            total += float(F.cross_entropy(logits.float(), yb, reduction="sum"))
        return total / max(1, len(self.y))


@torch.no_grad()
def perturbation_scores(net: SuperNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64,
                        device: torch.device | str = "cpu", progress: bool = False
                        ) -> PerturbationResult:
    """Score every (edge, operation other than ``none``) and every edge of ``net`` on
    ``(x, y)`` by the loss rise when it is taken out, and the genotype those scores select."""
    device = torch.device(device)
    base_w = {k: v.detach() for k, v in net.alpha_weights().items()}
    passes = _CachedPasses(net, base_w, x, y, batch_size, device)
    base = passes.mean_loss(base_w, "seq")
    jobs = [(cell, e, o) for cell in CELLS for e in range(base_w[cell].shape[0])
            for o in [*range(base_w[cell].shape[1] - 1), None]]          # None: the whole edge
    ops = {c: torch.zeros(base_w[c].shape[0], base_w[c].shape[1] - 1) for c in CELLS}
    edges = {c: torch.zeros(base_w[c].shape[0]) for c in CELLS}
    for cell, e, o in progress_bar(jobs, desc="perturbation scores", enabled=progress):
        masked = base_w[cell].clone()
        if o is None:
            masked[e] = 0.0
        else:
            masked[e, o] = 0.0
        rise = passes.mean_loss({**base_w, cell: masked}, cell) - base
        if o is None:
            edges[cell][e] = rise
        else:
            ops[cell][e, o] = rise
    space, prims = net.space, net.primitives
    nodes = {"normal": space.cnn_nodes, "reduce": space.cnn_nodes, "seq": space.seq_nodes}
    genotype = Genotype(**{c: top_k_cell(ops[c], prims[c], nodes[c], 2, edges[c])
                           for c in CELLS})
    return PerturbationResult(base_loss=base, n=len(y), genotype=genotype,
                              op_scores={c: ops[c].tolist() for c in CELLS},
                              edge_scores={c: edges[c].tolist() for c in CELLS})


def select_by_perturbation(run_dir: str | Path, device: str = "cpu", progress: bool = True,
                           batch_size: int = 64, force: bool = False,
                           data: FoldData | None = None) -> PerturbationResult:
    """Perturbation-based selection on a finished search run: its supernet (``checkpoint.pt``,
    the weights and alphas after the last epoch) scored on its own alpha split (the same
    utterances the search held out, rebuilt from ``config.json``); the result is written to
    ``perturbation.json`` in the run directory (atomically). A file already there is read back
    unless ``force``. ``data``: the run's fold when already loaded (else loaded from its
    config, as the search loaded it)."""
    run = RunDir.open(run_dir)
    if run.file(FILE).exists() and not force:
        return load_perturbation(run.path)
    cfg = run.config
    if cfg.kind != "search":
        raise ValueError(f"{run.path} is a {cfg.kind!r} run; perturbation selection needs a "
                         "search run")
    if not run.file(RunDir.METRICS).exists():
        raise ValueError(f"{run.path}: the search has not finished (no {RunDir.METRICS})")
    ckpt = run.load_checkpoint()
    if ckpt is None:
        raise FileNotFoundError(f"{run.path} holds no {RunDir.CHECKPOINT}: the supernet's "
                                "weights are needed")
    data = data if data is not None else load_data(cfg, progress)
    scfg = cfg.profile.search
    split_seed = cfg.seed if scfg.split_seed is None else scfg.split_seed
    _, _, x_a, y_a = split_search(data.x_train, data.y_train, scfg.weight_fraction, split_seed)
    dev = resolve_device(device)
    net = SuperNet(cfg.profile.space, data.n_classes, data.input_shape,
                   relaxation=scfg.relaxation).to(dev)
    try:
        net.load_state_dict(ckpt["net"])
    except (KeyError, RuntimeError) as e:
        raise run.damaged(RunDir.CHECKPOINT, e) from None
    result = perturbation_scores(net, x_a, y_a, batch_size, dev, progress)
    run.write_json(FILE, result.to_dict())
    return result


def load_perturbation(run_dir: str | Path) -> PerturbationResult:
    """The ``perturbation.json`` of a run directory."""
    d = RunDir(run_dir).read_json(FILE)
    return PerturbationResult(base_loss=float(d["base_loss"]), n=int(d["n"]),
                              op_scores=d["op_scores"], edge_scores=d["edge_scores"],
                              genotype=Genotype.from_dict(d["genotype"]))
