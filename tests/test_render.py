"""Graphviz rendering of derived cells."""
from __future__ import annotations

import shutil

import pytest

from emodarts_core.nas.genotype import CellGenotype, Genotype
from emodarts_core.results import render

NORMAL = CellGenotype(nodes=((("sep_conv_3x3", 0), ("skip_connect", 1)),
                             (("dil_conv_5x5", 1), ("max_pool_3x3", 2)),
                             (("avg_pool_3x3", 0), ("sep_conv_5x5", 3))), concat=(2, 3, 4))
REDUCE = CellGenotype(nodes=((("max_pool_3x3", 0), ("max_pool_3x3", 1)),
                             (("dil_conv_3x3", 2), ("skip_connect", 0)),
                             (("avg_pool_3x3", 3), ("sep_conv_3x3", 1))), concat=(2, 3, 4))
SEQ = CellGenotype(nodes=((("lstm_att_1", 0), ("rnn_2", 1)),
                          (("lstm_4", 2), ("skip_connect", 1)),
                          (("rnn_att_2", 3), ("lstm_1", 0))), concat=(2, 3, 4))
GENOTYPE = Genotype(normal=NORMAL, reduce=REDUCE, seq=SEQ)

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` not installed")


def test_digraph_structure() -> None:
    src = render.cell_digraph(NORMAL, "normal").source
    assert "rankdir=LR" in src
    for op in NORMAL.ops():
        assert f"label={op}" in src
    # inputs, nodes and output with their colours
    assert src.count("darkseagreen2") == 2 and src.count("lightblue") == 3
    assert src.count("palegoldenrod") == 1
    # 6 op edges + 3 edges into the output
    assert src.count("->") == 9
    # inputs are states 0/1, node j is state j + 2
    assert '"c_{k-1}" -> 0 [label=skip_connect]' in src
    assert "0 -> 1 [label=max_pool_3x3]" in src
    assert '2 -> "c_{k}"' in src
    # drawn with real subscripts (Graphviz HTML-like labels), not as literal TeX
    assert "label=<c<sub>k-2</sub>>" in src and "label=<c<sub>k</sub>>" in src
    with pytest.raises(ValueError, match="kind"):
        render.cell_digraph(NORMAL, "rnn")


def test_bad_state_is_reported() -> None:
    bad = CellGenotype(nodes=((("skip_connect", 3), ("skip_connect", 1)),), concat=(2,))
    with pytest.raises(ValueError, match="node 0 reads state 3"):
        render.cell_digraph(bad, "normal")


@needs_dot
def test_render_genotype_writes_png_and_svg(tmp_path) -> None:
    out = render.render_genotype(GENOTYPE, tmp_path / "cells")
    assert set(out) == {"normal", "reduce", "seq"}
    for kind, paths in out.items():
        assert [p.suffix for p in paths] == [".png", ".svg"]
        png, svg = paths
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        text = svg.read_text()
        assert "<svg" in text
        for op in getattr(GENOTYPE, kind).ops():
            assert op in text, (kind, op)
    assert sorted(p.name for p in (tmp_path / "cells").iterdir()) == [
        "normal.png", "normal.svg", "reduce.png", "reduce.svg", "seq.png", "seq.svg"]


@needs_dot
def test_render_cell_single_format(tmp_path) -> None:
    paths = render.render_cell(SEQ, "seq", tmp_path / "seq_cell", formats="svg")
    assert paths == [tmp_path / "seq_cell.svg"] and "lstm_att_1" in paths[0].read_text()


def test_missing_dot_gives_install_hint(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    with pytest.raises(render.GraphvizNotFoundError, match="apt-get install graphviz"):
        render.render_cell(NORMAL, "normal", tmp_path / "x")
