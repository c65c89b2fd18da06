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
    """What a loader or the feature pipeline skipped, and why (only filled with ``skip_bad=True``)."""

    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path or id, reason)

    def skip(self, where: str | Path, reason: str) -> None:
        self.skipped.append((str(where), reason))

    def __len__(self) -> int:
        return len(self.skipped)

    def summary(self) -> str:
        if not self.skipped:
            return "nothing skipped"
        lines = [f"{len(self.skipped)} skipped:"] + [f"  {w}: {r}" for w, r in self.skipped]
        return "\n".join(lines)


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
