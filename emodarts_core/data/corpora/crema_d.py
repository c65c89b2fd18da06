"""CREMA-D (Cao et al. 2014): 7 442 clips from 91 actors (1001..1091), 6 emotions.

Layout read (``root`` is the repository folder, or its parent with a child ``CREMA-D``)::

    AudioWAV/AAAA_SSS_EEE_LL.wav     e.g. 1001_DFA_ANG_XX.wav
    VideoDemographics.csv            ActorID,Age,Sex,Race,Ethnicity   (optional: genders)

``AAAA`` actor (the speaker), ``SSS`` one of 12 sentences, ``EEE`` ANG DIS FEA HAP NEU SAD, ``LL``
intensity LO MD HI or XX (unspecified). Without ``VideoDemographics.csv`` genders are ``None``.
``1076_MTI_SAD_XX`` holds no signal in the release and is excluded by default (``exclude``).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Sequence

from emodarts_core.data.corpora.common import (Builder, CorpusError, check_protocol, find_root,
                                               reject_options)
from emodarts_core.data.corpora.record import Corpus, Utterance
from emodarts_core.data.emotions import CREMA_D

NAME = "crema_d"
PROTOCOLS = ("standard", "paper")
EXPECTED = "a folder holding AudioWAV/AAAA_SSS_EEE_LL.wav (and optionally VideoDemographics.csv)"
NAME_RE = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<code>[A-Z]{3})_(?P<level>[A-Z]{2})$")
KNOWN_EMPTY = ("1076_MTI_SAD_XX",)


def _looks_like_crema(path: Path) -> bool:
    return (path / "AudioWAV").is_dir()


def _genders(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not {"ActorID", "Sex"} <= set(reader.fieldnames or []):
            raise CorpusError(f"crema_d: {path}: expected columns ActorID,Age,Sex,Race,Ethnicity")
        for row in reader:
            sex = (row["Sex"] or "").strip().lower()
            if sex in ("male", "female"):
                out[row["ActorID"].strip()] = "M" if sex == "male" else "F"
    return out


def load_crema_d(
    root: str | Path,
    *,
    protocol: str = "standard",
    classes: str | Sequence[str] | None = None,
    skip_bad: bool = False,
    exclude: Sequence[str] = KNOWN_EMPTY,
    **options: Any,
) -> Corpus:
    """Load CREMA-D. Records: ``speaker`` = actor id, ``gender`` from the demographics file,
    ``extras`` ``sentence``, ``level``, ``code``. Default classes: ``"crema6"``."""
    reject_options(NAME, options)
    check_protocol(NAME, protocol, PROTOCOLS)
    base = find_root(root, _looks_like_crema, corpus=NAME, expected=EXPECTED, child_names=("CREMA-D",))
    genders = _genders(base / "VideoDemographics.csv")
    builder = Builder(NAME, CREMA_D, skip_bad)
    skip = set(exclude)
    for path in sorted(p for p in (base / "AudioWAV").iterdir() if p.suffix.lower() == ".wav"):
        m = NAME_RE.match(path.stem)
        if m is None:
            builder.bad(path, "file name is not AAAA_SSS_EEE_LL.wav")
            continue
        if path.stem in skip:
            continue
        ok, label = builder.label(m["code"], path)
        if not ok or label is None:
            continue
        builder.add(Utterance(
            path=path, label=label, speaker=m["actor"], corpus=NAME, utt_id=path.stem,
            gender=genders.get(m["actor"]), session=None,
            extras={"sentence": m["sentence"], "level": m["level"], "code": m["code"]},
        ))
    return builder.finish(classes, "crema6")
