"""The evidence chapter's statistics and tables (chapter 6 and its appendix): paired tests,
head-to-head counts, per-seed and per-setting tables, ensembles, provenance and compute.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from emodarts_core.results.collect import _mean_std, inside_another_run, method_of, summarize
from emodarts_core.results.report import CELLS, as_genotype, cell_text


def paired_p_value(differences: Sequence[float]) -> float:
    """Two-sided p-value of the exact sign-flip permutation test for paired differences.

    Under the null hypothesis that neither method is better, each pair's difference is as likely
    to have either sign; the p-value is the share of all ``2**n`` sign assignments whose mean is
    at least as far from zero as the observed mean (scipy's exact paired permutation test).
    Needs at least two differences, which must be independent: pass one per fold
    (:func:`paired_folds`), not one per job, when seeds share a fold's test speakers.
    """
    import numpy as np
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    if d.size < 2:
        raise ValueError(f"paired_p_value: need at least 2 paired differences, got {d.size}")
    result = stats.permutation_test((d, np.zeros_like(d)),
                                    lambda x, y, axis: np.mean(x - y, axis=axis), vectorized=True,
                                    permutation_type="samples", n_resamples=np.inf,
                                    alternative="two-sided")
    return float(result.pvalue)


def format_p(p: float) -> str:
    """A p-value for the tables: three decimals, or two significant digits below 0.001 (twelve
    differences of one sign give 2 / 4096 = 0.00049, which three decimals would print as 0.000)."""
    return f"{p:.3f}" if p >= 0.001 else f"{p:.2g}"


def head_to_head(rows: Sequence[Any], a: str, b: str, metric: str = "ua") -> str:
    """How ``a`` compared with ``b`` over the folds where both methods have a result
    (:class:`emodarts_core.results.collect.ResultRow` s), each fold the mean of the seeds both ran
    there (:func:`paired_folds`): ``"<a> beat <b> on test UA in k of n folds (each fold the mean
    of its 3 seeds; ahead in j of m jobs)"``, and from two folds on the mean ± sample std of the
    paired difference ``a - b`` in percentage points with the p-value of :func:`paired_p_value`
    over the folds. The seeds of a fold share its test speakers, so the fold is the unit of the
    test; the job count is descriptive only. With a handful of folds a large p says the batch
    cannot tell the two methods apart, not that they are equal.
    """
    jobs = paired_jobs(rows, a, b, metric)
    folds = fold_means(jobs)
    wins = sum(va > vb for va, vb in folds.values())
    text = f"{a} beat {b} on test {metric.upper()} in {wins} of {len(folds)} folds"
    if folds:
        text += (f" ({_fold_unit(jobs)}; ahead in {sum(va > vb for va, vb in jobs.values())} "
                 f"of {len(jobs)} jobs)")
    if len(folds) >= 2:
        diffs = [va - vb for va, vb in folds.values()]
        text += (f"; paired difference {_mean_pm_std(diffs, signed=True)} points, two-sided p = "
                 f"{format_p(paired_p_value(diffs))} (exact sign-flip test over the "
                 f"{len(folds)} folds)")
    return text


def check_metric(metric: str) -> None:
    """Raise ``ValueError`` unless ``metric`` is one the result rows hold (``"ua"`` or ``"wa"``)."""
    if metric not in ("ua", "wa"):
        raise ValueError(f"metric must be 'ua' or 'wa', got {metric!r}")


def paired_jobs(rows: Sequence[Any], a: str, b: str,
                metric: str = "ua") -> dict[tuple[str, int, int], tuple[float, float]]:
    """``{(corpus, fold, seed): (a's value, b's value)}`` in percent, for the jobs where both
    methods have a result, sorted by job."""
    check_metric(metric)
    by_job: dict[tuple[str, int, int], dict[str, float]] = {}
    for r in rows:
        by_job.setdefault((r.corpus, r.fold, r.seed), {})[r.method] = 100 * getattr(r, metric)
    return {job: (v[a], v[b]) for job, v in sorted(by_job.items()) if a in v and b in v}


def fold_means(jobs: Mapping[tuple[str, int, int], tuple[float, float]]
               ) -> dict[tuple[str, int], tuple[float, float]]:
    """``{(corpus, fold): (mean of the first values, mean of the second)}`` over the seeds of each
    fold in ``jobs`` (as :func:`paired_jobs` or :func:`setting_pairs` give them), sorted by fold.

    The seeds of a fold are tested on the same speakers, so they are not independent samples:
    the fold is the unit of a paired test, and a fold where only some seeds have both values
    takes the mean over those seeds."""
    by_fold: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for (corpus, fold, _), pair in sorted(jobs.items()):
        by_fold.setdefault((corpus, fold), []).append(pair)
    return {key: (sum(x for x, _ in pairs) / len(pairs), sum(y for _, y in pairs) / len(pairs))
            for key, pairs in by_fold.items()}


def paired_folds(rows: Sequence[Any], a: str, b: str,
                 metric: str = "ua") -> dict[tuple[str, int], tuple[float, float]]:
    """``{(corpus, fold): (a's mean, b's mean)}`` in percent, each over the seeds of that fold
    that both methods ran (:func:`paired_jobs`, then :func:`fold_means`), sorted by fold."""
    return fold_means(paired_jobs(rows, a, b, metric))


def _fold_unit(jobs: Mapping[tuple[str, int, int], Any]) -> str:
    """How many seeds make each fold's mean in ``jobs``: ``"each fold the mean of its 3 seeds"``,
    or the range where folds differ."""
    counts = sorted(Counter((corpus, fold) for corpus, fold, _ in jobs).values())
    if not counts:
        return "no fold"
    if counts[0] == counts[-1]:
        return f"each fold the mean of its {counts[0]} seed{'s' if counts[0] > 1 else ''}"
    return f"each fold the mean of the {counts[0]}-{counts[-1]} seeds both ran there"


def seed_table(rows: Sequence[Any], a: str, b: str, metric: str = "ua") -> str:
    """``a`` against ``b`` seed by seed, then over the fold means (Markdown).

    Per seed, over the folds where both methods ran it (within one seed the folds are
    independent, each tested on its own speakers): each method's mean ± std, the paired
    difference ``a - b`` in points, in how many folds ``a`` was ahead and the sign-flip p-value
    (:func:`paired_p_value`, from two folds on). Then, with more than one seed, the row "fold
    means": the same over the folds, each fold the mean of the seeds both methods ran there
    (:func:`paired_folds`); the seeds of a fold share its test speakers, so pooling their jobs
    as independent would overstate the evidence. A seed changes every random draw of a job
    (the search's or random search's samples, the initial weights, the batches), so a gap that
    holds for one seed and not another is the seed's, not the method's."""
    both = paired_jobs(rows, a, b, metric)
    if not both:
        return f"(no job with both {a} and {b})"
    M = metric.upper()
    lines = [f"| seed | folds | {a} {M} % | {b} {M} % | {a} - {b} (points) | {a} ahead in "
             "(folds) | sign-flip p |", "|---|---|---|---|---|---|---|"]
    groups = {f"{seed}": [v for job, v in both.items() if job[2] == seed]
              for seed in sorted({job[2] for job in both})}
    if len(groups) > 1:
        groups["fold means"] = list(fold_means(both).values())
    for label, pairs in groups.items():
        diffs = [va - vb for va, vb in pairs]
        lines.append(f"| {label} | {len(pairs)} | "
                     f"{_paired_cells([va for va, _ in pairs], [vb for _, vb in pairs], diffs)} |")
    return "\n".join(lines)


def _paired_cells(left: Sequence[float], right: Sequence[float], diffs: Sequence[float]) -> str:
    """Table cells of a paired comparison: both sides' mean ± std, the differences' mean ± std,
    how many differences are positive and the sign-flip p-value (from two pairs on)."""
    p = format_p(paired_p_value(diffs)) if len(diffs) >= 2 else "–"
    return (f"{_mean_pm_std(left)} | {_mean_pm_std(right)} | {_mean_pm_std(diffs, signed=True)} | "
            f"{sum(d > 0 for d in diffs)} of {len(diffs)} | {p}")


def _mean_pm_std(values: Sequence[float], signed: bool = False) -> str:
    """``"mean ± sample std"`` with two decimals; just the mean for a single value."""

    mean, std = _mean_std(values)
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return text if len(values) < 2 else f"{text} ± {std:.2f}"


def variant_table(variants: Mapping[str, Sequence[Any]], method: str = "emodarts",
                  metric: str = "ua", common_only: bool = False) -> str:
    """One method's test results under several settings (variants), job by job (Markdown).

    ``variants`` maps a label to the :class:`emodarts_core.results.collect.ResultRow` s of one batch
    (for example the default batch and a batch with another ``--set``); the first label is the
    baseline. One row per job (corpus, fold, seed) found in any variant, one column per variant
    (``–`` where that variant has no finished run); then per variant its mean ± sample std over
    its jobs and, over the jobs it shares with the baseline, how many folds (and jobs) they
    cover, the baseline's mean on those jobs (the fair comparison when a variant ran only some
    of them), and over those folds, each the mean of its shared seeds (:func:`fold_means`), the
    paired difference and the sign-flip p-value of :func:`paired_p_value` (from two common
    folds on; the seeds of a fold share its test speakers, so the fold is the unit). With
    ``common_only`` only the jobs every variant ran are listed and averaged (for a variant run
    again on some of a larger batch's jobs).
    """
    if not variants:
        raise ValueError("variant_table: no variants given")
    labels = list(variants)
    values: dict[str, dict[tuple[str, int, int], float]] = {
        label: {(r.corpus, r.fold, r.seed): 100 * getattr(r, metric)
                for r in rows if r.method == method}
        for label, rows in variants.items()}
    if common_only:
        common = set.intersection(*(set(v) for v in values.values()))
        values = {label: {job: v[job] for job in common} for label, v in values.items()}
    jobs = sorted(set().union(*(v.keys() for v in values.values())))
    if not jobs:
        return (f"(no {method} job that every variant ran)" if common_only
                else f"(no finished {method} runs in any variant)")
    M = metric.upper()
    lines = ["| corpus | fold | seed | " + " | ".join(f"{label}: {M} %" for label in labels) + " |",
             "|" + "---|" * (3 + len(labels))]
    for job in jobs:
        cells = [f"{values[label][job]:.2f}" if job in values[label] else "–" for label in labels]
        lines.append(f"| {job[0]} | {job[1]} | {job[2]} | " + " | ".join(cells) + " |")
    lines += ["", f"| variant | jobs | {M} % (mean ± std) | folds (jobs) in common with "
                  f"{labels[0]} | {labels[0]} on those jobs | paired difference over the folds "
                  "(points, mean ± std) | sign-flip p (folds) |",
              "|---|---|---|---|---|---|---|"]
    base = values[labels[0]]
    for label in labels:
        own = list(values[label].values())
        if not own:
            lines.append(f"| {label} | 0 | – | – | – | – | – |")
            continue
        common = [job for job in values[label] if job in base]
        n_common = base_mean = diff = p = "–"
        if label != labels[0]:
            folds = fold_means({job: (base[job], values[label][job]) for job in common})
            n_common = f"{len(folds)} ({len(common)})"
            if common:
                d = [after - before for before, after in folds.values()]
                base_mean = _mean_pm_std([base[job] for job in common])
                diff = _mean_pm_std(d, signed=True)
                p = format_p(paired_p_value(d)) if len(d) >= 2 else "–"
        lines.append(f"| {label} | {len(own)} | {_mean_pm_std(own)} | {n_common} | {base_mean} | "
                     f"{diff} | {p} |")
    return "\n".join(lines)


def setting_comparison(before: Sequence[Any], after: Sequence[Any],
                       labels: tuple[str, str] = ("before", "after"), metric: str = "ua",
                       reference: str = "emodarts") -> str:
    """One setting changed on the same jobs, every method alike (Markdown): per method of
    ``after``, :func:`variant_table` of the two batches on the jobs both ran, then under the new
    setting ``reference`` against every other method (:func:`head_to_head`)."""
    parts = []
    for method in sorted({r.method for r in after}):
        parts += [f"**{method}**: test {metric.upper()} %, {labels[0]} and {labels[1]}",
                  variant_table({labels[0]: before, labels[1]: after}, method=method,
                                metric=metric, common_only=True)]
    parts += [f"{labels[1]}: " + head_to_head(after, reference, other, metric=metric)
              for other in sorted({r.method for r in after} - {reference})]
    return "\n\n".join(parts)


def variant_rows(variants: Mapping[str, Sequence[Any]], method: str = "emodarts") -> list[Any]:
    """The ``method`` rows of every variant with the variant's label as their method, for
    :func:`emodarts_core.results.evidence_plots.plot_method_comparison`; only jobs that at least two variants
    ran, so that every bar group (and every dashed mean) compares like with like."""

    rows = [replace(r, method=label) for label, rs in variants.items() for r in rs if r.method == method]
    count = Counter((r.corpus, r.fold, r.seed) for r in rows)
    return [r for r in rows if count[(r.corpus, r.fold, r.seed)] >= 2]


def ensemble_records(root: str | Path) -> dict[str, dict[int, dict[str, Any]]]:
    """``{method: {fold: metrics}}`` of the ensemble evaluations under ``root``, laid out as
    ``<root>/fold<k>/<method>.json`` (each written by ``evaluate`` with ``--run`` repeated);
    emodarts first, random search next, then the other methods by name."""

    out: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted(Path(root).glob("fold*/*.json")):
        match = re.fullmatch(r"fold(\d+)", path.parent.name)
        if match is None:
            continue
        m = json.loads(path.read_text())
        if "members" not in m:
            raise ValueError(f"{path} is not an evaluation with members (written by evaluate)")
        out.setdefault(path.stem, {})[int(match.group(1))] = m
    if not out:
        raise FileNotFoundError(f"no <fold>/<method>.json evaluations under {root}")
    first = {"emodarts": 0, "random": 1}                    # the searched method, then its rival
    return {m: out[m] for m in sorted(out, key=lambda m: (first.get(m, 2), m))}


def ensemble_table(root: str | Path, metric: str = "ua", reference: str = "emodarts",
                   other: str = "random", per_fold: bool = True) -> str:
    """Ensembles against their own members, fold by fold, then per method (Markdown).

    For each ensemble under ``root`` (:func:`ensemble_records`): its members' own test values
    on the same utterances, their mean, the ensemble's value and the gain over that mean. Then
    per method, over the folds: the members' mean and the ensemble's (mean ± sample std), the
    paired gain with the number of folds where the ensemble was ahead and the sign-flip p-value
    (:func:`paired_p_value`, from two folds on); last, ``reference``'s ensemble against
    ``other``'s fold by fold, when both exist. ``per_fold=False`` leaves out the first table."""
    check_metric(metric)
    recs = ensemble_records(root)
    M = metric.upper()
    lines = [f"| fold | method | members' {M} % | members' mean | ensemble {M} % | gain (points) |",
             "|---|---|---|---|---|---|"]
    summary = {}
    for method, folds in recs.items():
        rows = []
        for fold, m in sorted(folds.items()):
            own = [100 * x[metric] for x in m["members"]]
            mean, ens = sum(own) / len(own), 100 * m[metric]
            rows.append((mean, ens))
            lines.append(f"| {fold} | {method} | {' / '.join(f'{v:.2f}' for v in own)} | "
                         f"{mean:.2f} | {ens:.2f} | {ens - mean:+.2f} |")
        summary[method] = rows
    lines = (lines + [""] if per_fold else []) + [
        f"| method | folds | members' mean {M} % | ensemble {M} % | gain (points) | "
        "ensemble ahead in | sign-flip p |", "|---|---|---|---|---|---|---|"]
    for method, rows in summary.items():
        gains = [e - m for m, e in rows]
        lines.append(f"| {method} | {len(rows)} | "
                     f"{_paired_cells([m for m, _ in rows], [e for _, e in rows], gains)} |")
    if reference in recs and other in recs:
        common = sorted(set(recs[reference]) & set(recs[other]))
        d = [100 * (recs[reference][f][metric] - recs[other][f][metric]) for f in common]
        text = (f"{reference}'s ensemble beat {other}'s on test {M} in "
                f"{sum(x > 0 for x in d)} of {len(d)} folds")
        if len(d) >= 2:
            text += (f"; paired difference {_mean_pm_std(d, signed=True)} points, two-sided p = "
                     f"{format_p(paired_p_value(d))}")
        lines += ["", text]
    return "\n".join(lines)


def alpha_decisiveness(histories: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> str:
    """How far each search's alphas moved from uniform by its last epoch, per cell type.

    For each search (a ``history.json`` dict) and cell: the alpha entropy as a share of the
    uniform distribution's (100 % = the alphas never moved), and the mean over edges of the gap
    between the strongest and the second-strongest softmax weight (0 = a tie: the derived op is
    decided by a hair), beside the uniform weight ``1 / n_ops`` for scale.
    """

    if len(labels) != len(histories):
        raise ValueError(f"alpha_decisiveness: {len(labels)} labels for {len(histories)} histories")
    lines = ["| search | cell | epochs | entropy / uniform | mean top-1 − top-2 weight | 1 / n_ops |",
             "|---|---|---|---|---|---|"]
    for label, history in zip(labels, histories):
        epochs = [e for e in history.get("epochs", []) if isinstance(e.get("alphas"), Mapping)]
        if not epochs:
            raise ValueError(f"alpha_decisiveness: {label} has no alphas in its history "
                             f"(is it a search run?)")
        last = epochs[-1]
        for c in CELLS:
            rows = last["alphas"].get(c)
            if not rows:
                continue
            n_ops = len(rows[0])
            entropy = -sum(w * math.log(w) for row in rows for w in row if w > 0) / len(rows)
            gaps = [sorted(row)[-1] - sorted(row)[-2] for row in rows]
            lines.append(f"| {label} | {c} | {len(epochs)} | {100 * entropy / math.log(n_ops):.3f} % "
                         f"| {sum(gaps) / len(gaps):.4f} | {1 / n_ops:.4f} |")
    return "\n".join(lines)


def selection_table(rows: Sequence[Any], metric: str = "ua") -> str:
    """Test ``metric`` of every method under both epoch rules of the final training (Markdown).

    Each training reports in its ``metrics.json`` the test figures of the best-validation epoch
    ("best") and of the last epoch ("last"), whichever rule it was configured with
    (``TrainConfig.select``). Per method, over its runs (:class:`~emodarts_core.results.collect.ResultRow`
    s) that hold both: the mean ± sample std of each rule over the runs, the mean epoch the best
    rule kept, and over the folds, each the mean of its runs (:func:`fold_means`; the seeds of a
    fold share its test speakers), the paired difference last - best in points with the
    sign-flip p-value of :func:`paired_p_value` (from two folds on). Runs written before both
    were recorded are left out and counted.
    """

    by_method: dict[str, dict[tuple[str, int, int], dict[str, Any]]] = {}
    missing = 0
    for r in rows:
        metrics = json.loads((Path(r.run_dir) / "metrics.json").read_text())
        both = metrics.get("test_by_selection")
        if not both:
            missing += 1
            continue
        by_method.setdefault(r.method, {})[(r.corpus, r.fold, r.seed)] = both
    lines = [f"| method | runs (folds) | best-validation epoch: test {metric.upper()} % | its epoch "
             f"(mean) | last epoch: test {metric.upper()} % | last - best (points, over folds) "
             "| p (folds) |", "|---|---|---|---|---|---|---|"]
    for method in sorted(by_method):
        runs = by_method[method]
        best = [100 * b["best"][metric] for b in runs.values()]
        last = [100 * b["last"][metric] for b in runs.values()]
        epochs = sum(b["best"]["epoch"] for b in runs.values()) / len(runs)
        folds = fold_means({job: (100 * b["best"][metric], 100 * b["last"][metric])
                            for job, b in runs.items()})
        diffs = [y - x for x, y in folds.values()]
        p = format_p(paired_p_value(diffs)) if len(diffs) >= 2 else "–"
        lines.append(f"| {method} | {len(runs)} ({len(folds)}) | {_mean_pm_std(best)} | "
                     f"{epochs:.1f} | {_mean_pm_std(last)} | {_mean_pm_std(diffs, signed=True)} "
                     f"| {p} |")
    if missing:
        lines.append(f"\n{missing} run(s) without both rules' figures (written before they were "
                     f"recorded) are left out.")
    return "\n".join(lines)


def random_search_table(run_dir: str | Path) -> str:
    """The candidates of a random-search baseline run (its ``candidates.json``): each sampled
    genotype's best validation UA in its brief training, and which one was kept."""

    path = Path(run_dir) / "candidates.json"
    if not path.exists():
        raise ValueError(f"random_search_table: {path} not found (is {run_dir} a random-search run?)")
    data = json.loads(path.read_text())
    lines = ["| candidate | brief epochs | best epoch | validation UA % | normal cell | kept |",
             "|---|---|---|---|---|---|"]
    for c in data["candidates"]:
        normal = cell_text(as_genotype(c["genotype"]).normal)
        lines.append(f"| {c['index']} | {c.get('brief_epochs', data.get('brief_epochs', '–'))} "
                     f"| {c.get('best_epoch', '–')} | {100 * c['valid_ua']:.2f} | {normal} "
                     f"| {'yes' if c['index'] == data['best_index'] else ''} |")
    budget = data.get("budget")
    if budget and budget.get("search"):
        search, spent = budget["search"], budget["spent"]
        steps = (f"; steps: {spent['steps']} against the search's {search['steps']}"
                 if search.get("steps") is not None else "")
        lines.append(f"\nBudget: the search's {budget['unit']} ({budget['limit']:.0f}); spent "
                     f"{spent['seconds']:.0f} s against the search's {search['seconds']:.0f} s"
                     f"{steps}.")
    elif budget:
        lines.append(f"\nBudget: a fixed k = {len(data['candidates'])} candidates.")
    return "\n".join(lines)


def provenance_table(root: str | Path) -> str:
    """Where the runs below ``root`` came from: one row per run directory (its ``config.json``
    and ``environment.json``), with the run kind, the library's git commit, torch and the start
    time. Runs kept inside another run (random search's candidates) are left out."""


    root = Path(root)
    lines = ["| run | kind | git commit | emodarts_core | torch | device | started |",
             "|---|---|---|---|---|---|---|"]
    for env_path in sorted(root.rglob("environment.json")):
        run = env_path.parent
        if inside_another_run(run, root):
            continue
        env = json.loads(env_path.read_text())
        config_path = run / "config.json"
        kind = json.loads(config_path.read_text()).get("kind", "?") if config_path.exists() else "?"
        commit = (env.get("git_commit") or "")[:9] or "–"
        lines.append(f"| {run.relative_to(root).as_posix()} | {kind} | {commit} "
                     f"| {env.get('emodarts_core', '–')} | {env.get('torch', '–')} "
                     f"| {env.get('device_name', env.get('device', '–'))} "
                     f"| {env.get('start_time', '–')} |")
    if len(lines) == 2:
        raise ValueError(f"provenance_table: no run directories below {root}")
    return "\n".join(lines)


def _history_seconds(path: Path) -> float:

    epochs = json.loads(path.read_text()).get("epochs", [])
    if any("seconds" not in e for e in epochs):
        raise ValueError(f"compute_table: {path} has epochs without 'seconds'")
    return float(sum(e["seconds"] for e in epochs))


def compute_table(root: str | Path) -> str:
    """What each method of a batch cost: wall minutes per job, summed from the ``seconds`` that
    every epoch of every run records in its ``history.json`` (steps and the epoch's evaluation).

    emodarts = its search + the final training of its genotype; a baseline = its own training, or
    for random search its brief candidate trainings + the final training. The minutes are wall
    time as the jobs ran, so they compare methods fairly only where the jobs shared the machine
    alike (as the methods of one job, run one after another, roughly do). A run without its
    ``metrics.json`` is marked unfinished and left out of the last line, the mean total per
    method."""


    root = Path(root)
    per: dict[tuple[str, str], dict[str, float]] = {}
    unfinished: set[tuple[str, str]] = set()
    for cfg_path in sorted(root.rglob("config.json")):
        run = cfg_path.parent
        if inside_another_run(run, root):
            continue
        cfg = json.loads(cfg_path.read_text())
        kind = cfg.get("kind")
        method = "emodarts" if kind == "search" else method_of(cfg)
        if method is None:
            continue
        key = (run.parent.relative_to(root).as_posix(), method)
        parts = per.setdefault(key, {})
        if not (run / "metrics.json").exists():      # still running, or stopped before the end
            unfinished.add(key)
        for hist in sorted(run.rglob("history.json")):
            below = hist.parent.relative_to(run).parts
            if kind == "search":
                part = "search"
            elif kind == "train":
                part = "final training"
            elif not below:                          # a baseline's own training
                part = "training"
            elif below[0] == "candidates":
                part = "brief trainings"
            elif below[0] == "tuning":
                part = "tuning"
            else:
                part = "final training"
            parts[part] = parts.get(part, 0.0) + _history_seconds(hist)
    if not per:
        raise ValueError(f"compute_table: no search, training or baseline runs below {root}")
    unfinished |= {k for k, parts in per.items()          # a search whose genotype is untrained
                   if k[1] == "emodarts" and "final training" not in parts}
    order = ("search", "brief trainings", "tuning", "training", "final training")
    lines = ["| job | method | parts (minutes) | total minutes |", "|---|---|---|---|"]
    totals: dict[str, list[float]] = {}
    for (job, method), parts in sorted(per.items()):
        total = sum(parts.values()) / 60
        text = " + ".join(f"{p} {parts[p] / 60:.1f}" for p in order if p in parts)
        if (job, method) in unfinished:
            lines.append(f"| {job} | {method} | {text} | {total:.1f} so far (unfinished) |")
            continue
        totals.setdefault(method, []).append(total)
        lines.append(f"| {job} | {method} | {text} | {total:.1f} |")
    mean = ", ".join(f"{m} {sum(v) / len(v):.1f} ({len(v)} jobs)" for m, v in sorted(totals.items()))
    return "\n".join(lines) + f"\n\nMean total minutes per finished job: {mean or 'none'}."


def setting_pairs(before: Sequence[Any], after: Sequence[Any], method: str,
                  metric: str = "ua") -> dict[tuple[str, int, int], tuple[float, float]]:
    """``{(corpus, fold, seed): (value before, value after)}`` in percent: one method's result
    rows (:class:`emodarts_core.results.collect.ResultRow` s) of two batches that differ in one
    setting, on the jobs both ran, sorted by job."""

    rows = ([replace(r, method="before") for r in before if r.method == method]
            + [replace(r, method="after") for r in after if r.method == method])
    return paired_jobs(rows, "before", "after", metric)


def setting_fold_pairs(before: Sequence[Any], after: Sequence[Any], method: str,
                       metric: str = "ua") -> dict[tuple[str, int], tuple[float, float]]:
    """``{(corpus, fold): (mean before, mean after)}`` in percent: :func:`setting_pairs` averaged
    per fold over the seeds both batches ran there (:func:`fold_means`), sorted by fold."""
    return fold_means(setting_pairs(before, after, method, metric))


def setting_effects(comparisons: Sequence[tuple[str, Sequence[Any], Sequence[Any]]],
                    methods: Sequence[str] = ("emodarts", "random"), metric: str = "ua") -> str:
    """What each setting changed, one row per (setting, method) (Markdown).

    ``comparisons`` are ``(label, rows before, rows after)``: two batches of the same jobs that
    differ in the labelled setting. Per method found in both, over the folds both ran, each
    fold the mean of the seeds both batches ran there (:func:`setting_fold_pairs`; the seeds of
    a fold share its test speakers): the number of folds (and of the jobs behind them), the mean
    ± sample std over the folds before and after, the paired difference after - before in
    points, in how many folds the setting was ahead and the sign-flip p-value over the folds
    (:func:`paired_p_value`, from two folds on)."""
    check_metric(metric)
    M = metric.upper()
    lines = [f"| setting | method | folds (jobs) | before: {M} % | after: {M} % | "
             "after - before (points) | after ahead in (folds) | sign-flip p |",
             "|---|---|---|---|---|---|---|---|"]
    for label, before, after in comparisons:
        for method in methods:
            jobs = setting_pairs(before, after, method, metric)
            if not jobs:
                continue
            folds = fold_means(jobs)
            b = [v for v, _ in folds.values()]
            a = [v for _, v in folds.values()]
            lines.append(f"| {label} | {method} | {len(folds)} ({len(jobs)}) | "
                         f"{_paired_cells(b, a, [y - x for x, y in zip(b, a)])} |")
    if len(lines) == 2:
        raise ValueError("setting_effects: no method ran in both batches of any comparison")
    return "\n".join(lines)


def paired_verdict(rows: Sequence[Any], a: str, b: str, metric: str = "ua",
                   alpha: float = 0.05) -> str:
    """One clause for the chapter's answer: whether ``a`` beat ``b`` over the folds both ran,
    each fold the mean of the seeds both ran there (:func:`paired_folds`), read off the paired
    sign-flip test over the folds at level ``alpha`` (``"does not beat"`` when the test cannot
    tell them apart), with the numbers it rests on."""
    jobs = paired_jobs(rows, a, b, metric)
    folds = fold_means(jobs)
    if len(folds) < 2:
        return f"{a} against {b}: {len(folds)} fold(s) with both, too few for a paired test"
    diffs = [va - vb for va, vb in folds.values()]
    p = paired_p_value(diffs)
    mean = sum(diffs) / len(diffs)
    verb = ("beats" if mean > 0 else "is beaten by") if p < alpha else "does not beat"
    return (f"{a} {verb} {b} ({a} - {b}: {_mean_pm_std(diffs, signed=True)} points of test "
            f"{metric.upper()} over {len(folds)} folds, {_fold_unit(jobs)}; ahead in "
            f"{sum(d > 0 for d in diffs)} of {len(diffs)} folds "
            f"({sum(x > y for x, y in jobs.values())} of {len(jobs)} jobs); sign-flip p over the "
            f"folds = {format_p(p)})")


def evidence_answer(rows: Sequence[Any], ensembles: str | Path | None = None,
                    reference: float | None = None, metric: str = "ua",
                    searched: str = "emodarts", rival: str = "random") -> str:
    """The findings of a batch in a few Markdown bullets, every figure computed from ``rows``
    (:class:`emodarts_core.results.collect.ResultRow` s) and, when given, the ensemble evaluations
    under ``ensembles`` (:func:`ensemble_records`): ``searched`` against ``rival`` and against
    every other method (:func:`paired_verdict`), each method's mean beside ``reference`` (a
    published figure, in %), and the ensembles' means beside it."""

    check_metric(metric)
    M = metric.upper()
    jobs = sorted({(r.corpus, r.fold, r.seed) for r in rows})
    corpora = ", ".join(sorted({j[0] for j in jobs}))
    folds = sorted({j[1] for j in jobs})
    seeds = sorted({j[2] for j in jobs})
    lines = [f"- On {corpora} ({len(jobs)} jobs: folds {', '.join(map(str, folds))} x seeds "
             f"{', '.join(map(str, seeds))}), {paired_verdict(rows, searched, rival, metric)}."]
    others = sorted({r.method for r in rows} - {searched, rival})
    for other in others:
        lines.append(f"- {paired_verdict(rows, searched, other, metric)}; "
                     f"{paired_verdict(rows, rival, other, metric)}.")
    means = {s.method: getattr(s, f"{metric}_mean") for s in summarize(rows)}
    best = max(means, key=means.get)
    text = f"- The best mean test {M} of a single network: {best}, {means[best]:.2f} %"
    if reference is not None:
        text += (f", {'above' if means[best] > reference else 'below'} the reference "
                 f"{reference:.2f} %")
    lines.append(text + ".")
    if ensembles:
        recs = ensemble_records(ensembles)
        parts = []
        for method in (searched, rival):
            if method in recs:
                mean = sum(100 * m[metric] for m in recs[method].values()) / len(recs[method])
                parts.append(f"{method}'s {mean:.2f} %"
                             + ("" if reference is None else
                                f" ({'above' if mean > reference else 'below'} the reference)"))
        if parts:
            lines.append(f"- Each fold's networks of a method as one ensemble: mean test {M} "
                         + " and ".join(parts) + ".")
    return "\n".join(lines)
