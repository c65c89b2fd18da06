"""IEMOCAP (USC SAIL, Busso et al. 2008): 10 actors in 5 dyadic sessions, 16 kHz utterance WAVs.

Layout read (``root`` may be the folder holding ``Session1..5``, its parent, or a parent whose
child is called ``IEMOCAP``)::

    Session<n>/dialog/EmoEvaluation/<dialog>.txt           consensus labels, one file per dialog
    Session<n>/dialog/EmoEvaluation/{Attribute,...}/        per-rater sub-directories (ignored)
    Session<n>/sentences/wav/<dialog>/<utterance>.wav       the audio

A label file has a ``%`` header line, then one block per turn whose first line is TAB separated::

    [1.1000 - 2.3500]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[3.0000, 2.0000, 2.5000]

followed by rater lines (``C-E2:``, ``A-E3: ... dom  2;``) that are ignored. Only lines that start
with ``[`` are turn lines.

The **speaker** comes from the last ``_`` token of the utterance id: in ``Ses01F_impro01_M012`` the
male actor of session 1 speaks (``"01M"``), although the take is ``F`` (the F/M after ``Ses01`` is
the take, not the speaker). Dialog names such as ``Ses03M_impro05a`` and ``Ses05M_script01_1b``
break fixed-offset parsing and are handled by the regular expression below.

Protocols:

- ``"standard"``: 4 classes (neutral, happy, sad, angry), ``exc`` merged into happy, improvised and
  scripted (5 531 utterances on the full corpus).
- ``"paper"``: what the emoDARTS code selects: improvised only, ``hap`` alone (``exc`` dropped),
  2 280 utterances; ``dedup_takes=True`` also keeps only the first take of each scenario, in
  sorted order (F takes first, ``05a`` before ``05b``: 1 107 utterances) which makes the public
  code's file-system-dependent ``glob`` choice deterministic.

Any of ``utterance_type``, ``merge_excited``, ``dedup_takes`` and ``sessions`` overrides the
protocol's value.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from emodarts_core.data.corpora.common import (Builder, CorpusError, check_protocol, find_root,
                                               reject_options)
from emodarts_core.data.corpora.record import Corpus, Utterance
from emodarts_core.data.emotions import IEMOCAP

NAME = "iemocap"
PROTOCOLS = ("standard", "paper")
EXPECTED = (
    "a folder holding Session1..Session5, each with dialog/EmoEvaluation/*.txt and "
    "sentences/wav/<dialog>/<utterance>.wav (or its parent, or a parent with a child 'IEMOCAP')"
)

UTT_RE = re.compile(
    r"^(?P<dialog>Ses(?P<session>0[1-5])(?P<take>[FM])_(?P<kind>impro|script)\d\d[ab]?(?:_\d[ab]?)?)"
    r"_(?P<spk>[FM])[X\d]{2}\d$"
)
TURN_RE = re.compile(
    r"^\[(?P<start>\d+(?:\.\d+)?) - (?P<end>\d+(?:\.\d+)?)\]$"
)
SCENARIO_RE = re.compile(r"^(Ses\d\d)[FM]_(impro\d\d)")
SESSION_DIR_RE = re.compile(r"^Session([1-5])$")


def _looks_like_iemocap(path: Path) -> bool:
    return any(SESSION_DIR_RE.match(p.name) and (p / "dialog").is_dir() for p in path.iterdir()
               if p.is_dir())


def _parse_vad(text: str) -> list[float] | None:
    try:
        values = [float(v) for v in text.strip().strip("[]").split(",")]
    except ValueError:
        return None
    return values if len(values) == 3 else None


def load_iemocap(
    root: str | Path,
    *,
    protocol: str = "standard",
    classes: str | Sequence[str] | None = None,
    skip_bad: bool = False,
    sessions: Sequence[int] | None = None,
    utterance_type: Any = ...,
    merge_excited: bool | None = None,
    dedup_takes: bool | None = None,
    **options: Any,
) -> Corpus:
    """Load IEMOCAP's utterances with their consensus labels.

    ``sessions``: session numbers to read (default: every ``Session<n>`` present).
    ``utterance_type``: ``"improvised"``, ``"scripted"`` or ``None`` for both (protocol default).
    ``merge_excited``: label ``exc`` as happy (standard) or keep it as ``excited`` (paper; then
    dropped by the 4-class filter). ``dedup_takes``: keep one take per improvised scenario.
    Records carry ``session`` ``"1".."5"``, ``speaker`` ``"01F"`` etc., ``gender`` and ``extras``
    ``dialog``, ``take`` (F/M of the dialog name), ``utterance_type``, ``start``, ``end``, ``vad``.
    """
    reject_options(NAME, options)
    check_protocol(NAME, protocol, PROTOCOLS)
    paper = protocol == "paper"
    if utterance_type is ...:
        utterance_type = "improvised" if paper else None
    if utterance_type not in (None, "improvised", "scripted"):
        raise CorpusError(f"iemocap: utterance_type must be 'improvised', 'scripted' or None, "
                          f"not {utterance_type!r}")
    merge_excited = (not paper) if merge_excited is None else merge_excited
    dedup_takes = False if dedup_takes is None else dedup_takes

    base = find_root(root, _looks_like_iemocap, corpus=NAME, expected=EXPECTED,
                     child_names=("IEMOCAP", "IEMOCAP_full_release"))
    present = sorted(int(m.group(1)) for p in base.iterdir()
                     if p.is_dir() and (m := SESSION_DIR_RE.match(p.name)))
    wanted = present if sessions is None else sorted(set(int(s) for s in sessions))
    missing = [s for s in wanted if s not in present]
    if missing:
        raise CorpusError(f"iemocap: Session{missing[0]} not found under {str(base)!r}; "
                          f"present: {['Session%d' % s for s in present]}")

    mapping = dict(IEMOCAP)
    if merge_excited:
        mapping["exc"] = "happy"
    builder = Builder(NAME, mapping, skip_bad)
    seen_scenarios: set[str] = set()
    for session in wanted:
        sdir = base / f"Session{session}"
        label_dir = sdir / "dialog" / "EmoEvaluation"
        if not label_dir.is_dir():
            raise CorpusError(f"iemocap: {str(label_dir)!r} is missing; expected {EXPECTED}")
        label_files = sorted(p for p in label_dir.glob("*.txt") if p.is_file())
        for label_file in label_files:
            dialog = label_file.stem
            kind = "improvised" if "_impro" in dialog else "scripted" if "_script" in dialog else None
            if kind is None:
                builder.bad(label_file, "file name is neither an improvised nor a scripted dialog")
                continue
            if utterance_type is not None and kind != utterance_type:
                continue
            if dedup_takes and kind == "improvised":
                scenario = SCENARIO_RE.match(dialog)
                key = "_".join(scenario.groups()) if scenario else dialog
                if key in seen_scenarios:
                    continue
                seen_scenarios.add(key)
            _read_label_file(builder, label_file, sdir, session, kind)
    return builder.finish(classes, "4class")


def _read_label_file(builder: Builder, label_file: Path, sdir: Path, session: int, kind: str) -> None:
    text = label_file.read_text(encoding="utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("["):
            continue
        where = f"{label_file}:{lineno}"
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 3 or not TURN_RE.match(fields[0].strip()):
            builder.bad(where, f"malformed turn line {line!r} (expected '[start - end]<TAB>id<TAB>label"
                               "<TAB>[v, a, d]')")
            continue
        utt_id, code = fields[1].strip(), fields[2].strip()
        m = UTT_RE.match(utt_id)
        if m is None:
            builder.bad(where, f"utterance id {utt_id!r} does not look like an IEMOCAP id")
            continue
        if int(m.group("session")) != session:
            builder.bad(where, f"utterance {utt_id!r} listed under Session{session}")
            continue
        ok, label = builder.label(code, where)
        if not ok or label is None:
            continue
        path = sdir / "sentences" / "wav" / m.group("dialog") / f"{utt_id}.wav"
        if not builder.audio(path, where):
            continue
        times = TURN_RE.match(fields[0].strip())
        spk = m.group("spk")
        builder.add(Utterance(
            path=path, label=label, speaker=f"{m.group('session')}{spk}", corpus=NAME, utt_id=utt_id,
            gender=spk, session=str(session),
            extras={
                "dialog": m.group("dialog"), "take": m.group("take"), "utterance_type": kind,
                "code": code, "start": float(times["start"]), "end": float(times["end"]),
                "vad": _parse_vad(fields[3]) if len(fields) > 3 else None,
            },
        ))
