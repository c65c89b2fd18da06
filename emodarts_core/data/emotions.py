"""The emotion vocabulary every corpus is mapped onto, and each corpus's own codes, as data.

Corpora name their emotions in different ways: IEMOCAP writes ``neu hap exc ...`` in its label
files, MSP-IMPROV and MSP-Podcast use one letter (``A H S N ...``), RAVDESS encodes ``01..08`` in
the file name, CREMA-D ``ANG DIS ...``, EmoDB German initials (``W`` = *Wut*, anger) and TESS
English words at the end of the file name (``ps`` = pleasant surprise). Loaders
translate every code into one **canonical** name from :data:`CANONICAL`, so a model trained on one
corpus can be evaluated on another and class lists can be compared by name.

A code mapped to ``None`` is a known code that carries no emotion class (IEMOCAP ``xxx`` and the
MSP ``X``: the raters reached no majority). Loaders drop such utterances silently; a code that is
*missing* from a mapping is an error (see :class:`emodarts_core.data.corpora.common.CorpusError`).

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
    # TESS's seven ("pleasant surprise" counted as surprised).
    "tess7": ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
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

#: TESS emotion word, the last ``_`` token of ``<SPEAKER>_<word>_<emotion>.wav`` (read in lower
#: case: copies differ in case). ``ps`` is "pleasant surprise", the nearest to RAVDESS's surprised.
TESS: dict[str, str | None] = {
    "angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy",
    "neutral": "neutral", "ps": "surprised", "sad": "sad",
}

#: Every corpus mapping by corpus name (the generated corpus writes canonical names directly).
MAPPINGS: dict[str, Mapping[str, str | None]] = {
    "iemocap": IEMOCAP,
    "msp_improv": MSP_IMPROV,
    "msp_podcast": MSP_PODCAST,
    "ravdess": RAVDESS,
    "crema_d": CREMA_D,
    "emodb": EMODB,
    "tess": TESS,
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


def vocabulary_table(corpora: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
    """The vocabulary as a table: ``table[corpus][canonical emotion]`` = the corpus's own code(s)
    for that emotion (several joined by ``" / "``), ``""`` where the corpus has none.

    ``corpora`` defaults to every corpus of :data:`MAPPINGS` except ``generated`` (which writes
    canonical names). The columns, the same in every row, are the canonical emotions at least one
    of these corpora has, in :data:`CANONICAL` order; codes that carry no class are left out.
    """
    names = [c for c in MAPPINGS if c != "generated"] if corpora is None else list(corpora)
    unknown = [c for c in names if c not in MAPPINGS]
    if unknown:
        raise ValueError(f"vocabulary_table: unknown corpus {unknown}; use {', '.join(MAPPINGS)}")
    columns = canonical_order({v for c in names for v in MAPPINGS[c].values() if v is not None})
    table: dict[str, dict[str, str]] = {}
    for corpus in names:
        codes: dict[str, list[str]] = {e: [] for e in columns}
        for code, emotion in MAPPINGS[corpus].items():
            if emotion is not None:
                codes[emotion].append(code)
        table[corpus] = {e: " / ".join(codes[e]) for e in columns}
    return table


def vocabulary_markdown(corpora: Sequence[str] | None = None) -> str:
    """:func:`vocabulary_table` as a Markdown table (one row per corpus, ``-`` for no code)."""
    table = vocabulary_table(corpora)
    columns = list(next(iter(table.values()))) if table else []
    lines = ["| corpus | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for corpus, row in table.items():
        lines.append(f"| {corpus} | " + " | ".join(f"`{row[e]}`" if row[e] else "-" for e in columns)
                     + " |")
    return "\n".join(lines)


def corpus_classes(corpus: str) -> tuple[str, ...]:
    """The canonical classes a corpus's mapping can yield, in :data:`CANONICAL` order."""
    if corpus not in MAPPINGS:
        raise ValueError(f"corpus_classes: unknown corpus {corpus!r}; use {', '.join(MAPPINGS)}")
    return canonical_order({v for v in MAPPINGS[corpus].values() if v is not None})


def shared_classes_markdown(corpora: Sequence[str] | None = None) -> str:
    """How many canonical classes each pair of corpora shares, as a Markdown table (the
    diagonal: a corpus's own number of classes). ``corpora`` as for :func:`vocabulary_table`."""
    names = [c for c in MAPPINGS if c != "generated"] if corpora is None else list(corpora)
    sets = {c: set(corpus_classes(c)) for c in names}
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for a in names:
        lines.append(f"| **{a}** | " + " | ".join(str(len(sets[a] & sets[b])) for b in names)
                     + " |")
    return "\n".join(lines)
