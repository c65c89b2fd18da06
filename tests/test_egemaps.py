"""The eGeMAPS + linear SVM baseline on the generated corpus (smoke-sized)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from emodarts_core.config import get_profile, override
from emodarts_core.data.corpora.generated import generate_corpus
from emodarts_core.data.datasets import DataError, load_records
from emodarts_core.train import egemaps
from emodarts_core.train.baselines import run_baseline
from emodarts_core.train.evaluate import run_evaluate
from emodarts_core.train.runs import RunConfig, RunDir


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    generate_corpus(root / "data", n_speakers=4, per_class=2, seed=1)
    return root


def config(corpus, out, prof=None, **options):
    return RunConfig(kind="baseline", corpus="generated", data_root=str(corpus / "data"),
                     out_dir=str(out), fold=1, seed=0, profile=prof or get_profile("smoke"),
                     cache_dir=str(corpus / "cache"), options={"baseline": "egemaps_svm", **options})


def test_functionals_are_finite_88_dimensional_and_cached(corpus, monkeypatch):
    paths = [r.path for r in load_records("generated", corpus / "data").records[:4]]
    x, kept = egemaps.functionals(paths, 16000, corpus / "fcache")
    assert x.shape == (4, egemaps.N_FUNCTIONALS) == (4, 88) and kept == [0, 1, 2, 3]
    assert np.isfinite(x).all() and x.dtype == np.float32
    assert len({tuple(r) for r in x}) == 4                        # one row per utterance

    def refuse(*args, **kwargs):
        raise AssertionError("computed again despite the cache")

    monkeypatch.setattr(egemaps, "compute_functionals", refuse)
    again, _ = egemaps.functionals(paths, 16000, corpus / "fcache")
    assert np.array_equal(again, x)
    # another sample rate is another cache entry
    with pytest.raises(AssertionError, match="computed again"):
        egemaps.functionals(paths[:1], 8000, corpus / "fcache")


def test_choose_c_picks_the_best_validation_ua_smallest_on_ties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    best, scores = egemaps.choose_c(x[:30], y[:30], x[30:], y[30:], 2, grid=(1.0, 0.01, 10.0))
    assert list(scores) == [0.01, 1.0, 10.0]
    top = max(scores.values())
    assert best == min(c for c, s in scores.items() if s == top)


def test_run_selects_c_on_validation_only_and_writes_metrics(corpus, tmp_path, monkeypatch):
    seen = {}
    real_choose, real_fit = egemaps.choose_c, egemaps.fit_svm
    fits = []

    def spy_choose(x_train, y_train, x_valid, y_valid, n_classes, grid):
        seen.update(n_train=len(y_train), n_valid=len(y_valid), grid=grid)
        return real_choose(x_train, y_train, x_valid, y_valid, n_classes, grid)

    def spy_fit(x, y, c):
        fits.append(len(y))
        return real_fit(x, y, c)

    monkeypatch.setattr(egemaps, "choose_c", spy_choose)
    monkeypatch.setattr(egemaps, "fit_svm", spy_fit)
    res = run_baseline(config(corpus, tmp_path / "e"), progress=False)
    run = RunDir.open(res.run_dir)
    m = run.read_json("metrics.json")
    for name in ("config.json", "environment.json", "data_report.json", "history.json"):
        assert run.file(name).exists(), name
    # fold 1 of 4 speakers x 8 files: 1 test speaker (8 files); the selection never sees them
    assert m["n"] == 8 and np.array(m["confusion"]).sum() == 8 and len(m["speakers_test"]) == 1
    assert seen["n_train"] + seen["n_valid"] == 24 and seen["grid"] == egemaps.C_GRID
    assert all(n in (seen["n_train"],) for n in fits)            # every fit: training rows only
    assert len(fits) == len(egemaps.C_GRID) + 1
    assert m["c"] in egemaps.C_GRID and m["valid_ua"] == max(m["valid_ua_by_c"].values())
    assert m["valid_ua_by_c"][repr(m["c"])] == m["valid_ua"] == res.best_valid_ua
    assert m["classes"] == ["neutral", "happy", "sad", "angry"] and m["n_features"] == 88
    recalls = [r for r in m["per_class_recall"].values() if r is not None]
    assert m["ua"] == pytest.approx(np.mean(recalls)) and 0.0 <= m["wa"] <= 1.0
    assert m["baseline"] == "egemaps_svm" and m["kind"] == "baseline"
    assert run.config.options == {"baseline": "egemaps_svm"}
    # there is no network to evaluate: a clear error, not a crash
    with pytest.raises(DataError, match="no network"):
        run_evaluate(run.path, "generated", corpus / "data", fold=1, cache_dir=corpus / "cache")


def test_rerun_reads_the_cache_and_gives_the_same_result(corpus, tmp_path, monkeypatch):
    first = run_baseline(config(corpus, tmp_path / "a"), progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("computed again despite the cache")

    monkeypatch.setattr(egemaps, "compute_functionals", refuse)
    second = run_baseline(config(corpus, tmp_path / "b"), progress=False)
    assert second.metrics["confusion"] == first.metrics["confusion"]
    assert second.metrics["c"] == first.metrics["c"]
    # the finished run itself is only re-read: nothing is fitted again
    monkeypatch.setattr(egemaps, "fit_svm", refuse)
    assert run_baseline(config(corpus, tmp_path / "a"), progress=False).metrics == first.metrics


def test_speaker_normalisation_and_fit_valid(corpus, tmp_path):
    p = get_profile("smoke")
    spk = dataclasses.replace(p, features=override(p.features, normalization="speaker"))
    fold = egemaps.load_functionals_fold(config(corpus, tmp_path / "x", spk))
    # per-speaker standardisation: the test speaker's functionals have mean 0 per column
    assert np.abs(fold.x_test.mean(axis=0)).max() < 1e-4
    res = run_baseline(config(corpus, tmp_path / "s", spk), progress=False)
    assert res.metrics["normalization"] == "speaker" and res.metrics["n"] == 8
    fv = dataclasses.replace(p, train=override(p.train, fit_valid=True, select="last"))
    res = run_baseline(config(corpus, tmp_path / "f", fv), progress=False)
    assert res.metrics["fit_valid"] is True and res.metrics["n_fit"] == 24
