"""What every corpus loader shares: the error type, root discovery, bad-entry handling, finishing.

A loader reads a corpus's own layout and label files and builds :class:`Utterance` records. Two
kinds of entry are *bad*: a label code that the corpus's mapping in :mod:`emodarts_core.data.emotions`
does not know, and a label line that names an audio file that is not on disk. By default a bad
entry raises :class:`CorpusError` naming the file (and line); with ``skip_bad=True`` it is written
to ``corpus.report`` and skipped. Utterances whose code is known but carries no class (``xxx``,
``X``) and utterances outside the requested ``classes`` are dropped silently: that is selection,
not damage.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from emodarts_core.data.corpora.record import Corpus, LoadReport, Utterance
from emodarts_core.data.emotions import canonical_order, resolve_class_set


class CorpusError(ValueError):
    """A corpus folder or label file that cannot be read as the corpus it claims to be."""


def find_root(
    root: str | Path,
    looks_right: Callable[[Path], bool],
    *,
    corpus: str,
    expected: str,
    child_names: Sequence[str] = (),
) -> Path:
    """The folder that holds the corpus: ``root`` itself, a child named in ``child_names``, or the
    only child directory of ``root`` that looks right.

    ``looks_right(path)`` decides; ``expected`` describes the layout for the error message.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CorpusError(f"{corpus}: root {str(root)!r} is not a directory; expected {expected}")
    if looks_right(root):
        return root
    for name in child_names:
        if (root / name).is_dir() and looks_right(root / name):
            return root / name
    matches = [c for c in sorted(root.iterdir()) if c.is_dir() and looks_right(c)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise CorpusError(
            f"{corpus}: {str(root)!r} holds several corpus copies ({[m.name for m in matches]}); "
            "pass the one to use as root"
        )
    raise CorpusError(f"{corpus}: {str(root)!r} does not look like {corpus}; expected {expected}")


@dataclass
class Builder:
    """Collects records for one loader and applies the bad-entry policy and the class filter."""

    corpus: str
    mapping: Mapping[str, str | None]
    skip_bad: bool
    report: LoadReport = field(default_factory=LoadReport)
    records: list[Utterance] = field(default_factory=list)

    def bad(self, where: str | Path, reason: str) -> None:
        """Raise ``CorpusError("<where>: <reason>")`` or, with ``skip_bad``, record and go on."""
        if self.skip_bad:
            self.report.skip(where, reason)
            return
        raise CorpusError(f"{self.corpus}: {where}: {reason} (to skip such entries and go on: --skip-bad on the command line, skip_bad=True in "
                          "Python)")

    def label(self, code: str, where: str | Path) -> tuple[bool, str | None]:
        """Map a corpus code: ``(True, name)``, ``(True, None)`` for a known no-class code, or
        ``(False, None)`` after :meth:`bad` for an unknown one."""
        if code not in self.mapping:
            known = ", ".join(sorted(self.mapping))
            self.bad(where, f"unknown emotion code {code!r} (known: {known})")
            return False, None
        return True, self.mapping[code]

    def audio(self, path: Path, where: str | Path) -> bool:
        """True when ``path`` is a file; else :meth:`bad` and False."""
        if path.is_file():
            return True
        self.bad(where, f"audio file {str(path)!r} is missing")
        return False

    def add(self, record: Utterance) -> None:
        self.records.append(record)

    def finish(
        self, classes: str | Sequence[str] | None, default: str | Sequence[str] | None,
    ) -> Corpus:
        """Sort records by ``utt_id``, keep only ``classes`` (or ``default``; ``None`` = every
        class present) and build the :class:`Corpus`."""
        chosen = classes if classes is not None else default
        if chosen is None:
            class_list = canonical_order({r.label for r in self.records})
        else:
            class_list = resolve_class_set(chosen)
        keep = set(class_list)
        records = sorted((r for r in self.records if r.label in keep), key=lambda r: r.utt_id)
        ids = [r.utt_id for r in records]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise CorpusError(f"{self.corpus}: duplicate utterance ids {dup}")
        return Corpus(name=self.corpus, records=records, classes=tuple(class_list), report=self.report)


def files_with_suffix(folder: Path, suffixes: Iterable[str]) -> list[Path]:
    """Files directly or below ``folder`` whose lowercase suffix is in ``suffixes``, sorted."""
    wanted = {s.lower() for s in suffixes}
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in wanted and p.is_file())


def check_protocol(corpus: str, protocol: str, allowed: Sequence[str]) -> None:
    if protocol not in allowed:
        raise CorpusError(f"{corpus}: unknown protocol {protocol!r}; choose one of {list(allowed)}")


def reject_options(corpus: str, options: Mapping[str, object]) -> None:
    if options:
        raise TypeError(f"{corpus}: unknown option(s) {sorted(options)}")
