"""Graphviz drawings of derived cells (normal, reduction and sequential).

Each cell is drawn left to right: the two inputs ``c_{k-2}`` and ``c_{k-1}`` (the outputs of the
two previous cells), the intermediate nodes ``0 .. n-1`` and the cell output ``c_{k}``, which
concatenates the nodes in ``concat``. Every kept edge is labelled with its operation name (the
registry key, exactly as in the genotype). Colours follow the usual DARTS drawings: inputs
darkseagreen2, intermediate nodes lightblue, output palegoldenrod.

:func:`cell_digraph` only builds a :class:`graphviz.Digraph` (a notebook displays it inline);
:func:`render_cell` and :func:`render_genotype` write PNG / SVG files and need Graphviz's ``dot``
program (``apt-get install graphviz``; on Colab it is preinstalled).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import graphviz

from emodarts_core.nas.genotype import CellGenotype, Genotype
from emodarts_core.common.files import atomic_write_bytes

__all__ = ["GraphvizNotFoundError", "cell_digraph", "render_cell", "render_genotype", "require_dot"]

CELL_TITLES = {"normal": "normal cell", "reduce": "reduction cell", "seq": "sequential cell"}
INPUT_NAMES = ("c_{k-2}", "c_{k-1}")   # node names in the DOT source
OUTPUT_NAME = "c_{k}"
# What the drawing shows for them: Graphviz HTML-like labels with real subscripts.
NODE_LABELS = {"c_{k-2}": "<c<sub>k-2</sub>>", "c_{k-1}": "<c<sub>k-1</sub>>",
               "c_{k}": "<c<sub>k</sub>>"}


class GraphvizNotFoundError(RuntimeError):
    """Graphviz's ``dot`` executable is not on PATH."""


def require_dot() -> str:
    """The path of ``dot``, or a clear error saying how to install it."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizNotFoundError(
            "Graphviz's `dot` program was not found on PATH; install it with "
            "`apt-get install graphviz` (Debian/Ubuntu, Colab), `brew install graphviz` (macOS) "
            "or `conda install graphviz`"
        )
    return dot


def _state_name(state: int) -> str:
    return INPUT_NAMES[state] if state < 2 else str(state - 2)


def cell_digraph(cell: CellGenotype, kind: str = "normal", title: str | None = None) -> graphviz.Digraph:
    """The Graphviz graph of one cell (no ``dot`` needed until it is rendered or displayed).

    Args:
        cell: the derived cell.
        kind: ``"normal"``, ``"reduce"`` or ``"seq"``; used for the default title.
        title: the caption under the graph (default: the cell kind).
    """
    if kind not in CELL_TITLES:
        raise ValueError(f"cell_digraph: kind must be one of {sorted(CELL_TITLES)}, got {kind!r}")
    g = graphviz.Digraph(
        name=f"{kind}_cell", format="png",
        graph_attr={"rankdir": "LR", "label": title if title is not None else CELL_TITLES[kind],
                    "labelloc": "b", "fontname": "helvetica", "fontsize": "18"},
        node_attr={"style": "filled,rounded", "shape": "rect", "align": "center", "height": "0.5",
                   "width": "0.5", "penwidth": "2", "fontname": "helvetica", "fontsize": "18"},
        edge_attr={"fontname": "helvetica", "fontsize": "14", "penwidth": "1.5"},
    )
    for name in INPUT_NAMES:
        g.node(name, label=NODE_LABELS[name], fillcolor="darkseagreen2")
    for j in range(cell.n_nodes):
        g.node(str(j), fillcolor="lightblue")
    for j, node in enumerate(cell.nodes):
        for op, src in node:
            if not 0 <= src < j + 2:
                raise ValueError(f"cell_digraph: node {j} reads state {src}, which does not exist before it")
            g.edge(_state_name(src), str(j), label=op)
    g.node(OUTPUT_NAME, label=NODE_LABELS[OUTPUT_NAME], fillcolor="palegoldenrod")
    for state in cell.concat:
        g.edge(_state_name(state), OUTPUT_NAME)
    return g




def render_cell(cell: CellGenotype, kind: str, path_without_ext: str | Path,
                formats: Sequence[str] = ("png", "svg"), title: str | None = None) -> list[Path]:
    """Draw one cell to ``path_without_ext.<fmt>`` for each format; returns the written paths."""
    require_dot()
    if isinstance(formats, str):
        formats = (formats,)
    graph = cell_digraph(cell, kind, title)
    base = Path(path_without_ext)
    written = []
    for fmt in formats:
        out = base.with_name(f"{base.name}.{fmt}")
        atomic_write_bytes(out, graph.pipe(format=fmt))
        written.append(out)
    return written


def render_genotype(genotype: Genotype, out_dir: str | Path,
                    formats: Sequence[str] = ("png", "svg")) -> dict[str, list[Path]]:
    """Draw the normal, reduction and sequential cells to ``out_dir/{normal,reduce,seq}.<fmt>``."""
    out_dir = Path(out_dir)
    cells = {"normal": genotype.normal, "reduce": genotype.reduce, "seq": genotype.seq}
    return {kind: render_cell(cell, kind, out_dir / kind, formats) for kind, cell in cells.items()}
