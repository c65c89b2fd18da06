"""DARTS cells: CNN cells and SeqNN cells, for the search (mixed edges) and fixed (from a genotype).

A cell is a small directed acyclic graph. It has two input states (state 0 = the output of the
cell before the previous one, ``c_{k-2}``; state 1 = the previous cell's output, ``c_{k-1}``) and
``n_nodes`` intermediate nodes; node ``j`` is state ``2 + j`` and is the sum of one operation
applied to each of its inputs. In a search cell node ``j`` reads *every* earlier state through a
mixed op (``2 + j`` edges, in the edge order of :mod:`emodarts_core.nas.genotype`); in a fixed cell it
reads the two states the genotype kept, each through one discrete op.

The cells compute one node at a time (:meth:`SearchCell.node`, :meth:`SeqSearchCell.node`). With
``checkpoint_edges = True`` (set by ``SuperNet(memory_efficient=True)``) every mixed edge runs
under :func:`emodarts_core.fast.memory.checkpoint` in training: the edge keeps only its input for the
backward pass and recomputes its candidates' intermediates there, one edge at a time. Same
numbers, a fraction of the memory, one extra forward pass of the edges.
Otherwise the CNN edges leaving the same state share what they would compute alike: the ReLU
of the state and its pooled, non-affine-normalised copies
(:class:`~emodarts_core.fast.source_cache.SourceCache`; ``share_sources = False`` turns that off,
for comparison). Same numbers, fewer kernels. With gradients, a node's convolutional candidates
(all its edges together) are then branches that CPU threads share out, forward and backward
(:mod:`emodarts_core.fast.branched_nodes` on :mod:`emodarts_core.fast.branches`: one branch per
candidate; CPU only; one thread unless ``set_branch_threads`` says more); a SeqNN node does
the same with its recurrent stacks (an edge's tanh RNNs as one branch), keeping every stack
that draws dropout masks on the calling thread, in edge order. The branches do not depend on
the thread count, so neither do the numbers; ``branch_nodes = False`` computes edge by edge
instead.

- CNN cells work on ``(B, C, F, T)`` maps (frequency, time). Their inputs are preprocessed to
  ``C`` channels (ReLU-1x1 conv-BN; ``c_{k-2}`` goes through a :class:`FactorizedReduce` instead
  when the previous cell halved the size). A reduction cell applies stride 2 on the edges leaving
  its two inputs, doubling nothing itself: the caller passes the doubled ``C``. Output: the
  concatenation of the nodes (``n_nodes * C`` channels), then dropout (the emoDARTS addition).
- SeqNN cells work on ``(B, T, H)`` sequences, with no input preprocessing. Output: the
  concatenation of the nodes ``(B, T, n * H)``, reduced back to ``H`` features by averaging each
  group of ``n`` adjacent features (feature ``i`` of the output is the mean of concatenated
  features ``n*i .. n*i + n - 1``). That is exactly what the public code's
  ``AdaptiveAvgPool1d(128)`` did to its ``n * 128``-wide concatenation. Then dropout.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from emodarts_core.fast.branched_nodes import branching, conv_node, recurrent_node
from emodarts_core.fast.memory import checkpoint
from emodarts_core.fast.source_cache import SourceCache
from emodarts_core.nas.cnn_ops import FactorizedReduce, Identity, ReLUConvBN, drop_path
from emodarts_core.nas.genotype import CellGenotype, edges_of_node, n_edges
from emodarts_core.nas.mixed import MixedOp, SeqMixedOp, shareable
from emodarts_core.nas.ops import cnn_op, seq_op


def average_groups(x: torch.Tensor, n: int) -> torch.Tensor:
    """``(..., n * H) -> (..., H)``: the mean of each group of ``n`` adjacent features.

    Equal to ``AdaptiveAvgPool1d(H)`` over the last axis (its bins are exactly these groups).
    """
    if x.shape[-1] % n:
        raise ValueError(f"average_groups: {x.shape[-1]} features do not split into groups of {n}")
    return x.reshape(*x.shape[:-1], x.shape[-1] // n, n).mean(dim=-1)


def _preprocess(C_pp: int, C_p: int, C: int, reduction_p: bool, affine: bool) -> tuple[nn.Module, nn.Module]:
    pre0 = FactorizedReduce(C_pp, C, affine) if reduction_p else ReLUConvBN(C_pp, C, 1, 1, 0, affine)
    pre1 = ReLUConvBN(C_p, C, 1, 1, 0, affine)
    return pre0, pre1


def _node(edges: nn.ModuleList, j: int, states: Sequence[torch.Tensor], weights: torch.Tensor,
          ckpt: bool, caches: Sequence[SourceCache] | None = None) -> torch.Tensor:
    """Sum of node ``j``'s mixed edges, each optionally under activation checkpointing (which
    recomputes every edge on its own) or else sharing work through the states' ``caches``."""
    out = None
    for src, e in enumerate(edges_of_node(j)):
        edge = edges[e]
        if ckpt:
            h = checkpoint(edge, states[src], weights[e])
        elif caches is not None:
            h = edge(states[src], weights[e], caches[src])
        else:
            h = edge(states[src], weights[e])
        out = h if out is None else out + h
    return out


def _incoming(edges: nn.ModuleList, j: int) -> list[tuple[int, nn.Module]]:
    """Node ``j``'s mixed edges with their rows, in the order of their source states."""
    return [(e, edges[e]) for e in edges_of_node(j)]


def _check_weights(weights: torch.Tensor, rows: int, cols: int, who: str) -> None:
    if weights.shape != (rows, cols):
        raise ValueError(f"{who}: weights of shape {tuple(weights.shape)}, expected ({rows}, {cols}) "
                         f"(edges x primitives)")


# ---------------------------------------------------------------------------------------------
class SearchCell(nn.Module):
    """A CNN cell of the supernet: every edge is a :class:`MixedOp` over ``primitives``.

    ``forward(s0, s1, weights)`` takes the softmaxed alpha matrix of this cell type, shape
    ``(n_edges(n_nodes), len(primitives))``; BN is non-affine throughout (DARTS search).
    """

    def __init__(self, n_nodes: int, C_pp: int, C_p: int, C: int, reduction_p: bool,
                 reduction: bool, primitives: Sequence[str], dropout: float = 0.0) -> None:
        super().__init__()
        if n_nodes < 1:
            raise ValueError(f"SearchCell: n_nodes must be >= 1, got {n_nodes}")
        self.n_nodes, self.reduction, self.C = n_nodes, reduction, C
        self.primitives = tuple(primitives)
        self.pre0, self.pre1 = _preprocess(C_pp, C_p, C, reduction_p, affine=False)
        self.edges = nn.ModuleList()
        for j in range(n_nodes):
            for src in range(2 + j):
                stride = 2 if reduction and src < 2 else 1
                self.edges.append(MixedOp(C, stride, self.primitives, affine=False))
        self.dropout = nn.Dropout(dropout)
        self.checkpoint_edges = False
        self.share_sources = True      # edges leaving one state share ReLU and pooling (exact)
        self.branch_nodes = True       # with gradients, a node's convolutions in branches

    @property
    def out_channels(self) -> int:
        return self.n_nodes * self.C

    def node(self, j: int, states: Sequence[torch.Tensor], weights: torch.Tensor,
             caches: Sequence[SourceCache] | None = None) -> torch.Tensor:
        """Node ``j`` from the states before it: the sum of its ``2 + j`` mixed edges.
        ``caches``: one :class:`~emodarts_core.fast.source_cache.SourceCache` per state, for the
        edges leaving the same state to share their ReLU and pooling (ignored when edges are
        checkpointed)."""
        ckpt = self.checkpoint_edges and self.training
        if caches is not None and self.branch_nodes and not ckpt and branching(weights):
            for s, c in zip(states, caches):
                if c.x is not s:
                    raise ValueError("SearchCell.node: a cache belongs to another state")
            return conv_node(_incoming(self.edges, j), weights, caches, shareable)
        return _node(self.edges, j, states, weights, ckpt, caches)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        _check_weights(weights, n_edges(self.n_nodes), len(self.primitives), "SearchCell")
        states = [self.pre0(s0), self.pre1(s1)]
        caches = [SourceCache(s) for s in states] if self.share_sources else None
        for j in range(self.n_nodes):
            states.append(self.node(j, states, weights, caches))
            if caches is not None:
                caches.append(SourceCache(states[-1]))
        return self.dropout(torch.cat(states[2:], dim=1))


class FixedCell(nn.Module):
    """A CNN cell of the final network, built from a :class:`CellGenotype`.

    Each node applies the genotype's ops to its chosen input states and sums them; BN is affine.
    ``forward(s0, s1, drop_prob)`` applies drop-path with probability ``drop_prob`` (in training
    only) to the output of every op except the identity (``skip_connect`` at stride 1).
    """

    def __init__(self, genotype: CellGenotype, C_pp: int, C_p: int, C: int, reduction_p: bool,
                 reduction: bool, dropout: float = 0.0) -> None:
        super().__init__()
        _check_concat(genotype, "FixedCell")
        self.genotype, self.reduction, self.C = genotype, reduction, C
        self.pre0, self.pre1 = _preprocess(C_pp, C_p, C, reduction_p, affine=True)
        self.ops = nn.ModuleList()
        self.sources: list[list[int]] = []
        for node in genotype.nodes:
            ops = nn.ModuleList()
            for name, src in node:
                stride = 2 if reduction and src < 2 else 1
                ops.append(cnn_op(name, C, stride, affine=True))
            self.ops.append(ops)
            self.sources.append([src for _, src in node])
        self.dropout = nn.Dropout(dropout)

    @property
    def out_channels(self) -> int:
        return len(self.genotype.concat) * self.C

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for ops, sources in zip(self.ops, self.sources):
            out = None
            for op, src in zip(ops, sources):
                h = op(states[src])
                if not isinstance(op, Identity):
                    h = drop_path(h, drop_prob, self.training)
                out = h if out is None else out + h
            states.append(out)
        return self.dropout(torch.cat([states[i] for i in self.genotype.concat], dim=1))


def _check_concat(genotype: CellGenotype, who: str) -> None:
    n = genotype.n_nodes
    if n < 1:
        raise ValueError(f"{who}: the genotype has no nodes")
    for j, node in enumerate(genotype.nodes):
        if not node:
            raise ValueError(f"{who}: node {j} of the genotype has no incoming edge")
    bad = [c for c in genotype.concat if not 2 <= c < 2 + n]
    if bad or not genotype.concat:
        raise ValueError(f"{who}: concat {genotype.concat} must list node states 2..{n + 1}")


# ---------------------------------------------------------------------------------------------
class SeqSearchCell(nn.Module):
    """A SeqNN cell of the supernet: every edge is a :class:`SeqMixedOp`, ``(B, T, H)`` in and out.

    ``forward(s0, s1, weights)`` takes the softmaxed alpha_seq, shape
    ``(n_edges(n_nodes), len(primitives))``; the output is the nodes' concatenation averaged back
    to ``H`` features in groups of ``n_nodes`` (see :func:`average_groups`), then dropout.
    """

    def __init__(self, n_nodes: int, H: int, primitives: Sequence[str], dropout: float = 0.0) -> None:
        super().__init__()
        if n_nodes < 1:
            raise ValueError(f"SeqSearchCell: n_nodes must be >= 1, got {n_nodes}")
        self.n_nodes, self.H = n_nodes, H
        self.primitives = tuple(primitives)
        self.edges = nn.ModuleList(SeqMixedOp(H, self.primitives) for _ in range(n_edges(n_nodes)))
        self.dropout = nn.Dropout(dropout)
        self.checkpoint_edges = False
        self.branch_nodes = True       # with gradients, a node's recurrent stacks in branches

    def node(self, j: int, states: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
        """Node ``j``: the sum of its ``2 + j`` mixed edges over the states before it (with
        gradients and without checkpointing: its recurrent candidates in branches)."""
        ckpt = self.checkpoint_edges and self.training
        if self.branch_nodes and not ckpt and branching(weights):
            return recurrent_node(_incoming(self.edges, j), states, weights)
        return _node(self.edges, j, states, weights, ckpt)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        _check_weights(weights, n_edges(self.n_nodes), len(self.primitives), "SeqSearchCell")
        states = [s0, s1]
        for j in range(self.n_nodes):
            states.append(self.node(j, states, weights))
        return self.dropout(average_groups(torch.cat(states[2:], dim=-1), self.n_nodes))


class FixedSeqCell(nn.Module):
    """A SeqNN cell of the final network, built from the genotype's ``seq`` cell.

    Node ``j`` sums the genotype's sequence ops on its chosen states; the output concatenates the
    ``concat`` states and averages them back to ``H`` features in groups of ``len(concat)``, then
    dropout. No drop-path (the public code disabled it for sequence ops too).
    """

    def __init__(self, genotype: CellGenotype, H: int, dropout: float = 0.0) -> None:
        super().__init__()
        _check_concat(genotype, "FixedSeqCell")
        self.genotype, self.H = genotype, H
        self.ops = nn.ModuleList(nn.ModuleList(seq_op(name, H) for name, _ in node)
                                 for node in genotype.nodes)
        self.sources = [[src for _, src in node] for node in genotype.nodes]
        self.dropout = nn.Dropout(dropout)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [s0, s1]
        for ops, sources in zip(self.ops, self.sources):
            out = None
            for op, src in zip(ops, sources):
                h = op(states[src])
                out = h if out is None else out + h
            states.append(out)
        concat = torch.cat([states[i] for i in self.genotype.concat], dim=-1)
        return self.dropout(average_groups(concat, len(self.genotype.concat)))
