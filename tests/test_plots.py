"""Figures and widgets from a synthetic 3-epoch search history and a synthetic run directory."""
from __future__ import annotations

import base64
import gc
import json
import math
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from emodarts_core.config import (CNN_PRIMITIVES, SEQ_OP_SETS, Profile,  # noqa: E402
                                  SearchSpaceConfig, to_dict)
from emodarts_core.nas.genotype import Genotype, derive_cell, n_edges  # noqa: E402
from emodarts_core.results import plots, widgets  # noqa: E402
from emodarts_core.search.guards import collapse_stats  # noqa: E402

N_NODES = 2                         # 5 edges per cell
SEQ = SEQ_OP_SETS["lstm"]           # 6 ops: ambiguous with "rnn" by count alone
EPOCHS = 3


def make_history(seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    prims = {"normal": CNN_PRIMITIVES, "reduce": CNN_PRIMITIVES, "seq": SEQ}
    raw = {k: 1e-3 * torch.randn(n_edges(N_NODES), len(p), generator=gen) for k, p in prims.items()}
    epochs = []
    for e in range(EPOCHS):
        raw["normal"][:, CNN_PRIMITIVES.index("skip_connect")] += 1.0   # drift towards skips
        raw["seq"][:, 0] += 0.5
        weights = {k: torch.softmax(a, -1) for k, a in raw.items()}
        geno = Genotype(**{k: derive_cell(a, prims[k], N_NODES) for k, a in raw.items()})
        stats = collapse_stats(geno, weights)
        epochs.append({
            "epoch": e, "lr": 0.025, "train_loss": 1.4 - 0.1 * e, "train_wa": 0.3 + 0.05 * e,
            "valid_loss": 1.45 - 0.05 * e, "valid_wa": 0.28 + 0.04 * e, "valid_ua": 0.26 + 0.04 * e,
            "seconds": 1.0, "alphas": {k: w.tolist() for k, w in weights.items()},
            "genotype": geno.to_dict(), "skip_count": stats.skip_count,
            "alpha_entropy": stats.alpha_entropy,
        })
    steps = [{"step": s, "epoch": s // 2, "alphas": epochs[s // 2]["alphas"]} for s in range(2 * EPOCHS)]
    return {"epochs": epochs, "steps": steps}


@pytest.fixture()
def history() -> dict:
    return make_history()


@pytest.fixture()
def run_dir(tmp_path, history):
    (tmp_path / "history.json").write_text(json.dumps(history))
    space = SearchSpaceConfig(cnn_nodes=N_NODES, seq_nodes=N_NODES, seq_ops="lstm")
    profile = Profile(name="test", space=space)
    (tmp_path / "config.json").write_text(json.dumps({"kind": "search", "profile": to_dict(profile)}))
    return tmp_path


def _save(fig, tmp_path, name):
    out = tmp_path / f"{name}.png"
    fig.savefig(out)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_load_history_adds_primitives_from_config(run_dir) -> None:
    hist = plots.load_history(run_dir)
    assert hist["primitives"]["seq"] == list(SEQ)
    assert hist["primitives"]["normal"] == list(CNN_PRIMITIVES)
    assert len(hist["epochs"]) == EPOCHS
    with pytest.raises(FileNotFoundError, match="history.json"):
        plots.load_history(run_dir / "missing")


def test_alpha_evolution_per_edge(run_dir, tmp_path) -> None:
    fig = plots.plot_alpha_evolution(run_dir, "seq")
    used = [ax for ax in fig.axes if ax.axison]
    assert len(used) == n_edges(N_NODES)
    for ax in used:
        assert len(ax.lines) == len(SEQ)
        assert all(len(line.get_xdata()) == EPOCHS for line in ax.lines)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(SEQ)
    assert used[2].get_title() == "node 1 \u2190 $c_{k-2}$"   # mathtext, drawn as math
    # the plotted value is the softmaxed alpha of that edge and op
    hist = plots.load_history(run_dir)
    np.testing.assert_allclose(used[3].lines[1].get_ydata(),
                               [e["alphas"]["seq"][3][1] for e in hist["epochs"]])
    _save(fig, tmp_path, "evolution")


def test_alpha_evolution_cell_panel_and_steps(history, tmp_path) -> None:
    fig = plots.plot_alpha_evolution(history, "normal", layout="cell")
    (ax,) = fig.axes
    labels = [line.get_label() for line in ax.lines]
    assert labels == list(CNN_PRIMITIVES)
    skip = ax.lines[CNN_PRIMITIVES.index("skip_connect")].get_ydata()
    assert skip[-1] > skip[0]                          # the drift built into the history
    fig = plots.plot_alpha_evolution(history, "reduce", steps=True, layout="cell")
    assert len(fig.axes[0].lines[0].get_xdata()) == 2 * EPOCHS
    # without names the 6-op seq set is ambiguous: generic labels
    fig = plots.plot_alpha_evolution(history, "seq", layout="cell")
    assert fig.axes[0].lines[0].get_label() == "op 0"
    _save(fig, tmp_path, "cell")
    with pytest.raises(ValueError, match="cell"):
        plots.plot_alpha_evolution(history, "rnn")
    with pytest.raises(ValueError, match="primitives"):
        plots.plot_alpha_evolution(history, "seq", primitives=["a", "b"])


def test_alpha_heatmap(history, tmp_path) -> None:
    alphas = history["epochs"][-1]["alphas"]["normal"]
    fig = plots.plot_alpha_heatmap(alphas, CNN_PRIMITIVES, title="epoch 2")
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), np.asarray(alphas))
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CNN_PRIMITIVES)
    assert len(ax.get_yticklabels()) == n_edges(N_NODES)
    assert len(ax.texts) == n_edges(N_NODES) * len(CNN_PRIMITIVES)
    _save(fig, tmp_path, "heatmap")
    with pytest.raises(ValueError, match="primitives"):
        plots.plot_alpha_heatmap(alphas, SEQ)


def test_curves(history, tmp_path) -> None:
    fig = plots.plot_curves(history)
    ax_loss, ax_acc = fig.axes
    assert [line.get_label() for line in ax_loss.lines] == ["train", "valid"]
    assert [line.get_label() for line in ax_acc.lines] == ["train WA", "valid WA", "valid UA"]
    np.testing.assert_allclose(ax_acc.lines[2].get_ydata(), [0.26, 0.30, 0.34])
    _save(fig, tmp_path, "curves")


def test_collapse(history, tmp_path) -> None:
    fig = plots.plot_collapse(history, max_skips=2)
    ax_skip, ax_ent = fig.axes
    normal = next(line for line in ax_skip.lines if line.get_label() == "normal")
    assert list(normal.get_ydata()) == [e["skip_count"]["normal"] for e in history["epochs"]]
    assert normal.get_ydata()[-1] == 4                 # all 4 kept edges became skips
    assert any(line.get_label().startswith("DARTS+") for line in ax_skip.lines)
    ent_lines = [line for line in ax_ent.lines if line.get_label() in ("normal", "reduce", "seq")]
    assert len(ent_lines) == 3
    # uniform reference lines at log(n_ops)
    refs = sorted({float(line.get_ydata()[0]) for line in ax_ent.lines if line not in ent_lines})
    assert refs == pytest.approx(sorted({math.log(8), math.log(6)}))
    _save(fig, tmp_path, "collapse")
    with pytest.raises(ValueError, match="search run"):
        plots.plot_collapse({"epochs": [{"epoch": 0, "train_loss": 1.0}]})


def test_confusion(tmp_path) -> None:
    cm = [[5, 1, 0, 0], [2, 2, 0, 0], [0, 0, 3, 0], [0, 0, 0, 0]]
    metrics = {"confusion": cm, "classes": ["neu", "hap", "sad", "ang"], "wa": 10 / 13, "ua": 0.6}
    (run := tmp_path / "run").mkdir()
    (run / "metrics.json").write_text(json.dumps(metrics))
    fig = plots.plot_confusion(run)
    ax = fig.axes[0]
    arr = ax.images[0].get_array()
    np.testing.assert_allclose(arr[0], [5 / 6, 1 / 6, 0, 0])
    np.testing.assert_allclose(arr[3], [0, 0, 0, 0])   # empty class: no division by zero
    assert "UA 60.0" in ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()] == metrics["classes"]
    _save(fig, tmp_path, "confusion")
    fig = plots.plot_confusion(np.array(cm), classes=list("abcd"), normalize=False)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), cm)
    with pytest.raises(ValueError, match="classes"):
        plots.plot_confusion(np.array(cm), classes=["a"])


def test_genotype_stability(tmp_path) -> None:
    genos = [Genotype.from_dict(make_history(seed)["epochs"][-1]["genotype"]) for seed in range(3)]
    other = genos[0].to_dict()
    other["normal"]["nodes"][0] = [["sep_conv_3x3", 0], ["dil_conv_5x5", 1]]
    genos.append(Genotype.from_dict(other))
    (tmp_path / "g.json").write_text(genos[0].to_json())
    fig = plots.plot_genotype_stability(genos[1:] + [tmp_path / "g.json"], labels=list("abcd"))
    panels = [ax for ax in fig.axes if ax.get_title().endswith("cell")]
    assert [ax.get_title() for ax in panels] == ["normal cell", "reduce cell", "seq cell"]
    normal = panels[0]
    ops = [t.get_text() for t in normal.get_xticklabels()]
    share = normal.images[0].get_array()
    assert share.shape == (N_NODES, len(ops))
    # three genotypes are all-skip in the normal cell; the edited one is not at node 0
    assert share[0, ops.index("skip_connect")] == pytest.approx(3 / 4)
    assert share[0, ops.index("sep_conv_3x3")] == pytest.approx(1 / 4)
    assert share[1, ops.index("skip_connect")] == pytest.approx(1.0)
    assert np.all((share >= 0) & (share <= 1))
    _save(fig, tmp_path, "stability")
    with pytest.raises(ValueError, match="no genotypes"):
        plots.plot_genotype_stability([])


# ---------------------------------------------------------------------------------------------
# widgets.py


@pytest.mark.filterwarnings("ignore:Animation was deleted without rendering")
def test_animation_frames_follow_the_history() -> None:
    history = make_history()
    anim = widgets.alpha_animation(history, "normal")
    fig = anim._fig
    ax = fig.axes[0]
    for i in (2, 0):
        anim._func(i)
        np.testing.assert_allclose(ax.images[0].get_array(), history["epochs"][i]["alphas"]["normal"])
        assert ax.get_title() == f"normal cell, epoch {i}"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CNN_PRIMITIVES)
    del anim, fig, ax
    gc.collect()              # its never-rendered warning belongs to this test


def test_jshtml_has_one_png_frame_per_epoch() -> None:
    html = widgets.alpha_animation_html(make_history(), "seq", primitives=[f"s{i}" for i in range(6)])
    frames = [(i, re.sub(r"[^A-Za-z0-9+/=]", "", data)) for i, data in
              re.findall(r'frames\[(\d+)\] = "data:image/png;base64,([^"]+)"', html)]
    assert [int(i) for i, _ in frames] == list(range(EPOCHS))
    assert all(base64.b64decode(data)[:4] == b"\x89PNG" for _, data in frames)
    assert len({data for _, data in frames}) == EPOCHS          # the frames differ
    assert "<script" in html                                   # its own player, no kernel


def test_slider_builds_and_redraws() -> None:
    slider_box = widgets.alpha_slider(make_history(), "normal")
    (controls, image) = slider_box.children
    selector, slider = controls.children
    assert (slider.min, slider.max, slider.value) == (0, EPOCHS - 1, EPOCHS - 1)
    assert list(selector.options) == ["normal", "reduce", "seq"]
    last = bytes(image.value)
    assert last[:4] == b"\x89PNG"
    slider.value = 0
    first = bytes(image.value)
    assert first[:4] == b"\x89PNG" and first != last
    selector.value = "seq"
    assert bytes(image.value) != first
    with pytest.raises(ValueError, match="no 'rnn' alphas"):
        widgets.alpha_slider(make_history(), "rnn")


def test_method_comparison_draws_a_bar_per_job_and_method_and_the_means():
    from emodarts_core.results.collect import ResultRow
    from emodarts_core.results.evidence_plots import plot_method_comparison

    rows = [ResultRow("ravdess", m, 0, s, wa=ua, ua=ua, run_dir="")
            for m, s, ua in [("emodarts", 0, 0.5), ("emodarts", 1, 0.3), ("random", 0, 0.6),
                             ("random", 1, 0.4), ("cnn_lstm", 0, 0.2)]]
    fig = plot_method_comparison(rows)
    ax = fig.axes[0]
    heights = {round(p.get_height(), 6) for p in ax.patches if not np.isnan(p.get_height())}
    assert heights == {50.0, 30.0, 60.0, 40.0, 20.0}
    assert len(ax.patches) == 3 * 2                     # 3 methods x 2 jobs (one bar empty: NaN)
    means = sorted(round(line.get_ydata()[0], 6) for line in ax.get_lines())
    assert means == [20.0, 40.0, 50.0]                  # cnn_lstm, emodarts, random
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["emodarts", "cnn_lstm", "random"]
    with pytest.raises(ValueError, match="metric"):
        plot_method_comparison(rows, metric="f1")
    ordered = plot_method_comparison(rows, order=["random", "absent", "cnn_lstm"])
    assert [t.get_text() for t in ordered.axes[0].get_legend().get_texts()] == [
        "random", "cnn_lstm", "emodarts"]                # the rest after the given order


def test_plot_paired_differences_draws_one_bar_per_fold_and_its_seeds_as_dots():
    from matplotlib.collections import PathCollection

    from emodarts_core.results.collect import ResultRow
    from emodarts_core.results.evidence_plots import plot_paired_differences

    rows = [ResultRow("ravdess", m, f, s, wa=ua, ua=ua, run_dir="")
            for m, f, s, ua in [("emodarts", 0, 0, 0.6), ("random", 0, 0, 0.5),
                                ("emodarts", 1, 0, 0.7), ("random", 1, 0, 0.5),
                                ("emodarts", 0, 1, 0.2), ("random", 0, 1, 0.5),
                                ("emodarts", 1, 1, 0.9)]]          # no random run: no dot
    ax = plot_paired_differences(rows, "emodarts", "random").axes[0]
    # fold 0: seeds +10 and -30, mean -10; fold 1: only seed 0 has both, +20
    assert [round(p.get_height(), 6) for p in ax.patches] == [-10.0, 20.0]
    colours = [tuple(p.get_facecolor()) for p in ax.patches]
    assert colours[0] != colours[1]                          # lost vs won
    dots = sorted((round(float(x), 6), round(float(y), 6)) for c in ax.collections
                  if isinstance(c, PathCollection) for x, y in c.get_offsets())
    assert dots == [(0, -30), (0, 10), (1, 20)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mean, 2 folds", "seed 0", "seed 1"]
    assert [round(float(line.get_ydata()[0]), 6) for line in ax.lines] == [0.0, 5.0]
    with pytest.raises(ValueError, match="no job"):
        plot_paired_differences(rows, "emodarts", "cnn_lstm")
    with pytest.raises(ValueError, match="metric"):
        plot_paired_differences(rows, "emodarts", "random", metric="f1")


def test_plot_ensembles_puts_each_ensemble_beside_its_members(tmp_path):
    import json

    from emodarts_core.results.evidence_plots import plot_ensembles

    for method, fold, members, ens in [("emodarts", 0, [0.5, 0.6, 0.7], 0.66),
                                       ("emodarts", 1, [0.4, 0.4, 0.46], 0.40),
                                       ("random", 0, [0.6, 0.6, 0.6], 0.63)]:
        path = tmp_path / f"fold{fold}" / f"{method}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"ua": ens, "wa": ens, "members": [
            {"run": "r", "ua": u, "wa": u} for u in members]}))
    fig = plot_ensembles(tmp_path, reference=(62.0, "aim"))
    left, right = fig.axes
    assert [left.get_title(), right.get_title()] == ["emodarts", "random"]
    from matplotlib.collections import PathCollection

    points = sorted((round(float(x), 6), round(float(y), 6)) for c in left.collections
                    if isinstance(c, PathCollection) for x, y in c.get_offsets())
    # three members and the ensemble per fold, in percent
    assert points == [(0, 50), (0, 60), (0, 66), (0, 70), (1, 40), (1, 40), (1, 40), (1, 46)]
    levels = sorted(round(float(line.get_ydata()[0]), 6) for line in left.lines)
    assert levels == [51.0, 53.0, 62.0]       # members' mean, ensembles' mean, the reference
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["members", "ensemble", "aim"]


def test_plot_setting_effects_draws_each_folds_difference_and_the_mean():
    from emodarts_core.results.collect import ResultRow
    from emodarts_core.results.evidence_plots import plot_setting_effects

    before = [ResultRow("r", "emodarts", f, s, wa=0.5, ua=0.5, run_dir="")
              for f in range(3) for s in range(2)]
    # seed 1 moves fold f by 10 f points more than seed 0 does: fold means +0, +15, +30
    after = [ResultRow("r", "emodarts", f, s, wa=0.5, ua=0.5 + 0.1 * f * (1 + s), run_dir="")
             for f in range(3) for s in range(2)]
    ax = plot_setting_effects([("wider", before, after)]).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["wider: emodarts"]
    xs = sorted(round(float(x), 6) for x, _ in ax.collections[0].get_offsets())
    assert xs == [0.0, 15.0, 30.0]                             # one dot per fold, not per job
    means = [line.get_xdata()[0] for line in ax.lines if len(line.get_xdata()) == 2
             and line.get_xdata()[0] == line.get_xdata()[1] and line.get_linewidth() == 2]
    assert means == [pytest.approx(15.0)]
    with pytest.raises(ValueError, match="no method"):
        plot_setting_effects([("wider", before, after)], methods=("random",))
