"""Collapse diagnostics and the DARTS+ guard on hand-made alphas and genotypes."""
from __future__ import annotations

import io
import math

import pytest
import torch

from emodarts_core.config import CNN_PRIMITIVES, SEQ_OP_SETS, SearchConfig
from emodarts_core.nas.genotype import CellGenotype, Genotype, derive_cell, edges_of_node, n_edges
from emodarts_core.search.guards import (DartsPlusGuard, alpha_entropy, collapse_stats, make_guard,
                                         param_free_count, skip_count)

OPS = CNN_PRIMITIVES
SEQ = SEQ_OP_SETS["lstm"]


def _alpha_favouring(ops_per_node: list[tuple[str, str]], primitives=OPS) -> torch.Tensor:
    """Alphas (4 nodes) whose first two edges of node j strongly prefer the given op pair."""
    a = torch.zeros(n_edges(len(ops_per_node)), len(primitives))
    for j, (op0, op1) in enumerate(ops_per_node):
        rows = list(edges_of_node(j))
        a[rows[0], primitives.index(op0)] = 5.0
        a[rows[1], primitives.index(op1)] = 5.0
    return a


def _genotype(normal_ops, reduce_ops=None, seq_ops=None) -> tuple[Genotype, dict]:
    reduce_ops = reduce_ops or [("sep_conv_3x3", "sep_conv_3x3")] * 4
    seq_ops = seq_ops or [("lstm_1", "lstm_2")] * 4
    alphas = {"normal": _alpha_favouring(normal_ops), "reduce": _alpha_favouring(reduce_ops),
              "seq": _alpha_favouring(seq_ops, SEQ)}
    prims = {"normal": OPS, "reduce": OPS, "seq": SEQ}
    cells = {k: derive_cell(a, prims[k], 4) for k, a in alphas.items()}
    return Genotype(**cells), alphas


def test_counts_on_a_collapsed_cell() -> None:
    normal = [("skip_connect", "skip_connect"), ("max_pool_3x3", "sep_conv_3x3"),
              ("avg_pool_3x3", "skip_connect"), ("dil_conv_3x3", "sep_conv_5x5")]
    g, _ = _genotype(normal, seq_ops=[("skip_connect", "lstm_1")] * 4)
    assert skip_count(g.normal) == 3
    assert param_free_count(g.normal) == 5
    assert skip_count(g.reduce) == 0 and param_free_count(g.reduce) == 0
    assert skip_count(g.seq) == 4 and param_free_count(g.seq) == 4


def test_alpha_entropy_values() -> None:
    uniform = torch.full((14, 8), 1 / 8)
    assert alpha_entropy(uniform) == pytest.approx(math.log(8))
    one_hot = torch.eye(8)[:5]
    assert alpha_entropy(one_hot) == pytest.approx(0.0, abs=1e-12)
    mixed = [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]            # mean of log 2 and 0
    assert alpha_entropy(mixed) == pytest.approx(math.log(2) / 2)
    logits = torch.tensor([[0.0, 0.0], [0.0, 100.0]])
    assert alpha_entropy(logits, from_logits=True) == pytest.approx(math.log(2) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="from_logits"):
        alpha_entropy(logits)
    with pytest.raises(ValueError, match="shape"):
        alpha_entropy(torch.ones(3))


def test_collapse_stats_keys_and_entropy_drop() -> None:
    g, alphas = _genotype([("sep_conv_3x3", "skip_connect")] * 4)
    weights = {k: torch.softmax(a, -1) for k, a in alphas.items()}
    stats = collapse_stats(g, weights).to_dict()
    assert stats["skip_count"] == {"normal": 4, "reduce": 0, "seq": 0}
    assert stats["max_entropy"]["normal"] == pytest.approx(math.log(8))
    assert stats["max_entropy"]["seq"] == pytest.approx(math.log(6))
    # committed edges lower the entropy below the uniform value, untouched edges keep it
    assert 0 < stats["alpha_entropy"]["normal"] < math.log(8)
    raw = collapse_stats(g, alphas, from_logits=True).alpha_entropy
    assert raw["normal"] == pytest.approx(stats["alpha_entropy"]["normal"])
    with pytest.raises(ValueError, match="cell type"):
        collapse_stats(g, {"rnn": weights["seq"]})


def test_darts_plus_stops_at_max_skips_and_stays_stopped() -> None:
    guard = DartsPlusGuard(max_skips=2)
    healthy, _ = _genotype([("sep_conv_3x3", "dil_conv_3x3")] * 4)
    one_skip, _ = _genotype([("skip_connect", "sep_conv_3x3")] + [("sep_conv_3x3", "dil_conv_3x3")] * 3)
    two_skips, _ = _genotype([("skip_connect", "sep_conv_3x3")] * 2 + [("sep_conv_3x3", "dil_conv_3x3")] * 2)
    # skips in the reduce cell do not count
    reduce_skips, _ = _genotype([("sep_conv_3x3", "dil_conv_3x3")] * 4,
                                reduce_ops=[("skip_connect", "skip_connect")] * 4)
    assert not guard.update(0, healthy)
    assert not guard.update(1, one_skip)
    assert not guard.update(2, reduce_skips)
    assert guard.update(3, two_skips)
    assert guard.stopped_epoch == 3 and "2 skip" in guard.reason
    assert guard.update(4, healthy)          # stays stopped
    assert guard.stopped_epoch == 3


def test_stable_rule_and_resume_roundtrip() -> None:
    g1, _ = _genotype([("sep_conv_3x3", "dil_conv_3x3")] * 4)
    g2, _ = _genotype([("sep_conv_5x5", "dil_conv_3x3")] * 4)
    guard = DartsPlusGuard(max_skips=2, stable_epochs=3)
    assert not guard.update(0, g1)
    assert not guard.update(1, g2)
    assert not guard.update(2, g2)
    # checkpoint here; the resumed guard must remember two epochs of g2
    buf = io.BytesIO()
    torch.save(guard.state_dict(), buf)
    buf.seek(0)
    resumed = DartsPlusGuard()
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    assert resumed.stable_epochs == 3
    assert resumed.update(3, g2) and "unchanged for 3" in resumed.reason
    fresh = DartsPlusGuard(max_skips=2, stable_epochs=3)
    assert not fresh.update(3, g2)           # without the restored state it would not stop


def test_make_guard_and_bad_args() -> None:
    assert make_guard(SearchConfig()) is None
    guard = make_guard(SearchConfig(collapse_guard="darts+", max_skips=3))
    assert isinstance(guard, DartsPlusGuard) and guard.max_skips == 3
    with pytest.raises(ValueError, match="collapse_guard"):
        make_guard(SearchConfig(collapse_guard="pdarts"))
    with pytest.raises(ValueError, match="max_skips"):
        DartsPlusGuard(max_skips=0)
    with pytest.raises(ValueError, match="missing"):
        DartsPlusGuard().load_state_dict({})


def test_handmade_cell_genotype_counts() -> None:
    cell = CellGenotype(nodes=((("skip_connect", 0), ("avg_pool_3x3", 1)),), concat=(2,))
    assert skip_count(cell) == 1 and param_free_count(cell) == 2
