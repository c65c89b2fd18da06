"""Progress bars that can really be switched off.

``tqdm.auto`` picks the notebook widget under Jupyter, papermill and myst-nb; there the
``TQDM_DISABLE`` environment variable does not reach it (``tqdm.notebook`` bypasses tqdm's
environment wrapper), and each bar adds kilobytes of widget state to the saved notebook. So every
loop takes ``progress: bool`` and passes it here as an explicit ``disable=``.
"""
from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str = "", enabled: bool = True, **kwargs) -> Iterator[T]:
    """``tqdm.auto.tqdm(iterable, desc=desc, disable=not enabled)``; the bare iterable when off.

    Extra keyword arguments go to tqdm (``total=``, ``leave=``, ...).
    """
    if not enabled:
        return iter(iterable)
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, disable=False, dynamic_ncols=True, **kwargs)
