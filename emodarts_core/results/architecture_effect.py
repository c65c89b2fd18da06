"""How much does the architecture matter? Scores of genotypes x training seeds on one fold.

A search can only choose where the networks of its space differ by more than the noise of
training them. ``benchmarks/architecture_effect.py`` trains each of several genotypes (drawn at
random from the space, and the ones searches chose) with several seeds, briefly, as random
search trains its candidates; this module reads those runs and splits the spread of a score
into its two sources with a one-way random-effects analysis of variance:

* **between genotypes**: the standard deviation of the genotypes' true means, net of seed noise,
  ``sqrt(max(0, (MS_between - MS_within) / n0))``;
* **within a genotype** (the seeds): ``sqrt(MS_within)``;
* their ratio as the **intraclass correlation** ``ICC(1)``, the share of a single training's
  variance that is the architecture's (0 when the genotypes cannot be told apart), with the
  F-test of "every genotype has the same mean".

Only the random genotypes enter the analysis of variance (they are a sample of the space); the
searched ones are compared with them by an exact permutation test on genotype means.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import stats

#: What the benchmark writes at the top of its output directory.
GENOTYPES_FILE = "genotypes.json"
#: The scores a run provides: the brief training's best validation UA (what random search ranks
#: its candidates by) and its test UA at the epoch the profile selects.
METRICS = {"valid_ua": "validation UA (best epoch)", "test_ua": "test UA"}
#: Exact permutation tests enumerate at most this many relabellings.
MAX_PERMUTATIONS = 1_000_000


@dataclass(frozen=True)
class GenotypeScores:
    """One genotype's trainings: a score per seed (fractions, not percent)."""

    name: str
    kind: str                        # "random" or "searched"
    seeds: tuple[int, ...]
    valid_ua: tuple[float, ...]
    test_ua: tuple[float, ...]
    n_parameters: int | None = None

    def scores(self, metric: str) -> tuple[float, ...]:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {tuple(METRICS)}, got {metric!r}")
        return getattr(self, metric)


@dataclass(frozen=True)
class ArchitectureScores:
    """Every genotype's trainings of one experiment (``load_architecture_scores``)."""

    corpus: str
    fold: int
    epochs: int
    genotypes: tuple[GenotypeScores, ...]

    def of_kind(self, kind: str) -> list[GenotypeScores]:
        return [g for g in self.genotypes if g.kind == kind]


@dataclass(frozen=True)
class ArchitectureEffect:
    """One-way random-effects analysis of variance of a score over genotypes (module doc)."""

    n_genotypes: int
    n_runs: int
    n0: float                        # the group size the variance components use
    grand_mean: float
    between_sd: float
    within_sd: float
    icc: float
    f: float | None                  # None where every seed of a genotype scored alike
    df: tuple[int, int]
    p: float

    def to_dict(self) -> dict:
        return asdict(self)


def architecture_effect(groups: Sequence[Sequence[float]]) -> ArchitectureEffect:
    """Variance components of ``groups`` (one sequence of scores per genotype, a score per
    seed; sizes may differ). Needs two genotypes or more and more runs than genotypes."""
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    k = len(groups)
    n = sum(len(g) for g in groups)
    if k < 2 or n <= k:
        raise ValueError(f"architecture_effect needs >= 2 genotypes and more runs than "
                         f"genotypes (some seeds repeated); got {k} genotype(s), {n} run(s)")
    sizes = np.array([len(g) for g in groups], dtype=float)
    means = np.array([g.mean() for g in groups])
    grand = float(np.concatenate(groups).mean())
    ms_between = float((sizes * (means - grand) ** 2).sum() / (k - 1))
    ms_within = float(sum(((g - g.mean()) ** 2).sum() for g in groups) / (n - k))
    n0 = float((n - (sizes ** 2).sum() / n) / (k - 1))
    var_between = max(0.0, (ms_between - ms_within) / n0)
    if ms_within > 0:
        f = ms_between / ms_within
        p = float(stats.f.sf(f, k - 1, n - k))
    else:                            # every seed of a genotype scored alike: no F
        f, p = None, (0.0 if ms_between > 0 else 1.0)
    total = var_between + ms_within
    icc = var_between / total if total > 0 else 0.0
    return ArchitectureEffect(n_genotypes=k, n_runs=n, n0=n0, grand_mean=grand,
                              between_sd=math.sqrt(var_between), within_sd=math.sqrt(ms_within),
                              icc=icc, f=f, df=(k - 1, n - k), p=p)


def group_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``mean(a) - mean(b)`` and the two-sided p-value of the exact permutation test (every
    split of the pooled values into groups of the two sizes)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b):
        raise ValueError("group_difference needs values in both groups")
    pooled = np.concatenate([a, b])
    if math.comb(len(pooled), len(a)) > MAX_PERMUTATIONS:
        raise ValueError(f"group_difference: {len(pooled)} values give more than "
                         f"{MAX_PERMUTATIONS} relabellings; compare fewer")
    observed = a.mean() - b.mean()
    total = pooled.sum()
    diffs = [(pooled[list(idx)].sum() / len(a) - (total - pooled[list(idx)].sum()) / len(b))
             for idx in combinations(range(len(pooled)), len(a))]
    p = float(np.mean(np.abs(diffs) >= abs(observed) - 1e-12))
    return float(observed), p


# ---------------------------------------------------------------------------------------------
# Reading an experiment's runs
def load_architecture_scores(root: str | Path) -> ArchitectureScores:
    """The runs of ``benchmarks/architecture_effect.py`` under ``root``: its ``genotypes.json``
    and each finished training ``<name>/seed<s>/metrics.json`` (unfinished ones are left out)."""
    root = Path(root)
    index = root / GENOTYPES_FILE
    if not index.is_file():
        raise FileNotFoundError(f"{root}: no {GENOTYPES_FILE}; run "
                                "benchmarks/architecture_effect.py first")
    spec = json.loads(index.read_text())
    genotypes = []
    for entry in spec["genotypes"]:
        seeds, valid, test, params = [], [], [], None
        for run in sorted((root / entry["name"]).glob("seed*"),
                          key=lambda p: int(p.name[4:])):
            metrics = run / "metrics.json"
            if not metrics.is_file():
                continue
            m = json.loads(metrics.read_text())
            seeds.append(int(run.name[4:]))
            valid.append(float(m["best_valid_ua"]))
            test.append(float(m["ua"]))
            params = m.get("n_parameters", params)
        if seeds:
            genotypes.append(GenotypeScores(entry["name"], entry["kind"], tuple(seeds),
                                            tuple(valid), tuple(test), params))
    return ArchitectureScores(corpus=spec["corpus"], fold=int(spec["fold"]),
                              epochs=int(spec["epochs"]), genotypes=tuple(genotypes))


def effect_of(scores: ArchitectureScores, metric: str) -> ArchitectureEffect:
    """:func:`architecture_effect` of ``metric`` over the experiment's random genotypes."""
    return architecture_effect([g.scores(metric) for g in scores.of_kind("random")])


def _searched_vs_random(scores: ArchitectureScores, metric: str) -> tuple[float, float] | None:
    searched, random = scores.of_kind("searched"), scores.of_kind("random")
    if not searched or not random:
        return None
    return group_difference([np.mean(g.scores(metric)) for g in searched],
                            [np.mean(g.scores(metric)) for g in random])


def _f_text(e: ArchitectureEffect) -> str:
    return "–" if e.f is None else f"{e.f:.2f}"


def effect_table(scores: ArchitectureScores) -> str:
    """A markdown table: per score, the analysis of variance over the random genotypes and the
    searched genotypes' mean against theirs (points, exact permutation p over genotype means)."""
    random = scores.of_kind("random")
    runs = sum(len(g.seeds) for g in random)
    lines = ["| score | random genotypes (runs) | mean % | between genotypes (sd, points) | "
             "seeds of one genotype (sd, points) | share of variance from the genotype | F "
             "(df) | p | searched − random (points, p) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for metric, label in METRICS.items():
        e = effect_of(scores, metric)
        vs = _searched_vs_random(scores, metric)
        vs_text = "–" if vs is None else f"{100 * vs[0]:+.2f} (p = {vs[1]:.3f})"
        lines.append(f"| {label} | {len(random)} ({runs}) | {100 * e.grand_mean:.2f} | "
                     f"{100 * e.between_sd:.2f} | {100 * e.within_sd:.2f} | {e.icc:.2f} | "
                     f"{_f_text(e)} ({e.df[0]}, {e.df[1]}) | {e.p:.3f} | {vs_text} |")
    return "\n".join(lines)


def effect_reading(scores: ArchitectureScores, metric: str = "valid_ua") -> str:
    """Two or three sentences saying what the experiment found, from its numbers."""
    e = effect_of(scores, metric)
    label = METRICS[metric]
    per = e.n_runs // e.n_genotypes if e.n_runs % e.n_genotypes == 0 else "several"
    epochs = f"{scores.epochs} epoch{'s' if scores.epochs != 1 else ''}"
    text = (f"Over {e.n_genotypes} random genotypes trained {epochs} with {per} seeds each, "
            f"the genotype accounts for {100 * e.icc:.0f} % of the variance of a "
            f"training's {label} (F = {_f_text(e)}, p = {e.p:.3f}): the seeds of one genotype "
            f"spread by {100 * e.within_sd:.1f} points (sd), the genotypes' own means by "
            f"{100 * e.between_sd:.1f}. ")
    if e.between_sd == 0 and e.within_sd == 0:
        text += (f"Every training scored {100 * e.grand_mean:.1f} %: they did not learn, or "
                 "learned alike, so there is nothing to tell apart. ")
    else:
        if e.p >= 0.05:
            text += ("The genotypes cannot be told apart from the noise of training them at the "
                     "5 % level: the space is flat at this budget. ")
        else:
            text += "The architecture matters beyond the noise of training at this budget. "
        if e.between_sd < e.within_sd:
            text += ("Their true means differ by less than one training's seed moves it, so a "
                     "single brief training ranks genotypes more by its seed than by its "
                     "architecture, and random search's ranking of its candidates has little "
                     "more to go on than that. ")
        else:
            text += ("Their true means differ by more than one training's seed moves it: a "
                     "single brief training ranks genotypes mostly by their architecture. ")
    vs = _searched_vs_random(scores, metric)
    if vs is not None:
        n_s = len(scores.of_kind("searched"))
        verdict = "not distinguishable from" if vs[1] >= 0.05 else (
            "above" if vs[0] > 0 else "below")
        text += (f"The {n_s} searched genotypes score {100 * vs[0]:+.1f} points against the "
                 f"random ones' mean ({verdict} them; exact permutation p = {vs[1]:.3f}).")
    return text.strip()
