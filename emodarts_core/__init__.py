"""emodarts_core: the library behind the emoDARTS book (joint CNN + SeqNN DARTS for speech emotion
recognition). The notebooks tell the story; this package is the machinery."""
from __future__ import annotations

__version__ = "0.1.0"

from emodarts_core.common.seeding import seed_everything  # noqa: E402

__all__ = ["__version__", "seed_everything", "check_version"]


def check_version(expected: str) -> None:
    """Fail early when a notebook written for one library version runs against another."""
    if expected != __version__:
        raise RuntimeError(
            f"this notebook was written for emodarts_core {expected}, but {__version__} is installed; "
            f"install the matching version (see the README)"
        )
