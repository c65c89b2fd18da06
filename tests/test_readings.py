"""The sentences printed after each book figure: numbers taken from the data, verdicts that follow
them."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from emodarts_core.nas.genotype import CellGenotype, Genotype
from emodarts_core.results import readings

OPS = ["none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"]


def _history(final_top: float, valid_ua: float) -> dict:
    """Two epochs of a 2-node cell (5 edges, 4 ops): uniform, then one weight at final_top."""
    uniform = np.full((5, 4), 0.25)
    last = uniform.copy()
    last[3] = [(1 - final_top) / 3] * 4
    last[3, 2] = final_top
    epochs = []
    for e, (a, ua) in enumerate(((uniform, 0.13), (last, valid_ua))):
        epochs.append({"epoch": e, "train_loss": 2.08 - e, "valid_ua": ua, "valid_loss": 2.1 + e,
                       "alphas": {"normal": a.tolist()},
                       "skip_count": {"normal": 2 * e}, "alpha_entropy": {"normal": 1.386 - 0.3 * e}})
    return {"epochs": epochs, "primitives": {"normal": OPS}}


def test_alpha_evolution_names_the_leader_and_says_when_nothing_moved():
    moved = readings.alpha_evolution_reading(_history(0.7, 0.5), "normal")
    assert "0.700" in moved and "preference" in moved
    # named as the figure's panel: 5 edges = 2 nodes, row 3 is node 1 <- c_{k-1}
    assert "`sep_conv_3x3` on the edge node 1 \u2190 $c_{k-1}$" in moved
    still = readings.alpha_evolution_reading(_history(0.26, 0.5), "normal")
    assert "not yet decided" in still


def test_curves_reading_compares_with_chance():
    h = _history(0.7, 0.14)
    assert "at chance level" in readings.curves_reading(h, 8)
    assert "clearly above chance" in readings.curves_reading(_history(0.7, 0.40), 8)
    text = readings.curves_reading(h, 8)
    assert "12.5 %" in text and f"{math.log(8):.3f}" in text and "epoch 1" in text
    with pytest.raises(ValueError):
        readings.curves_reading({"epochs": []}, 8)
    # the best epoch is not the last one: the reading says where the search ended
    late = _history(0.7, 0.14)
    late["epochs"][0]["valid_ua"] = 0.3
    ended = readings.curves_reading(late, 8)
    assert "30.0 % at epoch 0" in ended and "last epoch the validation UA is 14.0 %" in ended
    assert "rose from 2.100 to 3.100" in ended


def test_collapse_reading_reports_skips_threshold_and_entropy():
    text = readings.collapse_reading(_history(0.7, 0.3), max_skips=2)
    assert "normal 2 `skip_connect`" in text and "at or past the DARTS+ threshold of 2" in text
    assert "normal 1.3860 to 1.0860 (uniform 1.3863)" in text


def test_alpha_init_reading_measures_distance_from_uniform():
    w = np.full((5, 4), 0.25)
    w[0, 0] += 1e-4
    text = readings.alpha_init_reading(w)
    assert "1/4 = 0.2500" in text and "1.0e-04" in text


def test_genotype_and_stability_readings_count_choices():
    a = CellGenotype(nodes=((("skip_connect", 0), ("sep_conv_3x3", 1)), (("skip_connect", 2), ("max_pool_3x3", 0))),
                     concat=(2, 3))
    b = CellGenotype(nodes=((("sep_conv_3x3", 0), ("sep_conv_3x3", 1)), (("skip_connect", 2), ("sep_conv_3x3", 0))),
                     concat=(2, 3))
    text = readings.genotype_reading(a, "normal")
    assert "keeps 4 edges over 2 nodes; 3 of them are parameter-free" in text
    g1, g2 = Genotype(normal=a, reduce=a, seq=a), Genotype(normal=b, reduce=a, seq=a)
    stab = readings.stability_reading([g1, g2])
    # normal: a chose {(0,skip),(0,sep),(1,skip),(1,max)}, b {(0,sep),(1,skip),(1,sep)}: 2 of 5 agreed
    assert "normal 2 of 5" in stab and "reduce 4 of 4" in stab
    assert "nothing to compare" in readings.stability_reading([g1])


def test_confusion_and_results_readings():
    metrics = {"confusion": [[8, 2, 0], [5, 5, 0], [0, 0, 10]], "classes": ["a", "b", "c"]}
    text = readings.confusion_reading(metrics)
    assert "Best recognised: c (100.0 % recall); worst: b (50.0 %)" in text
    assert "50.0 % of b into a" in text and "76.7 %" in text
    rows = [SimpleNamespace(method="emodarts", ua=0.5), SimpleNamespace(method="emodarts", ua=0.3),
            SimpleNamespace(method="cnn_lstm", ua=0.2)]
    res = readings.results_reading(rows, 4)
    assert res.index("`emodarts` 40.0 % over 2 runs") < res.index("`cnn_lstm` 20.0 % over 1 run")
    assert "25.0 %" in res


def test_feature_and_speaker_readings():
    cfg = SimpleNamespace(sample_rate=100)
    st = [SimpleNamespace(n_real=50, wave=np.zeros(100), mfcc=np.array([[-400.0, -400.0], [2.0, -2.0]]), cfg=cfg),
          SimpleNamespace(n_real=100, wave=np.zeros(100), mfcc=np.array([[-300.0, -300.0], [1.0, 1.0]]), cfg=cfg)]
    text = readings.feature_stages_reading(st, 1.0)
    assert "1 are shorter" in text and "0.50 to 1.00 s" in text and "-350" in text
    sp = readings.speaker_means_reading({"one normaliser": 0.4, "per speaker": 0.0})
    assert "0.400" in sp and "0.000" in sp
    agr = readings.agreement_reading({"ours": {"median": 1e-7, "max": 2e-7}}, 4)
    assert "float32 rounding" in agr and "4 utterances" in agr


def _quality_history(entropies: list[float], flips: list) -> dict:
    return {"epochs": [{"epoch": e, "quality": {
        "entropy_fraction": {"normal": h, "reduce": h, "seq": h},
        "top2_margin": {"normal": 0.1, "reduce": 0.2, "seq": 0.3}, "flip_rate": f}}
        for e, (h, f) in enumerate(zip(entropies, flips))]}


def test_quality_reading_judges_against_the_gate():
    decided = readings.quality_reading(_quality_history([0.99, 0.6], [None, 0.25]))
    assert "60.0 %" in decided and "have committed" in decided and "0.200" in decided
    assert "25.0 %" in decided                        # the second half's flip rate
    undecided = readings.quality_reading(_quality_history([0.99, 0.97], [None, 0.5]))
    assert "have not committed" in undecided
    with pytest.raises(ValueError, match="quality"):
        readings.quality_reading({"epochs": [{"epoch": 0}]})


def test_seed_agreement_reading_states_all_three_levels_beside_chance():
    import torch

    from emodarts_core.config import get_profile
    from emodarts_core.nas.genotype import sample_genotype
    from emodarts_core.search.quality import chance_agreement, mean_pairwise_agreement
    space = get_profile("cpu").space
    g = torch.Generator().manual_seed(0)
    genos = [sample_genotype(space, g) for _ in range(3)]
    text = readings.seed_agreement_reading(genos, space)
    assert text.startswith("The 3 searches")
    for level in ("op", "family", "edge"):
        assert f"{100 * mean_pairwise_agreement(genos, level=level):.1f} %" in text
        assert f"{100 * chance_agreement(space, level=level):.1f} %" in text
    with pytest.raises(ValueError, match="two"):
        readings.seed_agreement_reading(genos[:1], space)
    # with their alphas: the mean pairwise rank correlation (here 1 and -1 against the first)
    a = {c: [[0.1, 0.2, 0.3, 0.4]] for c in ("normal", "reduce", "seq")}
    rev = {c: [[0.4, 0.3, 0.2, 0.1]] for c in ("normal", "reduce", "seq")}
    ranked = readings.seed_agreement_reading(genos, space, alphas=[a, a, rev])
    assert ranked.startswith(text) and "Spearman correlation of -0.33 on average" in ranked
    with pytest.raises(ValueError, match="one alpha set per genotype"):
        readings.seed_agreement_reading(genos, space, alphas=[a, a])
