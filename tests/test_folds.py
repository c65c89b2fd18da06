"""Speaker-independent folds on every corpus fixture and scheme."""
from __future__ import annotations

from pathlib import Path

import pytest
from corpus_fixtures import (make_crema_d, make_emodb, make_iemocap, make_msp_improv,
                             make_msp_podcast, make_ravdess)

from emodarts_core.data.corpora import load_corpus
from emodarts_core.data.corpora.generated import generate_corpus
from emodarts_core.data.corpora.record import Corpus, Utterance
from emodarts_core.data.folds import Fold, default_scheme, make_folds


def five_session_iemocap(tmp: Path):
    turns = []
    for s in range(1, 6):
        for take in "FM":
            dialog = f"Ses0{s}{take}_impro0{s}"
            for i, (spk, label) in enumerate([("F", "neu"), ("M", "sad"), ("F", "ang"), ("M", "hap")]):
                turns.append((s, dialog, f"{spk}00{i}", label))
    root, _ = make_iemocap(tmp, turns=turns)
    return root


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, tuple[Corpus, str]]:
    """(corpus, protocol) for every fixture and protocol."""
    t = tmp_path_factory.mktemp("folds")
    iemocap = five_session_iemocap(t / "iemocap")
    improv, _ = make_msp_improv(t / "improv")
    podcast, _ = make_msp_podcast(t / "podcast")
    podcast18, _ = make_msp_podcast(t / "podcast18", spelling="1.8")
    gen = generate_corpus(t / "gen", n_speakers=4, per_class=2, seed=3)
    out = {
        "iemocap/standard": (load_corpus("iemocap", iemocap), "standard"),
        "iemocap/paper": (load_corpus("iemocap", iemocap, protocol="paper"), "paper"),
        "msp_improv/standard": (load_corpus("msp_improv", improv), "standard"),
        "msp_improv/paper": (load_corpus("msp_improv", improv, protocol="paper"), "paper"),
        "msp_podcast/standard": (load_corpus("msp_podcast", podcast), "standard"),
        "msp_podcast/1.8": (load_corpus("msp_podcast", podcast18), "standard"),
        "msp_podcast/paper": (load_corpus("msp_podcast", podcast, protocol="paper"), "paper"),
        "ravdess": (load_corpus("ravdess", make_ravdess(t / "rav")[0]), "standard"),
        "crema_d": (load_corpus("crema_d", make_crema_d(t / "crema")[0]), "standard"),
        "emodb": (load_corpus("emodb", make_emodb(t / "emodb")[0]), "standard"),
        "generated": (load_corpus("generated", gen), "standard"),
    }
    return out


# Every scheme that applies to each fixture (a scheme missing here raises, tested below).
APPLICABLE = {
    "iemocap/standard": ["loso", "emodarts_pairs", "speaker_groups"],
    "iemocap/paper": ["loso", "emodarts_pairs", "speaker_groups"],
    "msp_improv/standard": ["loso", "emodarts_sessions", "speaker_groups"],
    "msp_improv/paper": ["loso", "emodarts_sessions", "speaker_groups"],
    "msp_podcast/standard": ["official", "speaker_groups"],
    "msp_podcast/1.8": ["official", "speaker_groups"],
    "msp_podcast/paper": ["emodarts_packing", "speaker_groups"],
    "ravdess": ["speaker_groups"],
    "crema_d": ["speaker_groups"],
    "emodb": ["speaker_groups"],
    "generated": ["speaker_groups"],
}


def check_fold(corpus: Corpus, fold: Fold) -> None:
    spk = fold.speakers(corpus)
    assert fold.train and fold.valid and fold.test, fold.name
    assert not set(spk["train"]) & set(spk["valid"]), fold.name
    assert not set(spk["train"]) & set(spk["test"]), fold.name
    assert not set(spk["valid"]) & set(spk["test"]), fold.name
    idx = fold.train + fold.valid + fold.test
    assert len(idx) == len(set(idx)) and all(0 <= i < len(corpus) for i in idx)


@pytest.mark.parametrize("key", sorted(APPLICABLE))
def test_every_scheme_is_speaker_independent(corpora, key):
    corpus, protocol = corpora[key]
    assert default_scheme(corpus.name, protocol) in APPLICABLE[key]
    for scheme in APPLICABLE[key] + [None]:
        folds = make_folds(corpus, scheme, protocol=protocol, n_folds=2 if scheme == "speaker_groups" else None)
        assert folds
        for fold in folds:
            check_fold(corpus, fold)
        resolved = scheme or default_scheme(corpus.name, protocol)
        tested = sorted(i for f in folds for i in f.test)
        if resolved == "emodarts_sessions":           # sessions 4 and 6 are never tested
            expected = [i for i, r in enumerate(corpus.records) if r.session in ("1", "2", "3", "5")]
        elif resolved == "official":
            expected = [i for i, r in enumerate(corpus.records) if r.session in ("Test1", "Test2")]
        else:
            expected = list(range(len(corpus)))
        assert tested == expected, f"{key}/{resolved}: every record tested once"


def test_iemocap_emodarts_pairs_exact(corpora):
    corpus, _ = corpora["iemocap/paper"]
    folds = make_folds(corpus, protocol="paper")
    assert [f.name for f in folds] == ["fold1", "fold2", "fold3", "fold4", "fold5"]
    assert [f.speakers(corpus)["test"] for f in folds] == [
        ["01M", "02F"], ["02M", "03F"], ["03M", "04F"], ["04M", "05F"], ["01F", "05M"]]
    loso = make_folds(corpus, "loso")
    assert [f.speakers(corpus)["test"] for f in loso] == [[f"0{s}F", f"0{s}M"] for s in range(1, 6)]
    assert all(len(f.speakers(corpus)["valid"]) == 1 for f in loso)    # 8 training-side speakers / 8


def test_msp_improv_session_schemes(corpora):
    corpus, _ = corpora["msp_improv/standard"]
    loso = make_folds(corpus)
    assert [f.name for f in loso] == [f"session{s}" for s in range(1, 7)]
    paper, _ = corpora["msp_improv/paper"]
    folds = make_folds(paper, protocol="paper")
    assert [f.name for f in folds] == ["session1", "session2", "session3", "session5"]
    assert folds[0].speakers(paper)["test"] == ["F01", "M01"]


def test_msp_podcast_official_and_packing(corpora):
    corpus, _ = corpora["msp_podcast/standard"]
    (fold,) = make_folds(corpus)
    sessions = lambda idx: {corpus.records[i].session for i in idx}   # noqa: E731
    assert sessions(fold.train) == {"Train"} and sessions(fold.valid) == {"Development"}
    assert sessions(fold.test) == {"Test1", "Test2"} and len(fold.test) == 4
    (only1,) = make_folds(corpus, include_test2=False)
    assert sessions(only1.test) == {"Test1"}
    paper, _ = corpora["msp_podcast/paper"]
    folds = make_folds(paper, protocol="paper")
    # speakers in string order "10" "127" "2" "51" "61", one per group; fold k tests group 5-k
    assert [f.speakers(paper)["test"] for f in folds] == [["61"], ["51"], ["2"], ["127"], ["10"]]


def test_packing_is_greedy_in_string_order():
    recs = [Utterance(Path(f"{s}_{i}.wav"), "neutral", str(s), "msp_podcast", f"{s:02d}_{i}")
            for s in range(1, 13) for i in range(s % 4 + 1)]
    corpus = Corpus("msp_podcast", recs, ("neutral",))
    folds = make_folds(corpus, "emodarts_packing")
    groups = [f.speakers(corpus)["test"] for f in folds][::-1]      # fold k tests group 5-k
    order = sorted({r.speaker for r in recs})                        # "1" "10" "11" "12" "2" ...
    assert [s for g in groups for s in sorted(g, key=order.index)] == order
    assert len(groups) == 5 and all(groups)


def test_speaker_groups_balance_gender_and_repeat(corpora):
    corpus, _ = corpora["emodb"]
    folds = make_folds(corpus)
    assert len(folds) == 5
    for f in folds:
        test_genders = sorted(corpus.records[i].gender for i in f.test)
        assert test_genders.count("M") == test_genders.count("F")
    rav, _ = corpora["ravdess"]
    a = make_folds(rav, n_folds=3, seed=1)
    assert a == make_folds(rav, n_folds=3, seed=1)
    assert all(len(f.speakers(rav)["test"]) == 2 for f in a)
    assert all({rav.records[i].gender for i in f.test} == {"F", "M"} for f in a)
    big = make_folds(rav, n_folds=2, valid_speakers=2)
    assert all(len(f.speakers(rav)["valid"]) == 2 for f in big)


def test_bad_schemes_raise(corpora):
    rav, _ = corpora["ravdess"]
    with pytest.raises(ValueError, match="needs sessions"):
        make_folds(rav, "loso")
    with pytest.raises(ValueError, match="unknown scheme"):
        make_folds(rav, "random")
    with pytest.raises(ValueError, match="is for iemocap"):
        make_folds(rav, "emodarts_pairs")
    with pytest.raises(ValueError, match="n_folds"):
        make_folds(rav, n_folds=7)
    ie, _ = corpora["iemocap/standard"]
    two = Corpus("iemocap", [r for r in ie.records if r.session in ("1", "2")], ie.classes)
    with pytest.raises(ValueError, match="needs speakers"):
        make_folds(two, "emodarts_pairs")
