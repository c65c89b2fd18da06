"""Exact memory savings for the search: activation checkpointing that leaves BatchNorm alone.

A DARTS supernet keeps, for the backward pass, the intermediate tensors of *every* candidate op
of every edge: with the paper's 128 x 128 input, batch 64 and seven CNN candidates per edge that
is tens of GiB. Activation checkpointing keeps only an edge's *input* (which its node already
holds) and recomputes the edge's internals during the backward pass, one edge at a time, so the
peak holds one edge's intermediates instead of all of them. The price is one extra forward pass
of the checkpointed edges per backward pass.

The recomputation must give the same numbers as the first forward pass, and must not change any
state. Two things could differ:

- **Random numbers** (dropout inside stacked LSTM / RNN ops): ``torch.utils.checkpoint``
  restores the generator state for the recomputation, so the masks are the same.
- **BatchNorm running statistics**: a plain recomputation in training mode would update
  ``running_mean`` / ``running_var`` a second time (and count the batch twice). :func:`checkpoint`
  runs the recomputation under :func:`frozen_batchnorm_stats`, which makes that update a no-op.
  In training mode a BatchNorm normalises with the batch's own statistics, so the recomputed
  values are identical; only the double update is avoided.

The whole is exact: losses, weight gradients and alpha gradients equal those of the plain
supernet (``tests/test_memory.py`` checks it, first and second order).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint as _torch_checkpoint

__all__ = ["checkpoint", "frozen_batchnorm_stats", "keep_freed_blocks", "return_freed_blocks_to_os"]


@contextlib.contextmanager
def frozen_batchnorm_stats(module: nn.Module) -> Iterator[None]:
    """Within the block, no BatchNorm of ``module`` changes its running statistics.

    Every BatchNorm in training mode that tracks statistics gets ``momentum = 0`` for the block,
    so its update ``running = (1 - 0) * running + 0 * batch_stat`` leaves the running mean and
    variance bit for bit as they were (for finite batch statistics); ``num_batches_tracked`` is
    put back on exit, and so is the momentum (even after an exception). The outputs do not change:
    in training mode a BatchNorm normalises with the batch's own statistics. (Switching tracking
    off instead would also work numerically, but BatchNorm would then save fewer tensors for the
    backward pass than in the first forward, which checkpointing rejects.)
    """
    bns = [m for m in module.modules()
           if isinstance(m, _BatchNorm) and m.training and m.track_running_stats]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
             for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (momentum, count) in zip(bns, saved):
                m.momentum = momentum
                if count is not None:
                    m.num_batches_tracked.copy_(count)


def checkpoint(module: nn.Module, *args: Any) -> torch.Tensor:
    """``module(*args)`` with its activations recomputed in the backward pass.

    Uses PyTorch's non-reentrant checkpointing (it works with ``torch.autograd.grad``, which the
    architect uses, and with inputs that do not require grad), preserves the RNG state for the
    recomputation and freezes the BatchNorm statistics of ``module`` while recomputing (see the
    module docstring). Outside autograd (``torch.no_grad``, evaluation) it simply calls
    ``module``.
    """
    if not torch.is_grad_enabled():
        return module(*args)

    def contexts() -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
        return contextlib.nullcontext(), frozen_batchnorm_stats(module)

    return _torch_checkpoint(module, *args, use_reentrant=False, preserve_rng_state=True,
                             context_fn=contexts)


def _mallopt(settings: dict[int, int]) -> bool:
    """glibc ``mallopt(param, value)`` for each item; whether all took effect (False off
    Linux/glibc)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return all(bool(libc.mallopt(param, int(value))) for param, value in settings.items())
    except (OSError, AttributeError):                          # not glibc (e.g. musl)
        return False


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3                    # from <malloc.h>


def return_freed_blocks_to_os(threshold_bytes: int = 1 << 20) -> bool:
    """Make glibc serve every block of at least ``threshold_bytes`` with its own ``mmap``, so that
    a freed activation goes back to the operating system at once. Returns whether it took effect.

    Why: PyTorch's CPU tensors come from ``malloc``. glibc starts by mmapping blocks over 128 KiB,
    but every time such a block is freed it *raises* that threshold to the block's size (up to
    32 MiB), so later activations of a few MiB come from the heap, where freed space is kept and
    fragments: the resident peak of a search step then far exceeds what is ever allocated at
    once. Measured on one second-order ``cpu``-profile step at batch 32 (benchmarks/RESULTS.md):
    a 4.2 GiB resident peak became 2.1-2.5 GiB. The price is page faults on fresh blocks (the step
    ran slower on the loaded test machine). Process-wide and permanent for the process (a
    ``mallopt(M_MMAP_THRESHOLD)`` call, which also switches off glibc's dynamic threshold); a
    no-op returning False off Linux/glibc. Numbers computed are unchanged.
    """
    return _mallopt({M_MMAP_THRESHOLD: threshold_bytes})


def keep_freed_blocks(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """The opposite trade: glibc keeps freed blocks for reuse instead of giving them back.

    Blocks under ``mmap_threshold`` (32 MiB, glibc's own upper limit) come from the heap, and
    free space is returned to the system only past ``trim_threshold``. Why: with the defaults,
    freed heap tops are trimmed and later blocks fault their pages in afresh, and page faults of
    the threads of one process take the process's memory-map lock in turn, so two threads of
    small CPU kernels (the search's branches, :mod:`emodarts_core.fast.branches`) wait for each other
    there; two *processes* do not. Measured (benchmarks/RESULTS.md, "The search step's
    speed"): a loop of small convolutions on two threads ran 1.3-1.6x one thread's rate with the
    defaults and 1.75-2.1x with this. The price: the resident size stays near its peak.
    Process-wide and permanent (both settings also switch off glibc's dynamic threshold); False
    off Linux/glibc. Numbers computed are unchanged.
    """
    return _mallopt({M_MMAP_THRESHOLD: mmap_threshold, M_TRIM_THRESHOLD: trim_threshold})
