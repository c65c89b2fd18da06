"""TESS, the Toronto emotional speech set (Dupuis & Pichora-Fuller 2010): 2 800 stimuli.

Two female speakers, ``OAF`` (aged 64) and ``YAF`` (aged 26), each say 200 target words in the
carrier phrase "Say the word ___" in 7 emotions. Layout read, as the set is commonly distributed
(``root`` is the folder holding the 14 speaker folders, or a parent up to two levels above it,
e.g. the unpacked archive holding ``TESS Toronto emotional speech set data/``)::

    OAF_angry/OAF_back_angry.wav
    OAF_Pleasant_surprise/OAF_back_ps.wav
    YAF_pleasant_surprised/YAF_back_ps.wav
    ...

The label is read from the **file name** ``<SPEAKER>_<word>_<emotion>.wav``, never from the
folder, whose case and spelling vary between copies (``OAF_Fear``, ``YAF_pleasant_surprised``).
The emotion word is read in lower case (see :data:`emodarts_core.data.emotions.TESS`; ``ps`` =
pleasant surprise -> ``surprised``). Quirks of public copies that are handled:

- a speaker prefix missing a letter (``OA_bite_neutral.wav`` in ``OAF_neutral/``): the speaker is
  the folder's when the file's prefix is a shortened form of it; a prefix naming the *other*
  speaker is a bad entry;
- files that hold AIFF data behind a ``.wav`` name, and rates other than the usual 24 414 Hz
  (one file at 96 kHz): nothing to do here, :func:`emodarts_core.data.audio.read_audio` decodes by
  content and resamples;
- macOS resource-fork files (``._OAF_back_angry.wav``) next to the audio: ignored;
- the same utterance stored twice (two copies of a folder): a bad entry.

Utterance ids are ``<SPEAKER>_<word>_<emotion>`` with the speaker completed (``OAF_bite_neutral``).
With two speakers, TESS has no speaker-independent folds that leave a validation speaker
(:func:`emodarts_core.data.folds.make_folds` refuses them): it is a cross-corpus *test* set, scored as
a whole (``evaluate`` without ``--fold``). Default classes: ``"tess7"``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from emodarts_core.data.corpora.common import Builder, CorpusError, check_protocol, reject_options
from emodarts_core.data.corpora.record import Corpus, Utterance
from emodarts_core.data.emotions import TESS

NAME = "tess"
PROTOCOLS = ("standard", "paper")
SPEAKERS = {"OAF": 64, "YAF": 26}       # speaker -> age in years
EXPECTED = ("a folder holding the speaker folders OAF_<emotion>/ and YAF_<emotion>/ with "
            "<SPEAKER>_<word>_<emotion>.wav files such as OAF_back_angry.wav")
FOLDER_RE = re.compile(r"^(?P<speaker>OAF|YAF)_(?P<rest>.+)$", re.IGNORECASE)
FILE_RE = re.compile(r"^(?P<speaker>[A-Za-z]+)_(?P<word>.+)_(?P<code>[A-Za-z]+)$")


def _speaker_dirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and FOLDER_RE.match(p.name))
    except OSError:
        return []


def _find_base(root: str | Path) -> Path:
    """``root`` or the shallowest folder at most two levels below it that holds speaker folders."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CorpusError(f"{NAME}: root {str(root)!r} is not a directory; expected {EXPECTED}")
    level = [root]
    for _ in range(3):
        hits = [p for p in level if _speaker_dirs(p)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise CorpusError(f"{NAME}: {str(root)!r} holds several TESS copies "
                              f"({[str(h.relative_to(root)) for h in hits]}); pass the one to use as root")
        level = [c for p in level for c in sorted(p.iterdir()) if c.is_dir()]
    raise CorpusError(f"{NAME}: {str(root)!r} does not look like {NAME}; expected {EXPECTED}")


def load_tess(
    root: str | Path,
    *,
    protocol: str = "standard",
    classes: str | Sequence[str] | None = None,
    skip_bad: bool = False,
    **options: Any,
) -> Corpus:
    """Load TESS. Records: ``speaker`` ``"OAF"``/``"YAF"``, ``gender`` ``"F"``, ``extras``
    ``word``, ``code`` (the emotion word as written), ``age`` and ``folder``."""
    reject_options(NAME, options)
    check_protocol(NAME, protocol, PROTOCOLS)
    base = _find_base(root)
    builder = Builder(NAME, TESS, skip_bad)
    seen: dict[str, Path] = {}
    for folder in _speaker_dirs(base):
        folder_speaker = FOLDER_RE.match(folder.name)["speaker"].upper()
        files = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() == ".wav" and not p.name.startswith(".") and p.is_file())
        for path in files:
            m = FILE_RE.match(path.stem)
            if m is None:
                builder.bad(path, "file name is not <SPEAKER>_<word>_<emotion>.wav "
                                  "(e.g. OAF_back_angry.wav)")
                continue
            prefix = m["speaker"].upper()
            if prefix != folder_speaker and not (len(prefix) >= 2 and folder_speaker.startswith(prefix)):
                builder.bad(path, f"speaker {m['speaker']!r} in the name but folder {folder.name}")
                continue
            code = m["code"].lower()
            ok, label = builder.label(code, path)
            if not ok or label is None:
                continue
            utt_id = f"{folder_speaker}_{m['word']}_{code}"
            if utt_id in seen:
                builder.bad(path, f"same utterance also stored as {seen[utt_id]}")
                continue
            seen[utt_id] = path
            builder.add(Utterance(
                path=path, label=label, speaker=folder_speaker, corpus=NAME, utt_id=utt_id,
                gender="F", session=None,
                extras={"word": m["word"], "code": m["code"], "age": SPEAKERS[folder_speaker],
                        "folder": folder.name},
            ))
    return builder.finish(classes, "tess7")
