"""Cross-corpus work on fixture trees: several corpora at once, joint folds, corpus
normalisation, and evaluation of a run on a corpus whose label set differs from its own."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from corpus_fixtures import make_emodb, make_ravdess, make_tess

from emodarts_core.cli import main
from emodarts_core.config import FeatureConfig, get_profile
from emodarts_core.data.corpora import load_corpus
from emodarts_core.data.datasets import DataError, combine_corpora, load_fold_data, load_records
from emodarts_core.data.emotions import CLASS_SETS
from emodarts_core.data.folds import make_folds
from emodarts_core.train.evaluate import scored_classes


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cross")
    rav, _ = make_ravdess(tmp)                 # 6 actors x 9 files, 8 classes
    emo, _ = make_emodb(tmp)                   # 10 speakers x 7 files, 7 classes
    tess, _ = make_tess(tmp)                   # 2 speakers x 21 files, 7 classes (24 414 Hz, ...)
    return {"ravdess": str(rav), "emodb": str(emo), "tess": str(tess), "cache": str(tmp / "cache"),
            "tmp": tmp}


@pytest.fixture(scope="module")
def two_corpus_run(trees):
    """A smoke CNN-LSTM trained on RAVDESS and EmoDB at once, with corpus normalisation."""
    out = trees["tmp"] / "b2"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["baseline", "--kind", "cnn_lstm", "--corpus", "ravdess,emodb",
                     "--data-root", trees["ravdess"], "--data-root", trees["emodb"],
                     "--cache-dir", trees["cache"], "--no-progress", "--device", "cpu",
                     "--set", "train.epochs=1", "--set", "features.normalization=corpus",
                     "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(n)
    return out


def _evaluate(capsys, trees, run, corpus, *extra):
    roots = [a for name in corpus.split(",") for a in ("--data-root", trees[name])]
    code = main(["evaluate", "--run", str(run), "--corpus", corpus, *roots,
                 "--cache-dir", trees["cache"], "--device", "cpu", *extra])
    out = capsys.readouterr()
    return code, out


# --------------------------------------------------------------------------------------------- data
def test_two_corpora_combine_over_shared_classes_with_joint_speaker_folds(trees):
    crp = load_records("ravdess,emodb", [trees["ravdess"], trees["emodb"]])
    assert crp.name == "ravdess,emodb" and crp.classes == CLASS_SETS["shared6"]
    # RAVDESS: 6 actors x 7 files of the shared classes (angry twice); EmoDB: 10 x 6
    assert len(crp) == 42 + 60
    assert {r.corpus for r in crp.records} == {"ravdess", "emodb"}
    assert "ravdess:01" in crp.speakers and "emodb:03" in crp.speakers
    # one os.pathsep-joined string (as a run's config.json keeps it) reads the same
    again = load_records("ravdess,emodb", os.pathsep.join([trees["ravdess"], trees["emodb"]]))
    assert [r.utt_id for r in again.records] == [r.utt_id for r in crp.records]

    folds = make_folds(crp)
    assert len(folds) == 5                      # the smaller default count (EmoDB's 5, RAVDESS 6)
    tested = []
    for f in folds:
        sp = f.speakers(crp)
        assert not (set(sp["train"]) & set(sp["valid"]) or set(sp["train"]) & set(sp["test"])
                    or set(sp["valid"]) & set(sp["test"]))
        for part in ("train", "valid", "test"):   # every part draws on both corpora
            assert {s.split(":")[0] for s in sp[part]} == {"ravdess", "emodb"}, (f.name, part)
        assert f.name.startswith("ravdess:fold") and "+emodb:fold" in f.name
        tested += f.test
    assert sorted(tested) == list(range(len(crp)))   # every utterance tested exactly once

    with pytest.raises(DataError, match="2 corpora need 2 data roots"):
        load_records("ravdess,emodb", trees["ravdess"])
    with pytest.raises(DataError, match="share no emotion class"):
        combine_corpora([load_corpus("ravdess", trees["ravdess"], classes=("calm",)),
                         load_corpus("emodb", trees["emodb"], classes=("boredom",))])


def test_corpus_normalisation_standardises_each_corpus_by_its_own_statistics(trees):
    from emodarts_core.data.normalization import speaker_step

    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(5, 4, 6, generator=g) * 3 + 2, torch.randn(7, 4, 6, generator=g) - 4])
    corpora = ["a"] * 5 + ["b"] * 7
    z = speaker_step(x, ["s"] * 12, FeatureConfig(normalization="corpus"), corpora=corpora)
    for rows in (slice(0, 5), slice(5, 12)):
        torch.testing.assert_close(z[rows].mean(dim=(0, 2)), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(z[rows].std(dim=(0, 2), unbiased=False), torch.ones(4),
                                   atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="corpus of every row"):
        speaker_step(x, ["s"] * 12, FeatureConfig(normalization="corpus"))
    with pytest.raises(ValueError, match="normalization"):
        FeatureConfig(normalization="global")

    # on two corpora, the training side's per-corpus means of every coefficient coincide
    # after corpus normalisation (one affine map after two standardisations), not without it
    def fold_x(normalization: str):
        feats = dataclasses.replace(get_profile("smoke").features, normalization=normalization)
        data = load_fold_data("ravdess,emodb", [trees["ravdess"], trees["emodb"]], feats,
                              fold=0, cache_dir=trees["cache"])
        x = torch.cat([data.x_train, data.x_valid, data.x_test])[:, 0]
        return x, data

    x_c, data = fold_x("corpus")
    x_t, _ = fold_x("training")
    crp = load_records("ravdess,emodb", [trees["ravdess"], trees["emodb"]])
    folds = make_folds(crp)
    order = folds[0].train + folds[0].valid + folds[0].test
    is_rav = torch.tensor([crp.records[i].corpus == "ravdess" for i in order])
    gap = lambda x: (x[is_rav].mean(dim=(0, 2)) - x[~is_rav].mean(dim=(0, 2))).abs().max()  # noqa: E731
    assert gap(x_c) < 1e-3 and gap(x_t) > 0.02     # the fixtures differ little; real corpora more
    assert data.classes == CLASS_SETS["shared6"]


# --------------------------------------------------------------------------------------------- evaluate
def test_scored_classes_rules():
    run = ["neutral", "happy", "sad", "angry", "fearful", "disgust"]
    assert scored_classes([run], CLASS_SETS["ravdess8"]) == tuple(run)
    assert scored_classes([run], CLASS_SETS["4class"][::-1]) == ("neutral", "happy", "sad", "angry")
    assert scored_classes([run], CLASS_SETS["tess7"], ("sad", "happy")) == ("happy", "sad")
    assert scored_classes([run, ["sad", "happy", "calm"]], CLASS_SETS["ravdess8"]) == ("happy", "sad")
    with pytest.raises(DataError, match="no shared class"):
        scored_classes([["calm", "boredom"]], CLASS_SETS["tess7"])
    with pytest.raises(DataError, match="'surprised' is not among the run's classes"):
        scored_classes([run], CLASS_SETS["tess7"], ("surprised",))
    with pytest.raises(DataError, match="'calm' is not among the corpus's classes"):
        scored_classes([run], CLASS_SETS["tess7"], ("calm",))


def test_two_corpus_run_trains_over_shared_classes(two_corpus_run):
    cfg = json.loads((two_corpus_run / "config.json").read_text())
    metrics = json.loads((two_corpus_run / "metrics.json").read_text())
    assert cfg["corpus"] == "ravdess,emodb" and len(cfg["data_root"].split(os.pathsep)) == 2
    assert metrics["classes"] == list(CLASS_SETS["shared6"])
    assert {s.split(":")[0] for s in metrics["speakers_test"]} == {"ravdess", "emodb"}


def test_evaluate_reproduces_the_runs_own_test_side(capsys, trees, two_corpus_run):
    metrics = json.loads((two_corpus_run / "metrics.json").read_text())
    code, out = _evaluate(capsys, trees, two_corpus_run, "ravdess,emodb", "--fold", "0")
    assert code == 0, out.err
    printed = json.loads(out.out.strip().splitlines()[-1])
    # the same utterances, the same per-corpus statistics: the same decisions
    assert printed["confusion"] == metrics["confusion"] and printed["dropped"]["n_corpus_files"] == 0


def test_evaluate_on_a_corpus_with_other_classes(capsys, trees, two_corpus_run):
    # TESS: 7 classes; the run knows 6 of them, so "surprised" (6 files) is dropped
    code, out = _evaluate(capsys, trees, two_corpus_run, "tess")
    assert code == 0, out.err
    printed = json.loads(out.out.strip().splitlines()[-1])
    assert printed["classes"] == list(CLASS_SETS["shared6"]) and printed["n"] == 36
    assert printed["dropped"] == {"run_classes": [], "corpus_classes": ["surprised"],
                                  "corpus_files": {"surprised": 6}, "n_corpus_files": 6}
    assert np.array(printed["confusion"]).shape == (6, 6) and np.sum(printed["confusion"]) == 36
    assert printed["chance_ua"] == pytest.approx(1 / 6)
    recalls = [r for r in printed["per_class_recall"].values() if r is not None]
    assert printed["ua"] == pytest.approx(np.mean(recalls))
    written = json.loads(Path(printed["written_to"]).read_text())
    assert Path(printed["written_to"]).name.startswith("evaluate-tess-")
    assert written["confusion"] == printed["confusion"] and written["corpus_classes"] == list(CLASS_SETS["tess7"])

    # RAVDESS alone: calm and surprised are dropped; --classes picks a subset explicitly
    code, out = _evaluate(capsys, trees, two_corpus_run, "ravdess", "--classes", "sad,angry",
                          "--json-out", str(trees["tmp"] / "rav2.json"))
    assert code == 0, out.err
    printed = json.loads(out.out.strip().splitlines()[-1])
    assert printed["classes"] == ["sad", "angry"] and printed["n"] == 6 + 12
    assert printed["dropped"]["run_classes"] == ["neutral", "happy", "fearful", "disgust"]
    assert printed["dropped"]["corpus_files"] == {"neutral": 6, "calm": 6, "happy": 6,
                                                  "fearful": 6, "disgust": 6, "surprised": 6}


def test_decision_is_the_argmax_among_the_scored_logits(trees, two_corpus_run):
    from emodarts_core.train.evaluate import member_probabilities
    from emodarts_core.train.runs import RunDir

    run = RunDir.open(two_corpus_run)
    crp = load_records("tess", trees["tess"])
    idx = [i for i, r in enumerate(crp.records) if r.label in ("happy", "sad", "angry")]
    full, _, kept = member_probabilities(run, crp, idx, CLASS_SETS["shared6"], trees["cache"],
                                         torch.device("cpu"))
    sub, y, kept_sub = member_probabilities(run, crp, idx, ("happy", "sad", "angry"),
                                            trees["cache"], torch.device("cpu"))
    assert kept == kept_sub and set(y.tolist()) == {0, 1, 2}
    cols = full[:, [1, 2, 3]]                   # happy, sad, angry in the run's order
    torch.testing.assert_close(sub, cols / cols.sum(1, keepdim=True), atol=1e-5, rtol=1e-4)


def test_evaluate_errors_are_one_line_exit_2(capsys, trees, two_corpus_run):
    for extra, match in ((("--classes", "surprised"), "not among the run's classes"),
                         (("--classes", "joy"), "--classes"),
                         (("--classes", ","), "at least one class")):
        code, out = _evaluate(capsys, trees, two_corpus_run, "tess", *extra)
        lines = [ln for ln in out.err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and match in lines[0], out.err
    code = main(["evaluate", "--run", str(two_corpus_run), "--corpus", "ravdess,emodb",
                 "--data-root", trees["ravdess"]])
    err = capsys.readouterr().err
    assert code == 2 and "2 corpora" in err and "1 time(s)" in err
    # a run whose classes the corpus does not have at all (its record edited to say so)
    other = trees["tmp"] / "other-run"
    shutil.copytree(two_corpus_run, other)
    m = json.loads((other / "metrics.json").read_text())
    m["classes"] = ["calm", "boredom", "excited", "frustrated", "contempt", "other"]
    (other / "metrics.json").write_text(json.dumps(m))
    code, out = _evaluate(capsys, trees, other, "tess")
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "no shared class" in lines[0], out.err


def test_speaker_statistics_do_not_depend_on_the_scored_classes(capsys, trees):
    """Per-speaker normalisation reads all of a test speaker's utterances (audio only), so the
    choice of scored classes cannot change a kept utterance's probabilities beyond dropping
    the other classes' logits."""
    from emodarts_core.train.evaluate import member_probabilities
    from emodarts_core.train.runs import RunDir

    out = trees["tmp"] / "emodb-speaker"
    assert main(["baseline", "--kind", "cnn_lstm", "--corpus", "emodb", "--data-root", trees["emodb"],
                 "--cache-dir", trees["cache"], "--no-progress", "--device", "cpu",
                 "--set", "train.epochs=1", "--set", "features.normalization=speaker",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    run = RunDir.open(out)
    crp = load_records("ravdess", trees["ravdess"])
    every = list(range(len(crp)))
    shared = CLASS_SETS["shared6"]
    full, y_full, kept = member_probabilities(run, crp, every, shared, trees["cache"], torch.device("cpu"))
    two, y_two, kept_two = member_probabilities(run, crp, every, ("sad", "angry"), trees["cache"],
                                                torch.device("cpu"))
    assert len(kept) == 42 and len(kept_two) == 18 and set(kept_two) <= set(kept)
    rows = [kept.index(k) for k in kept_two]
    cols = full[rows][:, [shared.index("sad"), shared.index("angry")]]
    torch.testing.assert_close(two, cols / cols.sum(1, keepdim=True), atol=1e-5, rtol=1e-4)
    assert y_two.tolist() == [0 if crp.records[k].label == "sad" else 1 for k in kept_two]


def test_book_fixture_has_the_format_evaluate_writes(capsys, trees, two_corpus_run):
    """tests/fixtures/cross-corpus (the book's smoke evidence) keeps evaluate's JSON keys."""
    out = trees["tmp"] / "format.json"
    code, printed = _evaluate(capsys, trees, two_corpus_run, "emodb", "--json-out", str(out))
    assert code == 0, printed.err
    real = json.loads(out.read_text())
    fixture = Path(__file__).resolve().parent / "fixtures" / "cross-corpus"
    for path in sorted(fixture.glob("*/*.json")):
        made = json.loads(path.read_text())
        assert set(made) == set(real), path.name
        assert set(made["dropped"]) == set(real["dropped"]), path.name
        assert set(made["members"][0]) == set(real["members"][0]), path.name
