"""Does a search decide? Diagnostics of the alphas and of the genotypes they derive.

A DARTS search is only worth its accuracy if it *selects*: its alphas commit to operations, the
derived genotype settles, and searches that differ only in their seed pick the same cells more
often than two random draws from the space would. Four numbers say whether that happened:

- **entropy fraction** of a cell: the mean over its edges of the softmax entropy of the edge's
  operation weights, divided by ``log(n_ops)`` (1 = every op weighted alike, 0 = one-hot);
- **top-2 margin** of a cell: the mean over edges of the gap between the two strongest operations
  other than ``none`` (the genotype rule's choice; 0 = a coin toss);
- **flip rate** between two epochs: the share of the kept (edge, op) pairs of one epoch's genotype
  that are not in the next epoch's;
- **agreement** between two genotypes: the share of kept (edge, op) pairs they have in common,
  beside its exact **chance level** for the space (:func:`chance_agreement`: the expected
  agreement of two genotypes drawn as random search draws them).

The search loop records the first three every epoch (``history.json``'s ``quality``) and the
last epoch's in ``metrics.json``; :func:`summarise_setting` judges a setting over folds x seeds
against the gate (agreement >= :data:`GATE_AGREEMENT`, entropy <= :data:`GATE_ENTROPY`).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from emodarts_core.config import SearchSpaceConfig
from emodarts_core.nas.genotype import CellGenotype, Genotype
from emodarts_core.train.runs import RunDir

__all__ = ["CELLS", "entropy_fraction", "top2_margin", "kept_pairs", "flip_rate", "agreement",
           "chance_agreement", "LEVELS", "op_family", "EpochQuality", "epoch_quality", "mean_pairwise_agreement",
           "GATE_AGREEMENT", "GATE_ENTROPY", "GATE_ORDER", "SearchRecord", "load_record",
           "SettingSummary", "summarise_setting", "alpha_rank_correlation", "gate_table",
           "summarise_gate", "gate_reading"]

CELLS: tuple[str, ...] = ("normal", "reduce", "seq")


def _matrix(weights: Any) -> np.ndarray:
    w = weights.detach().cpu().double().numpy() if isinstance(weights, torch.Tensor) \
        else np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] == 0 or w.shape[1] < 2:
        raise ValueError(f"expected an (edges, ops) matrix with at least 2 ops, got shape {w.shape}")
    if (w < -1e-9).any() or not np.allclose(w.sum(-1), 1.0, atol=1e-4):
        raise ValueError("rows are not probability vectors (pass the softmaxed alphas)")
    return np.clip(w, 0.0, None)


def entropy_fraction(weights: Any) -> float:
    """Mean edge entropy of softmaxed alphas (``(edges, ops)``) as a fraction of ``log(n_ops)``."""
    w = _matrix(weights)
    ent = -(w * np.log(np.clip(w, 1e-300, None))).sum(-1)
    return float(ent.mean() / math.log(w.shape[1]))


def top2_margin(weights: Any) -> float:
    """Mean over edges of (strongest - second strongest) weight among the ops other than ``none``
    (the last column, as in every alpha matrix of this library); with a single such op, its
    weight."""
    w = _matrix(weights)[:, :-1]
    if w.shape[1] < 2:                    # a single candidate: its weight is its whole margin
        w = np.concatenate([np.zeros_like(w), w], axis=-1)
    top = np.sort(w, axis=-1)[:, -2:]
    return float((top[:, 1] - top[:, 0]).mean())


def _cells(genotype: Genotype | Mapping[str, Any]) -> dict[str, CellGenotype]:
    g = genotype if isinstance(genotype, Genotype) else Genotype.from_dict(dict(genotype))
    return {"normal": g.normal, "reduce": g.reduce, "seq": g.seq}


#: What two kept edges must share to count as the same choice: the operation itself (``op``),
#: its family (``family``: convolution, pooling, skip, recurrent; sep_conv_5x5 and dil_conv_3x3
#: are both convolutions) or only the edge, whatever its operation (``edge``).
LEVELS: tuple[str, ...] = ("op", "family", "edge")


def op_family(op: str) -> str:
    """``conv``, ``pool``, ``skip`` or ``recurrent`` (any other name is its own family)."""
    if op.startswith(("sep_conv", "dil_conv", "conv")):
        return "conv"
    if op.startswith(("max_pool", "avg_pool")):
        return "pool"
    if op == "skip_connect":
        return "skip"
    if op.startswith(("lstm", "rnn")):
        return "recurrent"
    return op


def _label(op: str, level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"unknown agreement level {level!r}; choose one of {LEVELS}")
    return op if level == "op" else op_family(op) if level == "family" else ""


def kept_pairs(genotype: Genotype | Mapping[str, Any], cells: Sequence[str] = CELLS,
               level: str = "op") -> set[tuple[str, int, int, str]]:
    """The genotype's kept edges as ``(cell, node, input state, op)`` tuples (the op replaced by
    its family, or by ``""``, at the coarser ``level``)."""
    out = set()
    for name, cell in _cells(genotype).items():
        if name in cells:
            out |= {(name, j, src, _label(op, level))
                    for j, node in enumerate(cell.nodes) for op, src in node}
    return out


def agreement(a: Genotype | Mapping[str, Any], b: Genotype | Mapping[str, Any],
              cells: Sequence[str] = CELLS, level: str = "op") -> float:
    """Share of ``a``'s kept (edge, op) pairs that ``b`` keeps too (both keep the same number);
    ``level`` compares the operations' families, or the edges alone, instead."""
    pa, pb = kept_pairs(a, cells, level), kept_pairs(b, cells, level)
    if not pa:
        raise ValueError("agreement: the genotype keeps no edge in the cells asked for")
    return len(pa & pb) / len(pa)


def flip_rate(previous: Genotype | Mapping[str, Any], current: Genotype | Mapping[str, Any],
              cells: Sequence[str] = CELLS) -> float:
    """Share of ``previous``'s kept (edge, op) pairs that ``current`` no longer keeps."""
    return 1.0 - agreement(previous, current, cells)


def chance_agreement(space: SearchSpaceConfig, cells: Sequence[str] = CELLS,
                     level: str = "op") -> float:
    """The exact expected :func:`agreement` of two genotypes drawn independently as random search
    draws them (:func:`emodarts_core.nas.genotype.sample_cell`: each node keeps 2 distinct states of
    its ``j + 2``, each with one of the ``m`` ops other than ``none``, uniformly).

    A kept pair ``(node j, state s, op o)`` of one genotype is kept by the other with probability
    ``P(s among its 2 of j + 2 states) * P(same op) = 2 / (j + 2) / m``; for families
    ``P(same family) = sum_f (n_f / m)^2``, and for edges alone 1.
    """
    def same(ops: list[str]) -> float:
        labels = [_label(op, level) for op in ops]
        return sum((labels.count(x) / len(labels)) ** 2 for x in set(labels))

    same_cnn = same([p for p in space.cnn_ops if p != "none"])
    same_seq = same([p for p in space.seq_primitives if p != "none"])
    probs = []
    for name in cells:
        nodes, q = (space.seq_nodes, same_seq) if name == "seq" else (space.cnn_nodes, same_cnn)
        for j in range(nodes):
            probs += [min(2, j + 2) / (j + 2) * q] * min(2, j + 2)
    if not probs:
        raise ValueError(f"chance_agreement: no cell among {list(cells)}")
    return float(np.mean(probs))


def mean_pairwise_agreement(genotypes: Sequence[Genotype | Mapping[str, Any]],
                            cells: Sequence[str] = CELLS, level: str = "op") -> float:
    """Mean :func:`agreement` over all pairs of ``genotypes`` (at least two)."""
    if len(genotypes) < 2:
        raise ValueError("mean_pairwise_agreement needs at least two genotypes")
    return float(np.mean([agreement(a, b, cells, level)
                          for a, b in itertools.combinations(genotypes, 2)]))


def _ranks(v: np.ndarray) -> np.ndarray:
    """Ranks (0 = smallest) along the last axis; ties are broken by position."""
    return np.argsort(np.argsort(v, axis=-1, kind="stable"), axis=-1).astype(float)


def alpha_rank_correlation(a: Mapping[str, Any], b: Mapping[str, Any],
                           cells: Sequence[str] = CELLS) -> float:
    """How alike two searches *rank* the operations of each edge: Spearman's correlation of
    their softmaxed alphas over the candidates, per edge, averaged over the edges of ``cells``.
    1: the same order everywhere; about 0: unrelated preferences; unlike :func:`agreement` it
    sees more than the winner, so it tells near-ties between shared favourites (high) from
    preferences of each search's own (near 0)."""
    rho = []
    for c in cells:
        ra, rb = _ranks(_matrix(a[c])), _ranks(_matrix(b[c]))
        if ra.shape != rb.shape:
            raise ValueError(f"alpha_rank_correlation: cell {c!r} has shapes {ra.shape} and "
                             f"{rb.shape}")
        ra -= ra.mean(axis=1, keepdims=True)
        rb -= rb.mean(axis=1, keepdims=True)
        rho.extend((ra * rb).sum(axis=1) / np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1)))
    if not rho:
        raise ValueError(f"alpha_rank_correlation: no cell among {list(cells)}")
    return float(np.mean(rho))


def mean_pairwise_rank_correlation(alphas: Sequence[Mapping[str, Any]]) -> float:
    """Mean :func:`alpha_rank_correlation` over all pairs of ``alphas`` (at least two)."""
    if len(alphas) < 2:
        raise ValueError("mean_pairwise_rank_correlation needs at least two alpha sets")
    return float(np.mean([alpha_rank_correlation(a, b)
                          for a, b in itertools.combinations(alphas, 2)]))


@dataclass(frozen=True)
class EpochQuality:
    """One epoch's diagnostics, per cell type (``normal``, ``reduce``, ``seq``)."""

    entropy_fraction: dict[str, float]
    top2_margin: dict[str, float]
    flip_rate: float | None          # against the previous epoch's genotype (None for the first)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def epoch_quality(alpha_weights: Mapping[str, Any], genotype: Genotype | Mapping[str, Any],
                  previous: Genotype | Mapping[str, Any] | None = None) -> EpochQuality:
    """The diagnostics of one epoch from its softmaxed alphas and its derived genotype."""
    return EpochQuality(
        entropy_fraction={k: entropy_fraction(w) for k, w in alpha_weights.items()},
        top2_margin={k: top2_margin(w) for k, w in alpha_weights.items()},
        flip_rate=None if previous is None else flip_rate(previous, genotype),
    )


# ---------------------------------------------------------------------------------------------
# Over finished searches: does a setting decide?
#: The gate a search setting must pass before an accuracy batch (cross-seed agreement at least
#: this, final entropy at most this fraction of uniform, mean over the three cells).
GATE_AGREEMENT = 0.4
GATE_ENTROPY = 0.75
#: The RAVDESS gate's settings in the order its plan runs them (``benchmarks/RESULTS.md``);
#: the first that passes becomes the ``cpu`` profile's search.
GATE_ORDER = ("long", "long-acc2", "drnas", "sdarts", "beta")
#: A gate row named ``<setting>+pt`` judges the genotypes perturbation-based selection
#: (:mod:`emodarts_core.search.perturbation`) reads off the same searches as ``<setting>``.
PT_SUFFIX = "+pt"
PT_FILE = "perturbation.json"             # emodarts_core.search.perturbation.FILE


@dataclass(frozen=True)
class SearchRecord:
    """What the summary needs of one finished search (from its run directory)."""

    fold: int
    seed: int
    genotype: dict[str, Any]
    epochs: list[dict[str, Any]]          # history.json's per-epoch records
    minutes: float


@dataclass(frozen=True)
class SettingSummary:
    """One search setting over folds x seeds (see :func:`summarise_setting`)."""

    n_runs: int
    n_folds: int
    entropy_fraction: dict[str, float]    # final epoch, mean over runs, per cell
    entropy_mean: float                   # ... and over the three cells (the gate's number)
    top2_margin: dict[str, float]         # final epoch, mean over runs, per cell
    flip_rate: float                      # mean over runs of the second half's epochs
    agreement: float                      # mean over folds of the seeds' mean pairwise agreement
    agreement_by_fold: dict[int, float]
    entropy_by_fold: dict[int, float]     # entropy_mean over each fold's runs
    chance: float                         # chance_agreement of the space
    family_agreement: float               # the same at the level of op families ...
    family_chance: float
    edge_agreement: float                 # ... and of edges alone
    edge_chance: float
    rank_correlation: float               # alpha_rank_correlation of the seeds' final alphas
    valid_ua: float                       # the supernet's alpha-split UA at the final epoch, mean
    minutes: float                        # wall time of one search, mean

    @property
    def passes(self) -> bool:
        """Whether every fold clears the gate (agreement at least :data:`GATE_AGREEMENT` and mean
        final entropy at most :data:`GATE_ENTROPY` of uniform); with one fold, the means'."""
        return (all(a >= GATE_AGREEMENT for a in self.agreement_by_fold.values())
                and all(e <= GATE_ENTROPY for e in self.entropy_by_fold.values()))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passes": self.passes}


def load_record(run_dir: str | Path, selection: str = "alphas") -> SearchRecord:
    """A finished search's :class:`SearchRecord` from its run directory (or exported record).
    ``selection``: the genotype the search chose from its alphas (``genotype.json``) or the one
    perturbation-based selection chose from its supernet (``perturbation.json``)."""
    if selection not in ("alphas", "perturbation"):
        raise ValueError(f"selection must be 'alphas' or 'perturbation', got {selection!r}")
    run = RunDir.open(run_dir)
    cfg = run.config
    epochs = run.history()["epochs"]
    if not epochs or "quality" not in epochs[-1]:
        raise ValueError(f"{run_dir}: no per-epoch search quality in history.json (a search run "
                         f"made before the diagnostics existed, or not a search)")
    if selection == "perturbation" and not run.file(PT_FILE).exists():
        raise FileNotFoundError(f"{run_dir}: no {PT_FILE} (run benchmarks/search_gate.py "
                                "with --perturbation)")
    genotype = (run.read_json(PT_FILE)["genotype"] if selection == "perturbation"
                else run.read_json(RunDir.GENOTYPE))
    return SearchRecord(fold=cfg.fold, seed=cfg.seed, genotype=genotype, epochs=epochs,
                        minutes=sum(e["seconds"] for e in epochs) / 60.0)


def comparable(records: Sequence[SearchRecord]) -> bool:
    """Whether some fold has two searches: agreement, and so a summary, is between seeds of a
    fold."""
    folds = [r.fold for r in records]
    return any(folds.count(f) >= 2 for f in set(folds))


def summarise_setting(records: Sequence[SearchRecord], space: SearchSpaceConfig) -> SettingSummary:
    """Diagnostics of one setting's searches: final-epoch entropy and margin, flip rate over the
    second half of the epochs, and cross-seed agreement of the genotypes the searches chose
    (``genotype.json``) within each fold (seeds sharing a fold and, with ``split_seed`` fixed,
    their split), averaged over the folds that have at least two seeds."""
    if not records:
        raise ValueError("summarise_setting: no searches")
    if not comparable(records):
        raise ValueError("summarise_setting: agreement needs two seeds on at least one fold")
    finals = [r.epochs[-1]["quality"] for r in records]
    ent = {c: float(np.mean([q["entropy_fraction"][c] for q in finals])) for c in CELLS}
    margin = {c: float(np.mean([q["top2_margin"][c] for q in finals])) for c in CELLS}
    flips = []
    for r in records:
        half = r.epochs[len(r.epochs) // 2:]
        rates = [e["quality"]["flip_rate"] for e in half if e["quality"]["flip_rate"] is not None]
        if rates:
            flips.append(float(np.mean(rates)))
    by_fold: dict[int, list[dict[str, Any]]] = {}
    alphas_by_fold: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        by_fold.setdefault(r.fold, []).append(r.genotype)
        alphas_by_fold.setdefault(r.fold, []).append(r.epochs[-1]["alphas"])
    def over_folds(level: str) -> dict[int, float]:
        return {f: mean_pairwise_agreement(g, level=level)
                for f, g in sorted(by_fold.items()) if len(g) >= 2}

    agree = over_folds("op")
    entropy_by_fold = {
        f: float(np.mean([np.mean([r.epochs[-1]["quality"]["entropy_fraction"][c] for c in CELLS])
                          for r in records if r.fold == f]))
        for f in agree}
    return SettingSummary(
        n_runs=len(records), n_folds=len(by_fold), entropy_fraction=ent,
        entropy_mean=float(np.mean(list(ent.values()))), top2_margin=margin,
        flip_rate=float(np.mean(flips)) if flips else float("nan"),
        agreement=float(np.mean(list(agree.values()))), agreement_by_fold=agree,
        entropy_by_fold=entropy_by_fold,
        chance=chance_agreement(space),
        family_agreement=float(np.mean(list(over_folds("family").values()))),
        family_chance=chance_agreement(space, level="family"),
        edge_agreement=float(np.mean(list(over_folds("edge").values()))),
        edge_chance=chance_agreement(space, level="edge"),
        rank_correlation=float(np.mean([mean_pairwise_rank_correlation(a)
                                        for a in alphas_by_fold.values() if len(a) >= 2])),
        valid_ua=float(np.mean([r.epochs[-1]["valid_ua"] for r in records])),
        minutes=float(np.mean([r.minutes for r in records])),
    )


def gate_table(summaries: dict[str, SettingSummary]) -> str:
    """The gate's table, one row per setting (Markdown): final entropy as a fraction of uniform
    per cell and its mean, top-2 margin, flip rate, cross-seed (edge, op) agreement beside its
    chance level, per fold agreement / entropy, family and edge agreement, the seeds' rank
    correlation of their final alphas, the supernet's final alpha-split UA, minutes per search
    and the verdict (:attr:`SettingSummary.passes`)."""
    lines = ["| setting | runs | entropy n / r / s (mean) | top-2 margin n / r / s | flip rate "
             "| agreement (chance) | by fold: agreement / entropy | families (chance) "
             "| edges (chance) | alpha ranks (ρ) | valid UA | min / search | gate |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in summaries.items():
        e, m = s.entropy_fraction, s.top2_margin
        folds = "; ".join(f"{f}: {a:.2f} / {s.entropy_by_fold[f]:.2f}"
                          for f, a in s.agreement_by_fold.items())
        lines.append(
            f"| {name} | {s.n_runs} | {e['normal']:.2f} / {e['reduce']:.2f} / {e['seq']:.2f} "
            f"({s.entropy_mean:.2f}) | {m['normal']:.3f} / {m['reduce']:.3f} / {m['seq']:.3f} "
            f"| {s.flip_rate:.2f} | {s.agreement:.2f} ({s.chance:.3f}) | {folds} "
            f"| {s.family_agreement:.2f} ({s.family_chance:.2f}) "
            f"| {s.edge_agreement:.2f} ({s.edge_chance:.2f}) | {s.rank_correlation:.2f} "
            f"| {100 * s.valid_ua:.1f} % | {s.minutes:.1f} | {'pass' if s.passes else 'fail'} |")
    return "\n".join(lines)


def summarise_gate(root: str | Path) -> dict[str, SettingSummary]:
    """Every setting exported below ``root`` (``<setting>/fold<k>/seed<s>``, as
    ``benchmarks/search_gate.py --export`` writes), summarised, in :data:`GATE_ORDER` (others
    after, by name); right after a setting whose every search has a ``perturbation.json``, the
    same searches with perturbation-based selection as ``<setting>+pt``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no gate records at {root}")
    settings = sorted((p for p in root.iterdir() if p.is_dir() and any(p.glob("fold*/seed*"))),
                      key=lambda p: (GATE_ORDER.index(p.name) if p.name in GATE_ORDER
                                     else len(GATE_ORDER), p.name))
    out = {}
    for setting in settings:
        runs = sorted(setting.glob("fold*/seed*"))
        space = RunDir.open(runs[0]).config.profile.space
        out[setting.name] = summarise_setting([load_record(r) for r in runs], space)
        if all((r / PT_FILE).is_file() for r in runs):
            out[setting.name + PT_SUFFIX] = summarise_setting(
                [load_record(r, "perturbation") for r in runs], space)
    if not out:
        raise FileNotFoundError(f"no gate records at {root}")
    return out


def gate_reading(summaries: dict[str, SettingSummary]) -> str:
    """The gate in words: each setting's agreement against chance and entropy against the
    thresholds, then what the plan makes of it (the first passing setting is adopted; with every
    planned setting run and none passing, the space is flat for this corpus at this budget)."""
    lines = []
    for name, s in summaries.items():
        folds = ", ".join(f"fold {f}: {a:.2f}" for f, a in s.agreement_by_fold.items())
        how = (f" (the searches of `{name.removesuffix(PT_SUFFIX)}`, genotypes selected by "
               "perturbation)" if name.endswith(PT_SUFFIX) else "")
        lines.append(
            f"- `{name}`{how} **{'passes' if s.passes else 'fails'}**: seeds of a fold share "
            f"{s.agreement:.2f} of their (edge, operation) choices ({folds}; "
            f"{s.chance:.3f} by chance, {GATE_AGREEMENT} needed) and the alphas end at "
            f"{s.entropy_mean:.2f} of the uniform entropy ({GATE_ENTROPY} at most); on operation "
            f"families they share {s.family_agreement:.2f} ({s.family_chance:.2f} by chance), "
            f"and they rank the operations of an edge with a correlation of "
            f"{s.rank_correlation:.2f} (1: the same order, 0: unrelated).")
    passing = [n for n, s in summaries.items() if s.passes]
    todo = [n for n in GATE_ORDER if n not in summaries]
    if passing:
        verdict = (f"`{passing[0]}` is the first setting that passes on every fold: by the plan "
                   "it becomes the `cpu` profile's search.")
    elif todo:
        run = len([n for n in GATE_ORDER if n in summaries])
        verdict = (f"No setting run so far passes ({run} of the plan's {len(GATE_ORDER)}); "
                   f"still to run: {', '.join(f'`{n}`' for n in todo)}.")
    else:
        verdict = ("**No setting passes: on this corpus, at this budget, the search space is "
                   "flat.** Searches that differ only in their seed end on different "
                   "architectures, so a searched genotype is closer to a draw than to a "
                   "choice; by the plan the comparison runs with `long`.")
    return "\n".join(lines) + "\n\n" + verdict
