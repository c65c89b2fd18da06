"""The one record type every corpus loader returns, and the corpus that holds them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class Utterance:
    """One utterance on disk.

    ``speaker`` is unique within its corpus (e.g. IEMOCAP ``"01F"``, RAVDESS ``"03"``) and is what
    every fold splits on. ``session`` holds the corpus's session or official split (IEMOCAP
    ``"1"``, MSP-Podcast ``"Train"``), ``None`` where the corpus has none. ``extras`` keeps
    corpus-specific fields (IEMOCAP dialog and take, RAVDESS intensity, MSP-Podcast attributes).
    """

    path: Path
    label: str
    speaker: str
    corpus: str
    utt_id: str
    gender: str | None = None          # "F", "M" or None when unknown
    session: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class LoadReport:
    """What a loader or the feature pipeline skipped, and why, and what it noted.

    ``skipped`` lists files left out (a corpus entry a loader could not use, with
    ``skip_bad=True``; audio that cannot be decoded, is empty, silent, or holds NaN samples);
    ``notes`` lists files kept with a remark (a very short file padded with silence, a feature
    cache entry found damaged and computed again)."""

    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path or id, reason)
    notes: list[tuple[str, str]] = field(default_factory=list)     # (path or id, remark)

    #: How many file names the one-line summary shows.
    SHOWN = 3

    def skip(self, where: str | Path, reason: str) -> None:
        self.skipped.append((str(where), reason))

    def note(self, where: str | Path, remark: str) -> None:
        self.notes.append((str(where), remark))

    def __len__(self) -> int:
        return len(self.skipped)

    def summary(self) -> str:
        if not self.skipped:
            return "nothing skipped"
        lines = [f"{len(self.skipped)} skipped:"] + [f"  {w}: {r}" for w, r in self.skipped]
        return "\n".join(lines)

    def line(self, n_files: int | None = None) -> str:
        """One line for the user: how many files were skipped (of how many) and noted, with the
        first few names and reasons; empty when there is nothing to say."""
        parts = []
        for items, verb in ((self.skipped, "skipped"), (self.notes, "noted")):
            if not items:
                continue
            of = f" of {n_files}" if n_files is not None and verb == "skipped" else ""
            shown = "; ".join(f"{Path(w).name} ({r})" for w, r in items[:self.SHOWN])
            more = f"; and {len(items) - self.SHOWN} more" if len(items) > self.SHOWN else ""
            parts.append(f"{verb} {len(items)}{of} file(s): {shown}{more}")
        return ("data: " + " | ".join(parts)) if parts else ""

    def to_dict(self, n_files: int | None = None) -> dict[str, Any]:
        """JSON-ready: counts, and every skipped and noted file with its reason."""
        return {"n_files": n_files, "n_skipped": len(self.skipped), "n_noted": len(self.notes),
                "skipped": [{"file": w, "reason": r} for w, r in self.skipped],
                "notes": [{"file": w, "note": r} for w, r in self.notes]}


@dataclass
class Corpus:
    """A loaded corpus: its records in a stable order, the class list and the skip report."""

    name: str
    records: list[Utterance]
    classes: tuple[str, ...]
    report: LoadReport = field(default_factory=LoadReport)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def speakers(self) -> list[str]:
        return sorted({r.speaker for r in self.records})

    def label_indices(self) -> list[int]:
        index = {c: i for i, c in enumerate(self.classes)}
        return [index[r.label] for r in self.records]

    def class_counts(self) -> dict[str, int]:
        counts = {c: 0 for c in self.classes}
        for r in self.records:
            counts[r.label] += 1
        return counts
