"""The experiment driver: search -> final training -> baselines per fold, resumable, and found by
reproduce.collect."""
from __future__ import annotations

import json

import pytest

from emodarts_core.batch.experiment import (fold_dir, make_profile, parse_folds, run_experiment,
                                            run_fold, search_grid)
from emodarts_core.data.corpora.generated import generate_corpus
from emodarts_core.results.collect import collect
from emodarts_core.train.runs import RunDir

FAST = ["search.epochs=1", "train.epochs=1"]


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    return generate_corpus(tmp_path_factory.mktemp("gen"), n_speakers=4, per_class=3)


def test_parse_folds():
    assert parse_folds("all", 3) == [0, 1, 2]
    assert parse_folds(-1, 2) == [0, 1]
    assert parse_folds("2, 0,2", 3) == [0, 2]
    assert parse_folds(1, 3) == [1]
    assert parse_folds([1, 0], 3) == [0, 1]
    with pytest.raises(ValueError, match=r"out of range 0..2"):
        parse_folds("0,3", 3)
    with pytest.raises(ValueError, match="comma-separated"):
        parse_folds("first", 3)


def test_make_profile_applies_overrides_and_names_bad_ones():
    p = make_profile("smoke", ["search.epochs=5", "space.seq_ops=lstm"])
    assert p.search.epochs == 5 and p.space.seq_ops == "lstm" and p.name == "smoke"
    with pytest.raises(ValueError, match="no field 'epoch'"):
        make_profile("smoke", ["search.epoch=5"])


def test_run_fold_writes_collectable_runs_and_resumes(corpus_root, tmp_path):
    out = tmp_path / "exp"
    runs = run_fold("generated", str(corpus_root), 1, 0, "smoke", out, device="cpu",
                    overrides=FAST, cache_dir=str(tmp_path / "cache"), log=None)
    base = fold_dir(out, "generated", 1, 0)
    assert runs.search_dir == base / "search" and runs.train_dir == base / "train"
    assert runs.baseline_dirs == {"cnn_lstm": base / "baseline_cnn_lstm"}
    kinds = {d.name: json.loads((d / "config.json").read_text()) for d in runs.run_dirs()}
    assert kinds["search"]["kind"] == "search" and kinds["train"]["kind"] == "train"
    assert kinds["baseline_cnn_lstm"]["options"]["baseline"] == "cnn_lstm"
    assert all(c["overrides"] == FAST and c["fold"] == 1 for c in kinds.values())
    # the final training trained the searched genotype
    assert kinds["train"]["options"]["genotype"] == runs.genotype
    rows = {r.method: r for r in collect(out)}
    assert set(rows) == {"emodarts", "cnn_lstm"}
    assert rows["emodarts"].ua == pytest.approx(runs.test["emodarts"]["ua"])
    # a rerun reuses the finished runs: same numbers, no new epochs; random search, added
    # now, spends the wall time of this fold's search
    before = (runs.train_dir / "history.json").read_text()
    again = run_fold("generated", str(corpus_root), 1, 0, "smoke", out, device="cpu",
                     overrides=FAST, cache_dir=str(tmp_path / "cache"), log=None,
                     baselines=("cnn_lstm", "random"))
    assert again.test["emodarts"] == runs.test["emodarts"] and again.genotype == runs.genotype
    assert (runs.train_dir / "history.json").read_text() == before
    cands = json.loads((base / "baseline_random" / "candidates.json").read_text())
    search_cost = RunDir(runs.search_dir).cost()
    assert cands["budget"]["unit"] == "seconds" and cands["budget"]["search"] == \
        search_cost.to_dict() and search_cost.steps > 0
    spent = sum(c["cost"]["seconds"] for c in cands["candidates"])
    assert cands["k"] == 1 or spent <= search_cost.seconds
    assert cands["budget"]["spent"]["seconds"] == pytest.approx(spent)
    with pytest.raises(ValueError, match="unknown baseline"):
        run_fold("generated", str(corpus_root), 1, 0, "smoke", out, baselines=["svm"], log=None)


def test_run_experiment_all_folds_and_search_grid(corpus_root, tmp_path):
    lines = []
    res = run_experiment("generated", str(corpus_root), "0,2", [0], "smoke", tmp_path / "e",
                         device="cpu", baselines=(), overrides=FAST,
                         cache_dir=str(tmp_path / "cache"), log=lines.append)
    assert [r.fold for r in res] == [0, 2] and len(lines) == 4
    assert sorted((r.fold, r.method) for r in collect(tmp_path / "e")) == [(0, "emodarts"), (2, "emodarts")]
    grid = search_grid("generated", str(corpus_root), "smoke", tmp_path / "g", seeds=[0, 1],
                       folds=[0, 1], overrides=["search.epochs=1"], device="cpu",
                       cache_dir=str(tmp_path / "cache"))
    assert [label for label, _ in grid] == ["fold 0, seed 0", "fold 0, seed 1", "fold 1, seed 0"]
    assert (tmp_path / "g" / "fold1-seed0" / "genotype.json").exists()


def test_grid_jobs_pass_only_parameters_of_the_experiments_notebook(tmp_path):
    import papermill as pm

    from emodarts_core.batch.reproduce import DEFAULT_NOTEBOOK, make_grid

    job = make_grid({"generated": str(tmp_path)}, [0], [0], "smoke", tmp_path)[0]
    known = set(pm.inspect_notebook(str(DEFAULT_NOTEBOOK)))
    assert set(job.parameters()) <= known, set(job.parameters()) - known
