"""The emotion vocabulary every corpus is mapped onto, and each corpus's own codes, as data.

Corpora name their emotions in different ways: IEMOCAP writes ``neu hap exc ...`` in its label
files, MSP-IMPROV and MSP-Podcast use one letter (``A H S N ...``), RAVDESS encodes ``01..08`` in
the file name, CREMA-D ``ANG DIS ...`` and EmoDB German initials (``W`` = *Wut*, anger). Loaders
translate every code into one **canonical** name from :data:`CANONICAL`, so a model trained on one
corpus can be evaluated on another and class lists can be compared by name.

A code mapped to ``None`` is a known code that carries no emotion class (IEMOCAP ``xxx`` and the
MSP ``X``: the raters reached no majority). Loaders drop such utterances silently; a code that is
*missing* from a mapping is an error (see :class:`emodarts_core.corpora.CorpusError`).

Nothing here is computed: change a mapping here and every loader follows.
"""
from __future__ import annotations

from typing import Mapping, Sequence

#: Canonical emotion names, in the order used for class lists built from them.
CANONICAL: tuple[str, ...] = (
    "neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised",
    "boredom", "excited", "frustrated", "contempt", "other",
)

#: Named class sets (the order is the class-index order of a model).
CLASS_SETS: dict[str, tuple[str, ...]] = {
    # The usual speech-emotion benchmark, and the paper's, on IEMOCAP and the MSP corpora.
    "4class": ("neutral", "happy", "sad", "angry"),
    # RAVDESS's own eight emotions.
    "ravdess8": ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
    # RAVDESS without calm (for ``calm="neutral"`` or ``calm="drop"``).
    "ravdess7": ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
    # CREMA-D's six.
    "crema6": ("neutral", "happy", "sad", "angry", "fearful", "disgust"),
    # EmoDB's seven.
    "emodb7": ("neutral", "happy", "sad", "angry", "fearful", "disgust", "boredom"),
    # The classes RAVDESS, CREMA-D and EmoDB share (cross-corpus experiments).
    "shared6": ("neutral", "happy", "sad", "angry", "fearful", "disgust"),
    # MSP-Podcast's eight primary emotions (Odyssey 2024 task 1; X and O removed).
    "podcast8": ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised", "contempt"),
}

#: IEMOCAP consensus labels (4th TAB field of an ``EmoEvaluation`` turn line). ``exc`` is kept as
#: ``excited`` here; the loader's ``merge_excited`` option folds it into ``happy``.
IEMOCAP: dict[str, str | None] = {
    "neu": "neutral", "hap": "happy", "exc": "excited", "sad": "sad", "ang": "angry",
    "fru": "frustrated", "sur": "surprised", "fea": "fearful", "dis": "disgust", "oth": "other",
    "xxx": None,
}

#: MSP-IMPROV consensus letters (``Evalution.txt``) and the acted-emotion letter in its file names.
MSP_IMPROV: dict[str, str | None] = {
    "A": "angry", "H": "happy", "S": "sad", "N": "neutral", "O": "other", "X": None,
}

#: MSP-Podcast ``EmoClass`` letters (``labels_consensus.csv``).
MSP_PODCAST: dict[str, str | None] = {
    "A": "angry", "H": "happy", "S": "sad", "N": "neutral", "U": "surprised", "F": "fearful",
    "D": "disgust", "C": "contempt", "O": "other", "X": None,
}

#: RAVDESS emotion field ``EE`` of ``MM-VV-EE-II-SS-RR-AA``.
RAVDESS: dict[str, str | None] = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
    "07": "disgust", "08": "surprised",
}

#: CREMA-D emotion field ``EEE`` of ``AAAA_SSS_EEE_LL``.
CREMA_D: dict[str, str | None] = {
    "ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral",
    "SAD": "sad",
}

#: EmoDB emotion letter (5th character of ``SSTTTEV``; German initials).
EMODB: dict[str, str | None] = {
    "W": "angry", "L": "boredom", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad",
    "N": "neutral",
}

#: Every corpus mapping by corpus name (the generated corpus writes canonical names directly).
MAPPINGS: dict[str, Mapping[str, str | None]] = {
    "iemocap": IEMOCAP,
    "msp_improv": MSP_IMPROV,
    "msp_podcast": MSP_PODCAST,
    "ravdess": RAVDESS,
    "crema_d": CREMA_D,
    "emodb": EMODB,
    "generated": {name: name for name in CANONICAL},
}


def resolve_class_set(classes: str | Sequence[str], *, argument: str = "classes") -> tuple[str, ...]:
    """A class list from a set name (``"4class"``) or an explicit sequence of canonical names.

    Raises ``ValueError`` naming ``argument`` for an unknown set, an unknown name or a duplicate.
    """
    if isinstance(classes, str):
        if classes in CLASS_SETS:
            return CLASS_SETS[classes]
        if classes in CANONICAL:
            return (classes,)
        raise ValueError(
            f"{argument}={classes!r} is neither a class set ({', '.join(sorted(CLASS_SETS))}) "
            f"nor a canonical emotion ({', '.join(CANONICAL)})"
        )
    out = tuple(classes)
    unknown = [c for c in out if c not in CANONICAL]
    if unknown:
        raise ValueError(f"{argument}: unknown emotion name(s) {unknown}; use {', '.join(CANONICAL)}")
    if len(set(out)) != len(out):
        raise ValueError(f"{argument}: duplicate class names in {list(out)}")
    if not out:
        raise ValueError(f"{argument} must name at least one class")
    return out


def canonical_order(names: set[str] | Sequence[str]) -> tuple[str, ...]:
    """``names`` sorted in :data:`CANONICAL` order (stable class lists built from data)."""
    return tuple(c for c in CANONICAL if c in set(names))
