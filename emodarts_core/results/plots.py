"""Figures from run directories: alpha evolution, learning curves, collapse diagnostics,
confusion matrices and genotype stability.

Every function takes what a finished run left on disk (``history.json``, ``metrics.json``,
``genotype.json``; see :func:`load_history`) or the same data as a dict, so any figure of the book
can be redrawn from a run without re-running it. All functions return the
:class:`matplotlib.figure.Figure`, draw nothing on screen by themselves and work under the
non-interactive ``Agg`` backend.

``history.json`` holds ``{"epochs": [...], "steps": [...]}``; each epoch entry has ``epoch``,
``lr``, ``train_loss``, ``train_wa``, ``valid_loss``, ``valid_wa``, ``valid_ua``, ``seconds`` and,
for searches, ``alphas`` (softmaxed ``{"normal", "reduce", "seq"}`` matrices, edges x ops),
``genotype``, ``skip_count`` and ``alpha_entropy`` (per cell type).

Operation names for the alpha columns come, in this order, from the ``primitives`` argument, a
``"primitives"`` entry of the history (added by :func:`load_history` from the run's
``config.json``), or the default operation sets when the column count identifies one.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from emodarts_core.config import CNN_PRIMITIVES, SEQ_OP_SETS, seq_primitives
from emodarts_core.nas.genotype import Genotype, edges_of_node
from emodarts_core.search.quality import CELLS as QUALITY_CELLS
from emodarts_core.search.quality import GATE_ENTROPY

__all__ = ["load_history", "history_alphas", "resolve_primitives", "edge_labels",
           "plot_alpha_evolution", "plot_alpha_heatmap", "plot_curves", "plot_collapse",
           "plot_confusion", "plot_genotype_stability", "plot_search_quality"]

CELL_TYPES = ("normal", "reduce", "seq")
History = Mapping[str, Any]


# ---------------------------------------------------------------------------------------------
# Reading
def _primitives_from_config(config: Mapping[str, Any]) -> dict[str, list[str]] | None:
    """Operation lists from a run's ``config.json`` (the profile's search space), if present."""
    profile = config.get("profile")
    space = profile.get("space") if isinstance(profile, Mapping) else None
    space = space if isinstance(space, Mapping) else config.get("space")
    if not isinstance(space, Mapping) or "cnn_ops" not in space or "seq_ops" not in space:
        return None
    cnn = list(space["cnn_ops"])
    seq_ops = space["seq_ops"]
    seq = list(seq_primitives(seq_ops if isinstance(seq_ops, str) else tuple(seq_ops)))
    return {"normal": cnn, "reduce": cnn, "seq": seq}


def load_history(run_dir: str | Path) -> dict[str, Any]:
    """Read ``history.json`` from a run directory (or the file's path itself).

    When the run's ``config.json`` sits beside it and the history carries no ``"primitives"``,
    the operation names of each cell type are added under that key.
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / "history.json"
    if not path.is_file():
        raise FileNotFoundError(f"load_history: no history.json at {path}")
    try:
        history = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"load_history: {path} is not valid JSON ({err})") from None
    if not isinstance(history, dict) or not isinstance(history.get("epochs"), list):
        raise ValueError(f"load_history: {path} has no 'epochs' list")
    config_path = path.parent / "config.json"
    if "primitives" not in history and config_path.is_file():
        prims = _primitives_from_config(json.loads(config_path.read_text()))
        if prims is not None:
            history["primitives"] = prims
    return history


def _as_history(history: History | str | Path) -> History:
    if isinstance(history, (str, Path)):
        return load_history(history)
    if not isinstance(history, Mapping) or not isinstance(history.get("epochs"), list):
        raise ValueError("history must be a run directory, a history.json path or a dict with an "
                         "'epochs' list")
    return history


def _check_cell(cell: str) -> None:
    if cell not in CELL_TYPES:
        raise ValueError(f"cell must be one of {CELL_TYPES}, got {cell!r}")


def history_alphas(history: History | str | Path, cell: str = "normal",
                   steps: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(x, alphas)``: the epoch (or step) numbers and the stacked (T, edges, ops) weights."""
    _check_cell(cell)
    history = _as_history(history)
    entries = history.get("steps", []) if steps else history["epochs"]
    entries = [e for e in entries if isinstance(e.get("alphas"), Mapping) and cell in e["alphas"]]
    if not entries:
        what = "steps" if steps else "epochs"
        raise ValueError(f"history has no {cell!r} alphas in its {what} (is it a search run? "
                         f"steps need alpha_log_every > 0)")
    key = "step" if steps else "epoch"
    x = np.array([e.get(key, i) for i, e in enumerate(entries)])
    alphas = np.array([e["alphas"][cell] for e in entries], dtype=float)
    if alphas.ndim != 3:
        raise ValueError(f"history {cell!r} alphas do not stack to (T, edges, ops); got shape {alphas.shape}")
    return x, alphas


def resolve_primitives(history: History | None, cell: str, n_ops: int,
                       primitives: Sequence[str] | Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Operation names for ``cell``'s ``n_ops`` alpha columns (see the module docstring)."""
    if isinstance(primitives, Mapping):
        primitives = primitives.get(cell)
    if primitives is None and history is not None and isinstance(history.get("primitives"), Mapping):
        primitives = history["primitives"].get(cell)
    if primitives is None:
        if cell in ("normal", "reduce") and n_ops == len(CNN_PRIMITIVES):
            primitives = CNN_PRIMITIVES
        elif cell == "seq":
            matches = [ops for ops in SEQ_OP_SETS.values() if len(ops) == n_ops]
            if len(matches) == 1:
                primitives = matches[0]
    if primitives is None:
        return [f"op {i}" for i in range(n_ops)]
    primitives = list(primitives)
    if len(primitives) != n_ops:
        raise ValueError(f"{len(primitives)} primitives given for {cell!r} alphas with {n_ops} columns")
    return primitives


def _nodes_for_edges(n_edges: int) -> int:
    n, total = 0, 0
    while total < n_edges:
        total += 2 + n
        n += 1
    if total != n_edges:
        raise ValueError(f"{n_edges} alpha rows do not match any number of cell nodes (2+3+4+...)")
    return n


def edge_labels(n_edges: int) -> list[str]:
    """Row labels ``"node j <- input"`` for a cell's alpha matrix: the inputs are the two previous
    cells' outputs, written in matplotlib's mathtext (``$c_{k-2}$``, ``$c_{k-1}$``), or earlier nodes."""
    names = ["$c_{k-2}$", "$c_{k-1}$"]
    labels = [""] * n_edges
    for j in range(_nodes_for_edges(n_edges)):
        for src, row in enumerate(edges_of_node(j)):
            labels[row] = f"node {j} \u2190 {names[src] if src < 2 else f'node {src - 2}'}"
    return labels


def _op_style(name: str) -> dict[str, Any]:
    if name == "none":
        return {"color": "0.6", "linestyle": ":"}
    if name == "skip_connect":
        return {"color": "black", "linestyle": "--"}
    return {}


def _integer_x(*axes: Axes) -> None:
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6.4, 4.2),
                **kwargs: Any) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


# ---------------------------------------------------------------------------------------------
# Alphas
def plot_alpha_evolution(history: History | str | Path, cell: str = "normal", ax: Axes | None = None,
                         primitives: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
                         layout: str = "edges", steps: bool = False) -> Figure:
    """Softmaxed alpha weights over the search.

    Args:
        history: run directory, ``history.json`` path or dict.
        cell: ``"normal"``, ``"reduce"`` or ``"seq"``.
        ax: draw into this axes (forces ``layout="cell"``).
        primitives: operation names (list, or dict by cell type); see :func:`resolve_primitives`.
        layout: ``"edges"``: one panel per edge, one line per operation; ``"cell"``: one panel,
            each operation's mean weight over the cell's edges, with its min-max range shaded.
        steps: use the per-step log (``history["steps"]``) instead of the per-epoch one.
    """
    hist = _as_history(history)
    x, alphas = history_alphas(hist, cell, steps)
    names = resolve_primitives(hist, cell, alphas.shape[2], primitives)
    xlabel = "step" if steps else "epoch"
    if ax is not None or layout == "cell":
        if ax is None:
            fig, axes = new_figure()
            ax = axes[0, 0]
        fig = ax.figure
        for k, name in enumerate(names):
            series = alphas[:, :, k]
            (line,) = ax.plot(x, series.mean(axis=1), label=name, marker="o", markersize=3, **_op_style(name))
            ax.fill_between(x, series.min(axis=1), series.max(axis=1), color=line.get_color(), alpha=0.15)
        ax.set(xlabel=xlabel, ylabel="softmax weight (mean over edges)", title=f"{cell} cell")
        _integer_x(ax)
        ax.legend(fontsize="small", ncol=2)
        return fig
    if layout != "edges":
        raise ValueError(f"layout must be 'edges' or 'cell', got {layout!r}")
    n_edges = alphas.shape[1]
    ncols = min(3, n_edges)               # three panels a row stay readable at a page's width
    nrows = math.ceil(n_edges / ncols)
    fig, axes = new_figure(nrows, ncols, size=(2.9, 2.0), sharex=True, sharey=True)
    labels = edge_labels(n_edges)
    for e in range(n_edges):
        ax_e = axes.flat[e]
        for k, name in enumerate(names):
            ax_e.plot(x, alphas[:, e, k], label=name, **_op_style(name))
        ax_e.set_title(labels[e], fontsize=11)
        ax_e.tick_params(labelsize=10)
    for extra in axes.flat[n_edges:]:
        extra.set_axis_off()
    for ax_row in axes[-1]:
        ax_row.set_xlabel(xlabel)
    _integer_x(*axes.flat)
    for ax_col in axes[:, 0]:
        ax_col.set_ylabel("weight")
    handles, leg_labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, leg_labels, loc="outside lower center", fontsize=11,
               ncol=min(4, len(leg_labels)), frameon=False)
    fig.suptitle(f"{cell} cell: softmaxed alphas per edge")
    return fig


def plot_alpha_heatmap(alphas_at_epoch: Any, primitives: Sequence[str] | None = None,
                       ax: Axes | None = None, title: str | None = None,
                       annotate: bool = True, vmax: float | None = None) -> Figure:
    """One cell's (edges x ops) softmaxed alphas as a heatmap, one row per edge.

    Args:
        alphas_at_epoch: the matrix (nested lists, array or tensor).
        primitives: column names (default ``op i``).
        ax: draw into this axes.
        annotate: write each weight in its cell.
        vmax: colour-scale maximum (default: the matrix maximum); fix it to compare epochs.
    """
    a = np.asarray(alphas_at_epoch.detach().cpu() if hasattr(alphas_at_epoch, "detach") else alphas_at_epoch,
                   dtype=float)
    if a.ndim != 2:
        raise ValueError(f"plot_alpha_heatmap: expected an (edges, ops) matrix, got shape {a.shape}")
    names = list(primitives) if primitives is not None else [f"op {i}" for i in range(a.shape[1])]
    if len(names) != a.shape[1]:
        raise ValueError(f"plot_alpha_heatmap: {len(names)} primitives for {a.shape[1]} columns")
    if ax is None:
        fig, axes = new_figure(size=(0.8 * a.shape[1] + 3.0, 0.35 * a.shape[0] + 1.8))
        ax = axes[0, 0]
    fig = ax.figure
    im = ax.imshow(a, cmap="viridis", vmin=0.0, vmax=vmax if vmax is not None else max(a.max(), 1e-12),
                   aspect="auto")
    ax.set_xticks(range(a.shape[1]), names, rotation=45, ha="right")
    try:
        rows = edge_labels(a.shape[0])
    except ValueError:
        rows = [f"edge {i}" for i in range(a.shape[0])]
    ax.set_yticks(range(a.shape[0]), rows)
    if annotate:
        mid = (im.norm.vmin + im.norm.vmax) / 2
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                ax.text(j, i, f"{a[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if a[i, j] > mid else "white")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, label="softmax weight")
    return fig


# ---------------------------------------------------------------------------------------------
# Curves and diagnostics
def _series(entries: list[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray] | None:
    pts = [(e.get("epoch", i), e[key]) for i, e in enumerate(entries) if e.get(key) is not None]
    if not pts:
        return None
    x, y = zip(*pts)
    return np.asarray(x), np.asarray(y, dtype=float)


def plot_curves(history: History | str | Path) -> Figure:
    """Loss (train, valid) and accuracy (train WA, valid WA, valid UA) per epoch."""
    hist = _as_history(history)
    entries = hist["epochs"]
    fig, axes = new_figure(1, 2, size=(4.8, 3.4))   # a page's width, legible
    ax_loss, ax_acc = axes[0]
    for key, label in (("train_loss", "train"), ("valid_loss", "valid")):
        s = _series(entries, key)
        if s is not None:
            ax_loss.plot(*s, marker="o", markersize=3, label=label)
    for key, label in (("train_wa", "train WA"), ("valid_wa", "valid WA"), ("valid_ua", "valid UA")):
        s = _series(entries, key)
        if s is not None:
            ax_acc.plot(*s, marker="o", markersize=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    _integer_x(ax_loss, ax_acc)
    for ax in (ax_loss, ax_acc):
        if ax.lines:
            ax.legend()
    return fig


def plot_collapse(history: History | str | Path, max_skips: int | None = None) -> Figure:
    """Skip-connection count of each derived cell and alpha entropy per cell type, per epoch.

    ``max_skips`` draws the DARTS+ threshold on the skip panel. The entropy panel marks each cell
    type's uniform value ``log(n_ops)`` when the alphas are in the history.
    """
    hist = _as_history(history)
    entries = hist["epochs"]
    fig, axes = new_figure(1, 2, size=(4.8, 3.4))   # a page's width, legible
    ax_skip, ax_ent = axes[0]
    for cell in CELL_TYPES:
        skips = [(e.get("epoch", i), e["skip_count"][cell]) for i, e in enumerate(entries)
                 if isinstance(e.get("skip_count"), Mapping) and cell in e["skip_count"]]
        if skips:
            ax_skip.plot(*zip(*skips), marker="o", markersize=3, label=cell, drawstyle="steps-mid")
        ents = [(e.get("epoch", i), e["alpha_entropy"][cell]) for i, e in enumerate(entries)
                if isinstance(e.get("alpha_entropy"), Mapping) and cell in e["alpha_entropy"]]
        if ents:
            (line,) = ax_ent.plot(*zip(*ents), marker="o", markersize=3, label=cell)
            alphas = next((e["alphas"][cell] for e in entries
                           if isinstance(e.get("alphas"), Mapping) and cell in e["alphas"]), None)
            if alphas is not None:
                ax_ent.axhline(math.log(np.shape(alphas)[-1]), color=line.get_color(), linestyle=":",
                               linewidth=1)
    if not ax_skip.lines and not ax_ent.lines:
        raise ValueError("history has no skip_count / alpha_entropy entries (is it a search run?)")
    if max_skips is not None:
        ax_skip.axhline(max_skips, color="red", linestyle="--", linewidth=1,
                        label=f"DARTS+ stop ({max_skips})")
    ax_skip.set(xlabel="epoch", ylabel="skip_connect edges in derived cell", title="skip connections")
    ax_skip.yaxis.set_major_locator(MaxNLocator(integer=True))
    _integer_x(ax_skip, ax_ent)
    ax_ent.set(xlabel="epoch", ylabel="mean edge entropy (nats)", title="alpha entropy (dotted: uniform)")
    for ax in (ax_skip, ax_ent):
        if ax.lines:
            ax.legend()
    return fig


def plot_confusion(metrics: Any, classes: Sequence[str] | None = None, normalize: bool = True,
                   ax: Axes | None = None, title: str | None = None) -> Figure:
    """Confusion matrix (rows: true class, columns: predicted).

    Args:
        metrics: a ``Metrics`` object, a ``metrics.json`` dict (``confusion``, optionally
            ``classes``, ``wa``, ``ua``), a path to ``metrics.json`` / a run directory, or the
            matrix itself.
        classes: class names (default: ``metrics["classes"]``).
        normalize: colour by row-normalised recall and print ``recall (count)``; else counts.
    """
    if isinstance(metrics, (str, Path)):
        path = Path(metrics)
        path = path / "metrics.json" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"plot_confusion: no metrics.json at {path}")
        metrics = json.loads(path.read_text())
    if hasattr(metrics, "to_dict"):
        metrics = metrics.to_dict()
    info: Mapping[str, Any] = metrics if isinstance(metrics, Mapping) else {}
    cm = np.asarray(info["confusion"] if info else metrics, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion: confusion must be square, got shape {cm.shape}")
    classes = list(classes if classes is not None else info.get("classes") or
                   [str(i) for i in range(cm.shape[0])])
    if len(classes) != cm.shape[0]:
        raise ValueError(f"plot_confusion: {len(classes)} classes for a {cm.shape[0]}x{cm.shape[0]} matrix")
    rows = cm.sum(axis=1, keepdims=True)
    recall = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    shown = recall if normalize else cm
    if ax is None:
        fig, axes = new_figure(size=(1.0 * len(classes) + 2.5, 0.9 * len(classes) + 1.6))
        ax = axes[0, 0]
    fig = ax.figure
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(cm.max(), 1))
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            text = f"{recall[i, j]:.2f}\n({int(cm[i, j])})" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if shown[i, j] > 0.5 * im.norm.vmax else "black")
    if title is None and "wa" in info and "ua" in info:
        title = f"WA {100 * info['wa']:.1f} %   UA {100 * info['ua']:.1f} %"
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, label="recall" if normalize else "count")
    return fig


def plot_genotype_stability(genotypes: Sequence[Genotype | Mapping[str, Any] | str | Path],
                            labels: Sequence[str] | None = None) -> Figure:
    """How often each (node, operation) pair is chosen across searches (seeds or folds).

    One heatmap per cell type: rows are intermediate nodes, columns the operations that appear in
    any of the genotypes; a cell holds the share of genotypes in which that node keeps at least
    one edge with that operation (the count is printed). A stable search gives 0/1 columns.

    ``genotypes`` may hold :class:`Genotype` objects, their dicts, or paths to ``genotype.json``
    files / run directories. ``labels`` (one per genotype) only go into the title.
    """
    if not genotypes:
        raise ValueError("plot_genotype_stability: no genotypes given")
    gens: list[Genotype] = []
    for g in genotypes:
        if isinstance(g, Genotype):
            gens.append(g)
        elif isinstance(g, Mapping):
            gens.append(Genotype.from_dict(g))
        else:
            path = Path(g)
            gens.append(Genotype.load(path / "genotype.json" if path.is_dir() else path))
    if labels is not None and len(labels) != len(gens):
        raise ValueError(f"plot_genotype_stability: {len(labels)} labels for {len(gens)} genotypes")
    fig, axes = new_figure(1, 3, size=(3.4, 3.2))
    for ax, cell in zip(axes[0], CELL_TYPES):
        cells = [getattr(g, cell) for g in gens]
        n_nodes = max(c.n_nodes for c in cells)
        order = list(CNN_PRIMITIVES if cell != "seq" else SEQ_OP_SETS["all"])
        used = {op for c in cells for op in c.ops()}
        ops = [op for op in order if op in used] + sorted(used - set(order))
        counts = np.zeros((n_nodes, len(ops)))
        for c in cells:
            for j, node in enumerate(c.nodes):
                for op in {op for op, _ in node}:
                    counts[j, ops.index(op)] += 1
        share = counts / len(gens)
        im = ax.imshow(share, cmap="Greens", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(ops)), ops, rotation=45, ha="right")
        ax.set_yticks(range(n_nodes), [f"node {j}" for j in range(n_nodes)])
        for j in range(n_nodes):
            for k in range(len(ops)):
                if counts[j, k]:
                    ax.text(k, j, f"{int(counts[j, k])}", ha="center", va="center", fontsize=8,
                            color="white" if share[j, k] > 0.5 else "black")
        ax.set_title(f"{cell} cell")
    fig.colorbar(im, ax=list(axes[0]), label=f"share of {len(gens)} genotypes")
    title = "operation choice per node across searches"
    if labels:
        title += " (" + ", ".join(labels) + ")"
    fig.suptitle(title)
    return fig


def plot_search_quality(history: History | str | Path) -> Figure:
    """Does the search decide? Per epoch: the alphas' entropy as a fraction of uniform (the
    gate's 0.75 dashed), the top-2 margin of the chosen ops, and the flip rate of the derived
    genotype against the epoch before (``history.json``'s ``quality`` entries,
    :mod:`emodarts_core.search.quality`)."""
    hist = _as_history(history)
    entries = [e for e in hist["epochs"] if isinstance(e.get("quality"), Mapping)]
    if not entries:
        raise ValueError("history has no 'quality' entries (a search run made before the "
                         "search-quality diagnostics, or not a search)")
    fig, axes = new_figure(1, 3, size=(4.2, 3.6))
    ax_ent, ax_margin, ax_flip = axes[0]
    epochs = [e["epoch"] for e in entries]
    for cell in QUALITY_CELLS:
        ax_ent.plot(epochs, [e["quality"]["entropy_fraction"][cell] for e in entries],
                    marker="o", markersize=3, label=cell)
        ax_margin.plot(epochs, [e["quality"]["top2_margin"][cell] for e in entries],
                       marker="o", markersize=3, label=cell)
    ax_ent.axhline(GATE_ENTROPY, color="grey", linestyle="--", linewidth=1, label="gate")
    ax_ent.set(xlabel="epoch", ylabel="entropy / uniform", title="alphas' entropy", ylim=(0, 1.05))
    ax_margin.set(xlabel="epoch", ylabel="top-1 minus top-2 weight", title="margin of the choice")
    ax_margin.set_ylim(bottom=0)
    flips = [(e["epoch"], e["quality"]["flip_rate"]) for e in entries
             if e["quality"]["flip_rate"] is not None]
    if flips:
        ax_flip.plot(*zip(*flips), marker="o", markersize=3, color="black")
    ax_flip.set(xlabel="epoch", ylabel="share of kept (edge, op) pairs changed",
                title="genotype flips", ylim=(-0.02, 1.02))
    _integer_x(ax_ent, ax_margin, ax_flip)
    ax_ent.legend()
    ax_margin.legend()
    return fig
