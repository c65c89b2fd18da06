"""The size-matched CNN-BiLSTM with attention: shapes, size matching, attention, a smoke run."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from emodarts_core.config import get_profile, override
from emodarts_core.data.corpora.generated import generate_corpus
from emodarts_core.results.collect import collect
from emodarts_core.train.baselines import run_baseline
from emodarts_core.train.evaluate import run_evaluate
from emodarts_core.train.handdesigned import (CNNBiLSTMAtt, count_parameters, match_size, size_of,
                                              typical_searched_size)
from emodarts_core.train.runs import RunConfig, RunDir


def test_shapes_and_batches_are_independent():
    torch.manual_seed(0)
    model = CNNBiLSTMAtt(4, (20, 15), width=4).eval()
    x = torch.randn(3, 1, 20, 15)
    logits, weights = model.attend(x)
    assert logits.shape == (3, 4)
    assert weights.shape == (3, 2)                          # 15 frames -> 8 -> 4 -> 2
    alone = model(x[1:2])
    assert torch.allclose(alone, logits[1:2], atol=1e-6)    # no mixing across the batch
    with pytest.raises(ValueError, match="expected input"):
        model(torch.randn(3, 20, 15))


def test_attention_weights_sum_to_one_and_every_frame_counts():
    torch.manual_seed(1)
    model = CNNBiLSTMAtt(3, (16, 64), width=3).eval()
    x = torch.randn(2, 1, 16, 64)
    _, weights = model.attend(x)
    assert weights.shape == (2, 8)
    assert torch.allclose(weights.sum(dim=1), torch.ones(2), atol=1e-6)
    assert (weights > 0).all()
    # every pooled frame moves the output: the gradient reaches each frame of the input span
    x.requires_grad_(True)
    model(x).sum().backward()
    per_frame = x.grad.abs().sum(dim=(0, 1, 2)).reshape(8, 8).sum(dim=1)
    assert (per_frame > 0).all()


def test_size_of_counts_the_real_model_and_match_size_is_within_ten_percent():
    assert size_of(5, 4, (40, 125)) == count_parameters(CNNBiLSTMAtt(4, (40, 125), width=5))
    for target in (50_000, 400_000, 2_000_000):
        w = match_size(target, 4, (40, 125))
        got = size_of(w, 4, (40, 125))
        assert abs(got - target) / target < 0.10
        # the closest: neither neighbour is nearer
        for other in (w - 1, w + 1):
            assert abs(size_of(other, 4, (40, 125)) - target) >= abs(got - target)
    with pytest.raises(ValueError):
        match_size(0, 4, (40, 125))


def test_typical_size_is_the_seeded_mean_of_drawn_networks():
    prof = get_profile("smoke")
    a = typical_searched_size(prof, 4, (20, 15))
    assert a == typical_searched_size(prof, 4, (20, 15))          # fixed generator
    one = [typical_searched_size(prof, 4, (20, 15), draws=1, seed=s) for s in range(3)]
    assert len(set(one)) > 1                                      # the draws differ
    wide = dataclasses.replace(prof, train=override(prof.train, init_channels=2 * prof.space.init_channels))
    assert typical_searched_size(wide, 4, (20, 15)) > a           # the final space counts


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    generate_corpus(root / "data", n_speakers=4, per_class=2, seed=1)
    return root


def test_smoke_training_matches_the_size_and_evaluates(corpus, tmp_path):
    p = get_profile("smoke")
    prof = dataclasses.replace(p, train=override(p.train, epochs=2))
    cfg = RunConfig(kind="baseline", corpus="generated", data_root=str(corpus / "data"),
                    out_dir=str(tmp_path / "b"), fold=1, seed=0, profile=prof,
                    cache_dir=str(corpus / "cache"),
                    options={"baseline": "cnn_bilstm_att", "tune": False})
    res = run_baseline(cfg, progress=False)
    run = RunDir.open(res.run_dir)
    m = run.read_json("metrics.json")
    opts = run.config.options
    target = opts["size_match"]["target_parameters"]
    assert m["baseline"] == "cnn_bilstm_att" and m["width"] == opts["cnn_bilstm_att"]["width"]
    assert abs(m["n_parameters"] - target) / target < 0.10
    assert m["n_parameters"] == opts["size_match"]["parameters"]
    assert m["n"] == 8 and np.array(m["confusion"]).sum() == 8
    assert len(run.history()["epochs"]) == 2
    # evaluate rebuilds the same network from config.json and reproduces the test metrics
    ev = run_evaluate(run.path, "generated", corpus / "data", fold=1, cache_dir=corpus / "cache")
    assert ev["confusion"] == m["confusion"] and ev["ua"] == pytest.approx(m["ua"])
    # an explicit target is honoured, and rerunning the finished run is a resume, not a clash
    again = run_baseline(cfg, progress=False)
    assert again.metrics["ua"] == m["ua"]
    small = run_baseline(dataclasses.replace(cfg, out_dir=str(tmp_path / "s"),
                                             options={"baseline": "cnn_bilstm_att",
                                                      "target_parameters": 20_000,
                                                      "tune": False}),
                         progress=False)
    assert abs(small.metrics["n_parameters"] - 20_000) / 20_000 < 0.10


def test_tuning_chooses_on_validation_and_trains_the_winner_again(corpus, tmp_path):
    """Every grid point trained in full and scored by the validation UA of the epoch the
    profile's rule tests; the winner (ties: the earlier) trained again as the run itself, with
    its network and learning rate recorded: the same seed gives the same network as its point."""
    from emodarts_core.train.baselines import TUNE_GRID, tuning_points

    assert len(tuning_points(TUNE_GRID)) == 8
    assert tuning_points({"lr": [0.1], "blocks": [2, 3]}) == [{"lr": 0.1, "blocks": 2},
                                                               {"lr": 0.1, "blocks": 3}]
    p = get_profile("smoke")
    prof = dataclasses.replace(p, train=override(p.train, epochs=2, select="last"))
    grid = {"blocks": [2], "dropout": [0.1], "lr": [0.01, 0.2]}
    cfg = RunConfig(kind="baseline", corpus="generated", data_root=str(corpus / "data"),
                    out_dir=str(tmp_path / "t"), fold=1, seed=0, profile=prof,
                    cache_dir=str(corpus / "cache"),
                    options={"baseline": "cnn_bilstm_att", "tune": grid})
    res = run_baseline(cfg, progress=False)
    run = RunDir.open(res.run_dir)
    tuning = run.read_json("tuning.json")
    assert [pt["point"] for pt in tuning["points"]] == tuning_points(grid)
    for pt in tuning["points"]:
        point_run = RunDir.open(pt["run_dir"])
        assert pt["valid_ua"] == point_run.history()["epochs"][-1]["valid_ua"]   # the last epoch
        assert point_run.config.profile.train.lr == pt["point"]["lr"]
    best = min(tuning["points"], key=lambda pt: (-pt["valid_ua"], pt["index"]))
    assert tuning["best_index"] == best["index"]
    assert run.config.options["tuned"] == best["point"]
    assert run.config.profile.train.lr == best["point"]["lr"]
    assert run.config.options["cnn_bilstm_att"]["blocks"] == 2
    winner = RunDir.open(best["run_dir"]).read_json("metrics.json")
    assert res.metrics["confusion"] == winner["confusion"] and res.ua == winner["ua"]
    assert sorted(r.method for r in collect(tmp_path)) == ["cnn_bilstm_att"]  # points nested
    with pytest.raises(ValueError, match="unknown setting"):
        run_baseline(dataclasses.replace(cfg, out_dir=str(tmp_path / "x"),
                                         options={"baseline": "cnn_bilstm_att",
                                                  "tune": {"width": [4]}}), progress=False)
    fit_valid = dataclasses.replace(prof, train=override(prof.train, fit_valid=True))
    with pytest.raises(ValueError, match="fit_valid"):
        run_baseline(dataclasses.replace(cfg, out_dir=str(tmp_path / "y"), profile=fit_valid),
                     progress=False)
