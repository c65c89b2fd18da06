"""Typed genotypes: the discrete architecture a search derives from its alphas.

A cell has ``n_nodes`` intermediate nodes. Node ``j`` (0-based) reads the cell's two inputs
(state 0 = ``c_{k-2}``, state 1 = ``c_{k-1}``) and every earlier node (state ``2 + i``), so it has ``2 + j``
incoming edges; the alpha matrix of a cell stacks those edges in node order
(node 0: states 0, 1; node 1: states 0, 1, 2; ...), one column per candidate operation, ``none`` last.

The rule of the method: for each node keep the 2 strongest incoming edges, each with its strongest
operation other than ``none``; an edge's strength is the (softmaxed) weight of that operation.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from emodarts_core.config import SearchSpaceConfig


def edges_of_node(j: int) -> range:
    """Row indices (in a cell's alpha matrix) of node ``j``'s incoming edges."""
    start = sum(2 + i for i in range(j))
    return range(start, start + 2 + j)


def n_edges(n_nodes: int) -> int:
    return sum(2 + j for j in range(n_nodes))


@dataclass(frozen=True)
class CellGenotype:
    """``nodes[j]`` lists node j's kept edges as ``(op_name, input_state)`` pairs."""

    nodes: tuple[tuple[tuple[str, int], ...], ...]
    concat: tuple[int, ...]            # states concatenated into the cell output (2 .. n_nodes + 1)

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def ops(self) -> list[str]:
        return [op for node in self.nodes for op, _ in node]

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [[[op, src] for op, src in node] for node in self.nodes],
                "concat": list(self.concat)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CellGenotype":
        nodes = tuple(tuple((str(op), int(src)) for op, src in node) for node in data["nodes"])
        for j, node in enumerate(nodes):
            for op, src in node:
                if not 0 <= src < j + 2:
                    raise ValueError(f"node {j} reads state {src}, which does not exist before it")
        return cls(nodes=nodes, concat=tuple(int(c) for c in data["concat"]))


@dataclass(frozen=True)
class Genotype:
    """The searched architecture: CNN normal cell, CNN reduction cell and SeqNN cell."""

    normal: CellGenotype
    reduce: CellGenotype
    seq: CellGenotype

    def to_dict(self) -> dict[str, Any]:
        return {"normal": self.normal.to_dict(), "reduce": self.reduce.to_dict(),
                "seq": self.seq.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Genotype":
        missing = {"normal", "reduce", "seq"} - set(data)
        if missing:
            raise ValueError(f"genotype is missing cell(s) {sorted(missing)}")
        return cls(normal=CellGenotype.from_dict(data["normal"]),
                   reduce=CellGenotype.from_dict(data["reduce"]),
                   seq=CellGenotype.from_dict(data["seq"]))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> "Genotype":
        """Read a genotype JSON file (a bare genotype or a run's ``genotype.json``)."""
        data = json.loads(Path(path).read_text())
        if "genotype" in data and "normal" not in data:
            data = data["genotype"]
        return cls.from_dict(data)


def derive_cell(alpha: torch.Tensor, primitives: Sequence[str], n_nodes: int, k: int = 2) -> CellGenotype:
    """The top-``k`` rule on one cell's alpha matrix (rows = edges, columns = ``primitives``)."""
    if primitives[-1] != "none":
        raise ValueError("the last primitive must be 'none'")
    if alpha.shape != (n_edges(n_nodes), len(primitives)):
        raise ValueError(f"alpha of shape {tuple(alpha.shape)} does not fit {n_nodes} nodes x "
                         f"{len(primitives)} ops")
    weights = torch.softmax(alpha.detach().float(), dim=-1)[:, :-1]     # drop `none`
    return top_k_cell(weights, primitives, n_nodes, k)


def top_k_cell(op_scores: torch.Tensor, primitives: Sequence[str], n_nodes: int, k: int = 2,
               edge_scores: torch.Tensor | None = None) -> CellGenotype:
    """A cell from scores (rows = edges, columns = ``primitives`` without ``none``; higher is
    stronger): each node keeps its ``k`` edges of highest ``edge_scores`` (by default each
    edge's best op score, the DARTS rule), each with its highest-scoring op."""
    if op_scores.shape != (n_edges(n_nodes), len(primitives) - 1):
        raise ValueError(f"op scores of shape {tuple(op_scores.shape)} do not fit {n_nodes} "
                         f"nodes x {len(primitives) - 1} ops other than 'none'")
    best_score, best_op = op_scores.max(dim=-1)
    edge_scores = best_score if edge_scores is None else edge_scores
    nodes = []
    for j in range(n_nodes):
        edges = list(edges_of_node(j))
        keep = torch.topk(edge_scores[edges], min(k, len(edges))).indices.tolist()
        nodes.append(tuple((primitives[int(best_op[edges[e]])], int(e)) for e in sorted(keep)))
    return CellGenotype(nodes=tuple(nodes), concat=tuple(range(2, 2 + n_nodes)))


def sample_cell(primitives: Sequence[str], n_nodes: int, generator: torch.Generator) -> CellGenotype:
    """One cell drawn uniformly: each node gets 2 distinct earlier states, each with an op drawn
    uniformly from ``primitives`` without ``none``."""
    ops = [p for p in primitives if p != "none"]
    if not ops:
        raise ValueError("sample_cell: no operation other than 'none' to sample")
    nodes = []
    for j in range(n_nodes):
        n_inputs = j + 2
        inputs = sorted(torch.randperm(n_inputs, generator=generator)[:2].tolist())
        picks = torch.randint(len(ops), (len(inputs),), generator=generator).tolist()
        nodes.append(tuple((ops[k], int(src)) for k, src in zip(picks, inputs)))
    return CellGenotype(nodes=tuple(nodes), concat=tuple(range(2, 2 + n_nodes)))


def sample_genotype(space: SearchSpaceConfig, generator: torch.Generator) -> Genotype:
    """A genotype drawn uniformly from ``space`` (see :func:`sample_cell`)."""
    return Genotype(
        normal=sample_cell(space.cnn_ops, space.cnn_nodes, generator),
        reduce=sample_cell(space.cnn_ops, space.cnn_nodes, generator),
        seq=sample_cell(space.seq_primitives, space.seq_nodes, generator),
    )
