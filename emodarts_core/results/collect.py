"""Collecting finished runs into result rows, and the mean ± std tables over them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from emodarts_core.data.source import DataSource
from emodarts_core.results.paper import PAPER_RESULTS
from emodarts_core.results.report import fold_table


# ---------------------------------------------------------------------------------------------
# Gathering results
@dataclass
class ResultRow:
    corpus: str
    method: str            # "emodarts" (searched), "random", or a baseline kind (baselines.KINDS)
    fold: int
    seed: int
    wa: float
    ua: float
    run_dir: str


def method_of(config: dict[str, Any]) -> str | None:
    """The method a run's ``config.json`` stands for in tables: ``emodarts`` for a final training
    (``random`` for one of a genotype taken from a random search's run, ``train --genotype``),
    the baseline's name (a CNN-LSTM with ``head_norm`` as ``cnn_lstm+head_norm``); None for
    anything else (a search has no test metrics)."""
    kind = config.get("kind")
    if kind == "train":
        source = config.get("options", {}).get("genotype_source", {})
        return "random" if source.get("method") == "random" else "emodarts"
    if kind == "baseline":
        options = config.get("options", {})
        name = str(options.get("baseline", options.get("kind", "baseline")))
        if name == "cnn_lstm" and options.get("cnn_lstm", {}).get("head_norm"):
            name = "cnn_lstm+head_norm"          # a variant, kept apart in every table
        return name
    return None


def inside_another_run(run_dir: Path, root: Path) -> bool:
    """True for the sub-runs a run keeps inside itself (random search's candidates and final
    training): the enclosing run's own metrics stand for them."""
    for parent in run_dir.parents:
        if parent == root or root not in parent.parents:
            return False
        if (parent / "config.json").exists():
            return True
    return False


def collect(out_root: str | Path) -> list[ResultRow]:
    """Every finished training / baseline run below ``out_root`` (searches have no test metrics;
    runs nested inside another run, such as random search's candidates, are not counted)."""
    root = Path(out_root)
    if not root.is_dir():                # a mistyped path is an error, not an empty batch
        raise ValueError(f"{root}: no such directory (a reproduce batch or its --export copy)")
    rows = []
    for metrics_path in sorted(root.rglob("metrics.json")):
        config_path = metrics_path.with_name("config.json")
        if not config_path.exists() or inside_another_run(metrics_path.parent, root):
            continue
        config = json.loads(config_path.read_text())
        method = method_of(config)
        if method is None:
            continue
        metrics = json.loads(metrics_path.read_text())
        rows.append(ResultRow(corpus=config["corpus"], method=method, fold=int(config["fold"]),
                              seed=int(config["seed"]), wa=float(metrics["wa"]),
                              ua=float(metrics["ua"]), run_dir=str(metrics_path.parent)))
    return rows


def records_source(out_root: str | Path):
    """A :class:`emodarts_core.data.source.DataSource` for a batch's run directories (or their
    ``--export`` copy): the corpora of its finished runs, for a notebook's data line."""

    rows = collect(out_root)
    if not rows:
        raise ValueError(f"{out_root}: no finished training or baseline runs found (run "
                         f"`python -m emodarts_core reproduce` first, or point at its --export copy)")
    corpora = sorted({r.corpus for r in rows})
    return DataSource(corpus=",".join(corpora), root=str(out_root),
                      description=f"the records of {len(rows)} finished runs in {out_root} "
                                  f"(their JSON files; no audio is read here)")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


@dataclass
class SummaryRow:
    corpus: str
    method: str
    n_runs: int
    folds: list[int] = field(default_factory=list)
    wa_mean: float = 0.0
    wa_std: float = 0.0
    ua_mean: float = 0.0
    ua_std: float = 0.0


def summarize(rows: Sequence[ResultRow], by_fold: bool = False) -> list[SummaryRow]:
    """Mean ± sample standard deviation (in percent) per corpus and method over folds x seeds;
    with ``by_fold``, one row per corpus, method and fold (over that fold's seeds)."""
    groups: dict[tuple[str, str, int], list[ResultRow]] = {}
    for r in rows:
        groups.setdefault((r.corpus, r.method, r.fold if by_fold else -1), []).append(r)
    out = []
    for (corpus, method, _), group in sorted(groups.items()):
        wa_m, wa_s = _mean_std([100 * r.wa for r in group])
        ua_m, ua_s = _mean_std([100 * r.ua for r in group])
        out.append(SummaryRow(corpus=corpus, method=method, n_runs=len(group),
                              folds=sorted({r.fold for r in group}), wa_mean=wa_m, wa_std=wa_s,
                              ua_mean=ua_m, ua_std=ua_s))
    return out


def format_table(summary: Sequence[SummaryRow], with_paper: bool = True) -> str:
    """A Markdown table of the summary, with the paper's reported figures beside ours."""
    header = "| corpus | method | runs | folds | WA % (mean ± std) | UA % (mean ± std) |"
    sep = "|---|---|---|---|---|---|"
    if with_paper:
        header += " paper WA % | paper UA % |"
        sep += "---|---|"
    lines = [header, sep]
    for s in summary:
        line = (f"| {s.corpus} | {s.method} | {s.n_runs} | {','.join(map(str, s.folds))} | "
                f"{s.wa_mean:.2f} ± {s.wa_std:.2f} | {s.ua_mean:.2f} ± {s.ua_std:.2f} |")
        if with_paper:
            paper = PAPER_RESULTS.get(s.corpus, {}) if s.method == "emodarts" else {}
            fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
            line += f" {fmt(paper.get('wa'))} | {fmt(paper.get('ua'))} |"
        lines.append(line)
    return "\n".join(lines)


def format_report(rows: Sequence[ResultRow]) -> str:
    """The batch's whole table: overall mean ± std, per fold, and per job (Markdown)."""

    return "\n\n".join([
        "Over all folds and seeds:", format_table(summarize(rows)),
        "Per fold (over its seeds):", format_table(summarize(rows, by_fold=True), with_paper=False),
        "Per job:", fold_table(rows)])
