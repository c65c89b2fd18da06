"""The cross-corpus tables, verdicts and summed confusions (emodarts_core.results.cross_corpus),
on evaluation files written as ``evaluate`` writes them."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from emodarts_core.results import cross_corpus as xc
from emodarts_core.train.metrics import evaluate_predictions

CLASSES = ["neutral", "happy", "sad", "angry", "fearful", "disgust"]


def _write(root, folder, method, seed, y_true, y_pred):
    m = evaluate_predictions(np.asarray(y_true), np.asarray(y_pred), CLASSES).to_dict()
    m["chance_ua"] = 1 / len(CLASSES)
    path = root / folder / f"{method}-seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(m))
    return m


def _predictions(accuracy, seed, n=60):
    """Labels 0..5 ten each; the first ``accuracy`` share of each class right, the rest
    called class (label + 1) % 6."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(6), n // 6)
    pred = y.copy()
    for c in range(6):
        idx = np.flatnonzero(y == c)
        wrong = idx[int(round(accuracy * len(idx))):]
        pred[wrong] = (c + 1) % 6
    return y, pred, rng


@pytest.fixture
def root(tmp_path):
    for seed, (a_acc, b_acc) in enumerate([(0.6, 0.3), (0.7, 0.3), (0.5, 0.4)]):
        for method, acc in (("emodarts", a_acc), ("cnn_lstm", b_acc)):
            y, p, _ = _predictions(acc, seed)
            _write(tmp_path, "ravdess-to-emodb", method, seed, y, p)
            y, p, _ = _predictions(min(acc + 0.2, 1.0), seed)
            _write(tmp_path, "ravdess-in-corpus", method, seed, y, p)
    (tmp_path / "ravdess-to-emodb" / "notes.json").write_text("{}")     # not an evaluation
    return tmp_path


def test_load_evaluations_reads_direction_method_and_seed(root):
    evals = xc.load_evaluations(root)
    assert len(evals) == 12
    cross = [e for e in evals if not e.in_corpus]
    assert {e.direction for e in cross} == {"ravdess -> emodb"}
    assert {(e.method, e.seed) for e in cross} == {(m, s) for m in ("emodarts", "cnn_lstm")
                                                   for s in range(3)}
    e = next(e for e in cross if e.method == "emodarts" and e.seed == 1)
    assert e.ua == pytest.approx(0.7) and e.chance_ua == pytest.approx(1 / 6)


def test_direction_table_means_falls_and_chance(root):
    table = xc.direction_table(xc.load_evaluations(root), "ravdess", "emodb")
    lines = table.splitlines()
    assert "16.7 % UA" in lines[0] and len(lines) == 4
    searched = next(line for line in lines if line.startswith("| searched"))
    # UA 60, 70, 50 -> 60.00 ± 10.00; in-corpus 80, 90, 70 -> 80.00 ± 10.00; fall 20 points
    assert "| 3 | 60.00 ± 10.00 |" in searched and "| 80.00 ± 10.00 | 20.00 |" in searched
    assert searched.endswith("well above chance |")
    cnn = next(line for line in lines if line.startswith("| CNN-LSTM"))
    assert "33.33 ± 5.77" in cnn


def test_paired_verdict_names_the_direction_of_a_clear_difference():
    a, b = {0: 0.50, 1: 0.52, 2: 0.49}, {0: 0.45, 1: 0.47, 2: 0.45}
    assert xc.paired_verdict(a, b) == (pytest.approx(14 / 3), 3, "better")
    assert xc.paired_verdict(b, a)[2] == "worse"
    assert xc.paired_verdict(a, {0: 0.49, 1: 0.53, 2: 0.40})[2] == "n.d."   # one seed behind
    assert xc.paired_verdict(a, {5: 0.1})[1:] == (0, "n.d.")
    # fewer than the plan's three seeds decide nothing, however clear
    assert xc.paired_verdict({0: 0.9, 1: 0.9}, {0: 0.1, 1: 0.1}) == (pytest.approx(80), 2, "n.d.")


def test_verdicts_follow_the_plans_rules():
    chance = 1 / 6
    assert xc.chance_verdict([0.30, 0.28, 0.27], chance) == "well above chance"
    assert xc.chance_verdict([0.30, 0.35, 0.20], chance) == "above chance"   # one seed too low
    assert xc.chance_verdict([0.20, 0.21, 0.22], chance) == "near chance"
    a, b = {0: 0.50, 1: 0.52, 2: 0.49}, {0: 0.45, 1: 0.47, 2: 0.45}
    assert xc.method_verdict(a, b, "A", "B").startswith("A better than B (+4.67")
    assert xc.method_verdict(b, a, "B", "A").startswith("A better than B")
    c = {0: 0.50, 1: 0.40, 2: 0.60}
    assert "not distinguishable" in xc.method_verdict(c, b, "C", "B")
    close = {0: 0.46, 1: 0.48, 2: 0.46}                 # ahead on every seed by 1 point only
    assert "not distinguishable" in xc.method_verdict(close, b, "D", "B")


def test_summed_confusion_adds_seeds_and_recomputes_ua(root):
    evals = xc.load_evaluations(root)
    summed = xc.summed_confusion(evals, "ravdess", "emodb", "emodarts")
    cm = np.asarray(summed["confusion"])
    assert summed["seeds"] == 3 and cm.sum() == 180 and cm.shape == (6, 6)
    assert summed["ua"] == pytest.approx(0.6) and summed["wa"] == pytest.approx(0.6)
    words = xc.failure_summary(summed)
    assert "most often taken for" in words and "of all predictions" in words
    with pytest.raises(ValueError, match="no evaluation"):
        xc.summed_confusion(evals, "emodb", "ravdess", "emodarts")


def test_missing_or_empty_root_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        xc.load_evaluations(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="no <source>"):
        xc.load_evaluations(tmp_path)


# --------------------------------------------------------------------------- the book's chapter
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "cross-corpus"


def _load_fixture_script():
    spec = importlib.util.spec_from_file_location(
        "make_cross_corpus", FIXTURE.parent / "make_cross_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_fixture_is_what_its_script_writes(tmp_path):
    written = _load_fixture_script().write(tmp_path)
    committed = sorted(p.relative_to(FIXTURE) for p in FIXTURE.rglob("*.json"))
    assert sorted(p.relative_to(tmp_path) for p in written) == committed
    for rel in committed:
        assert (tmp_path / rel).read_text() == (FIXTURE / rel).read_text(), rel


def test_fixture_reads_as_two_directions_and_a_generated_source():
    evals = xc.load_evaluations(FIXTURE)
    assert xc.directions(evals) == [("emodb", "ravdess"), ("ravdess", "emodb")]
    assert {e.corpus for e in evals} == {"generated"}
    line = xc.evaluations_source(FIXTURE).line()
    assert line.startswith("Data source: generated — 36 evaluation files")
    missing = xc.evaluations_source(FIXTURE / "absent")
    assert missing.corpus == "none" and "no cross-corpus evaluations" in missing.line()


def test_scoring_summary_names_what_was_left_out_and_chance(root):
    evals = xc.load_evaluations(FIXTURE)
    text = xc.scoring_summary(evals, "emodb", "ravdess")
    assert "44 ravdess utterances over 6 classes" in text
    assert "(boredom) is not allowed to win" in text
    assert "calm (3 files), surprised (3 files) have no counterpart in emodb" in text
    # RAVDESS side of the fixture: 4 neutral and 8 of each other class -> 8 / 44
    assert "16.7 % UA" in text and "18.2 % WA" in text
    e = next(e for e in evals if e.target == "emodb" and not e.in_corpus)
    assert xc.majority_wa(e) == pytest.approx(12 / 45)
    with pytest.raises(ValueError, match="no evaluation"):
        xc.scoring_summary(xc.load_evaluations(root), "emodb", "ravdess")


def test_direction_markdown_holds_table_verdicts_and_recalls(root):
    evals = xc.load_evaluations(root)
    verdicts = xc.verdicts_markdown(evals, "ravdess", "emodb").splitlines()
    # searched 60/70/50 against CNN-LSTM 30/30/40: ahead on every seed by 26.67 on average
    assert verdicts == ["- searched (emodarts) better than CNN-LSTM (+26.67 points, 3 seeds)"]
    recalls = xc.recall_table(evals, "ravdess", "emodb").splitlines()
    assert recalls[0] == "| method | " + " | ".join(CLASSES) + " |"
    # each class recalled at the seed's accuracy: 60, 70, 50 -> 60.00 ± 10.00 everywhere
    assert recalls[2] == "| searched (emodarts) | " + " | ".join(["60.00 ± 10.00"] * 6) + " |"
    md = xc.direction_markdown(evals, "ravdess", "emodb")
    assert xc.direction_table(evals, "ravdess", "emodb") in md and verdicts[0] in md
    with pytest.raises(ValueError, match="no evaluation"):
        xc.recall_table(evals, "emodb", "ravdess")


def test_plot_direction_draws_one_matrix_per_method_with_a_reading(root):
    import matplotlib.pyplot as plt

    evals = xc.load_evaluations(root)
    fig, sentences = xc.plot_direction(evals, "ravdess", "emodb")
    try:
        assert len([ax for ax in fig.axes if ax.get_title()]) == 2
        assert len(sentences) == 2
    finally:
        plt.close(fig)
    # every class recalled 60 %, the rest called the next class: nothing is never predicted
    assert sentences[0].startswith("searched (emodarts), 3 seed(s) summed: UA 60.0 % against "
                                   "16.7 % chance")
    assert "Never predicted" not in sentences[0] and "of all predictions" in sentences[0]
    one_class = {"confusion": [[5, 0], [3, 0]], "classes": ["sad", "angry"], "seeds": 1,
                 "wa": 5 / 8, "ua": 0.5}
    words = xc.confusion_reading(one_class, "X", 0.5)
    assert "sad is recalled best (100.0 %)" in words and "Never predicted: angry." in words


def test_summary_table_holds_every_direction_as_its_own_table_does(root):
    from emodarts_core.results.cross_corpus import directions, direction_table, summary_table
    evals = xc.load_evaluations(root)
    lines = summary_table(evals).splitlines()
    body = lines[2:]
    expected = []
    for source, target in directions(evals):
        expected += [f"| {source} -> {target} |{row[1:]}"
                     for row in direction_table(evals, source, target).splitlines()[2:]]
    assert body == expected and "(16.7 % UA)" in lines[0]


# --------------------------------------------------------------------------- the secondary arms
@pytest.fixture
def arms_root(tmp_path):
    """Arms ``training`` (searched 0.4, 0.5, 0.3; CNN-LSTM 0.3 each seed), ``corpus`` (searched
    0.6, 0.7, 0.5; CNN-LSTM 0.3, 0.4, 0.2) and ``cut2s`` (CNN-LSTM only, 0.5 each seed)."""
    spec = {"training": {"emodarts": (0.4, 0.5, 0.3), "cnn_lstm": (0.3, 0.3, 0.3)},
            "corpus": {"emodarts": (0.6, 0.7, 0.5), "cnn_lstm": (0.3, 0.4, 0.2)},
            "cut2s": {"cnn_lstm": (0.5, 0.5, 0.5)}}
    for arm, methods in spec.items():
        for method, accs in methods.items():
            for seed, acc in enumerate(accs):
                y, p, _ = _predictions(acc, seed)
                _write(tmp_path / arm, "ravdess-to-emodb", method, seed, y, p)
                y, p, _ = _predictions(0.8, seed)
                _write(tmp_path / arm, "ravdess-in-corpus", method, seed, y, p)
    (tmp_path / "speaker").mkdir()          # an arm folder without evaluations is left out
    return tmp_path


def test_load_arms_keeps_the_plans_order_and_takes_the_primary_as_given(root, arms_root):
    arms = xc.load_arms(arms_root, primary=xc.load_evaluations(root))
    assert list(arms) == ["speaker", "training", "corpus", "cut2s"]
    assert {e.method for e in arms["cut2s"]} == {"cnn_lstm"}
    assert list(xc.load_arms(arms_root)) == ["training", "corpus", "cut2s"]   # speaker/ empty
    assert xc.load_arms(arms_root / "absent") == {}


def test_arms_table_gives_every_arm_its_mean_and_in_corpus_ua(root, arms_root):
    arms = xc.load_arms(arms_root, primary=xc.load_evaluations(root))
    lines = xc.arms_table(arms).splitlines()
    assert lines[0] == ("| direction | method | per speaker | training side | per corpus "
                        "| 2-s cut | per speaker − training side | per corpus − training side "
                        "| 2-s cut − per speaker |")
    searched = next(line for line in lines if "| searched" in line)
    # primary 60 ± 10 (in-corpus 80); training 40 ± 10; corpus 60 ± 10; no searched 2-s cut;
    # per speaker and per corpus each +20 on every seed against training: better
    assert searched == ("| ravdess -> emodb | searched (emodarts) | 60.00 ± 10.00 (80.00) | "
                        "40.00 ± 10.00 (80.00) | 60.00 ± 10.00 (80.00) | – | +20.00 (better) "
                        "| +20.00 (better) | – |")
    cnn = next(line for line in lines if "| CNN-LSTM" in line)
    # speaker - training: 0, 0, +10 (n.d.); corpus - training: 0, +10, -10 (n.d.);
    # the cut - speaker: +20, +20, +10 (better)
    assert cnn.endswith("| 50.00 ± 0.00 (80.00) | +3.33 (n.d.) | +0.00 (n.d.) "
                        "| +16.67 (better) |")
    assert not any("random search" in line for line in lines)       # no arm has it


def test_plot_arms_draws_one_panel_per_direction_and_names_the_extremes(root, arms_root):
    import matplotlib

    matplotlib.use("Agg")
    arms = xc.load_arms(arms_root, primary=xc.load_evaluations(root))
    fig, sentences = xc.plot_arms(arms)
    assert len(fig.axes) == 1 and len(sentences) == 1
    assert sentences[0] == ("ravdess -> emodb: the highest mean UA is 60.0 % (searched "
                            "(emodarts), per speaker), the lowest 30.0 % (CNN-LSTM, training "
                            "side), against 16.7 % chance.")
    # bars: searched in 3 arms, CNN-LSTM in 4
    assert len(fig.axes[0].patches) == 7
    with pytest.raises(ValueError):
        xc.plot_arms({})
    with pytest.raises(ValueError):
        xc.arms_table({})
