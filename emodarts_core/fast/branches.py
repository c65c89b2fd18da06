"""Independent branches of a computation, run side by side on CPU threads, forward and backward.

A search cell's node sums many convolutional candidates that do not depend on each other. On a
CPU their kernels are small (a few channels), so PyTorch's intra-op threads barely help, and the
autograd engine runs a CPU backward pass on one thread. :func:`run_branches` splits such a sum
into branches and computes each branch's forward pass *and its backward pass* on its own thread:
the branches are one autograd node (:class:`_Branches`) whose backward calls
:func:`torch.autograd.grad` on each branch's own graph, on whichever thread is free. PyTorch
releases the interpreter lock inside its kernels and runs a ``grad`` call on the thread that
makes it, so two threads keep two cores busy.

The arithmetic does not depend on the number of threads: the same branches are computed and
summed in the same order whether they run side by side or one after the other, so a run gives
the same numbers, to the bit, on one core or two (``tests/test_branches.py``).

Rules for a branch: it reads only the tensors passed as ``inputs`` and the parameters it lists,
and writes nothing another branch reads (a BatchNorm updating its own running statistics is
fine). A branch that draws random numbers (dropout) says so (``Branch.draws_random``): such
branches run on the calling thread, in their order, so their draws come from torch's generator
in the same order as without threads, while draws on two threads at once would come in no fixed
order. The others are shared out as threads come free, costliest first (``Branch.cost``): many
small branches balance two threads better than two fixed groups (the costs of small
convolutions' backward passes are hard to guess, and an input that needs no gradient makes a
branch's backward nearly free).

``set_branch_threads(n)`` sets how many threads run branches (1: all on the calling thread, the
default). Only CPU tensors use threads.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor

from emodarts_core.fast.memory import keep_freed_blocks

_lock = threading.Lock()
_threads = 1
_pool: ThreadPoolExecutor | None = None


def set_branch_threads(n: int) -> None:
    """Run up to ``n`` branches at once (``n - 1`` helper threads beside the calling one)."""
    global _threads, _pool
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_branch_threads: n must be an integer >= 1, got {n!r}")
    with _lock:
        if n != _threads and _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None
        _threads = n


def branch_threads() -> int:
    """How many branches run at once (see :func:`set_branch_threads`)."""
    return _threads


@contextmanager
def cores_to_branches(device: torch.device | str, branches: int = 2) -> Iterator[None]:
    """On CPU with ``N >= 2`` torch threads: for the block, ``branches`` branch threads of
    ``max(1, N // branches)`` intra-op threads each (so the cores are not oversubscribed);
    both restored on leaving. On other devices, or with one thread, nothing changes.

    It also makes glibc keep freed blocks for reuse, for the rest of the process
    (:func:`emodarts_core.fast.memory.keep_freed_blocks`): otherwise the threads queue on page faults.

    The search uses it: its nodes' branches keep two cores busier than PyTorch's intra-op
    threads do on the supernet's small kernels (``benchmarks/search_step.py``).
    """
    n = torch.get_num_threads()
    before = branch_threads()
    if torch.device(device).type != "cpu" or n < 2:
        yield
        return
    keep_freed_blocks()
    set_branch_threads(min(branches, n))
    torch.set_num_threads(max(1, n // branches))
    try:
        yield
    finally:
        torch.set_num_threads(n)
        set_branch_threads(before)


def _helpers() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_threads - 1, thread_name_prefix="emodarts-branch")
        return _pool


def _after_fork() -> None:          # a forked child has none of the parent's threads
    global _pool, _lock
    _pool = None
    _lock = threading.Lock()        # (a thread of the parent may have held it)


os.register_at_fork(after_in_child=_after_fork)


@dataclass(frozen=True)
class Branch:
    """``fn(*inputs) -> Tensor``, the parameters it uses (their gradients pass through), a
    rough ``cost`` (threads take the costliest branches first) and whether it ``draws_random``
    numbers (dropout: such a branch runs on the calling thread)."""

    fn: Callable[..., Tensor]
    params: tuple[Tensor, ...] = ()
    cost: float = 1.0
    draws_random: bool = False


def _schedule(branches: Sequence[Branch]) -> tuple[list[int], list[int]]:
    """The branches for the calling thread alone (those that draw random numbers, in order) and
    the order in which threads take the others (costliest first; ties in index order)."""
    pinned = [i for i, b in enumerate(branches) if b.draws_random]
    shared = sorted((i for i, b in enumerate(branches) if not b.draws_random),
                    key=lambda i: (-branches[i].cost, i))
    return pinned, shared


def _map(fn: Callable[[int], object], branches: Sequence[Branch], threaded: bool,
         first: Callable[[], None] | None = None) -> list:
    """``[fn(0), ..., fn(n - 1)]`` for the ``n`` branches, after ``first()`` on the calling
    thread; with ``threaded``, shared out.

    Unthreaded, in index order. Threaded, the helper threads start on the branches while the
    calling thread runs ``first``, then the branches that draw random numbers, in index order
    (so they draw what they would draw unthreaded: no other branch draws), then it joins the
    helpers; the others go to whichever thread is free next, costliest first (a free thread
    takes the next one, so an ill-guessed cost costs little balance). The results are returned
    in index order either way.
    """
    n = len(branches)
    if not threaded or n < 2:
        if first is not None:
            first()
        return [fn(i) for i in range(n)]
    results: list = [None] * n
    pinned, shared = _schedule(branches)
    queue = iter(shared)
    take = threading.Lock()

    def work() -> None:
        while True:
            with take:
                i = next(queue, None)
            if i is None:
                return
            results[i] = fn(i)

    helpers = [_helpers().submit(work) for _ in range(min(_threads, n) - 1)]
    try:
        if first is not None:
            first()
        for i in pinned:
            results[i] = fn(i)
        work()
    finally:
        for h in helpers:                                 # wait for all; a helper's error surfaces
            h.result()
    return results


def _threaded(tensors: Sequence[Tensor]) -> bool:
    return _threads > 1 and all(t.device.type == "cpu" for t in tensors)


class _Branches(torch.autograd.Function):
    """The sum of the branches' outputs; forward and backward of each branch on its own thread."""

    @staticmethod
    def forward(ctx, branches: Sequence[Branch], meanwhile: Callable[[], None] | None,
                n_inputs: int, *args: Tensor) -> Tensor:
        leaves = [x.detach().requires_grad_(x.requires_grad) for x in args[:n_inputs]]
        threaded = _threaded(leaves)

        def run(k: int) -> Tensor:
            with torch.enable_grad():
                return branches[k].fn(*leaves)

        def first() -> None:               # the caller's work, in the caller's graph
            with torch.enable_grad():
                meanwhile()

        outs = _map(run, branches, threaded, None if meanwhile is None else first)
        total = outs[0].detach().clone()
        for o in outs[1:]:
            total.add_(o.detach())
        ctx.branches, ctx.leaves, ctx.outs, ctx.threaded = branches, leaves, outs, threaded
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        if ctx.outs is None:
            raise RuntimeError("run_branches: a second backward pass through the same branches; "
                               "their graphs are freed after the first (retain_graph is not kept)")
        leaves = [x for x in ctx.leaves if x.requires_grad]
        params = [[p for p in b.params if p.requires_grad] for b in ctx.branches]

        def back(k: int) -> tuple:
            out = ctx.outs[k]
            if not out.requires_grad:
                return (None,) * (len(leaves) + len(params[k]))
            return torch.autograd.grad(out, leaves + params[k], grad, allow_unused=True)

        results = _map(back, ctx.branches, ctx.threaded)
        ctx.outs = None                                   # the branches' graphs are freed
        d_inputs: list[Tensor | None] = []
        i = 0
        for x in ctx.leaves:
            if not x.requires_grad:
                d_inputs.append(None)
                continue
            total = None
            for r in results:                             # summed in branch order
                if r[i] is not None:
                    total = r[i] if total is None else total + r[i]
            d_inputs.append(total)
            i += 1
        d_params: list[Tensor | None] = []
        for b, r in zip(ctx.branches, results):
            mine = iter(r[len(leaves):])
            d_params.extend(next(mine) if p.requires_grad else None for p in b.params)
        return (None, None, None, *d_inputs, *d_params)


def run_branches(branches: Sequence[Branch], inputs: Sequence[Tensor],
                 meanwhile: Callable[[], None] | None = None) -> Tensor:
    """``sum_k branches[k].fn(*inputs)``, the branches side by side (see the module text).

    Without gradients the branches simply run in turn (nothing to parallelise backward, and
    nothing saved); with them, forward and backward of the branches run on up to
    :func:`branch_threads` threads, CPU tensors only. Either way the same sum in the same order.

    ``meanwhile()``: the caller's own work that does not depend on the branches (it keeps its
    results itself), run on the calling thread before any branch, or, threaded, while the
    helper threads already start on them. It runs with gradients recorded as the caller's, and
    may draw random numbers (always before any branch does).
    """
    if not branches:
        raise ValueError("run_branches: no branches")
    inputs = list(inputs)
    if not torch.is_grad_enabled():
        if meanwhile is not None:
            meanwhile()
        out = branches[0].fn(*inputs)
        for b in branches[1:]:
            out = out + b.fn(*inputs)
        return out
    params = [p for b in branches for p in b.params]
    return _Branches.apply(list(branches), meanwhile, len(inputs), *inputs, *params)
