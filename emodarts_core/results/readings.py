"""One or two sentences that say what a chapter's figure shows in the run at hand.

Every book figure is followed by a reading computed from the same data the figure was drawn
from, so the text stays true when the data, the profile or the search change. Each function
returns plain text (Markdown) with the numbers filled in; none of them draws anything.

- :func:`feature_stages_reading`: padding and the spread of the MFCC rows of the examples.
- :func:`agreement_reading`: how far our MFCC and torchaudio's are from librosa's.
- :func:`speaker_means_reading`: how much per-speaker normalisation removes.
- :func:`alpha_init_reading`: how uniform a supernet's weights are at initialisation.
- :func:`alpha_evolution_reading`: how far a search moved one cell type's weights.
- :func:`curves_reading`: losses and validation UA of a search against chance.
- :func:`collapse_reading`: skip connections and alpha entropy at the end of a search.
- :func:`genotype_reading`: what a derived cell kept.
- :func:`stability_reading`: how often searches agree on each node's operations.
- :func:`confusion_reading`: the best and worst recalls of a confusion matrix.
- :func:`results_reading`: each method's mean UA over a result table's rows, against chance.
- :func:`quality_reading`: whether a search's alphas committed (entropy, margin, flips).
- :func:`seed_agreement_reading`: how much searches differing only in their seed agree.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from emodarts_core.nas.genotype import CellGenotype, Genotype
from emodarts_core.results.plots import (edge_labels, history_alphas, load_history,
                                         resolve_primitives)
from emodarts_core.search.quality import (GATE_ENTROPY, chance_agreement,
                                          mean_pairwise_agreement,
                                          mean_pairwise_rank_correlation)

__all__ = ["feature_stages_reading", "agreement_reading", "speaker_means_reading",
           "alpha_init_reading", "alpha_evolution_reading", "curves_reading", "collapse_reading",
           "genotype_reading", "stability_reading", "confusion_reading", "results_reading",
           "quality_reading", "seed_agreement_reading"]

PARAMETER_FREE = ("none", "skip_connect", "max_pool_3x3", "avg_pool_3x3")


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _history(history: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    if isinstance(history, Mapping):
        return history

    return load_history(history)


# ---------------------------------------------------------------------------------------------
# Chapter 1
def feature_stages_reading(stages: Sequence[Any], duration_s: float) -> str:
    """``stages``: :class:`~emodarts_core.results.feature_plots.FeatureStages` of the drawn utterances."""
    if not stages:
        raise ValueError("feature_stages_reading: no utterances")
    rate = stages[0].cfg.sample_rate
    real = [st.n_real / rate for st in stages]
    padded = sum(st.n_real < len(st.wave) for st in stages)
    c0 = np.array([float(st.mfcc[0].mean()) for st in stages])
    rest = np.array([float(np.abs(st.mfcc[1:]).mean()) for st in stages])
    return (f"Of these {len(stages)} utterances, {padded} are shorter than the profile's "
            f"{duration_s:g} s and end in zero padding (real speech: {min(real):.2f} to "
            f"{max(real):.2f} s). Coefficient 0 averages {c0.mean():.0f} while the others average "
            f"{rest.mean():.1f} in absolute value, which is why each row of the MFCC image is "
            f"drawn standardised on its own.")


def agreement_reading(summary: Mapping[str, Mapping[str, float]], n: int) -> str:
    """``summary``: :meth:`~emodarts_core.results.feature_plots.Agreement.summary`; ``n`` utterances."""
    parts = [f"`{name}` {v['median']:.1e} (at most {v['max']:.1e})" for name, v in summary.items()]
    worst = max(v["max"] for v in summary.values())
    verdict = ("float32 rounding, not a different computation" if worst < 1e-3
               else "larger than rounding: the implementations do not compute the same thing")
    return (f"Median relative error against librosa over {n} utterances: " + "; ".join(parts)
            + f". Differences of this size are {verdict}; the right panel shows where they fall.")


def speaker_means_reading(spreads: Mapping[str, float]) -> str:
    """``spreads``: normalisation label -> mean spread of the speakers' means (as in the titles)."""
    if len(spreads) < 2:
        raise ValueError("speaker_means_reading: needs two normalisations to compare")
    (a, sa), (b, sb) = list(spreads.items())[:2]
    return (f"With {a}, the speakers' means of a coefficient differ by {sa:.3f} standard "
            f"deviations on average (visible as stripes); with {b}, by {sb:.3f}.")


# ---------------------------------------------------------------------------------------------
# Chapters 2 and 3
def alpha_init_reading(weights: Any) -> str:
    """``weights``: one cell's softmaxed (edges x ops) matrix at initialisation."""
    a = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=float)
    uniform = 1.0 / a.shape[1]
    return (f"All {a.size} weights lie between {a.min():.4f} and {a.max():.4f}, within "
            f"{np.abs(a - uniform).max():.1e} of 1/{a.shape[1]} = {uniform:.4f}: before the search, "
            f"no edge prefers any operation.")


def alpha_evolution_reading(history: Mapping[str, Any] | str | Path, cell: str) -> str:
    """How far the last epoch's weights of ``cell`` are from uniform, and which operation leads."""

    hist = _history(history)
    x, alphas = history_alphas(hist, cell)
    names = resolve_primitives(hist, cell, alphas.shape[2])
    last = alphas[-1]
    uniform = 1.0 / last.shape[1]
    edge, op = np.unravel_index(int(np.argmax(last)), last.shape)
    leaders = Counter(names[int(k)] for k in last.argmax(axis=1))
    top, count = leaders.most_common(1)[0]
    try:
        where = f"the edge {edge_labels(last.shape[0])[edge]}"   # as the panel is titled
    except ValueError:
        where = f"edge {edge}"
    return (f"After epoch {int(x[-1])}, the largest {cell}-cell weight is {last[edge, op]:.3f} "
            f"(`{names[op]}` on {where}) against a uniform {uniform:.3f}; `{top}` leads on "
            f"{count} of {last.shape[0]} edges. " + (
                "The lines have barely separated: this search has not yet decided this cell."
                if last.max() < 1.5 * uniform else
                "The edges whose lines have separated are where the search has a preference."))


def curves_reading(history: Mapping[str, Any] | str | Path, n_classes: int) -> str:
    """Training loss from first to last epoch and the best validation UA against chance."""
    hist = _history(history)
    epochs = hist["epochs"]
    if not epochs or n_classes < 1:
        raise ValueError("curves_reading: needs epochs and n_classes >= 1")
    chance = 1.0 / n_classes
    best = max(epochs, key=lambda e: e.get("valid_ua", -1.0))
    ua = float(best["valid_ua"])
    verdict = ("clearly above chance" if ua > chance + 0.1 else
               "above chance" if ua > chance + 0.03 else "at chance level")
    text = (f"Training loss went from {epochs[0]['train_loss']:.3f} to {epochs[-1]['train_loss']:.3f} "
            f"over {len(epochs)} epochs (chance level: ln {n_classes} = {math.log(n_classes):.3f}); "
            f"the best validation UA, {_pct(ua)} at epoch {best['epoch']}, is {verdict} "
            f"({_pct(chance)} for {n_classes} classes).")
    last = epochs[-1]
    if last is not best and "valid_loss" in last and "valid_loss" in epochs[0]:
        text += (f" At the last epoch the validation UA is {_pct(float(last['valid_ua']))} and the "
                 f"validation loss {'rose' if last['valid_loss'] > epochs[0]['valid_loss'] else 'fell'} "
                 f"from {epochs[0]['valid_loss']:.3f} to {last['valid_loss']:.3f}.")
    return text


def collapse_reading(history: Mapping[str, Any] | str | Path, max_skips: int | None = None) -> str:
    """Skip connections of the last derived cells and the fall of each cell type's entropy."""
    epochs = _history(history)["epochs"]
    last = epochs[-1]
    skips = last.get("skip_count", {})
    parts = []
    for cell, ent in last.get("alpha_entropy", {}).items():
        n_ops = np.shape(last["alphas"][cell])[-1] if cell in last.get("alphas", {}) else None
        first = epochs[0].get("alpha_entropy", {}).get(cell, ent)
        top = f" (uniform {math.log(n_ops):.4f})" if n_ops else ""
        parts.append(f"{cell} {first:.4f} to {ent:.4f}{top}")
    skip_text = ", ".join(f"{cell} {n}" for cell, n in skips.items())
    guard = ""
    if max_skips is not None and "normal" in skips:
        guard = (f"; the normal cell is {'at or past' if skips['normal'] >= max_skips else 'below'} "
                 f"the DARTS+ threshold of {max_skips}")
    return (f"At the last epoch the derived cells hold {skip_text or 'no'} `skip_connect` edges{guard}. "
            f"Mean edge entropy went from " + "; ".join(parts) + ".")


# ---------------------------------------------------------------------------------------------
# Chapter 4
def genotype_reading(cell: CellGenotype, kind: str) -> str:
    """How many edges a derived cell kept, and how many of them are parameter-free."""
    ops = [op for node in cell.nodes for op, _ in node]
    free = sum(op in PARAMETER_FREE for op in ops)
    common = Counter(ops).most_common(1)[0] if ops else ("none", 0)
    return (f"The {kind} cell keeps {len(ops)} edges over {cell.n_nodes} nodes; {free} of them "
            f"{'is' if free == 1 else 'are'} parameter-free (skips or pooling), and the most frequent operation is "
            f"`{common[0]}` ({common[1]} edges).")


def stability_reading(genotypes: Sequence[Genotype]) -> str:
    """Per cell type: the share of node-and-operation choices on which all searches agree."""
    if len(genotypes) < 2:
        return "Only one search: there is nothing to compare yet."
    parts = []
    for cell in ("normal", "reduce", "seq"):
        cells = [getattr(g, cell) for g in genotypes]
        chosen = [{(j, op) for j, node in enumerate(c.nodes) for op, _ in node} for c in cells]
        union = set().union(*chosen)
        agreed = set.intersection(*chosen)
        parts.append(f"{cell} {len(agreed)} of {len(union)}")
    return (f"Across {len(genotypes)} searches, the (node, operation) choices made by every search, "
            f"out of all choices made by any: " + ", ".join(parts)
            + ". The fewer the agreed choices, the more a single genotype owes to chance.")


# ---------------------------------------------------------------------------------------------
# Chapter 5
def confusion_reading(metrics: Mapping[str, Any] | str | Path) -> str:
    """The best- and worst-recognised classes and the most frequent confusion."""
    if not isinstance(metrics, Mapping):
        path = Path(metrics)
        metrics = json.loads((path / "metrics.json" if path.is_dir() else path).read_text())
    cm = np.asarray(metrics["confusion"], dtype=float)
    classes = list(metrics.get("classes") or range(cm.shape[0]))
    rows = cm.sum(axis=1, keepdims=True)
    recall = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    diag = np.diag(recall)
    off = recall - np.diag(diag)
    i, j = np.unravel_index(int(np.argmax(off)), off.shape)
    return (f"Best recognised: {classes[int(np.argmax(diag))]} ({_pct(diag.max())} recall); worst: "
            f"{classes[int(np.argmin(diag))]} ({_pct(diag.min())}). The most frequent confusion "
            f"puts {_pct(off[i, j])} of {classes[i]} into {classes[j]}; the UA is the mean of "
            f"the diagonal, {_pct(diag.mean())}.")


def results_reading(rows: Sequence[Any], n_classes: int) -> str:
    """Each method's mean test UA over ``rows`` (objects with ``method`` and ``ua``)."""
    if not rows:
        return "No finished runs were found under the output folder."
    by: dict[str, list[float]] = {}
    for r in rows:
        by.setdefault(r.method, []).append(float(r.ua))
    chance = 1.0 / n_classes
    parts = [f"`{m}` {_pct(float(np.mean(v)))} over {len(v)} run{'s' if len(v) > 1 else ''}"
             for m, v in sorted(by.items(), key=lambda kv: -np.mean(kv[1]))]
    return (f"Mean test UA: " + "; ".join(parts) + f" (chance: {_pct(chance)} for {n_classes} "
            f"classes).")


# ---------------------------------------------------------------------------------------------
# Does the search decide? (chapters 3 and 4)
def quality_reading(history: Mapping[str, Any] | str | Path) -> str:
    """The search-quality figure: final entropy per cell against the gate, the margin of the
    choice and how much the genotype still changed in the last epochs."""

    epochs = [e for e in _history(history)["epochs"] if isinstance(e.get("quality"), Mapping)]
    if not epochs:
        raise ValueError("quality_reading: the history has no search-quality records")
    last = epochs[-1]["quality"]
    ent = last["entropy_fraction"]
    mean = float(np.mean(list(ent.values())))
    flips = [e["quality"]["flip_rate"] for e in epochs[len(epochs) // 2:]
             if e["quality"]["flip_rate"] is not None]
    cells = ", ".join(f"{c} {_pct(v)}" for c, v in ent.items())
    verdict = (f"below the gate's {_pct(GATE_ENTROPY)}: the alphas have committed"
               if mean <= GATE_ENTROPY else
               f"above the gate's {_pct(GATE_ENTROPY)}: the alphas have not committed, so the "
               "derived genotype is close to a random pick")
    margin = float(np.mean(list(last["top2_margin"].values())))
    text = (f"After {len(epochs)} epochs the alphas' entropy is {cells} of uniform (mean "
            f"{_pct(mean)}), {verdict}. The chosen operations lead the runner-up by "
            f"{margin:.3f} of weight on average")
    if flips:
        text += (f", and over the second half of the search {_pct(float(np.mean(flips)))} of the "
                 "kept (edge, operation) pairs changed from one epoch to the next.")
    else:
        text += "."
    return text


def seed_agreement_reading(genotypes: Sequence[Genotype | Mapping[str, Any]], space: Any,
                           alphas: Sequence[Mapping[str, Any]] | None = None) -> str:
    """How much searches that differ only in their seed agree, against two random draws; with
    their final softmaxed ``alphas``, also how alike they rank each edge's operations
    (:func:`emodarts_core.search.quality.alpha_rank_correlation`, mean over pairs)."""

    if len(genotypes) < 2:
        raise ValueError("seed_agreement_reading needs at least two genotypes")
    parts = []
    for level, what in (("op", "(edge, operation) choices"), ("family", "operation families"),
                        ("edge", "edges")):
        parts.append(f"{_pct(mean_pairwise_agreement(genotypes, level=level))} of their {what} "
                     f"(two random draws: {_pct(chance_agreement(space, level=level))})")
    text = (f"The {len(genotypes)} searches that differ only in their seed share, pair by pair, "
            + "; ".join(parts) + ".")
    if alphas is not None:
        if len(alphas) != len(genotypes):
            raise ValueError("seed_agreement_reading: one alpha set per genotype")
        rho = mean_pairwise_rank_correlation(alphas)
        text += (f" They rank the operations of an edge with a Spearman correlation of "
                 f"{rho:.2f} on average (1: the same order everywhere; about 0: unrelated "
                 "preferences, so the choices differ by more than near-ties).")
    return text
