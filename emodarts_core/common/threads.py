"""How many threads torch uses: ``$EMODARTS_THREADS`` (the book build and batch jobs set it)."""
from __future__ import annotations

import os

THREADS_ENV = "EMODARTS_THREADS"


def configure_threads() -> int:
    """Apply ``$EMODARTS_THREADS`` (when set) to ``torch.set_num_threads``; return torch's count.

    The book build and the notebook tests set it to 1: on a small machine shared with other work,
    torch's default thread pool spins instead of computing, and the tiny CPU models of the book
    ran up to 20 times slower with 2 threads than with 1 on the 2-core build machine.
    """
    import torch

    value = os.environ.get(THREADS_ENV, "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"${THREADS_ENV}={value!r} is not an integer") from None
        if n < 1:
            raise ValueError(f"${THREADS_ENV} must be >= 1, got {n}")
        torch.set_num_threads(n)
    return torch.get_num_threads()
