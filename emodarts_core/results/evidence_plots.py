"""The evidence chapter's figures (chapter 6): methods side by side, paired differences,
ensembles, the effects of single settings and the search gate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from emodarts_core.results.architecture_effect import ArchitectureScores
from emodarts_core.results.evidence_tables import (check_metric, ensemble_records, fold_means,
                                                   paired_jobs, setting_fold_pairs)
from emodarts_core.results.plots import new_figure
from emodarts_core.search.quality import GATE_AGREEMENT, GATE_ENTROPY


# ---------------------------------------------------------------------------------------------
# Batch results
def plot_method_comparison(rows: Sequence[Any], metric: str = "ua",
                           order: Sequence[str] | None = None) -> Figure:
    """Test UA (or WA) of every method in every job of a batch, as grouped bars.

    ``rows`` are :class:`emodarts_core.results.collect.ResultRow` s (``reproduce.collect``). One group
    of bars per job (corpus, fold, seed), one colour per method; a dashed line per method marks
    its mean over all jobs, so both the spread between seeds and the average are visible.
    ``order``: the methods' order in each group and in the legend (methods not in it follow);
    default ``emodarts`` first, then alphabetical.
    """
    check_metric(metric)
    if not rows:
        raise ValueError("plot_method_comparison: no result rows given")
    rank = {m: k for k, m in enumerate(order or ())}
    methods = sorted({r.method for r in rows},
                     key=lambda m: (rank.get(m, len(rank)), m != "emodarts", m))
    jobs = sorted({(r.corpus, r.fold, r.seed) for r in rows})
    value = {(r.corpus, r.fold, r.seed, r.method): 100 * getattr(r, metric) for r in rows}
    fig, axes = new_figure(size=(max(5.0, 1.3 * len(jobs) + 2), 4.0))
    ax = axes[0, 0]
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        xs = [j + (k - (len(methods) - 1) / 2) * width for j in range(len(jobs))]
        ys = [value.get((*job, method), np.nan) for job in jobs]
        bars = ax.bar(xs, ys, width=width, label=method)
        ax.axhline(np.nanmean(ys), color=bars.patches[0].get_facecolor(), linestyle="--", linewidth=1)
    ax.set_xticks(range(len(jobs)), [f"{c}\nfold {f}, seed {s}" for c, f, s in jobs], fontsize="small")
    ax.set(ylabel=f"test {metric.upper()} %", title=f"test {metric.upper()} per job (dashed: mean)")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))   # beside the bars
    return fig


def plot_paired_differences(rows: Sequence[Any], a: str, b: str, metric: str = "ua",
                            ax: Axes | None = None, title: str | None = None) -> Figure:
    """``a`` minus ``b`` per fold, one bar per fold, with each seed's own difference as a dot.

    ``rows`` are :class:`emodarts_core.results.collect.ResultRow` s. A bar is the fold's mean
    difference over the seeds both methods ran there (:func:`paired_folds`; the seeds of a fold
    share its test speakers, so the fold is the unit of the paired test): above zero a fold
    ``a`` won (blue), below zero one ``b`` won (orange). The dots, one marker per seed, are the
    jobs behind each bar, so a fold carried by one seed stands out from one every seed shows; a
    solid grey line marks the mean over the folds. ``ax``: draw into an existing axes (for
    panels side by side); the figure is returned either way.
    """
    jobs = paired_jobs(rows, a, b, metric)          # checks the metric
    if not jobs:
        raise ValueError(f"plot_paired_differences: no job with both {a!r} and {b!r}")
    folds = fold_means(jobs)
    keys = list(folds)                               # (corpus, fold), sorted
    diffs = np.array([folds[k][0] - folds[k][1] for k in keys])
    if ax is None:
        fig, axes = new_figure(size=(max(5.0, 0.7 * len(keys) + 2), 3.8))
        ax = axes[0, 0]
    else:
        fig = ax.figure
    xs = np.arange(len(keys))
    ax.bar(xs, diffs, color=np.where(diffs > 0, "tab:blue", "tab:orange"), alpha=0.8)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.axhline(diffs.mean(), color="0.5", linewidth=1.5, label=f"mean, {len(keys)} folds")
    markers = "osD^v<>pP*"
    for k, seed in enumerate(sorted({job[2] for job in jobs})):
        pts = [(keys.index(job[:2]), va - vb) for job, (va, vb) in jobs.items() if job[2] == seed]
        ax.scatter([x for x, _ in pts], [d for _, d in pts], s=18, color="black", zorder=3,
                   marker=markers[k % len(markers)], label=f"seed {seed}")
    several_corpora = len({c for c, _ in keys}) > 1
    ax.set_xticks(xs, [f"{c}\n{f}" if several_corpora else f"{f}" for c, f in keys],
                  fontsize="small")
    ax.set(xlabel="fold (bar: the mean over its seeds; dots: the seeds)",
           ylabel=f"{a} - {b}, test {metric.upper()} (points)")
    ax.set_title(title or f"{a} - {b} per fold")
    ax.legend(fontsize="small", loc="best")
    return fig


def plot_ensembles(root: str | Path, metric: str = "ua",
                   reference: tuple[float, str] | None = None) -> Figure:
    """Each ensemble next to its own members, one panel per method, one column per fold.

    ``root`` holds ``fold<k>/<method>.json`` evaluations written by ``evaluate`` with ``--run``
    repeated (:func:`emodarts_core.results.evidence_tables.ensemble_records`). Grey dots are the members alone,
    a short grey bar their mean, the coloured diamond the ensemble; across the folds a dotted
    grey line marks the members' overall mean and a dashed coloured line the ensembles'. An
    optional ``reference = (value in %, label)`` draws a horizontal line (a published figure,
    for instance) in every panel. The panels share their y axis.
    """
    check_metric(metric)
    recs = ensemble_records(root)
    methods = list(recs)
    fig, axes = new_figure(1, len(methods), size=(3.2, 3.8), sharey=True)
    for k, (ax, method) in enumerate(zip(axes[0], methods)):
        folds = sorted(recs[method])
        colour = f"C{k}"
        member_means, ensembles = [], []
        for x, fold in enumerate(folds):
            m = recs[method][fold]
            own = [100 * r[metric] for r in m["members"]]
            ax.scatter([x] * len(own), own, s=14, color="0.55", zorder=2,
                       label="members" if x == 0 else None)
            ax.hlines(np.mean(own), x - 0.25, x + 0.25, colors="0.4", linewidth=1.5, zorder=2)
            ax.scatter([x], [100 * m[metric]], s=60, marker="D", color=colour, zorder=3,
                       label="ensemble" if x == 0 else None)
            member_means.append(float(np.mean(own)))
            ensembles.append(100 * m[metric])
        ax.axhline(np.mean(member_means), color="0.5", linestyle=":", linewidth=1.2)
        ax.axhline(np.mean(ensembles), color=colour, linestyle="--", linewidth=1.2)
        if reference is not None:
            ax.axhline(reference[0], color="black", linewidth=0.8,
                       label=reference[1] if k == 0 else None)
        ax.set_xticks(range(len(folds)), [str(f) for f in folds])
        ax.set(title=method, xlabel="fold")
        if k == 0:
            ax.set_ylabel(f"test {metric.upper()} (%)")
            ax.legend(fontsize="small", loc="lower left")
    return fig


def plot_setting_effects(comparisons: Sequence[tuple[str, Sequence[Any], Sequence[Any]]],
                         methods: Sequence[str] = ("emodarts", "random"),
                         metric: str = "ua") -> Figure:
    """What each setting changed, fold by fold: one row per (setting, method) with a dot per fold
    at its paired difference after - before (points of test ``metric``, each fold the mean of
    the seeds both batches ran there: :func:`emodarts_core.results.evidence_tables.setting_fold_pairs`)
    and a black bar at the mean over the folds, beside a zero line. ``comparisons`` as for
    :func:`emodarts_core.results.evidence_tables.setting_effects`: ``(label, rows before, rows after)``."""
    check_metric(metric)
    entries = [(f"{label}: {method}", [b - a for a, b in pairs.values()])
               for label, before, after in comparisons for method in methods
               if (pairs := setting_fold_pairs(before, after, method, metric))]
    if not entries:
        raise ValueError("plot_setting_effects: no method ran in both batches of any comparison")
    fig, axes = new_figure(size=(7.5, 0.42 * len(entries) + 1.4))
    ax = axes[0, 0]
    for y, (label, diffs) in enumerate(entries):
        colour = f"C{methods.index(label.rsplit(': ', 1)[1]) % 10}"
        ax.scatter(diffs, np.full(len(diffs), y), s=14, color=colour, alpha=0.6)
        ax.plot([np.mean(diffs)] * 2, [y - 0.32, y + 0.32], color="black", linewidth=2)
    ax.axvline(0.0, color="0.4", linewidth=0.8)
    ax.set_yticks(range(len(entries)), [label for label, _ in entries], fontsize="small")
    ax.invert_yaxis()
    ax.set(xlabel=f"after - before, test {metric.upper()} (points; dots: folds, each the mean "
                  "of its seeds; bar: mean)")
    ax.set_title("What each setting changed, fold by fold")
    return fig


# ---------------------------------------------------------------------------------------------
# Search quality: the gate
def plot_gate(summaries: dict[str, Any]) -> Figure:
    """The search gate per setting and fold (``summaries`` from
    :func:`emodarts_core.search.quality.summarise_gate`). Left: cross-seed (edge, operation)
    agreement, one bar per fold, beside the chance level (dotted) and the gate's 0.4 (dashed).
    Right: the final alpha entropy as a fraction of uniform, one bar per fold, with the gate's
    0.75 (dashed); 1 means every operation weighted alike."""
    if not summaries:
        raise ValueError("plot_gate: no setting to draw")
    names = list(summaries)
    folds = sorted({f for s in summaries.values() for f in s.agreement_by_fold})
    fig, axes = new_figure(1, 2, size=(max(3.6, 0.8 * len(names) + 2.4), 3.6))
    width = 0.8 / len(folds)
    x = np.arange(len(names))
    panels = ((axes[0, 0], "agreement_by_fold", GATE_AGREEMENT, "(edge, op) agreement"),
              (axes[0, 1], "entropy_by_fold", GATE_ENTROPY, "entropy / uniform"))
    for ax, field, gate, label in panels:
        for k, fold in enumerate(folds):
            values = [getattr(summaries[n], field).get(fold, np.nan) for n in names]
            ax.bar(x + (k - (len(folds) - 1) / 2) * width, values, width, label=f"fold {fold}")
        ax.axhline(gate, color="black", linestyle="--", linewidth=1, label=f"gate {gate}")
        if field == "agreement_by_fold":
            chance = summaries[names[0]].chance
            ax.axhline(chance, color="grey", linestyle=":", linewidth=1.2,
                       label=f"chance {chance:.3f}")
        ax.set_xticks(x, names)
        ax.set_xlim(-0.9, len(names) - 0.1)
        ax.set_ylim(0, 1)
        ax.set_ylabel(label)
    axes[0, 0].set_title("seeds choose alike? (higher: better)", fontsize=10)
    axes[0, 1].set_title("alphas commit? (lower: better)", fontsize=10)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    return fig


# ---------------------------------------------------------------------------------------------
# Does the architecture matter?
def plot_architecture_effect(scores: ArchitectureScores) -> Figure:
    """Each genotype's trainings (``scores`` from
    :func:`emodarts_core.results.architecture_effect.load_architecture_scores`): one column per
    genotype, sorted by its mean validation UA, a dot per seed and a bar at the mean; random
    genotypes blue, searched ones orange. Left the validation UA random search ranks by, right
    the test UA. Where the columns' dots overlap from one genotype to the next, the seed moves
    a score as much as the architecture does."""
    genos = sorted(scores.genotypes, key=lambda g: np.mean(g.valid_ua))
    if not genos:
        raise ValueError("plot_architecture_effect: no finished training to draw")
    fig, axes = new_figure(1, 2, size=(max(3.6, 0.35 * len(genos) + 2.0), 3.6), sharey=True)
    colours = {"random": "tab:blue", "searched": "tab:orange"}
    for ax, metric, title in ((axes[0, 0], "valid_ua", "validation UA (best epoch)"),
                              (axes[0, 1], "test_ua", "test UA")):
        for x, g in enumerate(genos):
            values = 100 * np.asarray(g.scores(metric))
            colour = colours.get(g.kind, "grey")
            ax.scatter(np.full(len(values), x), values, s=16, color=colour, alpha=0.75,
                       zorder=3)
            ax.hlines(values.mean(), x - 0.35, x + 0.35, color=colour, linewidth=2)
        ax.set_xticks(range(len(genos)), [g.name for g in genos], rotation=90, fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel("UA % after the brief training")
    for kind, colour in colours.items():
        if any(g.kind == kind for g in genos):
            axes[0, 0].scatter([], [], color=colour, s=16, label=f"{kind} genotype")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{scores.corpus} fold {scores.fold}: genotypes x seeds, "
                 f"{scores.epochs} epochs each", fontsize=10)
    return fig
