"""Interactive views of a search's alphas: an animation that plays without a kernel, and an
epoch slider for a live kernel.

- :func:`alpha_animation` / :func:`alpha_animation_html`: the heatmap of one cell's softmaxed
  alphas, one frame per epoch. The HTML (``FuncAnimation.to_jshtml``) embeds every frame as a PNG
  with its own JavaScript player, so it plays in a static page such as the built book.
- :func:`alpha_slider`: an ``ipywidgets`` epoch slider (plus a cell-type selector) that redraws
  the heatmap; it needs a running kernel.

Both read a run directory's ``history.json`` (or the dict), like :mod:`emodarts_core.results.plots`.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.animation import FuncAnimation

from emodarts_core.results.plots import (History, _as_history, history_alphas, plot_alpha_heatmap,
                                         resolve_primitives)

__all__ = ["alpha_animation", "alpha_animation_html", "alpha_slider"]


def _frames(history: History | str | Path, cell: str,
            primitives: Sequence[str] | Mapping[str, Sequence[str]] | None):
    hist = _as_history(history)
    epochs, alphas = history_alphas(hist, cell)
    names = resolve_primitives(hist, cell, alphas.shape[2], primitives)
    return hist, epochs, alphas, names


def alpha_animation(history: History | str | Path, cell: str = "normal",
                    primitives: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
                    interval_ms: int = 500, annotate: bool = True) -> FuncAnimation:
    """The heatmap of ``cell``'s softmaxed alphas, one frame per logged epoch.

    The colour scale is fixed over the whole run (0 to the largest weight ever reached), so the
    frames compare. The figure is not attached to pyplot; keep a reference to the animation.
    """
    _, epochs, alphas, names = _frames(history, cell, primitives)
    vmax = float(alphas.max())
    fig = plot_alpha_heatmap(alphas[0], names, title=f"{cell} cell, epoch {epochs[0]}",
                             annotate=annotate, vmax=vmax)
    ax = fig.axes[0]
    image = ax.images[0]
    texts = list(ax.texts)
    mid = vmax / 2

    def update(i: int):
        a = alphas[i]
        image.set_data(a)
        if texts:
            for t, v in zip(texts, a.ravel()):
                t.set_text(f"{v:.2f}")
                t.set_color("black" if v > mid else "white")
        ax.set_title(f"{cell} cell, epoch {epochs[i]}")
        return [image, *texts]

    return FuncAnimation(fig, update, frames=len(epochs), interval=interval_ms, blit=False, repeat=True)


def alpha_animation_html(history: History | str | Path, cell: str = "normal",
                         primitives: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
                         interval_ms: int = 500, default_mode: str = "once",
                         annotate: bool = True) -> str:
    """Self-contained HTML/JavaScript player of :func:`alpha_animation` (frames embedded as PNG).

    Display it in a notebook with ``IPython.display.HTML(...)``; it plays without a kernel.
    ``default_mode`` is the player's loop mode: ``"once"``, ``"loop"`` or ``"reflect"``.
    """
    anim = alpha_animation(history, cell, primitives, interval_ms, annotate)
    return anim.to_jshtml(default_mode=default_mode)


def _png(fig: Any, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def alpha_slider(history: History | str | Path, cell: str = "normal",
                 primitives: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
                 dpi: int = 80):
    """An epoch slider and cell-type selector over the alpha heatmaps (needs a live kernel).

    Returns an ``ipywidgets.VBox`` of ``(HBox(Dropdown, IntSlider), Image)``; moving the slider or
    changing the cell type redraws the heatmap into the image.
    """
    import ipywidgets as widgets

    hist = _as_history(history)
    cells = [c for c in ("normal", "reduce", "seq")
             if any(isinstance(e.get("alphas"), Mapping) and c in e["alphas"] for e in hist["epochs"])]
    if cell not in cells:
        raise ValueError(f"alpha_slider: history has no {cell!r} alphas (has: {cells})")
    data = {c: _frames(hist, c, primitives)[1:] for c in cells}
    epochs = data[cell][0]

    selector = widgets.Dropdown(options=cells, value=cell, description="cell")
    slider = widgets.IntSlider(value=int(epochs[-1]), min=int(epochs.min()), max=int(epochs.max()),
                               step=1, description="epoch", continuous_update=False)
    image = widgets.Image(format="png")

    def redraw(*_: Any) -> None:
        ep, alphas, names = data[selector.value]
        i = int(np.argmin(np.abs(ep - slider.value)))       # nearest logged epoch
        fig = plot_alpha_heatmap(alphas[i], names, title=f"{selector.value} cell, epoch {ep[i]}",
                                 vmax=float(alphas.max()))
        image.value = _png(fig, dpi)

    slider.observe(redraw, names="value")
    selector.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([selector, slider]), image])
