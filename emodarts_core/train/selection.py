"""Which epoch to test, judged on the validation speakers only.

A training can test its last epoch or the epoch with the best validation UA (``train.select``).
Which rule generalises better is a protocol choice, so it must be made without the test
speakers. The best epoch's own validation UA cannot judge it (it was picked on those very
utterances), so the rules are compared by **cross-selection over the validation speakers**: for
each validation speaker in turn, the "best" rule picks its epoch on the *other* validation
speakers and is scored on the held-out one; the "last" rule is scored on the same speaker at
the last epoch. The two estimates, averaged over the held-out speakers, are paired per training.

Each epoch of a training records one confusion matrix per validation speaker
(``valid_confusion_by_speaker`` in ``history.json``, :func:`emodarts_core.train.engine.fit`),
which is all this needs. A training with fewer than two validation speakers cannot be judged.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from emodarts_core.train.metrics import confusion_ua
from emodarts_core.train.runs import RunDir


@dataclass(frozen=True)
class RuleEstimate:
    """The two rules' cross-selected validation UA (fractions) of one training."""

    run_dir: str
    best: float          # epoch picked on the other validation speakers, scored on the held-out
    last: float          # the last epoch, scored on the same held-out speakers
    speakers: int        # validation speakers (held out one at a time)
    epochs: int


def rule_estimate(epochs: Sequence[dict[str, Any]], run_dir: str = "") -> RuleEstimate | None:
    """:class:`RuleEstimate` from a training's epoch records; ``None`` when the epochs carry no
    per-speaker validation confusions or there are fewer than two validation speakers."""
    per = [e.get("valid_confusion_by_speaker") for e in epochs]
    if not per or any(p is None for p in per):
        return None
    speakers = sorted(per[0])
    if len(speakers) < 2 or any(sorted(p) != speakers for p in per):
        return None
    cms = {s: np.asarray([p[s] for p in per], dtype=int) for s in speakers}   # (E, C, C)
    best, last = [], []
    for held in speakers:
        others = sum(cms[s] for s in speakers if s != held)
        scores = [confusion_ua(cm) for cm in others]
        pick = int(np.nanargmax(scores))      # the earliest of equal scores, as fit() keeps it
        best.append(confusion_ua(cms[held][pick]))
        last.append(confusion_ua(cms[held][-1]))
    return RuleEstimate(run_dir=run_dir, best=float(np.mean(best)), last=float(np.mean(last)),
                        speakers=len(speakers), epochs=len(per))


def estimates_below(root: str | Path) -> list[RuleEstimate]:
    """:func:`rule_estimate` of every training below ``root`` that can be judged (searches,
    which test no epoch, and trainings without the records are left out)."""
    out = []
    for hist in sorted(Path(root).rglob(RunDir.HISTORY)):
        est = rule_estimate(RunDir(hist.parent).history()["epochs"], str(hist.parent))
        if est is not None:
            out.append(est)
    return out


def chosen_rule(estimates: Sequence[RuleEstimate]) -> str:
    """The rule with the higher mean cross-selected validation UA over ``estimates`` ("last" on
    a tie: it has no free choice); a clear error without any estimate."""
    if not estimates:
        raise ValueError("no training with per-speaker validation records and >= 2 "
                         "validation speakers to judge the epoch rule on")
    best = float(np.mean([e.best for e in estimates]))
    last = float(np.mean([e.last for e in estimates]))
    return "best" if best > last else "last"


def rule_table(groups: dict[str, Sequence[RuleEstimate]]) -> str:
    """Markdown: per group (e.g. a method), the trainings judged, both rules' mean
    cross-selected validation UA (%), how many trainings each rule won, and the rule chosen."""
    lines = ["| trainings of | n | best epoch (UA %) | last epoch (UA %) | best ahead in "
             "| last ahead in | rule |", "|---|---|---|---|---|---|---|"]
    for name, ests in groups.items():
        if not ests:
            continue
        b = np.array([e.best for e in ests])
        la = np.array([e.last for e in ests])
        lines.append(f"| {name} | {len(ests)} | {100 * b.mean():.2f} | {100 * la.mean():.2f} "
                     f"| {int((b > la).sum())} | {int((la > b).sum())} | {chosen_rule(ests)} |")
    return "\n".join(lines)
