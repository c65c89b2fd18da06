"""The search loop on tiny in-memory folds: run-dir files, history records, DARTS+ stop, step logs."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from emodarts_core.config import get_profile, override
from emodarts_core.data.datasets import FoldData, batch_indices, split_search
from emodarts_core.nas.genotype import Genotype, n_edges
from emodarts_core.search.loop import run_search
from emodarts_core.train.runs import RunConfig, RunDir

CLASSES = ("neutral", "happy", "sad", "angry")




def tiny_fold(n_train: int = 16, seed: int = 0) -> FoldData:
    """Four separable-ish classes of random 20 x 16 'MFCC' images."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int):
        y = torch.arange(n) % 4
        return torch.randn(n, 1, 20, 16, generator=g) + 0.8 * y.view(-1, 1, 1, 1), y

    (xtr, ytr), (xva, yva), (xte, yte) = make(n_train), make(8), make(8)
    return FoldData(xtr, ytr, xva, yva, xte, yte, CLASSES, ["00", "01"], ["02"], ["03"], "f0", 1,
                    norm_stats={"mean": torch.zeros(20), "std": torch.ones(20), "eps": 1e-5})


def search_cfg(tmp_path, name="s", search=None, space=None, **options) -> RunConfig:
    p = get_profile("smoke")
    p = dataclasses.replace(p, search=override(p.search, **(search or {})),
                            space=override(p.space, **(space or {})))
    return RunConfig(kind="search", corpus="generated", data_root=str(tmp_path / "data"),
                     out_dir=str(tmp_path / name), profile=p, options=options)


def test_split_and_batches_are_seeded_and_cover_everything():
    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    a = split_search(x, y, 0.3, seed=1)
    b = split_search(x, y, 0.3, seed=1)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert len(a[1]) == 3 and len(a[3]) == 7
    assert sorted(torch.cat([a[1], a[3]]).tolist()) == list(range(10))
    batches = batch_indices(9, 4, torch.Generator().manual_seed(0))
    assert [len(t) for t in batches] == [4, 5]                  # no batch of one
    assert sorted(torch.cat(batches).tolist()) == list(range(9))
    with pytest.raises(ValueError, match="weight_fraction"):
        split_search(x, y, 1.0, seed=0)


def test_second_order_smoke_search_writes_every_file(tmp_path):
    cfg = search_cfg(tmp_path, search={"epochs": 2}, space={"seq_ops": "lstm_att"})
    res = run_search(cfg, progress=False, data=tiny_fold())
    run = RunDir.open(res.run_dir)
    for name in ("config.json", "environment.json", "history.json", "genotype.json",
                 "metrics.json", "checkpoint.pt"):
        assert run.file(name).exists(), name
    hist = run.history()
    assert [e["epoch"] for e in hist["epochs"]] == [0, 1]
    space = cfg.profile.space
    for rec in hist["epochs"]:
        for key in ("lr", "train_loss", "train_wa", "valid_loss", "valid_wa", "valid_ua", "seconds"):
            assert math.isfinite(rec[key]), key
        a = rec["alphas"]
        assert len(a["normal"]) == n_edges(space.cnn_nodes) == len(a["reduce"])
        assert len(a["normal"][0]) == len(space.cnn_ops)
        assert len(a["seq"]) == n_edges(space.seq_nodes)
        assert len(a["seq"][0]) == len(space.seq_primitives)
        assert all(abs(sum(row) - 1) < 1e-5 for row in a["seq"])
        Genotype.from_dict(rec["genotype"])
        assert set(rec["skip_count"]) == set(rec["alpha_entropy"]) == {"normal", "reduce", "seq"}
        assert 0 < rec["alpha_entropy"]["normal"] <= math.log(len(space.cnn_ops)) + 1e-6
    # the learning rate follows the cosine schedule downwards
    assert hist["epochs"][1]["lr"] < hist["epochs"][0]["lr"] == cfg.profile.search.w_lr
    # final genotype = best validation-UA epoch's genotype
    m = run.read_json("metrics.json")
    best = hist["epochs"][m["best_epoch"]]
    assert best["valid_ua"] == max(e["valid_ua"] for e in hist["epochs"])
    assert Genotype.load(run.file("genotype.json")) == Genotype.from_dict(best["genotype"])
    assert res.genotype == Genotype.from_dict(best["genotype"])
    ckpt = run.load_checkpoint()
    assert ckpt["state"]["epoch"] == 2 and "architect" in ckpt and "rng" in ckpt
    # the alphas moved away from their 1e-3 initialisation
    assert not torch.allclose(torch.tensor(hist["epochs"][0]["alphas"]["normal"]),
                              torch.full((n_edges(space.cnn_nodes), len(space.cnn_ops)),
                                         1 / len(space.cnn_ops)), atol=1e-7)


def test_rerunning_a_finished_search_changes_nothing(tmp_path):
    cfg = search_cfg(tmp_path, search={"epochs": 1, "order": "first"}, space={"seq_ops": "lstm_att"})
    data = tiny_fold()
    first = run_search(cfg, progress=False, data=data)
    again = run_search(cfg, progress=False, data=data)
    assert again.history == first.history and again.genotype == first.genotype


def test_darts_plus_stops_on_skip_collapse(tmp_path):
    cfg = search_cfg(tmp_path, search={"epochs": 3, "order": "first", "collapse_guard": "darts+",
                                       "max_skips": 2},
                     space={"cnn_ops": ("skip_connect", "none"), "seq_ops": "lstm_att"})
    res = run_search(cfg, progress=False, data=tiny_fold())
    assert res.stopped_early and res.epochs_run == 1
    m = RunDir.open(res.run_dir).read_json("metrics.json")
    assert m["stopped_early"] and "skip" in m["stop_reason"]


def test_alpha_log_every_records_steps(tmp_path):
    cfg = search_cfg(tmp_path, search={"epochs": 2, "order": "first", "alpha_log_every": 1,
                                       "batch_size": 4}, space={"seq_ops": "lstm_att"})
    res = run_search(cfg, progress=False, data=tiny_fold())
    steps = res.history["steps"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4]                 # 8 w-utterances / batch 4
    assert [s["epoch"] for s in steps] == [0, 0, 1, 1]
    assert len(steps[0]["alphas"]["seq"][0]) == 4


def test_search_refuses_other_kinds(tmp_path):
    cfg = dataclasses.replace(search_cfg(tmp_path), kind="train")
    with pytest.raises(ValueError, match="kind 'search'"):
        run_search(cfg, progress=False, data=tiny_fold())


def test_alpha_warmup_trains_only_the_weights_first(tmp_path):
    """During the warm-up epochs the alphas keep their initial values while the weights move;
    afterwards they move, and the final genotype comes from a post-warm-up epoch."""
    cfg = search_cfg(tmp_path, search={"epochs": 3, "alpha_warmup_epochs": 2, "order": "first"},
                     space={"seq_ops": "lstm_att"})
    torch.manual_seed(cfg.seed)
    res = run_search(cfg, progress=False, data=tiny_fold())
    epochs = RunDir.open(res.run_dir).history()["epochs"]
    assert [e["alpha_step_loss"] is None for e in epochs] == [True, True, False]
    assert epochs[0]["alphas"] == epochs[1]["alphas"] != epochs[2]["alphas"]
    assert epochs[0]["train_loss"] != epochs[1]["train_loss"]          # the weights did train
    assert res.best_epoch == 2
    with pytest.raises(ValueError, match="alpha_warmup_epochs"):
        run_search(search_cfg(tmp_path, "bad", search={"epochs": 2, "alpha_warmup_epochs": 2}),
                   progress=False, data=tiny_fold())


def test_best_epoch_selection_skips_the_warmup():
    from emodarts_core.search.loop import _select_best

    recs = [{"epoch": i, "valid_ua": ua, "valid_loss": 1.0} for i, ua in enumerate([0.9, 0.4, 0.5])]
    assert _select_best(recs)["epoch"] == 0
    assert _select_best(recs, warmup=1)["epoch"] == 2
    assert _select_best(recs[:1], warmup=2)["epoch"] == 0    # stopped inside the warm-up
