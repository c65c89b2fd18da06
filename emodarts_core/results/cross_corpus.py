"""Cross-corpus results: networks trained on one corpus, scored on another over the classes both
have, beside the same networks on their own test speakers over the same classes.

The evaluations are ``evaluate`` JSON files (:func:`emodarts_core.train.evaluate.run_evaluate`)
laid out as ``ROOT/<source>-to-<target>/<method>-seed<S>.json`` (cross-corpus) and
``ROOT/<source>-in-corpus/<method>-seed<S>.json`` (the source's own fold-0 test speakers).
:func:`load_evaluations` reads them, :func:`direction_table` tabulates a direction (mean ± std
over seeds, the in-corpus UA beside it, the fall, the chance level) and the reading rules
written in ``benchmarks/cross_corpus_plan.md`` before any run are :func:`method_verdict` and
:func:`chance_verdict`. :func:`summed_confusion` adds a method's confusion matrices over the seeds
for :func:`emodarts_core.results.plots.plot_confusion`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from emodarts_core.results.collect import _mean_std
from emodarts_core.train.metrics import confusion_recall

#: The methods of the cross-corpus batch and the run directory of each inside a fold's job.
METHOD_DIRS = {"emodarts": "train", "random": "baseline_random/final",
               "cnn_lstm": "baseline_cnn_lstm"}
METHOD_NAMES = {"emodarts": "searched (emodarts)", "random": "random search",
                "cnn_lstm": "CNN-LSTM"}
_NAME = re.compile(r"(?P<method>[a-z_]+)-seed(?P<seed>\d+)\.json")
_DIR = re.compile(r"(?P<source>[a-z_]+)-(?:to-(?P<target>[a-z_]+)|in-corpus)")

# The plan's reading rules (benchmarks/cross_corpus_plan.md, "How it will be read").
BETTER_BY_POINTS = 3.0          # a method is better when ahead on every seed and by > 3 points
BETTER_MIN_SEEDS = 3            # ... of the plan's 3 seeds: fewer shared seeds decide nothing
WELL_ABOVE_MEAN_POINTS = 10.0   # well above chance: mean >= chance + 10 points ...
WELL_ABOVE_SEED_POINTS = 5.0    # ... and every seed >= chance + 5 points
NEAR_CHANCE_POINTS = 5.0        # near chance: mean below chance + 5 points


@dataclass(frozen=True)
class Evaluation:
    """One network scored on one set of utterances (UA / WA as fractions)."""

    source: str
    target: str                 # the corpus scored; the source itself for in-corpus rows
    method: str
    seed: int
    ua: float
    wa: float
    chance_ua: float
    classes: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    recall: dict[str, float | None]
    n: int
    corpus: str = ""            # the corpus scored, as ``evaluate`` names it
    dropped: dict[str, Any] = field(default_factory=dict)   # ``evaluate``'s ``dropped``

    @property
    def in_corpus(self) -> bool:
        return self.source == self.target

    @property
    def direction(self) -> str:
        return f"{self.source} -> {self.target}"


def load_evaluations(root: str | Path) -> list[Evaluation]:
    """Every evaluation JSON below ``root`` (see the module docstring), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no cross-corpus evaluations at {root}")
    out = []
    for path in sorted(root.glob("*/*.json")):
        d, n = _DIR.fullmatch(path.parent.name), _NAME.fullmatch(path.name)
        if not d or not n:
            continue
        m = json.loads(path.read_text())
        out.append(Evaluation(
            source=d["source"], target=d["target"] or d["source"], method=n["method"],
            seed=int(n["seed"]), ua=float(m["ua"]), wa=float(m["wa"]),
            chance_ua=float(m.get("chance_ua", 1.0 / len(m["classes"]))),
            classes=tuple(m["classes"]), confusion=tuple(tuple(r) for r in m["confusion"]),
            recall=dict(m["per_class_recall"]), n=int(m["n"]),
            corpus=str(m.get("corpus", "")), dropped=dict(m.get("dropped") or {})))
    if not out:
        raise FileNotFoundError(f"no <source>-to-<target>/<method>-seed<S>.json files in {root}")
    return out


def _select(evals: Sequence[Evaluation], source: str, target: str, method: str
            ) -> dict[int, Evaluation]:
    return {e.seed: e for e in evals
            if e.source == source and e.target == target and e.method == method}


def _percent(values: Sequence[float]) -> str:
    """Fractions as ``"mean ± sample std"`` in percent (:func:`results.collect._mean_std`)."""
    mean, std = _mean_std([100 * v for v in values])
    return f"{mean:.2f} ± {std:.2f}"


def _recall(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class recall of a confusion matrix (0 for a class with no utterance) and row sums."""
    return np.nan_to_num(confusion_recall(cm)), cm.sum(axis=1)


def chance_verdict(uas: Sequence[float], chance: float) -> str:
    """"well above chance", "near chance" or "above chance" by the plan's rule (fractions)."""
    mean = float(np.mean(uas))
    if (mean >= chance + WELL_ABOVE_MEAN_POINTS / 100
            and min(uas) >= chance + WELL_ABOVE_SEED_POINTS / 100):
        return "well above chance"
    if mean < chance + NEAR_CHANCE_POINTS / 100:
        return "near chance"
    return "above chance"


def paired_verdict(a: dict[int, float], b: dict[int, float]) -> tuple[float, int, str]:
    """The plan's rule on two sets of UAs paired by seed: the mean difference A - B in points,
    the number of shared seeds, and ``"better"`` (A ahead on every seed and by more than 3
    points on average), ``"worse"`` (the reverse) or ``"n.d."`` (not distinguishable; always
    with fewer than :data:`BETTER_MIN_SEEDS` shared seeds)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return float("nan"), 0, "n.d."
    diff = [100 * (a[s] - b[s]) for s in seeds]
    mean = round(float(np.mean(diff)), 6) + 0.0      # no "-0.00" for a tie
    enough = len(seeds) >= BETTER_MIN_SEEDS
    if enough and all(d > 0 for d in diff) and mean > BETTER_BY_POINTS:
        return mean, len(seeds), "better"
    if enough and all(d < 0 for d in diff) and -mean > BETTER_BY_POINTS:
        return mean, len(seeds), "worse"
    return mean, len(seeds), "n.d."


def method_verdict(a: dict[int, float], b: dict[int, float], name_a: str, name_b: str) -> str:
    """The plan's rule in words (:func:`paired_verdict`): A is better than B when ahead on every
    shared seed and by more than 3 points on average; otherwise the two are not
    distinguishable on this evidence."""
    mean, n, word = paired_verdict(a, b)
    if not n:
        return f"{name_a} and {name_b} share no seed"
    if word == "better":
        return f"{name_a} better than {name_b} (+{mean:.2f} points, {n} seeds)"
    if word == "worse":
        return f"{name_b} better than {name_a} (+{-mean:.2f} points, {n} seeds)"
    return (f"{name_a} and {name_b} not distinguishable on this evidence "
            f"({mean:+.2f} points, {n} seeds)")


def _direction_rows(evals: Sequence[Evaluation], source: str, target: str
                    ) -> tuple[list[str], float]:
    """The table cells of one direction, per method: seeds, cross-corpus UA and WA, in-corpus
    UA, the fall and the verdict against chance (joined by `` | ``); and the chance UA."""
    rows, chance = [], None
    for method, name in METHOD_NAMES.items():
        cross = _select(evals, source, target, method)
        if not cross:
            continue
        own = _select(evals, source, source, method)
        chance = next(iter(cross.values())).chance_ua
        uas = [cross[s].ua for s in sorted(cross)]
        in_ua = [own[s].ua for s in sorted(own)]
        fall = (f"{100 * (np.mean(in_ua) - np.mean(uas)):.2f}" if in_ua else "–")
        rows.append(f"{name} | {len(uas)} | {_percent(uas)} | "
                    f"{_percent([cross[s].wa for s in sorted(cross)])} | "
                    f"{_percent(in_ua) if in_ua else '–'} | {fall} | "
                    f"{chance_verdict(uas, chance)}")
    if not rows:
        raise ValueError(f"no evaluation of direction {source} -> {target}")
    return rows, float(chance)


def direction_table(evals: Sequence[Evaluation], source: str, target: str) -> str:
    """One direction as a Markdown table: per method, cross-corpus UA and WA (mean ± std over
    seeds, %), the same networks' in-corpus UA over the same classes, the fall in points, and
    the plan's verdict against chance; the chance UA in the header."""
    rows, chance = _direction_rows(evals, source, target)
    head = (f"| method | seeds | UA % on {target} | WA % on {target} | UA % on {source}'s test "
            f"speakers | fall (points) | against chance ({100 * chance:.1f} % UA) |\n"
            "|---|---|---|---|---|---|---|")
    return head + "\n" + "\n".join(f"| {r} |" for r in rows)


def summary_table(evals: Sequence[Evaluation]) -> str:
    """Every direction in one Markdown table (:func:`direction_table`'s columns with the
    direction first; the chance UA, the same for every direction over the same classes, in
    each row's verdict column header)."""
    lines = []
    chances = set()
    for source, target in directions(evals):
        rows, chance = _direction_rows(evals, source, target)
        chances.add(round(100 * chance, 1))
        lines += [f"| {source} -> {target} | {r} |" for r in rows]
    if not lines:
        raise ValueError("no cross-corpus evaluation")
    chance_text = " / ".join(f"{c:.1f}" for c in sorted(chances))
    head = ("| direction | method | seeds | UA % on the target | WA % on the target | UA % on "
            "the source's test speakers | fall (points) | against chance "
            f"({chance_text} % UA) |\n|---|---|---|---|---|---|---|---|")
    return head + "\n" + "\n".join(lines)


def summed_confusion(evals: Sequence[Evaluation], source: str, target: str, method: str
                     ) -> dict[str, Any]:
    """A method's confusion matrices of one direction added over its seeds, as a metrics dict
    that :func:`emodarts_core.results.plots.plot_confusion` draws (``wa`` / ``ua`` of the sum)."""
    chosen = list(_select(evals, source, target, method).values())
    if not chosen:
        raise ValueError(f"no evaluation of {method} for {source} -> {target}")
    classes = chosen[0].classes
    if any(e.classes != classes for e in chosen):
        raise ValueError(f"{method} {source} -> {target}: the seeds scored different classes")
    cm = np.sum([np.asarray(e.confusion, dtype=int) for e in chosen], axis=0)
    recall, rows = _recall(cm)
    return {"confusion": cm.tolist(), "classes": list(classes), "seeds": len(chosen),
            "wa": float(np.trace(cm) / cm.sum()), "ua": float(recall[rows > 0].mean())}


def failure_summary(confusion: dict[str, Any]) -> str:
    """Where a summed confusion matrix fails, in words: the classes recalled least and the
    class each is most often taken for, and the classes predicted most often."""
    cm = np.asarray(confusion["confusion"], dtype=float)
    classes = confusion["classes"]
    recall, rows = _recall(cm)
    worst = [i for i in np.argsort(recall)[:2] if rows[i] > 0]
    parts = []
    for i in worst:
        off = cm[i].copy()
        off[i] = -1
        j = int(off.argmax())
        parts.append(f"{classes[i]} is recalled {100 * recall[i]:.1f} % of the time and most "
                     f"often taken for {classes[j]} ({100 * cm[i, j] / rows[i]:.1f} %)")
    predicted = cm.sum(axis=0)
    top = int(predicted.argmax())
    parts.append(f"{classes[top]} receives {100 * predicted[top] / cm.sum():.1f} % of all "
                 "predictions")
    return "; ".join(parts) + "."


# --------------------------------------------------------------------------- the book's chapter
def directions(evals: Sequence[Evaluation]) -> list[tuple[str, str]]:
    """The cross-corpus directions present, as ``(source, target)``, sorted."""
    return sorted({(e.source, e.target) for e in evals if not e.in_corpus})


def evaluations_source(root: str | Path):
    """A :class:`emodarts_core.data.source.DataSource` for an evaluation tree, for a notebook's
    data line: the corpora scored (``none`` when ``root`` holds no evaluation)."""
    from emodarts_core.data.source import DataSource

    try:
        evals = load_evaluations(root)
    except FileNotFoundError:
        return DataSource(corpus="none", root=str(root),
                          description=f"no cross-corpus evaluations at {root} in this build")
    corpora = sorted({e.corpus or e.target for e in evals})
    shown = ", ".join(f"{s} -> {t}" for s, t in directions(evals)) or "in-corpus only"
    return DataSource(corpus=",".join(corpora), root=str(root),
                      description=f"{len(evals)} evaluation files in {root} ({shown}; their "
                                  "JSON files, no audio is read here)")


def majority_wa(evaluation: Evaluation) -> float:
    """WA of always naming the scored set's largest class (a fraction)."""
    rows = np.asarray(evaluation.confusion).sum(axis=1)
    return float(rows.max() / rows.sum())


def scoring_summary(evals: Sequence[Evaluation], source: str, target: str) -> str:
    """What a direction scored, in words: utterances, classes, what was left out on each side
    (from ``evaluate``'s ``dropped``) and the chance levels."""
    cross = [e for e in evals if (e.source, e.target) == (source, target)]
    if not cross:
        raise ValueError(f"no evaluation of direction {source} -> {target}")
    e = cross[0]
    dropped = e.dropped
    text = (f"Every {source}-trained network is scored on {e.n} {target} utterances over "
            f"{len(e.classes)} classes ({', '.join(e.classes)}).")
    learnt = dropped.get("run_classes") or []
    if learnt:
        text += (f" What the networks learnt and {target} lacks ({', '.join(learnt)}) "
                 "is not allowed to win.")
    files = dropped.get("corpus_files") or {}
    if files:
        text += (f" {target}'s " + ", ".join(f"{c} ({n} files)" for c, n in files.items())
                 + (" has" if len(files) == 1 else " have") + " no counterpart in "
                 f"{source} and {'is' if len(files) == 1 else 'are'} left out.")
    text += (f" Chance: {100 * e.chance_ua:.1f} % UA for any constant or uniform guess, "
             f"{100 * majority_wa(e):.1f} % WA for always naming the largest class.")
    return text


def verdicts_markdown(evals: Sequence[Evaluation], source: str, target: str) -> str:
    """The plan's method rule for every pair of methods of a direction (paired by seed), as a
    Markdown list."""
    uas = {m: {s: e.ua for s, e in _select(evals, source, target, m).items()}
           for m in METHOD_NAMES}
    present = [m for m in METHOD_NAMES if uas[m]]
    lines = [f"- {method_verdict(uas[a], uas[b], METHOD_NAMES[a], METHOD_NAMES[b])}"
             for a, b in combinations(present, 2)]
    return "\n".join(lines) if lines else "- one method only: nothing to compare"


def recall_table(evals: Sequence[Evaluation], source: str, target: str) -> str:
    """Per-class recall of a direction, mean ± std over seeds (%), one row per method."""
    rows, classes = [], None
    for method, name in METHOD_NAMES.items():
        cross = _select(evals, source, target, method)
        if not cross:
            continue
        classes = classes or next(iter(cross.values())).classes
        cells = []
        for c in classes:
            values = [e.recall.get(c) for e in cross.values()]
            values = [v for v in values if v is not None]
            cells.append(_percent(values) if values else "–")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    if not rows:
        raise ValueError(f"no evaluation of direction {source} -> {target}")
    head = ("| method | " + " | ".join(classes) + " |\n|---|" + "---|" * len(classes))
    return head + "\n" + "\n".join(rows)


def direction_markdown(evals: Sequence[Evaluation], source: str, target: str) -> str:
    """A direction as the book presents it: what was scored, the table with chance and the
    in-corpus UA, the method verdicts and the per-class recall."""
    return "\n\n".join([
        scoring_summary(evals, source, target),
        direction_table(evals, source, target),
        "By the plan's rule (ahead on every seed and by more than "
        f"{BETTER_BY_POINTS:.0f} points on average):",
        verdicts_markdown(evals, source, target),
        "Per-class recall on the target corpus (%, mean ± std over seeds):",
        recall_table(evals, source, target)])


def confusion_reading(confusion: dict[str, Any], name: str, chance: float) -> str:
    """One or two sentences on a summed confusion matrix: its UA against chance, the class
    recalled best, then :func:`failure_summary`."""
    cm = np.asarray(confusion["confusion"], dtype=float)
    recall, rows = _recall(cm)
    best = int(np.argmax(np.where(rows > 0, recall, -1)))
    never = [c for c, n in zip(confusion["classes"], cm.sum(axis=0)) if n == 0]
    text = (f"{name}, {confusion['seeds']} seed(s) summed: UA {100 * confusion['ua']:.1f} % "
            f"against {100 * chance:.1f} % chance; {confusion['classes'][best]} is recalled "
            f"best ({100 * recall[best]:.1f} %). ")
    if never:
        text += f"Never predicted: {', '.join(never)}. "
    failures = failure_summary(confusion)
    return text + failures[0].upper() + failures[1:]


def plot_direction(evals: Sequence[Evaluation], source: str, target: str):
    """One figure per direction: each method's confusion matrix summed over its seeds, side
    by side (:func:`emodarts_core.results.plots.plot_confusion`), and the sentence under each
    (:func:`confusion_reading`). Returns ``(figure, sentences)``."""
    import matplotlib.pyplot as plt

    from emodarts_core.results.plots import plot_confusion

    methods = [m for m in METHOD_NAMES if _select(evals, source, target, m)]
    if not methods:
        raise ValueError(f"no evaluation of direction {source} -> {target}")
    fig, axes = plt.subplots(1, len(methods), figsize=(5.0 * len(methods), 4.6),
                             layout="constrained", squeeze=False)
    sentences = []
    for ax, method in zip(axes[0], methods):
        summed = summed_confusion(evals, source, target, method)
        chance = next(iter(_select(evals, source, target, method).values())).chance_ua
        plot_confusion(summed, ax=ax, title=f"{METHOD_NAMES[method]}\n"
                       f"UA {100 * summed['ua']:.1f} %, WA {100 * summed['wa']:.1f} %")
        sentences.append(confusion_reading(summed, METHOD_NAMES[method], chance))
    fig.suptitle(f"{source} -> {target}, confusion summed over seeds "
                 f"(chance UA {100 * chance:.1f} %)")
    return fig, sentences


# --------------------------------------------------------------------------- the secondary arms
#: The plan's arms (``benchmarks/cross_corpus_plan.md``, "Secondary arms"): the folder of each
#: under the records root and its name. ``speaker`` is the primary grid.
ARMS = {"speaker": "per speaker", "training": "training side", "corpus": "per corpus",
        "cut2s": "2-s cut"}
#: What each arm is compared with by the method rule: the normalisations with the paper's
#: (one mean and spread from the training side, the plan's "Normalisation" rule); the 2-s cut
#: with the same normalisation over the 4-s window.
ARM_REFERENCE = {"speaker": "training", "corpus": "training", "cut2s": "speaker"}


def load_arms(root: str | Path, primary: Sequence[Evaluation] | None = None
              ) -> dict[str, list[Evaluation]]:
    """The evaluations of every arm found under ``root`` (``root/<arm>/``, each laid out as
    :func:`load_evaluations` reads), in :data:`ARMS` order; arms without files are left out.
    ``primary``, when given, stands for the ``speaker`` arm (the chapter's main records)."""
    arms: dict[str, list[Evaluation]] = {}
    for arm in ARMS:
        if arm == "speaker" and primary is not None:
            if primary:
                arms[arm] = list(primary)
            continue
        try:
            arms[arm] = load_evaluations(Path(root) / arm)
        except FileNotFoundError:
            continue
    return arms


def _arm_directions(arms: dict[str, list[Evaluation]]) -> list[tuple[str, str]]:
    """The cross-corpus directions any arm has, sorted."""
    return sorted({d for evals in arms.values() for d in directions(evals)})


def _arm_uas(evals: Sequence[Evaluation], source: str, target: str, method: str
             ) -> dict[int, float]:
    return {s: e.ua for s, e in _select(evals, source, target, method).items()}


def arms_table(arms: dict[str, list[Evaluation]]) -> str:
    """Every direction and method of the arms as one Markdown table: per arm, the cross-corpus
    UA (mean ± std over seeds, %) and, in brackets, the same networks' in-corpus UA over the
    same classes (``–`` where an arm has no such network: the 2-s cut trains CNN-LSTMs only);
    then, for each arm against its reference (:data:`ARM_REFERENCE`), the mean paired
    difference in points and the plan's verdict (:func:`paired_verdict`)."""
    if not arms:
        raise ValueError("no arm has evaluations")
    names = list(arms)
    pairs = _arm_directions(arms)
    comparisons = [(a, r) for a, r in ARM_REFERENCE.items() if a in arms and r in arms]
    lines = []
    for source, target in pairs:
        for method, name in METHOD_NAMES.items():
            cells = []
            for arm in names:
                cross = _arm_uas(arms[arm], source, target, method)
                own = _arm_uas(arms[arm], source, source, method)
                if not cross:
                    cells.append("–")
                    continue
                cell = _percent([cross[s] for s in sorted(cross)])
                if own:
                    mean, _ = _mean_std([100 * v for v in own.values()])
                    cell += f" ({mean:.2f})"
                cells.append(cell)
            if all(c == "–" for c in cells):
                continue
            for arm, ref in comparisons:
                mean, n, word = paired_verdict(_arm_uas(arms[arm], source, target, method),
                                               _arm_uas(arms[ref], source, target, method))
                short = f", {n} seed{'s' if n > 1 else ''}" if n < BETTER_MIN_SEEDS else ""
                cells.append(f"{mean:+.2f} ({word}{short})" if n else "–")
            lines.append(f"| {source} -> {target} | {name} | " + " | ".join(cells) + " |")
    head = ("| direction | method | " + " | ".join(ARMS[a] for a in names)
            + "".join(f" | {ARMS[a]} − {ARMS[r]}" for a, r in comparisons) + " |\n|---|---|"
            + "---|" * (len(names) + len(comparisons)))
    return head + "\n" + "\n".join(lines)


def plot_arms(arms: dict[str, list[Evaluation]]):
    """One panel per direction: each method's cross-corpus UA per arm (bars: the mean over
    seeds; dots: the seeds), the chance UA as a line. Returns ``(figure, sentences)``, one
    sentence per direction naming its best and worst arm-and-method by mean UA."""
    import matplotlib.pyplot as plt

    pairs = _arm_directions(arms)
    if not pairs:
        raise ValueError("no arm has a cross-corpus evaluation")
    names = list(arms)
    fig, axes = plt.subplots(1, len(pairs), figsize=(6.2 * len(pairs), 4.2),
                             layout="constrained", squeeze=False, sharey=True)
    width = 0.8 / len(names)
    colours = plt.get_cmap("tab10").colors
    sentences = []
    for ax, (source, target) in zip(axes[0], pairs):
        means, chance, labelled = {}, None, set()
        for i, arm in enumerate(names):
            for j, method in enumerate(METHOD_NAMES):
                sel = _select(arms[arm], source, target, method)
                if not sel:
                    continue
                chance = next(iter(sel.values())).chance_ua
                uas = [100 * sel[s].ua for s in sorted(sel)]
                x = j + (i - (len(names) - 1) / 2) * width
                ax.bar(x, np.mean(uas), width * 0.9, color=colours[i % len(colours)],
                       label=None if arm in labelled else ARMS[arm], alpha=0.8)
                labelled.add(arm)
                ax.plot([x] * len(uas), uas, "o", color="black", markersize=3)
                means[(arm, method)] = float(np.mean(uas))
        ax.axhline(100 * chance, color="grey", linestyle="--", linewidth=1,
                   label=f"chance ({100 * chance:.1f} %)")
        ax.set_xticks(range(len(METHOD_NAMES)), list(METHOD_NAMES.values()))
        ax.set_title(f"{source} -> {target}")
        ax.set_ylabel("UA % on the target corpus")
        best, worst = max(means, key=means.get), min(means, key=means.get)
        sentences.append(
            f"{source} -> {target}: the highest mean UA is {means[best]:.1f} % "
            f"({METHOD_NAMES[best[1]]}, {ARMS[best[0]]}), the lowest {means[worst]:.1f} % "
            f"({METHOD_NAMES[worst[1]]}, {ARMS[worst[0]]}), against {100 * chance:.1f} % "
            "chance.")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:                  # arms a first panel lacks, once each
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9)
    fig.suptitle("Cross-corpus UA by normalisation and input length (bars: mean over seeds; "
                 "dots: seeds)")
    return fig, sentences
