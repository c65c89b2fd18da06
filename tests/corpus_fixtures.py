"""Small fixture trees that copy each corpus's real layout and label format (datasets.md section 8).

Every builder writes short generated audio (a 0.2 s tone + noise, 16-bit) under ``tmp`` and returns
the corpus root plus what a loader should find, so tests in any file can use them::

    root, expect = make_iemocap(tmp_path)

The label lines are synthetic but in the exact format of the real files, including the quirks
loaders trip over. Nothing here reads real corpus data.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf


def write_audio(path: Path, seconds: float = 0.2, sr: int = 16000, seed: int = 0,
                fmt: str | None = None) -> Path:
    """A short deterministic tone+noise file (WAV by default, FLAC for a ``.flac`` path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * (150 + 10 * (seed % 20)) * t) + 0.01 * rng.normal(size=t.size)
    sf.write(path, y, sr, subtype="PCM_16", format=fmt)
    return path


# ---------------------------------------------------------------------------------------------
# IEMOCAP
IEMOCAP_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"

# (session, dialog, utterance suffix, label)
IEMOCAP_TURNS: list[tuple[int, str, str, str]] = [
    (1, "Ses01F_impro01", "F000", "neu"),
    (1, "Ses01F_impro01", "M000", "exc"),      # excited: merged into happy only in "standard"
    (1, "Ses01F_impro01", "F001", "xxx"),      # no agreement: always dropped
    (1, "Ses01F_impro01", "M001", "ang"),      # M speaker inside an F take
    (1, "Ses01F_impro01", "F002", "fru"),      # not one of the 4 classes
    (1, "Ses01M_impro01", "F000", "hap"),      # second take of the same scenario
    (1, "Ses01M_impro01", "M000", "sad"),
    (1, "Ses01M_script01_1", "F000", "sad"),
    (1, "Ses01M_script01_1", "M000", "hap"),
    (2, "Ses02F_impro02", "F000", "ang"),
    (2, "Ses02F_impro02", "M000", "neu"),
    (2, "Ses02M_impro05a", "M000", "neu"),     # impro05a-style name
    (2, "Ses02M_impro05a", "F001", "hap"),
    (2, "Ses02M_impro05b", "M000", "sad"),
    (2, "Ses02M_script01_1b", "F000", "exc"),  # script01_1b-style name
]


def _iemocap_block(start: float, utt: str, label: str) -> str:
    return (
        f"[{start:.4f} - {start + 1.25:.4f}]\t{utt}\t{label}\t[3.0000, 2.5000, 2.5000]\n"
        f"C-E2:\tNeutral;\t()\n"
        f"C-E3:\tNeutral;\t()\n"
        f"C-F1:\tNeutral;\t(curious)\n"
        f"A-E3:\tval 3; act 2; dom  2;\t()\n"
        f"A-F1:\tval 3; act 3; dom  3;\t()\n\n"
    )


def make_iemocap(tmp: Path, turns: list[tuple[int, str, str, str]] | None = None,
                 write_audio_for: Any = None) -> tuple[Path, dict[str, Any]]:
    """``tmp/IEMOCAP_full_release/Session{1,2}/...`` with the turns above.

    Returns the release folder and the turn list. ``write_audio_for(utt_id) -> bool`` can leave
    some audio out (to test missing files).
    """
    turns = IEMOCAP_TURNS if turns is None else turns
    base = tmp / "IEMOCAP_full_release"
    by_dialog: dict[tuple[int, str], list[tuple[str, str]]] = {}
    for session, dialog, suffix, label in turns:
        by_dialog.setdefault((session, dialog), []).append((f"{dialog}_{suffix}", label))
    for i, ((session, dialog), utts) in enumerate(sorted(by_dialog.items())):
        sdir = base / f"Session{session}"
        evald = sdir / "dialog" / "EmoEvaluation"
        for sub in ("Categorical", "Attribute", "Self-evaluation"):
            (evald / sub).mkdir(parents=True, exist_ok=True)
        (evald / "Categorical" / f"{dialog}_e1_cat.txt").write_text("per-rater file, not a label file\n")
        text = IEMOCAP_HEADER + "".join(_iemocap_block(2.0 * j + 1.1, u, lab) for j, (u, lab) in enumerate(utts))
        (evald / f"{dialog}.txt").write_text(text)
        (sdir / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
        (sdir / "dialog" / "transcriptions" / f"{dialog}.txt").write_text(
            "".join(f"{u} [001.0000-002.0000]: Hello.\n" for u, _ in utts))
        for j, (utt, _) in enumerate(utts):
            if write_audio_for is None or write_audio_for(utt):
                write_audio(sdir / "sentences" / "wav" / dialog / f"{utt}.wav", seed=31 * i + j)
    return base, {"turns": turns}


# ---------------------------------------------------------------------------------------------
# MSP-IMPROV
# (id after "UTD-IMPROV-", consensus letter, naturalness field)
MSP_IMPROV_LINES: list[tuple[str, str, str]] = [
    ("S01A-F01-R-FM01", "A", "3.200000"),
    ("S01A-F01-S-FM01", "A", "3.000000"),
    ("S01A-F01-S-FM02", "X", "NaN"),           # no agreement, NaN naturalness
    ("S01A-F01-T-FM01", "N", "3.500000"),
    ("S01A-F01-P-FM01", "H", "4.000000"),
    ("S02H-M01-R-MF01", "H", "3.100000"),
    ("S02H-M01-S-MF01", "S", "NaN"),           # acted H, perceived S
    ("S03S-F02-R-FM01", "S", "2.900000"),
    ("S03S-F02-P-FM01", "O", "3.000000"),      # other: not one of the 4 classes
    ("S04N-M02-R-MF01", "N", "3.300000"),
    ("S04N-M02-S-MF01", "N", "3.300000"),
    ("S05A-F03-R-FM01", "A", "3.000000"),
    ("S05H-M03-R-MF01", "H", "3.000000"),
    ("S06S-F05-R-FM01", "S", "3.000000"),
    ("S06N-M05-S-MF01", "N", "3.000000"),
    ("S07A-F04-S-FM01", "A", "3.000000"),
    ("S07H-M06-R-MF01", "H", "3.000000"),
]


def make_msp_improv(tmp: Path, lines: list[tuple[str, str, str]] | None = None,
                    label_name: str = "Evalution.txt", skip_audio: set[str] = frozenset()) -> tuple[Path, dict]:
    """``tmp/MSP-IMPROV/Evalution.txt`` + ``Audio/session<n>/S..E/<C>/MSP-IMPROV-*.wav``."""
    lines = MSP_IMPROV_LINES if lines is None else lines
    base = tmp / "MSP-IMPROV"
    blocks = []
    for i, (uid, code, nat) in enumerate(lines):
        blocks.append(
            f"UTD-IMPROV-{uid}.avi; {code}; A:3.800000; V:1.900000; D:3.500000 ; N:{nat};\n"
            f"p01-x; Angry; Angry,Frustrated; A:4.0; V:2.0; D:4.0; N:3.0;\n"
            f"p02-y; Neutral; Neutral; A:3.0; V:3.0; D:3.0; N:3.0;\n"
        )
        if uid in skip_audio:
            continue
        sentence, speaker, cond, _ = uid.split("-")
        session = int(speaker[1:])
        write_audio(base / "Audio" / f"session{session}" / sentence / cond / f"MSP-IMPROV-{uid}.wav", seed=i)
    base.mkdir(parents=True, exist_ok=True)
    (base / label_name).write_text("\n".join(blocks))
    (base / "Video").mkdir(exist_ok=True)
    return base, {"lines": lines}


# ---------------------------------------------------------------------------------------------
# MSP-Podcast
PODCAST_COLUMNS = "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"
# (file stem, class, speaker, gender, split)
PODCAST_ROWS: list[tuple[str, str, str, str, str]] = [
    ("MSP-PODCAST_0001_0001", "N", "10", "Male", "Train"),
    ("MSP-PODCAST_0001_0002", "H", "10", "Male", "Train"),
    ("MSP-PODCAST_0001_0003", "A", "127", "Female", "Train"),
    ("MSP-PODCAST_0001_0004", "S", "127", "Female", "Train"),
    ("MSP-PODCAST_0002_0001", "X", "30", "Male", "Train"),        # no agreement
    ("MSP-PODCAST_0002_0002", "O", "30", "Male", "Train"),        # other
    ("MSP-PODCAST_0002_0003", "N", "Unknown", "Unknown", "Train"),
    ("MSP-PODCAST_0003_0001", "S", "2", "Female", "Train"),
    ("MSP-PODCAST_0003_0002", "H", "2", "Female", "Train"),
    ("MSP-PODCAST_0004_0001", "A", "45", "Male", "Development"),
    ("MSP-PODCAST_0004_0002", "N", "Unknown", "Unknown", "Development"),
    ("MSP-PODCAST_0005_0001", "H", "51", "Female", "Test1"),
    ("MSP-PODCAST_0005_0002", "S", "51", "Female", "Test1"),
    ("MSP-PODCAST_0005_0003", "U", "52", "Male", "Test1"),        # surprise
    ("MSP-PODCAST_0006_0001", "N", "61", "Male", "Test2"),
    ("MSP-PODCAST_0006_0002", "A", "Unknown", "Unknown", "Test2"),
    ("MSP-PODCAST_0007_0001", "N", "70", "Female", "Test3"),
]


def make_msp_podcast(tmp: Path, rows: list[tuple[str, str, str, str, str]] | None = None, *,
                     spelling: str = "1.11", folder: str = "MSP-PODCAST-Publish-1.11") -> tuple[Path, dict]:
    """A release folder. ``spelling="1.8"`` writes ``labels_concensus.csv`` with ``Validation``
    instead of ``Development`` (and no Test3 rows); ``"1.11"`` the current names."""
    rows = PODCAST_ROWS if rows is None else rows
    base = tmp / folder
    if spelling == "1.8":
        rows = [(f, c, s, g, "Validation" if sp == "Development" else sp) for f, c, s, g, sp in rows
                if sp != "Test3"]
        label_path = base / "Labels" / "labels_concensus.csv"
    else:
        label_path = base / "Labels" / "labels_consensus.csv"
    label_path.parent.mkdir(parents=True, exist_ok=True)
    text = [PODCAST_COLUMNS]
    for i, (stem, code, spk, gender, split) in enumerate(rows):
        text.append(f"{stem}.wav,{code},{2.4 + 0.1 * i:.1f},4.2,2.8,{spk},{gender},{split}")
        write_audio(base / "Audios" / f"{stem}.wav", seed=i)
    label_path.write_text("\n".join(text) + "\n")
    return base, {"rows": rows}


# ---------------------------------------------------------------------------------------------
# RAVDESS, CREMA-D, EmoDB
RAVDESS_ACTORS = ("01", "02", "03", "04", "05", "06")


def make_ravdess(tmp: Path, ext: str = "wav", actors: tuple[str, ...] = RAVDESS_ACTORS) -> tuple[Path, dict]:
    """``tmp/ravdess_<ext>/Actor_NN/03-01-EE-II-SS-01-NN.<ext>``: per actor each emotion once
    (intensity 01, statement 01) plus one strong angry, i.e. 9 files per actor; and one song file
    (03-02-...) that the loader skips by default."""
    base = tmp / f"ravdess_{ext}"
    fmt = "FLAC" if ext == "flac" else "WAV"
    n = 0
    for actor in actors:
        names = [f"03-01-{e:02d}-01-01-01-{actor}" for e in range(1, 9)]
        names.append(f"03-01-05-02-02-01-{actor}")
        for name in names:
            write_audio(base / f"Actor_{actor}" / f"{name}.{ext}", seed=n, fmt=fmt)
            n += 1
    write_audio(base / f"Actor_{actors[0]}" / f"03-02-03-01-01-01-{actors[0]}.{ext}", seed=99, fmt=fmt)
    return base, {"actors": actors, "per_actor": 9}


CREMA_ACTORS = {"1001": "Male", "1002": "Female", "1003": "Female", "1004": "Male", "1005": "Male"}


def make_crema_d(tmp: Path, with_demographics: bool = True) -> tuple[Path, dict]:
    """``tmp/CREMA-D/AudioWAV/AAAA_SSS_EEE_LL.wav`` for 5 actors x 6 emotions (+ the silent
    ``1076_MTI_SAD_XX`` the loader excludes) and ``VideoDemographics.csv``."""
    base = tmp / "CREMA-D"
    n = 0
    for actor in CREMA_ACTORS:
        for code, level in (("ANG", "HI"), ("DIS", "XX"), ("FEA", "LO"), ("HAP", "MD"), ("NEU", "XX"),
                            ("SAD", "XX")):
            write_audio(base / "AudioWAV" / f"{actor}_DFA_{code}_{level}.wav", seed=n)
            n += 1
    write_audio(base / "AudioWAV" / "1076_MTI_SAD_XX.wav", seconds=0.05, seed=n)
    if with_demographics:
        lines = ["ActorID,Age,Sex,Race,Ethnicity"]
        lines += [f"{a},30,{s},Caucasian,Not Hispanic" for a, s in CREMA_ACTORS.items()]
        lines.append("1076,40,Female,Caucasian,Not Hispanic")
        (base / "VideoDemographics.csv").write_text("\n".join(lines) + "\n")
    return base, {"actors": CREMA_ACTORS}


EMODB_SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")


def make_emodb(tmp: Path, wav_dir: str = "wav") -> tuple[Path, dict]:
    """``tmp/emodb/<wav_dir>/SSTTTEV.wav``: each of the 10 speakers with each of the 7 emotion
    letters once (text a01, version a) plus ``erkennung.txt`` and the label folders."""
    base = tmp / "emodb"
    n = 0
    for spk in EMODB_SPEAKERS:
        for letter in "WLEAFTN":
            write_audio(base / wav_dir / f"{spk}a01{letter}a.wav", seed=n)
            n += 1
    for d in ("lablaut", "labsilb", "silb"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "erkennung.txt").write_text("Nr.\tSatz\terkannt\tnatuerlich\n3  \t03a01Fa.wav\t90,00 \t75,00\n",
                                        encoding="latin-1")
    return base, {"speakers": EMODB_SPEAKERS}


# ---------------------------------------------------------------------------------------------
# TESS
#: The 14 folders of the commonly distributed copy, with its inconsistent case and spelling.
TESS_FOLDERS = {
    "OAF": {"angry": "OAF_angry", "disgust": "OAF_disgust", "fear": "OAF_Fear",
            "happy": "OAF_happy", "neutral": "OAF_neutral", "ps": "OAF_Pleasant_surprise",
            "sad": "OAF_Sad"},
    "YAF": {"angry": "YAF_angry", "disgust": "YAF_disgust", "fear": "YAF_fear",
            "happy": "YAF_happy", "neutral": "YAF_neutral", "ps": "YAF_pleasant_surprised",
            "sad": "YAF_sad"},
}
TESS_WORDS = ("back", "bar", "bite")
TESS_TOP = "TESS Toronto emotional speech set data"


def make_tess(tmp: Path) -> tuple[Path, dict]:
    """``tmp/tess/TESS Toronto emotional speech set data/<SPEAKER>_<emotion>/<SPEAKER>_<word>_<emotion>.wav``
    for 2 speakers x 7 emotions x 3 words (42 files) at 24 414 Hz, with the quirks of public
    copies: ``OAF_neutral/OA_bite_neutral.wav`` (speaker prefix missing a letter), one file of
    AIFF data behind its ``.wav`` name (``YAF_bar_fear.wav``) and one at 96 kHz
    (``OAF_back_happy.wav``). Returns the archive folder (``tmp/tess``) and the quirky files."""
    base = tmp / "tess"
    top = base / TESS_TOP
    n = 0
    quirks: dict[str, Path] = {}
    for speaker, folders in TESS_FOLDERS.items():
        for code, folder in folders.items():
            for word in TESS_WORDS:
                prefix = "OA" if (speaker, word, code) == ("OAF", "bite", "neutral") else speaker
                path = top / folder / f"{prefix}_{word}_{code}.wav"
                fmt, sr = None, 24414
                if (speaker, word, code) == ("YAF", "bar", "fear"):
                    fmt, quirks["aiff"] = "AIFF", path
                if (speaker, word, code) == ("OAF", "back", "happy"):
                    sr, quirks["96k"] = 96000, path
                if prefix == "OA":
                    quirks["short_prefix"] = path
                write_audio(path, sr=sr, seed=n, fmt=fmt)
                n += 1
    return base, quirks
