"""Judging the epoch rule (last vs best) on the validation speakers only."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from emodarts_core.config import get_profile, override
from emodarts_core.data.corpora.generated import generate_corpus
from emodarts_core.train.selection import (RuleEstimate, chosen_rule, estimates_below,
                                           rule_estimate, rule_table)


def _cm(correct: int, wrong: int) -> list[list[int]]:
    """Two classes, ``correct + wrong`` utterances of each; ``correct`` recalled per class."""
    return [[correct, wrong], [wrong, correct]]


def test_cross_selection_picks_on_the_other_speakers_and_scores_the_held_out_one():
    # speaker a peaks at epoch 1, speaker b at epoch 0; the last epoch is 2
    epochs = [{"valid_confusion_by_speaker": {"a": _cm(2, 2), "b": _cm(4, 0)}},
              {"valid_confusion_by_speaker": {"a": _cm(4, 0), "b": _cm(1, 3)}},
              {"valid_confusion_by_speaker": {"a": _cm(3, 1), "b": _cm(3, 1)}}]
    est = rule_estimate(epochs, "r")
    # held out a: epoch picked on b = 0, a scores 0.5 there; held out b: picked on a = 1, b 0.25
    assert est == RuleEstimate(run_dir="r", best=pytest.approx((0.5 + 0.25) / 2),
                               last=pytest.approx(0.75), speakers=2, epochs=3)
    assert chosen_rule([est]) == "last"
    # a tie in the other speakers' UA picks the earlier epoch, as fit() keeps its best
    tie = [{"valid_confusion_by_speaker": {"a": _cm(4, 0), "b": _cm(3, 1)}},
           {"valid_confusion_by_speaker": {"a": _cm(0, 4), "b": _cm(3, 1)}}]
    assert rule_estimate(tie).best == pytest.approx((0.75 + 1.0) / 2)


def test_three_speakers_pool_the_others_confusions():
    # held out c: a + b pooled: epoch 0 = (1+3)/8 per class -> 0.5, epoch 1 = (4+0)/8 -> 0.5:
    # a tie, the earlier epoch; a alone would pick epoch 1, b alone epoch 0
    epochs = [{"valid_confusion_by_speaker": {"a": _cm(1, 3), "b": _cm(3, 1), "c": _cm(1, 0)}},
              {"valid_confusion_by_speaker": {"a": _cm(4, 0), "b": _cm(0, 4), "c": _cm(0, 1)}}]
    est = rule_estimate(epochs)
    # held out a: b+c pooled, epoch 0 (4/5) beats epoch 1 (0/5) -> a at 0: 0.25
    # held out b: a+c, epoch 0 = 2/5, epoch 1 = 4/5 -> b at 1: 0.0
    # held out c: tie -> epoch 0 -> c: 1.0
    assert est.best == pytest.approx((0.25 + 0.0 + 1.0) / 3) and est.speakers == 3
    assert est.last == pytest.approx((1.0 + 0.0 + 0.0) / 3)


def test_trainings_that_cannot_be_judged_are_left_out():
    assert rule_estimate([]) is None
    assert rule_estimate([{"valid_ua": 0.5}]) is None                        # older records
    assert rule_estimate([{"valid_confusion_by_speaker": {"a": _cm(1, 1)}}]) is None   # 1 speaker
    with pytest.raises(ValueError, match="no training"):
        chosen_rule([])
    ests = [RuleEstimate("x", 0.6, 0.5, 2, 9), RuleEstimate("y", 0.5, 0.52, 2, 9)]
    table = rule_table({"emodarts": ests, "empty": []})
    assert table.splitlines()[2] == "| emodarts | 2 | 55.00 | 51.00 | 1 | 1 | best |"
    assert len(table.splitlines()) == 3


def test_fit_records_per_speaker_validation_confusions(tmp_path):
    """A real training: every epoch's per-speaker confusions add up to the recorded validation
    WA, and a training below a folder is found and judged when it has two speakers."""
    from emodarts_core.nas.genotype import sample_genotype
    from emodarts_core.train.fit import load_data, run_train
    from emodarts_core.train.runs import RunConfig, RunDir
    import torch

    generate_corpus(tmp_path / "data", n_speakers=16, per_class=1, seed=3)   # 2 validation
    p = get_profile("smoke")
    prof = dataclasses.replace(p, train=override(p.train, epochs=2))
    cfg = RunConfig(kind="train", corpus="generated", data_root=str(tmp_path / "data"),
                    out_dir=str(tmp_path / "runs" / "t"), fold=0, seed=0, profile=prof,
                    cache_dir=str(tmp_path / "cache"))
    data = load_data(cfg, False)
    assert len(data.valid_speaker_of) == len(data.y_valid)
    assert sorted(set(data.valid_speaker_of)) == data.speakers_valid
    geno = sample_genotype(prof.space, torch.Generator().manual_seed(0))
    res = run_train(cfg, geno, progress=False, data=data)
    epochs = RunDir.open(res.run_dir).history()["epochs"]
    for e in epochs:
        cms = e["valid_confusion_by_speaker"]
        assert sorted(cms) == data.speakers_valid
        total = np.sum([np.asarray(cm) for cm in cms.values()], axis=0)
        assert total.sum() == len(data.y_valid)
        assert np.trace(total) / total.sum() == pytest.approx(e["valid_wa"])
    found = estimates_below(tmp_path / "runs")
    assert len(data.speakers_valid) == 2
    assert [f.run_dir for f in found] == [str(res.run_dir)] and found[0].epochs == 2


def test_selection_rule_script_tables_a_batch(tmp_path):
    """benchmarks/selection_rule.py over a batch: random search judged by its final training,
    a training without per-speaker records counted as left out."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    def run(path, kind, options, epochs):
        path.mkdir(parents=True)
        (path / "config.json").write_text(json.dumps(
            {"kind": kind, "corpus": "c", "fold": 0, "seed": 0, "options": options}))
        (path / "metrics.json").write_text(json.dumps({"wa": 0.5, "ua": 0.5}))
        (path / "history.json").write_text(json.dumps({"epochs": epochs, "steps": []}))

    judged = [{"valid_confusion_by_speaker": {"a": _cm(2, 2), "b": _cm(4, 0)}},
              {"valid_confusion_by_speaker": {"a": _cm(4, 0), "b": _cm(1, 3)}},
              {"valid_confusion_by_speaker": {"a": _cm(3, 1), "b": _cm(3, 1)}}]
    job = tmp_path / "c" / "fold0" / "seed0"
    run(job / "train", "train", {}, judged)
    run(job / "baseline_random", "baseline", {"baseline": "random"}, [])
    run(job / "baseline_random" / "final", "train", {}, judged)
    run(job / "baseline_cnn_lstm", "baseline", {"baseline": "cnn_lstm"}, [{"valid_ua": 0.4}])
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "selection_rule.py"
    out = subprocess.run([sys.executable, str(script), "--runs", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| ")][1:]
    assert rows == ["| emodarts | 1 | 37.50 | 75.00 | 0 | 1 | last |",
                    "| random | 1 | 37.50 | 75.00 | 0 | 1 | last |"]
    assert "1 training(s) left out." in out
