"""A search node's candidates as branches (:mod:`emodarts_core.fast.branches`), CPU threads
sharing them out, forward and backward; the same terms as the node's plain sum, in another order.

A search cell's node is the sum of its incoming mixed edges, each a weighted sum of candidates.
With gradients on CPU (:func:`branching`) the cells compute it here instead:

- :func:`conv_node`: a CNN node's candidates that start with a ReLU (``forward_relu``:
  separable, dilated, factorized reduce) of every incoming edge, one branch each, each on its
  state's shared ReLU (:class:`~emodarts_core.fast.source_cache.SourceCache`); pooling and
  identity on the calling thread;
- :func:`recurrent_node`: a SeqNN node's recurrent stacks, an edge's tanh RNNs as one branch
  (:func:`~emodarts_core.fast.recurrent.run_stacks` runs them as one bank), every other stack
  alone; stacks that draw dropout masks stay on the calling thread, in edge order.

A node's incoming edges are given as ``(e, edge)`` pairs in the order of their source states
(``e``: the edge's row in the cell's weights); an edge has the mixed op's ``primitives``,
``indices`` (the evaluated primitives' columns) and ``ops``. Branches are ordered costliest
first (:func:`conv_cost`, :func:`recurrent_cost`); the numbers do not depend on that order or on
the thread count (``tests/test_branches.py``).
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from emodarts_core.fast.branches import Branch, run_branches
from emodarts_core.fast.recurrent import bankable, run_recurrent
from emodarts_core.fast.source_cache import SourceCache
from emodarts_core.fast.weighted_sum import weighted_sum

Term = tuple[int, int, nn.Module, int]          # (edge row, primitive column, op, source state)
Incoming = Sequence[tuple[int, nn.Module]]      # (edge row, mixed edge), one per source state


def branching(weights: torch.Tensor) -> bool:
    """Whether a node runs in branches: with gradients, on CPU (elsewhere there are no threads
    to gain, and the CUDA path stays edge by edge as it was measured on the GPU)."""
    return torch.is_grad_enabled() and weights.device.type == "cpu"


def conv_cost(op: nn.Module) -> int:
    """A rough cost of a convolutional op, for the order of branches: its convolutions (a
    separable conv 4, a dilated conv or factorized reduce 2); at least 1. At the supernet's few
    channels a candidate's time follows its layers far more than its kernel size (measured per
    branch on the ``cpu`` profile: separable 5 x 5 and 3 x 3 alike, ~1.2-1.4x a dilated conv)."""
    return max(1, sum(isinstance(m, nn.Conv2d) for m in op.modules()))


def recurrent_cost(op: nn.Module) -> int:
    """A rough cost of a sequence op, for the order of branches: its recurrent layers, times 2 when
    bidirectional and 4 for an LSTM (four gates), plus 1 for attention (an op with an
    ``attention`` method); at least 1."""
    cost = sum(m.num_layers * (2 if m.bidirectional else 1) * (4 if isinstance(m, nn.LSTM) else 1)
               for m in op.modules() if isinstance(m, nn.RNNBase))
    return max(1, cost + hasattr(op, "attention"))


def draws_random(op: nn.Module) -> bool:
    """Whether ``op`` draws random numbers in training: a dropout module, or stacked recurrent
    layers with dropout between them."""
    return any((isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0)
               or (isinstance(m, nn.RNNBase) and m.dropout > 0 and m.num_layers > 1)
               for m in op.modules())


def _rows_cols(at: Sequence[tuple]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor([t[0] for t in at]), torch.tensor([t[1] for t in at])


def branched_node(incoming: Incoming, weights: torch.Tensor, inputs: Sequence[torch.Tensor],
                  in_branch: Callable[[nn.Module], bool],
                  other: Callable[[int, str, nn.Module], torch.Tensor],
                  cost: Callable[[nn.Module], int],
                  pieces: Callable[[list[Term]], list[list[int]]],
                  outputs: Callable[[list[Term], Sequence[torch.Tensor]], Iterator[torch.Tensor]]
                  ) -> torch.Tensor:
    """A node as the weighted sum of its candidates, those with ``in_branch(op)`` in branches:
    one per ``pieces(terms)`` (lists of term indices), each of cost ``sum(cost(op))``.

    A branch computes ``outputs(terms, inputs)`` (its candidates' outputs, in term order, from
    the per-state ``inputs``) and their weighted sum, its weights gathered for it beforehand
    (one gather for the node, not one per branch); every other candidate is
    ``other(src, name, op)``, summed on the calling thread while the helper threads start on
    the branches. Same terms as the node's plain sum, summed in another order.
    """
    terms: list[Term] = []
    rest_at: list[tuple[int, int]] = []
    rest_ops: list[tuple[int, str, nn.Module]] = []
    for src, (e, edge) in enumerate(incoming):
        for i, op in zip(edge.indices, edge.ops):
            if in_branch(op):
                terms.append((e, i, op, src))
            else:
                rest_at.append((e, i))
                rest_ops.append((src, edge.primitives[i], op))
    rest: list[torch.Tensor] = []

    def rest_sum() -> None:                 # the other candidates, on the calling thread
        if rest_ops:
            rest.append(weighted_sum(weights[_rows_cols(rest_at)], [other(*r) for r in rest_ops]))

    if not terms:
        rest_sum()
        return rest[0]
    groups = pieces(terms)
    n = len(groups)
    gathered = weights[_rows_cols([terms[m] for g in groups for m in g])]    # piece order
    parts = gathered.split([len(g) for g in groups])                        # one per piece

    def branch(k: int, members: list[int]) -> Branch:
        mine = [terms[m] for m in members]

        def fn(*xs: torch.Tensor) -> torch.Tensor:          # xs: the n parts, then inputs
            return weighted_sum(xs[k], outputs(mine, xs[n:]))

        return Branch(fn, tuple(p for _, _, op, _ in mine for p in op.parameters()),
                      cost=sum(cost(op) for _, _, op, _ in mine),
                      draws_random=any(draws_random(op) for _, _, op, _ in mine))

    out = run_branches([branch(k, g) for k, g in enumerate(groups)], [*parts, *inputs],
                       meanwhile=rest_sum)
    return out + rest[0] if rest else out


def conv_node(incoming: Incoming, weights: torch.Tensor, caches: Sequence[SourceCache],
              shareable: Callable[[nn.Module], bool]) -> torch.Tensor:
    """CNN node in branches: the candidates that start with a ReLU (``forward_relu``: separable,
    dilated, factorized reduce) of every incoming edge, one branch each (cost
    :func:`conv_cost`), each on its state's shared ReLU; pooling (through the caches, for the
    ops that are ``shareable``) and identity on the calling thread."""
    def other(src: int, name: str, op: nn.Module) -> torch.Tensor:
        return caches[src].output(name, op) if shareable(op) else op(caches[src].x)

    def outputs(terms: list[Term], relus: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        return (op.forward_relu(relus[src]) for _, _, op, src in terms)

    return branched_node(incoming, weights, [c.relu() for c in caches],
                         lambda op: hasattr(op, "forward_relu"), other, conv_cost,
                         lambda terms: [[n] for n in range(len(terms))], outputs)


def _seq_pieces(terms: list[Term]) -> list[list[int]]:
    """A SeqNN node's branches: per edge (``terms`` come edge by edge), its tanh-RNN stacks
    together (:func:`~emodarts_core.fast.recurrent.run_stacks` runs them as one bank), then each
    other recurrent stack alone: the order in which an edge computed alone draws its dropout."""
    pieces: list[list[int]] = []
    for src in dict.fromkeys(t[3] for t in terms):
        mine = [n for n, t in enumerate(terms) if t[3] == src]
        banked = [n for n in mine if bankable(terms[n][2].rnn)]
        pieces += ([banked] if banked else []) + [[n] for n in mine if n not in banked]
    return pieces


def recurrent_node(incoming: Incoming, states: Sequence[torch.Tensor],
                   weights: torch.Tensor) -> torch.Tensor:
    """SeqNN node in branches (:func:`_seq_pieces`, costs by :func:`recurrent_cost`) over the
    recurrent candidates (an ``rnn`` stack and a ``finish`` of its output); the branches with
    stacks that draw random numbers (dropout between layers) run on the calling thread in edge
    order, so dropout masks are drawn in the order of the plain sum. Skip on the calling thread.
    ``states``: the cell's states, of which the first ``len(incoming)`` feed the node."""
    def outputs(terms: list[Term], xs: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        by_source: dict[int, list[nn.Module]] = {}
        for _, _, op, src in terms:                  # edges in order, their ops in order
            by_source.setdefault(src, []).append(op)
        for src, ops in by_source.items():
            stacks = run_recurrent([op.rnn for op in ops], xs[src])
            yield from (op.finish(o) for op, o in zip(ops, stacks))

    return branched_node(incoming, weights, states[:len(incoming)],
                         lambda op: hasattr(op, "rnn") and hasattr(op, "finish"),
                         lambda src, name, op: op(states[src]), recurrent_cost, _seq_pieces,
                         outputs)
