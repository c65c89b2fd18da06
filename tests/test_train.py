"""Final training, evaluation and baselines on a tiny generated corpus and tiny in-memory folds."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from test_search import tiny_fold

from emodarts_core.config import get_profile, override
from emodarts_core.data.corpora.generated import generate_corpus
from emodarts_core.data.datasets import DataError
from emodarts_core.nas.genotype import Genotype, sample_genotype
from emodarts_core.train.baselines import run_baseline
from emodarts_core.train.engine import mask_batch
from emodarts_core.train.evaluate import run_evaluate
from emodarts_core.train.fit import run_train
from emodarts_core.train.handdesigned import CNNLSTM
from emodarts_core.train.runs import RunConfig, RunDir


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    generate_corpus(root / "data", n_speakers=4, per_class=2, seed=1)
    return root


def small_profile(epochs: int = 2):
    p = get_profile("smoke")
    return dataclasses.replace(p, space=override(p.space, seq_ops="lstm_att"),
                               train=override(p.train, epochs=epochs))


def train_fold1(corpus, out, prof, genotype_seed: int):
    """Train a sampled genotype on fold 1 of the generated corpus, seed 0, into ``out``:
    (result, metrics)."""
    geno = sample_genotype(prof.space, torch.Generator().manual_seed(genotype_seed))
    cfg = RunConfig(kind="train", corpus="generated", data_root=str(corpus / "data"),
                    out_dir=str(out), fold=1, seed=0, profile=prof, cache_dir=str(corpus / "cache"))
    res = run_train(cfg, geno, progress=False)
    return res, RunDir.open(res.run_dir).read_json("metrics.json")


def test_train_from_genotype_then_evaluate(corpus, tmp_path):
    prof = small_profile(epochs=2)
    geno = sample_genotype(prof.space, torch.Generator().manual_seed(0))
    cfg = RunConfig(kind="train", corpus="generated", data_root=str(corpus / "data"),
                    out_dir=str(tmp_path / "t"), fold=1, seed=0, profile=prof,
                    cache_dir=str(corpus / "cache"))
    res = run_train(cfg, geno, progress=False)
    run = RunDir.open(res.run_dir)
    for name in ("config.json", "environment.json", "history.json", "genotype.json",
                 "metrics.json", "checkpoint.pt", "best.pt", "normalizer.pt"):
        assert run.file(name).exists(), name
    assert Genotype.load(run.file("genotype.json")) == geno
    assert run.config.options["genotype"] == geno.to_dict()
    m = run.read_json("metrics.json")
    assert m["classes"] == ["neutral", "happy", "sad", "angry"]
    assert m["n"] == 8 and np.array(m["confusion"]).sum() == 8     # one test speaker x 8 files
    assert len(m["speakers_test"]) == 1 and 0.0 <= m["ua"] <= 1.0
    recalls = [r for r in m["per_class_recall"].values() if r is not None]
    assert m["ua"] == pytest.approx(np.mean(recalls))
    hist = run.history()["epochs"]
    # drop-path ramps 0 -> drop_path over the epochs
    assert [h["drop_path_prob"] for h in hist] == pytest.approx([0.0, prof.train.drop_path / 2])
    assert m["best_valid_ua"] == max(h["valid_ua"] for h in hist)
    # the default rule tests the best validation epoch; the last epoch's test figures ride along
    assert m["selection"] == "best" and m["selected_epoch"] == m["best_epoch"]
    assert m["test_by_selection"]["best"] == {"epoch": m["best_epoch"], "wa": m["wa"], "ua": m["ua"]}
    assert m["test_by_selection"]["last"]["epoch"] == len(hist) - 1

    # evaluating the same fold's test side reproduces the metrics; all utterances: n = 32
    ev = run_evaluate(run.path, "generated", corpus / "data", fold=1, cache_dir=corpus / "cache")
    assert ev["confusion"] == m["confusion"] and ev["ua"] == pytest.approx(m["ua"])
    ev_all = run_evaluate(run.path, "generated", corpus / "data", cache_dir=corpus / "cache",
                          out=tmp_path / "all.json")
    assert ev_all["n"] == 32 and json.loads((tmp_path / "all.json").read_text())["n"] == 32


def test_speaker_normalisation_trains_and_evaluates_alike(corpus, tmp_path):
    from emodarts_core.data.datasets import load_fold_data

    prof = small_profile(epochs=1)
    prof = dataclasses.replace(prof, features=override(prof.features, normalization="speaker"))
    data = load_fold_data("generated", corpus / "data", prof.features, fold=1,
                          cache_dir=corpus / "cache")
    plain = load_fold_data("generated", corpus / "data", get_profile("smoke").features, fold=1,
                           cache_dir=corpus / "cache")
    # every speaker, test speakers included, ends up standardised by their own statistics
    for x in (data.x_train[:8], data.x_valid, data.x_test):      # 8 files per speaker
        torch.testing.assert_close(x.mean(dim=(0, 3)).flatten(), torch.zeros(x.shape[2]),
                                   atol=1e-4, rtol=0)
    assert plain.x_test.mean(dim=(0, 3)).abs().max() > 0.05     # which the plain setting does not
    res, m = train_fold1(corpus, tmp_path / "t", prof, genotype_seed=0)
    ev = run_evaluate(res.run_dir, "generated", corpus / "data", fold=1, cache_dir=corpus / "cache")
    assert ev["confusion"] == m["confusion"]


def check_band_masks(x: torch.Tensor, m: torch.Tensor, freq_mask: int, time_mask: int):
    """Assert that ``m`` is ``x`` (which holds no zeros) with, per utterance, one contiguous band
    of at most ``freq_mask`` coefficients and one contiguous span of at most ``time_mask`` frames
    set to 0, and nothing else changed. Returns the band and span widths per utterance."""
    zero = m == 0
    rows = zero.all(dim=3)[:, 0]                    # (B, F): coefficient masked for all frames
    cols = zero.all(dim=2)[:, 0]                    # (B, T): frame masked for all coefficients
    widths_f, widths_t = rows.sum(1), cols.sum(1)
    assert widths_f.max() <= freq_mask and widths_t.max() <= time_mask
    for b in range(len(x)):                         # each masked band / span is contiguous
        for mask in (rows[b], cols[b]):
            idx = mask.nonzero().flatten()
            if len(idx):
                assert idx[-1] - idx[0] + 1 == len(idx)
        # nothing outside the band and the span is touched
        keep = ~(rows[b][:, None] | cols[b][None, :])
        assert torch.equal(m[b, 0][keep], x[b, 0][keep])
    return widths_f, widths_t


def test_mask_batch_zeroes_one_band_and_one_span_per_utterance():
    torch.manual_seed(0)
    x = torch.randn(64, 1, 20, 30) + 5.0           # no zeros by chance
    assert mask_batch(x, 0, 0) is x
    m = mask_batch(x, 6, 9)
    assert m.shape == x.shape and (x > 0).all()
    widths_f, _ = check_band_masks(x, m, 6, 9)
    assert len(set(widths_f.tolist())) > 2          # widths drawn per utterance
    with pytest.raises(ValueError, match="freq_mask"):
        override(get_profile("smoke").train, freq_mask=-1)


def test_select_last_tests_and_evaluates_the_last_epoch(corpus, tmp_path):
    prof = small_profile(epochs=3)
    prof = dataclasses.replace(prof, train=override(prof.train, select="last"))
    res, m = train_fold1(corpus, tmp_path / "t", prof, genotype_seed=3)
    assert m["selection"] == "last" and m["selected_epoch"] == 2 and m["epochs_run"] == 3
    assert m["test_by_selection"]["last"] == {"epoch": 2, "wa": m["wa"], "ua": m["ua"]}
    assert m["test_by_selection"]["best"]["epoch"] == m["best_epoch"]
    # evaluate reads the last epoch's weights (checkpoint.pt), not best.pt: it still works without
    # best.pt and reproduces the reported confusion matrix
    (res.run_dir / "best.pt").unlink()
    ev = run_evaluate(res.run_dir, "generated", corpus / "data", fold=1, cache_dir=corpus / "cache")
    assert ev["confusion"] == m["confusion"]
    # a "best" run without best.pt cannot be evaluated, and says so
    res_best, _ = train_fold1(corpus, tmp_path / "b", small_profile(epochs=1), genotype_seed=3)
    (res_best.run_dir / "best.pt").unlink()
    with pytest.raises(DataError, match="no finished training"):
        run_evaluate(res_best.run_dir, "generated", corpus / "data", cache_dir=corpus / "cache")


def test_an_ensemble_predicts_the_mean_softmax_of_its_runs(corpus, tmp_path):
    from emodarts_core.data.datasets import load_fold_data
    from emodarts_core.train.engine import predict
    from emodarts_core.train.evaluate import build_model, selected_weights

    prof = small_profile(epochs=2)
    (a, ma), (b, mb) = (train_fold1(corpus, tmp_path / name, prof, genotype_seed=g)
                        for name, g in (("a", 1), ("b", 2)))
    args = ("generated", corpus / "data")
    kw = {"fold": 1, "cache_dir": corpus / "cache"}
    ens = run_evaluate([a.run_dir, b.run_dir], *args, out=tmp_path / "ens.json", **kw)
    assert json.loads((tmp_path / "ens.json").read_text())["confusion"] == ens["confusion"]
    # each member, scored on the same utterances, is the run's own test result
    assert [v for m in ens["members"] for v in (m["wa"], m["ua"])] == pytest.approx(
        [ma["wa"], ma["ua"], mb["wa"], mb["ua"]])
    assert ens["combine"] == "mean softmax probability" and len(ens["runs"]) == 2
    # the same ensemble computed another way: the training pipeline's test tensors, each run's
    # selected weights, softmax averaged, argmax
    data = load_fold_data(*args, prof.features, **kw)
    probs = []
    for res in (a, b):
        run = RunDir.open(res.run_dir)
        model = build_model(run, 4, tuple(data.x_test.shape[-2:]))
        model.load_state_dict(selected_weights(run))
        probs.append(torch.softmax(predict(model, data.x_test, 4, torch.device("cpu")), 1))
    pred = ((probs[0] + probs[1]) / 2).argmax(1).numpy()
    expected = np.zeros((4, 4), dtype=int)
    np.add.at(expected, (data.y_test.numpy(), pred), 1)
    assert ens["confusion"] == expected.tolist()
    # a run averaged with itself is that run; an ensemble must say where its metrics go
    twice = run_evaluate([a.run_dir, a.run_dir], *args, out=tmp_path / "aa.json", **kw)
    assert twice["confusion"] == ma["confusion"]
    with pytest.raises(ValueError, match="output path"):
        run_evaluate([a.run_dir, b.run_dir], *args, **kw)


def test_train_select_must_be_a_known_rule():
    with pytest.raises(ValueError, match="best, last"):
        override(get_profile("smoke").train, select="median")


def test_class_weights_balance_the_training_side():
    data = tiny_fold(16)
    data.y_train = torch.tensor([0] * 8 + [1] * 4 + [2] * 2 + [3] * 2)
    w = data.class_weights()
    counts = torch.tensor([8.0, 4, 2, 2])
    assert torch.allclose(w * counts, (w * counts)[0].expand(4))      # weight x count constant
    assert w.mean().item() == pytest.approx(1.0)


def test_cnn_lstm_keeps_time_and_batches_independent():
    torch.manual_seed(0)
    model = CNNLSTM(4, (20, 16), hidden=8, fc=8).eval()
    x = torch.randn(5, 1, 20, 16)
    with torch.no_grad():
        alone = model(x[:1])
        together = model(x)
        other = model(torch.cat([x[:1], torch.randn(3, 1, 20, 16)]))
        reversed_time = model(x[:1].flip(-1))
    assert torch.allclose(alone, together[:1], atol=1e-6)
    assert torch.allclose(alone, other[:1], atol=1e-6)
    assert not torch.allclose(alone, reversed_time, atol=1e-4)       # frame order matters
    assert model.lstm.input_size == 1 * 6       # C x F' per frame: (20 + 4 - 2) // 2 + 1 = 12 -> 6


def test_cnn_lstm_head_norm_normalises_the_pooled_vector():
    torch.manual_seed(0)
    plain = CNNLSTM(4, (20, 16), hidden=8, fc=8)
    normed = CNNLSTM(4, (20, 16), hidden=8, fc=8, head_norm=True)
    assert isinstance(plain.head_norm, torch.nn.Identity)
    assert isinstance(normed.head_norm, torch.nn.BatchNorm1d) and normed.head_norm.num_features == 16
    seen = {}
    normed.head.register_forward_pre_hook(lambda m, args: seen.setdefault("z", args[0]))
    normed.train()(torch.randn(6, 1, 20, 16))
    z = seen["z"]                                # what the first linear layer receives
    assert torch.allclose(z.mean(0), torch.zeros(16), atol=1e-5)
    assert torch.allclose(z.std(0, unbiased=False), torch.ones(16), atol=0.05)   # eps: ~0.97-1


def test_sample_genotype_is_seeded_and_valid():
    space = get_profile("smoke").space
    a = [sample_genotype(space, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert a[0] == a[1]
    g = sample_genotype(space, torch.Generator().manual_seed(4))
    assert g != a[0]
    for cell in (g.normal, g.reduce, g.seq):
        Genotype.from_dict(g.to_dict())
        assert "none" not in cell.ops()
        for node in cell.nodes:
            assert len({src for _, src in node}) == 2


def test_baselines_run(tmp_path):
    prof = small_profile(epochs=2)
    data = tiny_fold()
    base = dict(kind="baseline", corpus="generated", data_root=str(tmp_path / "d"), profile=prof)
    res = run_baseline(RunConfig(out_dir=str(tmp_path / "b"), options={"baseline": "cnn_lstm"},
                                 **base), progress=False, data=data)
    m = RunDir.open(res.run_dir).read_json("metrics.json")
    assert m["baseline"] == "cnn_lstm" and m["n"] == 8 and len(m["confusion"]) == 4

    res = run_baseline(RunConfig(out_dir=str(tmp_path / "r"),
                                 options={"baseline": "random", "k": 2, "brief_epochs": 1}, **base),
                       progress=False, data=data)
    run = RunDir.open(res.run_dir)
    cands = run.read_json("candidates.json")
    assert len(cands["candidates"]) == 2
    best = max(cands["candidates"], key=lambda c: (c["valid_ua"], -c["index"]))
    assert cands["best_index"] == best["index"]
    assert Genotype.load(run.file("genotype.json")) == Genotype.from_dict(best["genotype"])
    assert len(RunDir.open(run.path / "final").history()["epochs"]) == 2   # the full budget
    assert len(RunDir.open(best["run_dir"]).history()["epochs"]) == 1      # the brief one
    with pytest.raises(ValueError, match="unknown baseline"):
        run_baseline(RunConfig(out_dir=str(tmp_path / "x"), options={"baseline": "svm"}, **base),
                     data=data)


def test_run_cost_sums_seconds_and_updates():
    from emodarts_core.train.runs import RunCost
    hist = {"epochs": [{"seconds": 1.5, "steps": 4}, {"seconds": 2.0, "steps": 4,
                                                        "alpha_batches": 8}]}
    assert RunCost.of_history(hist) == RunCost(seconds=3.5, steps=16, epochs=2)
    old = {"epochs": [{"seconds": 1.0}, {"seconds": 1.0, "steps": 3}]}   # before steps counted
    assert RunCost.of_history(old).steps is None
    assert RunCost.of_history({"epochs": []}) == RunCost(seconds=0.0, steps=0, epochs=0)


def test_random_search_spends_the_matched_search_budget(tmp_path):
    """Budget ``steps``: as many candidates as fit the search's updates at the mean cost so far
    (a candidate's steps are epochs x batches); the same decisions on a rerun; the first
    candidates are those of a fixed ``k``; bad budgets are clear errors."""
    prof = small_profile(epochs=2)
    data = tiny_fold()
    base = dict(kind="baseline", corpus="generated", data_root=str(tmp_path / "d"), profile=prof)
    fixed = run_baseline(RunConfig(out_dir=str(tmp_path / "k1"), **base,
                                   options={"baseline": "random", "k": 1, "brief_epochs": 1}),
                         progress=False, data=data)
    one = RunDir.open(fixed.run_dir).read_json("candidates.json")["candidates"][0]
    per_candidate = one["cost"]["steps"]
    assert per_candidate == len(RunDir.open(one["run_dir"]).history()["epochs"]) * \
        RunDir.open(one["run_dir"]).history()["epochs"][0]["steps"] > 0

    search = RunDir(tmp_path / "search")
    search.path.mkdir()
    # 3.5 candidates' worth of updates: three fit, a fourth would not
    search.write_history({"epochs": [{"seconds": 9.0, "steps": per_candidate,
                                      "alpha_batches": per_candidate},
                                     {"seconds": 9.0, "steps": per_candidate // 2,
                                      "alpha_batches": per_candidate}], "steps": []})
    opts = {"baseline": "random", "brief_epochs": 1, "budget": "steps", "match_search": "../search"}
    res = run_baseline(RunConfig(out_dir=str(tmp_path / "r"), options=opts, **base),
                       progress=False, data=data)
    cands = RunDir.open(res.run_dir).read_json("candidates.json")
    assert cands["k"] == 3 and len(cands["candidates"]) == 3
    assert cands["budget"]["search"]["steps"] == 3 * per_candidate + per_candidate // 2
    assert cands["budget"]["spent"]["steps"] == 3 * per_candidate <= cands["budget"]["limit"]
    assert cands["candidates"][0]["genotype"] == one["genotype"]    # the same seeded stream
    again = run_baseline(RunConfig(out_dir=str(tmp_path / "r"), options=opts, **base),
                         progress=False, data=data)
    assert RunDir.open(again.run_dir).read_json("candidates.json") == cands
    assert again.metrics["ua"] == res.metrics["ua"] and again.metrics["k"] == 3

    for bad, match in (({"budget": "hours"}, "budget must be"),
                       ({"budget": "steps"}, "needs options"),
                       ({"budget": "seconds", "match_search": str(tmp_path / "nowhere")},
                        "no search history"),
                       ({"k": 0}, "k >= 1")):
        with pytest.raises(ValueError, match=match):
            run_baseline(RunConfig(out_dir=str(tmp_path / "bad"), **base,
                                   options={"baseline": "random", **bad}), data=data)


def test_batch_random_search_matches_its_fold_search_unless_started_with_fixed_k(tmp_path):
    from emodarts_core.batch.experiment import baseline_options
    out, search = tmp_path / "baseline_random", tmp_path / "search"
    assert baseline_options("cnn_lstm", out, search) == {"baseline": "cnn_lstm"}
    assert baseline_options("random", out, search) == {
        "baseline": "random", "budget": "seconds", "match_search": "../search"}
    RunDir.create(RunConfig(kind="baseline", corpus="generated", data_root="", out_dir=str(out),
                            options={"baseline": "random"}))      # started with the fixed k
    assert baseline_options("random", out, search) == {"baseline": "random"}


def test_train_init_channels_widens_the_final_network_only(tmp_path):
    """``train.init_channels`` builds the final network at that width (the same network, same
    numbers, as a space of that width), loads back through ``build_model``; random search's
    brief candidates keep the search space's width and only its winner is widened."""
    from emodarts_core.config import apply_overrides, final_space
    from emodarts_core.train.evaluate import build_model, selected_weights

    prof = small_profile(epochs=1)
    wide = apply_overrides(prof, ["train.init_channels=6"])
    assert wide.train.init_channels == 6 and wide.space == prof.space
    assert final_space(wide).init_channels == 6 and final_space(prof) == prof.space
    data = tiny_fold()
    geno = sample_genotype(prof.space, torch.Generator().manual_seed(0))
    base = dict(kind="train", corpus="generated", data_root=str(tmp_path / "d"))

    def trained(out, profile):
        run = RunDir.open(run_train(RunConfig(out_dir=str(tmp_path / out), profile=profile, **base),
                                    geno, progress=False, data=data).run_dir)
        model = build_model(run, data.n_classes, data.input_shape)
        model.load_state_dict(selected_weights(run))            # strict: the width it trained
        return run, model

    run_w, model_w = trained("wide", wide)
    _, model_s = trained("space", dataclasses.replace(prof, space=override(prof.space, init_channels=6)))
    _, model_n = trained("narrow", prof)
    sd_w, sd_s = model_w.state_dict(), model_s.state_dict()
    assert sd_w.keys() == sd_s.keys() and all(torch.equal(sd_w[k], sd_s[k]) for k in sd_w)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(model_w) > n(model_n)
    assert run_w.read_json("metrics.json")["ua"] == pytest.approx(
        RunDir.open(tmp_path / "space").read_json("metrics.json")["ua"])

    res = run_baseline(RunConfig(out_dir=str(tmp_path / "r"), profile=wide, kind="baseline",
                                 corpus="generated", data_root=str(tmp_path / "d"),
                                 options={"baseline": "random", "k": 2, "brief_epochs": 1}),
                       progress=False, data=data)
    cands = RunDir.open(res.run_dir).read_json("candidates.json")["candidates"]
    for c in cands:
        cand = RunDir.open(c["run_dir"])
        assert final_space(cand.config.profile).init_channels == prof.space.init_channels
        build_model(cand, data.n_classes, data.input_shape).load_state_dict(selected_weights(cand))
    final = RunDir.open(res.run_dir / "final")
    assert final_space(final.config.profile).init_channels == 6
    build_model(final, data.n_classes, data.input_shape).load_state_dict(selected_weights(final))


def test_fit_valid_trains_on_the_validation_speakers_too(tmp_path):
    """``train.fit_valid``: the same weights as a plain run whose training side already holds the
    validation utterances (same seed, same batches), no validation pass, no best.pt, the last
    epoch tested; ``evaluate`` reads those weights back; random search's candidates are still
    trained without the validation speakers and chosen on them."""
    from emodarts_core.train.evaluate import selected_weights

    prof = small_profile(epochs=2)
    prof = dataclasses.replace(prof, train=override(prof.train, select="last"))
    fit_prof = dataclasses.replace(prof, train=override(prof.train, fit_valid=True))
    data = tiny_fold()
    merged = dataclasses.replace(data, x_train=torch.cat([data.x_train, data.x_valid]),
                                 y_train=torch.cat([data.y_train, data.y_valid]))
    geno = sample_genotype(prof.space, torch.Generator().manual_seed(1))
    base = dict(kind="train", corpus="generated", data_root=str(tmp_path / "d"))
    res_fit = run_train(RunConfig(out_dir=str(tmp_path / "fit"), profile=fit_prof, **base), geno,
                        progress=False, data=data)
    res_merged = run_train(RunConfig(out_dir=str(tmp_path / "merged"), profile=prof, **base), geno,
                           progress=False, data=merged)
    res_plain = run_train(RunConfig(out_dir=str(tmp_path / "plain"), profile=prof, **base), geno,
                          progress=False, data=data)
    w_fit, w_merged, w_plain = (selected_weights(RunDir.open(r.run_dir))
                                for r in (res_fit, res_merged, res_plain))
    assert all(torch.equal(w_fit[k], w_merged[k]) for k in w_fit)
    assert not all(torch.equal(w_fit[k], w_plain[k]) for k in w_fit)

    run = RunDir.open(res_fit.run_dir)
    m = run.read_json("metrics.json")
    assert m["fit_valid"] is True and m["n_fit"] == len(data.y_train) + len(data.y_valid)
    assert m["best_valid_ua"] is None and res_fit.best_valid_ua is None
    assert list(m["test_by_selection"]) == ["last"] and m["selected_epoch"] == 1
    assert m["confusion"] == RunDir.open(res_merged.run_dir).read_json("metrics.json")["confusion"]
    assert not run.file("best.pt").exists()
    assert all("valid_ua" not in e for e in run.history()["epochs"])
    m_plain = RunDir.open(res_plain.run_dir).read_json("metrics.json")
    assert m_plain["fit_valid"] is False and m_plain["n_fit"] == len(data.y_train)

    res = run_baseline(RunConfig(out_dir=str(tmp_path / "r"), profile=fit_prof, kind="baseline",
                                 corpus="generated", data_root=str(tmp_path / "d"),
                                 options={"baseline": "random", "k": 2, "brief_epochs": 1}),
                       progress=False, data=data)
    for c in RunDir.open(res.run_dir).read_json("candidates.json")["candidates"]:
        cand = RunDir.open(c["run_dir"])
        assert not cand.config.profile.train.fit_valid and cand.file("best.pt").exists()
        assert c["valid_ua"] is not None
    final = RunDir.open(res.run_dir / "final").read_json("metrics.json")
    assert final["fit_valid"] is True and final["n_fit"] == m["n_fit"]


def test_fit_valid_needs_the_last_epoch_rule_in_any_order():
    from emodarts_core.config import TrainConfig, UsageError, apply_overrides

    with pytest.raises(ValueError, match="select='last' and patience=0"):
        TrainConfig(fit_valid=True)                       # select "best", patience 50
    with pytest.raises(ValueError, match="patience=0"):
        TrainConfig(fit_valid=True, select="last", patience=5)
    items = ["train.fit_valid=true", "train.select=last", "train.patience=0"]
    for order in (items, items[::-1]):
        t = apply_overrides(get_profile("paper"), order).train
        assert t.fit_valid and t.select == "last" and t.patience == 0
    with pytest.raises(UsageError, match="fit_valid=true.*select='last'"):
        apply_overrides(get_profile("paper"), ["train.fit_valid=true"])


def test_train_init_channels_must_be_positive():
    from emodarts_core.config import TrainConfig

    with pytest.raises(ValueError, match="init_channels"):
        TrainConfig(init_channels=0)


def test_recalibrate_bn_changes_the_statistics_not_the_training(tmp_path):
    """``train.recalibrate_bn`` leaves every learned weight as without it; the kept BatchNorm
    statistics are those of the training data with dropout off."""
    from emodarts_core.config import apply_overrides
    from emodarts_core.train.engine import recalibrate_batchnorm
    from emodarts_core.train.evaluate import build_model, selected_weights

    prof = apply_overrides(small_profile(epochs=2), ["train.select=last"])
    data = tiny_fold()
    geno = sample_genotype(prof.space, torch.Generator().manual_seed(0))
    base = dict(kind="train", corpus="generated", data_root=str(tmp_path / "d"))
    weights = {}
    for name, p in (("off", prof), ("on", apply_overrides(prof, ["train.recalibrate_bn=true"]))):
        run = RunDir.open(run_train(RunConfig(out_dir=str(tmp_path / name), profile=p, **base),
                                    geno, progress=False, data=data).run_dir)
        weights[name] = selected_weights(run)
    stats = [k for k in weights["on"] if k.endswith(("running_mean", "running_var"))]
    learned = [k for k in weights["on"] if k not in stats and not k.endswith("num_batches_tracked")]
    assert stats and all(torch.equal(weights["on"][k], weights["off"][k]) for k in learned)
    assert any(not torch.equal(weights["on"][k], weights["off"][k]) for k in stats)
    model = build_model(RunDir.open(tmp_path / "off"), data.n_classes, data.input_shape)
    model.load_state_dict(weights["off"])
    recalibrate_batchnorm(model, data.x_train, prof.train.batch_size, torch.device("cpu"))
    redone = model.state_dict()
    assert all(torch.allclose(redone[k], weights["on"][k], atol=1e-6) for k in stats)
