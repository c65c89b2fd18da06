"""Seeding: one call sets Python, NumPy and torch generators."""
from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed ``random``, NumPy and torch (CPU and CUDA); return a torch generator for data order.

    On CPU a fixed seed repeats a run exactly. With ``deterministic=True`` torch is also asked for
    deterministic kernels (slower on GPU); GPU results still differ across versions and hardware.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen
