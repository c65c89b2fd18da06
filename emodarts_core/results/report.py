"""Text tables for the chapters: genotypes per epoch, genotype agreement across searches, and
per-fold results. Every function returns Markdown (display it with ``IPython.display.Markdown``)
built only from run directories or the objects the loops return, so a notebook never types a
number itself.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from emodarts_core.nas.genotype import CellGenotype, Genotype

__all__ = ["cell_text", "genotype_per_epoch", "genotype_agreement", "fold_table", "search_summary"]

CELLS = ("normal", "reduce", "seq")


# The two inputs of a cell (the outputs of the two previous cells, c_{k-2} and c_{k-1} in the DARTS
# paper), written with Unicode subscripts so that text and tables show them as a reader expects.
INPUT_TEXT = ("c\u2096\u208b\u2082", "c\u2096\u208b\u2081")


def _state(src: int) -> str:
    return INPUT_TEXT[src] if src < 2 else f"n{src - 2}"


def cell_text(cell: CellGenotype) -> str:
    """One line per cell: ``n0 = op(input) + op(input); n1 = ...``."""
    return "; ".join(f"n{j} = " + " + ".join(f"{op}({_state(src)})" for op, src in node)
                     for j, node in enumerate(cell.nodes))


def as_genotype(g: Genotype | Mapping[str, Any] | str | Path) -> Genotype:
    if isinstance(g, Genotype):
        return g
    if isinstance(g, Mapping):
        return Genotype.from_dict(g)
    path = Path(g)
    return Genotype.load(path / "genotype.json" if path.is_dir() else path)


def genotype_per_epoch(history: Mapping[str, Any], cells: Sequence[str] = CELLS) -> str:
    """A Markdown table: per search epoch, validation UA, the skip count of the normal cell and
    the derived cells, with a mark on the rows where a cell changed from the epoch before."""
    epochs = [e for e in history.get("epochs", []) if "genotype" in e]
    if not epochs:
        raise ValueError("genotype_per_epoch: the history holds no per-epoch genotypes "
                         "(is it a search's history.json?)")
    head = "| epoch | valid UA | skips (normal) | " + " | ".join(f"{c} cell" for c in cells) + " |"
    lines = [head, "|" + "---|" * (3 + len(cells))]
    previous: dict[str, str] = {}
    for e in epochs:
        g = Genotype.from_dict(e["genotype"])
        texts = []
        for c in cells:
            t = cell_text(getattr(g, c))
            texts.append(("**changed:** " if c in previous and previous[c] != t else "") + t)
            previous[c] = t
        skips = e.get("skip_count", {}).get("normal", "")
        lines.append(f"| {e['epoch']} | {100 * e['valid_ua']:.1f} % | {skips} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def genotype_agreement(genotypes: Sequence[Genotype | Mapping[str, Any] | str | Path],
                       labels: Sequence[str]) -> str:
    """A Markdown table with one row per (cell, node): the edges each search kept there, and how
    many of the searches kept the most common edge set (``k / n``)."""
    gens = [as_genotype(g) for g in genotypes]
    if not gens:
        raise ValueError("genotype_agreement: no genotypes given")
    if len(labels) != len(gens):
        raise ValueError(f"genotype_agreement: {len(labels)} labels for {len(gens)} genotypes")
    lines = ["| cell | node | " + " | ".join(labels) + " | agreement |",
             "|" + "---|" * (3 + len(gens))]
    for c in CELLS:
        cells = [getattr(g, c) for g in gens]
        for j in range(max(x.n_nodes for x in cells)):
            chosen = [" + ".join(f"{op}({_state(s)})" for op, s in sorted(x.nodes[j], key=lambda e: e[1]))
                      if j < x.n_nodes else "–" for x in cells]
            top = max(chosen.count(v) for v in chosen)
            lines.append(f"| {c} | n{j} | " + " | ".join(chosen) + f" | {top} / {len(gens)} |")
    return "\n".join(lines)


def fold_table(rows: Sequence[Any]) -> str:
    """Per-fold results (:class:`emodarts_core.results.collect.ResultRow` s) as a Markdown table:
    corpus, fold, seed, then WA / UA of every method found, in percent."""
    if not rows:
        return "(no finished runs)"
    methods = sorted({r.method for r in rows}, key=lambda m: (m != "emodarts", m))
    keyed: dict[tuple[str, int, int], dict[str, Any]] = {}
    for r in rows:
        keyed.setdefault((r.corpus, r.fold, r.seed), {})[r.method] = r
    lines = ["| corpus | fold | seed | " + " | ".join(f"{m} WA % | {m} UA %" for m in methods) + " |",
             "|" + "---|" * (3 + 2 * len(methods))]
    for (corpus, fold, seed), by in sorted(keyed.items()):
        cells = []
        for m in methods:
            r = by.get(m)
            cells += ["–", "–"] if r is None else [f"{100 * r.wa:.2f}", f"{100 * r.ua:.2f}"]
        lines.append(f"| {corpus} | {fold} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def search_summary(result: Any) -> str:
    """A few lines about a :class:`emodarts_core.search.loop.SearchResult`: epochs run, early stop,
    the epoch whose genotype was kept and its validation WA / UA."""
    return (f"epochs run: {result.epochs_run}"
            + (" (stopped early by the collapse guard)" if result.stopped_early else "")
            + f"\nkept genotype: epoch {result.best_epoch} (best validation UA on the alpha split)"
            + f"\nvalidation WA {100 * result.best_valid_wa:.2f} %, UA {100 * result.best_valid_ua:.2f} %"
            + f"\nrun directory: {result.run_dir}")


