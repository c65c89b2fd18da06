"""Suite-wide settings: headless matplotlib and one torch thread.

The models in the tests are tiny; on a 2-core machine shared with other work, torch's default
thread pool spends more time spinning than computing (20x slower was measured here), so the whole
suite runs single-threaded unless EMODARTS_TEST_THREADS says otherwise.
"""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("EMODARTS_TEST_THREADS", "1")))
