"""Corpus loaders: a user's copy of a corpus on disk -> a :class:`Corpus` of :class:`Utterance`.

``load_corpus(name, root)`` is the one entry point; ``CORPORA`` maps each name to its loader.
Every loader reads the corpus's *own* layout and label files (nothing is converted or copied
first), maps its emotion codes onto the canonical names of :mod:`emodarts_core.data.emotions`, and
returns the records sorted by utterance id. See each module's docstring for the layout it expects.

Shared keyword arguments:

- ``protocol``: ``"standard"`` or ``"paper"`` (what the emoDARTS public code selected; it only
  changes IEMOCAP, MSP-IMPROV and MSP-Podcast).
- ``classes``: a class-set name (``"4class"``, ``"ravdess8"``, ...) or a tuple of canonical names;
  records of other classes are dropped. ``None`` = the protocol's default set.
- ``skip_bad``: record unknown emotion codes and missing audio in ``corpus.report`` and skip
  them, instead of raising :class:`CorpusError`.
- further corpus-specific options (``utterance_type=``, ``merge_excited=``, ``calm=`` ...).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from emodarts_core.data.corpora.common import CorpusError
from emodarts_core.data.corpora.crema_d import load_crema_d
from emodarts_core.data.corpora.emodb import load_emodb
from emodarts_core.data.corpora.generated import generate_corpus, load_generated
from emodarts_core.data.corpora.iemocap import load_iemocap
from emodarts_core.data.corpora.msp_improv import load_msp_improv
from emodarts_core.data.corpora.msp_podcast import load_msp_podcast
from emodarts_core.data.corpora.ravdess import load_ravdess
from emodarts_core.data.corpora.record import Corpus, LoadReport, Utterance
from emodarts_core.data.corpora.tess import load_tess

#: Corpus name -> loader ``(root, *, protocol, classes, skip_bad, **options) -> Corpus``.
CORPORA: dict[str, Callable[..., Corpus]] = {
    "iemocap": load_iemocap,
    "msp_improv": load_msp_improv,
    "msp_podcast": load_msp_podcast,
    "ravdess": load_ravdess,
    "crema_d": load_crema_d,
    "emodb": load_emodb,
    "tess": load_tess,
    "generated": load_generated,
}

#: Corpora whose licence forbids redistribution (``download.fetch_corpus`` explains how to get them).
LICENSED = ("iemocap", "msp_improv", "msp_podcast")


def load_corpus(
    name: str,
    root: str | Path,
    *,
    protocol: str = "standard",
    classes: str | Sequence[str] | None = None,
    skip_bad: bool = False,
    **options: Any,
) -> Corpus:
    """Load corpus ``name`` from ``root``; see the module docstring for the arguments.

    Raises :class:`CorpusError` for an unknown name, a root that does not hold the corpus (the
    message describes the layout expected), an unknown protocol, or a bad entry without
    ``skip_bad``.
    """
    key = name.lower().replace("-", "_")
    if key not in CORPORA:
        raise CorpusError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
    return CORPORA[key](root, protocol=protocol, classes=classes, skip_bad=skip_bad, **options)


__all__ = [
    "CORPORA", "LICENSED", "Corpus", "CorpusError", "LoadReport", "Utterance", "generate_corpus",
    "load_corpus", "load_crema_d", "load_emodb", "load_generated", "load_iemocap",
    "load_msp_improv", "load_msp_podcast", "load_ravdess", "load_tess",
]
