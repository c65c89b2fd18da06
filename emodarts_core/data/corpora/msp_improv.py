"""MSP-IMPROV (UT Dallas MSP lab, Busso et al. 2017): 12 actors (F01..F06, M01..M06), 6 sessions.

Layout read (``root`` is the ``MSP-IMPROV`` folder or its parent)::

    Evalution.txt  (the release's spelling; Evaluation.txt is accepted too)
    Audio/session<n>/S<ss><E>/<C>/MSP-IMPROV-S<ss><E>-<G><nn>-<C>-<XY><tt>.wav

The label file has blank-line separated blocks; the first line of each is the listeners'
consensus, keyed by the *video* name::

    UTD-IMPROV-S01A-F01-S-FM01.avi; A; A:3.800000; V:1.900000; D:3.500000 ; N:3.200000;

``UTD-IMPROV-<id>.avi`` is mapped to ``MSP-IMPROV-<id>.wav``, found anywhere below ``Audio/``.
Consensus letters: A/H/S/N, O (other) and X (no agreement, dropped). Attribute values may be
``NaN`` (stored as ``None``). Rater lines (``p01-x; Angry; ...``) are ignored.

From the id ``S01A-F01-S-FM01``: sentence ``01``, acted (target) emotion ``A``, speaker ``F01``
(the 4th field, as every public loader takes it; gender ``F``, session ``1``), condition ``S``
(R read, S improvised, T target-improvised, P natural interaction).

Protocols:

- ``"standard"``: 4-class consensus labels over all four conditions (7 798 on the full corpus).
- ``"paper"``: the emoDARTS code: read (``R``) recordings only, labelled with the acted emotion
  from the file name, found by listing ``Audio/`` (the label file is not needed).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from emodarts_core.data.corpora.common import (Builder, CorpusError, check_protocol, find_root,
                                               reject_options)
from emodarts_core.data.corpora.record import Corpus, Utterance
from emodarts_core.data.emotions import MSP_IMPROV

NAME = "msp_improv"
PROTOCOLS = ("standard", "paper")
LABEL_FILES = ("Evalution.txt", "Evaluation.txt")
EXPECTED = ("a folder 'MSP-IMPROV' holding Evalution.txt (or Evaluation.txt) and "
            "Audio/session<n>/S<ss><E>/<R|S|T|P>/MSP-IMPROV-*.wav")

ID_RE = re.compile(
    r"^S(?P<sentence>\d\d)(?P<acted>[A-Z])-(?P<speaker>(?P<gender>[FM])(?P<num>\d\d))-"
    r"(?P<condition>[PRST])-(?P<turn>[A-Z]{2}\d\d)$"
)
CONSENSUS_RE = re.compile(r"^UTD-IMPROV-(?P<id>[A-Za-z0-9-]+)\.avi\s*;\s*(?P<code>[^;]*?)\s*;(?P<rest>.*)$")
ATTR_RE = re.compile(r"\b([AVDN])\s*:\s*([0-9.]+|NaN)", re.IGNORECASE)


def _looks_like_msp_improv(path: Path) -> bool:
    return (path / "Audio").is_dir() and any((path / f).is_file() for f in LABEL_FILES)


def _looks_like_audio_only(path: Path) -> bool:
    return (path / "Audio").is_dir() and any((path / "Audio").glob("session*"))


def _audio_index(base: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for p in sorted((base / "Audio").rglob("MSP-IMPROV-*.wav")):
        index.setdefault(p.stem[len("MSP-IMPROV-"):], p)
    return index


def _record(path: Path, uid: str, m: re.Match, label: str, extras: dict) -> Utterance:
    return Utterance(
        path=path, label=label, speaker=m["speaker"], corpus=NAME, utt_id=f"MSP-IMPROV-{uid}",
        gender=m["gender"], session=str(int(m["num"])),
        extras={"sentence": m["sentence"], "acted": m["acted"], "condition": m["condition"],
                "turn": m["turn"], **extras},
    )


def load_msp_improv(
    root: str | Path,
    *,
    protocol: str = "standard",
    classes: str | Sequence[str] | None = None,
    skip_bad: bool = False,
    conditions: Sequence[str] | None = None,
    **options: Any,
) -> Corpus:
    """Load MSP-IMPROV. ``conditions`` restricts to some of ``"P" "R" "S" "T"`` (paper: ``R``).

    Records: ``speaker`` ``"F01"``, ``gender``, ``session`` ``"1".."6"``, ``extras`` with
    ``sentence``, ``acted`` (letter), ``condition``, ``turn`` and, for the standard protocol,
    ``code`` and the consensus attributes ``arousal valence dominance naturalness``.
    """
    reject_options(NAME, options)
    check_protocol(NAME, protocol, PROTOCOLS)
    paper = protocol == "paper"
    conds = set(conditions) if conditions is not None else ({"R"} if paper else {"P", "R", "S", "T"})
    bad_conds = conds - {"P", "R", "S", "T"}
    if bad_conds:
        raise CorpusError(f"msp_improv: unknown condition(s) {sorted(bad_conds)}; use P, R, S, T")
    looks = _looks_like_audio_only if paper else _looks_like_msp_improv
    base = find_root(root, looks, corpus=NAME, expected=EXPECTED, child_names=("MSP-IMPROV",))
    audio = _audio_index(base)
    builder = Builder(NAME, MSP_IMPROV, skip_bad)

    if paper:
        for uid, path in audio.items():
            m = ID_RE.match(uid)
            if m is None:
                builder.bad(path, "file name does not match MSP-IMPROV-S<ss><E>-<G><nn>-<C>-<XY><tt>")
                continue
            if m["condition"] not in conds:
                continue
            ok, label = builder.label(m["acted"], path)
            if ok and label is not None:
                builder.add(_record(path, uid, m, label, {"label_source": "acted"}))
        return builder.finish(classes, "4class")

    label_file = next(base / f for f in LABEL_FILES if (base / f).is_file())
    text = label_file.read_text(encoding="utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("UTD-IMPROV-"):
            continue
        where = f"{label_file}:{lineno}"
        c = CONSENSUS_RE.match(line.strip())
        m = ID_RE.match(c["id"]) if c else None
        if c is None or m is None:
            builder.bad(where, f"malformed consensus line {line!r}")
            continue
        if m["condition"] not in conds:
            continue
        ok, label = builder.label(c["code"], where)
        if not ok or label is None:
            continue
        uid = c["id"]
        path = audio.get(uid)
        if path is None:
            builder.bad(where, f"audio file MSP-IMPROV-{uid}.wav is missing below {str(base / 'Audio')!r}")
            continue
        attrs = {k.upper(): (None if v.lower() == "nan" else float(v)) for k, v in ATTR_RE.findall(c["rest"])}
        builder.add(_record(path, uid, m, label, {
            "label_source": "consensus", "code": c["code"],
            "arousal": attrs.get("A"), "valence": attrs.get("V"),
            "dominance": attrs.get("D"), "naturalness": attrs.get("N"),
        }))
    return builder.finish(classes, "4class")
