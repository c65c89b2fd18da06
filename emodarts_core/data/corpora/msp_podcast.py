"""MSP-Podcast (UT Dallas MSP lab, Lotfian & Busso 2019; releases 1.x): podcast segments.

Layout read (``root`` is the release folder, e.g. ``MSP-PODCAST-Publish-1.12``, or its parent)::

    Labels/labels_consensus.csv     (1.10+; <= 1.8 spells it labels_concensus.csv; the emoDARTS
                                     copy keeps it at the root: all three are accepted)
    Audios/MSP-PODCAST_<podcast>_<segment>.wav   (or Audio/)

The CSV has the columns ``FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set``.
``EmoClass`` letters map through :data:`emodarts_core.data.emotions.MSP_PODCAST` (``X`` = no agreement,
dropped). ``Split_Set`` goes into ``session``; ``Validation`` (<= 1.8) and ``Development`` (1.11+)
are one split, stored as ``"Development"``.

Speakers: ``SpkrID`` as a string. Segments whose speaker is ``Unknown`` cannot be told apart, so
within a split they are one pseudo-speaker ``"Unknown-<split>"`` (e.g. ``"Unknown-Train"``): that
keeps every split speaker-disjoint by construction while keeping those segments where the
protocol allows them. ``extras["speaker_known"]`` is False for them.

Protocols:

- ``"standard"``: the corpus's own splits, 4 classes, Unknown speakers kept.
- ``"paper"``: the emoDARTS code: ``Test1`` and ``Test2`` relabelled ``Train``, ``Development``
  (and ``Test3``) dropped, Unknown speakers dropped, 4 classes; folds are its own 5-fold speaker
  packing (:func:`emodarts_core.data.folds.make_folds` scheme ``"emodarts_packing"``).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Sequence

from emodarts_core.data.corpora.common import (Builder, CorpusError, check_protocol, find_root,
                                               reject_options)
from emodarts_core.data.corpora.record import Corpus, Utterance
from emodarts_core.data.emotions import MSP_PODCAST

NAME = "msp_podcast"
PROTOCOLS = ("standard", "paper")
LABEL_CANDIDATES = (
    "Labels/labels_consensus.csv", "Labels/labels_concensus.csv",
    "labels_consensus.csv", "labels_concensus.csv",
)
AUDIO_DIRS = ("Audios", "Audio")
COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
SPLITS = {"Train": "Train", "Validation": "Development", "Development": "Development",
          "Test1": "Test1", "Test2": "Test2", "Test3": "Test3"}
GENDERS = {"Male": "M", "Female": "F", "Unknown": None, "": None}
FILE_RE = re.compile(r"^MSP-PODCAST_(?P<podcast>\d+)_(?P<segment>\d+)(?:_\d+)?\.wav$")
EXPECTED = ("a folder holding Labels/labels_consensus.csv (or labels_concensus.csv) and "
            "Audios/MSP-PODCAST_*.wav (or Audio/)")


def _label_file(path: Path) -> Path | None:
    return next((path / c for c in LABEL_CANDIDATES if (path / c).is_file()), None)


def _looks_like_msp_podcast(path: Path) -> bool:
    return _label_file(path) is not None and any((path / d).is_dir() for d in AUDIO_DIRS)


def _float(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def load_msp_podcast(
    root: str | Path,
    *,
    protocol: str = "standard",
    classes: str | Sequence[str] | None = None,
    skip_bad: bool = False,
    splits: Sequence[str] | None = None,
    **options: Any,
) -> Corpus:
    """Load MSP-Podcast. ``splits`` keeps only these (normalised) ``Split_Set`` values.

    Records: ``speaker`` (``SpkrID`` or ``"Unknown-<split>"``), ``gender``, ``session`` = split,
    ``extras`` ``podcast``, ``code``, ``arousal``, ``valence``, ``dominance``, ``split_original``,
    ``speaker_known``.
    """
    reject_options(NAME, options)
    check_protocol(NAME, protocol, PROTOCOLS)
    paper = protocol == "paper"
    base = find_root(root, _looks_like_msp_podcast, corpus=NAME, expected=EXPECTED)
    label_file = _label_file(base)
    assert label_file is not None
    audio_dir = next(base / d for d in AUDIO_DIRS if (base / d).is_dir())
    keep_splits = None if splits is None else {SPLITS.get(s, s) for s in splits}
    builder = Builder(NAME, MSP_PODCAST, skip_bad)

    with open(label_file, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(f"msp_podcast: {label_file}: missing column(s) {missing}; "
                              f"expected {','.join(COLUMNS)}")
        for row in reader:
            where = f"{label_file}:{reader.line_num}"
            name = (row["FileName"] or "").strip()
            m = FILE_RE.match(name)
            if m is None:
                builder.bad(where, f"FileName {name!r} is not MSP-PODCAST_<podcast>_<segment>.wav")
                continue
            raw_split = (row["Split_Set"] or "").strip()
            if raw_split not in SPLITS:
                builder.bad(where, f"unknown Split_Set {raw_split!r} (known: {sorted(SPLITS)})")
                continue
            split = SPLITS[raw_split]
            spk = (row["SpkrID"] or "").strip()
            known = spk not in ("", "Unknown")
            if paper:
                if split in ("Development", "Test3") or not known:
                    continue
                split = "Train"
            if keep_splits is not None and split not in keep_splits:
                continue
            code = (row["EmoClass"] or "").strip()
            ok, label = builder.label(code, where)
            if not ok or label is None:
                continue
            path = audio_dir / name
            if not builder.audio(path, where):
                continue
            gender_raw = (row["Gender"] or "").strip()
            if gender_raw not in GENDERS:
                builder.bad(where, f"unknown Gender {gender_raw!r} (Male, Female or Unknown)")
                continue
            builder.add(Utterance(
                path=path, label=label, speaker=spk if known else f"Unknown-{split}", corpus=NAME,
                utt_id=name[: -len(".wav")], gender=GENDERS[gender_raw], session=split,
                extras={
                    "podcast": m["podcast"], "code": code, "arousal": _float(row["EmoAct"]),
                    "valence": _float(row["EmoVal"]), "dominance": _float(row["EmoDom"]),
                    "split_original": raw_split, "speaker_known": known,
                },
            ))
    return builder.finish(classes, "4class")
