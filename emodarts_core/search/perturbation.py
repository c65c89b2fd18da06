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
``perturbation.json`` beside its ``genotype.json``; with ``search.selection="perturbation"``
the search loop does it at its end and makes that genotype the search's.
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


def _masked(base: Mapping[str, torch.Tensor], cell: str, edge: int, op: int | None
            ) -> dict[str, torch.Tensor]:
    """``base`` with one operation (``op``) or a whole edge (``op=None``) of ``cell`` at 0."""
    w = base[cell].clone()
    if op is None:
        w[edge] = 0.0
    else:
        w[edge, op] = 0.0
    return {**base, cell: w}


@torch.no_grad()
def _batch_loss_sums(net: SuperNet, xb: torch.Tensor, yb: torch.Tensor,
                     base: Mapping[str, torch.Tensor],
                     variants: list[tuple[str, dict[str, torch.Tensor]]]) -> torch.Tensor:
    """Summed cross-entropy of one batch under ``base`` (entry 0) and under each variant
    ``(cell changed, weights)``. Each pass starts where its change can first act: a change of
    the ``seq`` weights leaves every CNN state as it was, one of the ``reduce`` weights every
    state before the first reduction cell; those states are computed once per batch."""
    first_reduce = next((i for i, c in enumerate(net.cells) if c.reduction), len(net.cells))
    stem = net.stem_states(xb)
    before = net.run_cells(*stem, base, slice(0, first_reduce))
    out = net.run_cells(*before, base, slice(first_reduce, None))

    def loss(states, w) -> float:
        return float(F.cross_entropy(net.seq_part(*states, w).float(), yb, reduction="sum"))

    sums = [loss(out, base)]
    for cell, w in variants:
        if cell == "normal":
            states = net.run_cells(*stem, w)
        elif cell == "reduce":
            states = net.run_cells(*before, w, slice(first_reduce, None))
        else:
            states = out
        sums.append(loss(states, w))
    return torch.tensor(sums, dtype=torch.float64)


@torch.no_grad()
def perturbation_scores(net: SuperNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64,
                        device: torch.device | str = "cpu", progress: bool = False
                        ) -> PerturbationResult:
    """Score every (edge, operation other than ``none``) and every edge of ``net`` on
    ``(x, y)`` by the rise of the mean loss when it is taken out, and the genotype those scores
    select. Batch by batch, every variant in turn: the memory of one batch's states."""
    device = torch.device(device)
    net.eval()
    base = {k: v.detach() for k, v in net.alpha_weights().items()}
    jobs = [(cell, e, o) for cell in CELLS for e in range(base[cell].shape[0])
            for o in [*range(base[cell].shape[1] - 1), None]]          # None: the whole edge
    variants = [(cell, _masked(base, cell, e, o)) for cell, e, o in jobs]
    sums = torch.zeros(len(jobs) + 1, dtype=torch.float64)
    starts = range(0, len(x), batch_size)
    for start in progress_bar(starts, desc=f"perturbation ({len(jobs)} variants)",
                              enabled=progress):
        xb = to_device(x[start:start + batch_size], device)
        yb = y[start:start + batch_size].to(device)
        sums += _batch_loss_sums(net, xb, yb, base, variants)
    means = sums / max(1, len(x))
    base_loss, rises = float(means[0]), (means[1:] - means[0]).tolist()
    ops = {c: torch.zeros(base[c].shape[0], base[c].shape[1] - 1) for c in CELLS}
    edges = {c: torch.zeros(base[c].shape[0]) for c in CELLS}
    for (cell, e, o), rise in zip(jobs, rises):
        if o is None:
            edges[cell][e] = rise
        else:
            ops[cell][e, o] = rise
    space, prims = net.space, net.primitives
    nodes = {"normal": space.cnn_nodes, "reduce": space.cnn_nodes, "seq": space.seq_nodes}
    genotype = Genotype(**{c: top_k_cell(ops[c], prims[c], nodes[c], 2, edges[c])
                           for c in CELLS})
    return PerturbationResult(base_loss=base_loss, n=len(y), genotype=genotype,
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
