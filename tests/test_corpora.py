"""Corpus loaders on fixture trees that copy each real layout (tests/corpus_fixtures.py)."""
from __future__ import annotations

import shutil
from collections import Counter

import pytest
from corpus_fixtures import (IEMOCAP_TURNS, TESS_TOP, make_crema_d, make_emodb, make_iemocap,
                             make_msp_improv, make_msp_podcast, make_ravdess, make_tess,
                             write_audio)

from emodarts_core.data.corpora import CORPORA, load_corpus
from emodarts_core.data.corpora.common import CorpusError
from emodarts_core.data.emotions import CLASS_SETS, MAPPINGS, resolve_class_set


def by_id(corpus):
    return {r.utt_id: r for r in corpus.records}


# --------------------------------------------------------------------------------------------- registry
def test_registry_names_and_unknown_corpus(tmp_path):
    assert set(CORPORA) == {"iemocap", "msp_improv", "msp_podcast", "ravdess", "crema_d", "emodb", "tess",
                           "generated"}
    with pytest.raises(CorpusError, match="unknown corpus 'timit'"):
        load_corpus("timit", tmp_path)


def test_wrong_root_names_expected_layout(tmp_path):
    root, _ = make_emodb(tmp_path)
    with pytest.raises(CorpusError, match="Actor_01"):
        load_corpus("ravdess", root)
    with pytest.raises(CorpusError, match="Session1"):
        load_corpus("iemocap", root)
    with pytest.raises(CorpusError, match="not a directory"):
        load_corpus("emodb", tmp_path / "nowhere")


def test_emotion_mappings_only_use_canonical_names():
    from emodarts_core.data.emotions import CANONICAL
    for name, mapping in MAPPINGS.items():
        assert all(v is None or v in CANONICAL for v in mapping.values()), name
    assert resolve_class_set("4class") == ("neutral", "happy", "sad", "angry")
    assert len(CLASS_SETS["ravdess8"]) == 8
    with pytest.raises(ValueError, match="classes"):
        resolve_class_set(("neutral", "joy"))


def test_vocabulary_table_lists_each_corpus_code_by_canonical_emotion():
    from emodarts_core.data.emotions import CANONICAL, TESS, vocabulary_markdown, vocabulary_table

    table = vocabulary_table()
    assert "generated" not in table and {"ravdess", "emodb", "tess", "crema_d"} <= set(table)
    columns = list(table["ravdess"])
    assert all(list(row) == columns for row in table.values())
    assert columns == [c for c in CANONICAL if c in columns]          # canonical order
    assert table["tess"]["surprised"] == "ps" and table["tess"]["fearful"] == "fear"
    assert table["emodb"]["angry"] == "W" and table["emodb"]["surprised"] == ""
    assert table["ravdess"]["calm"] == "02" and table["iemocap"]["excited"] == "exc"
    # every mapped code appears once, in its emotion's cell; no-class codes (xxx, X) nowhere
    for corpus, row in table.items():
        cells = [code for cell in row.values() if cell for code in cell.split(" / ")]
        assert sorted(cells) == sorted(k for k, v in MAPPINGS[corpus].items() if v is not None)
    small = vocabulary_table(["emodb", "tess"])
    assert list(small["tess"]) == ["neutral", "happy", "sad", "angry", "fearful", "disgust",
                                   "surprised", "boredom"]
    assert MAPPINGS["tess"] is TESS
    md = vocabulary_markdown(["emodb", "tess"]).splitlines()
    assert md[0] == "| corpus | " + " | ".join(small["tess"]) + " |"
    assert md[3].startswith("| tess | `neutral` |") and md[2].endswith("| - | `L` |")
    with pytest.raises(ValueError, match="unknown corpus"):
        vocabulary_table(["timit"])


def test_shared_classes_count_each_pair_of_corpora():
    from emodarts_core.data.emotions import corpus_classes, shared_classes_markdown

    assert corpus_classes("emodb") == CLASS_SETS["emodb7"]
    assert corpus_classes("ravdess") == CLASS_SETS["ravdess8"]
    md = shared_classes_markdown(["ravdess", "emodb", "tess"]).splitlines()
    assert md[0] == "| | ravdess | emodb | tess |"
    # RAVDESS and EmoDB share shared6; RAVDESS and TESS also surprised; EmoDB and TESS shared6
    assert md[2] == "| **ravdess** | 8 | 6 | 7 |"
    assert md[3] == "| **emodb** | 6 | 7 | 6 |"
    assert md[4] == "| **tess** | 7 | 6 | 7 |"
    assert len(shared_classes_markdown().splitlines()) == 2 + len(MAPPINGS) - 1
    with pytest.raises(ValueError, match="unknown corpus"):
        corpus_classes("timit")


# --------------------------------------------------------------------------------------------- IEMOCAP
def test_iemocap_standard(tmp_path):
    root, _ = make_iemocap(tmp_path)
    c = load_corpus("iemocap", root)
    assert c.classes == ("neutral", "happy", "sad", "angry")
    assert len(c) == 13                                   # xxx and fru dropped, exc kept as happy
    assert [r.utt_id for r in c.records] == sorted(r.utt_id for r in c.records)
    recs = by_id(c)
    m_in_f = recs["Ses01F_impro01_M001"]                   # male speaker inside an F take
    assert (m_in_f.speaker, m_in_f.gender, m_in_f.session, m_in_f.label) == ("01M", "M", "1", "angry")
    assert m_in_f.extras["take"] == "F" and m_in_f.extras["dialog"] == "Ses01F_impro01"
    assert recs["Ses01F_impro01_M000"].label == "happy"    # exc merged
    assert recs["Ses02M_impro05a_F001"].speaker == "02F"
    assert recs["Ses02M_script01_1b_F000"].extras["dialog"] == "Ses02M_script01_1b"
    assert recs["Ses02M_script01_1b_F000"].extras["utterance_type"] == "scripted"
    assert recs["Ses01F_impro01_F000"].extras["vad"] == [3.0, 2.5, 2.5]
    assert recs["Ses01F_impro01_F000"].path.is_file()
    assert Counter(r.speaker for r in c.records) == {"01F": 3, "01M": 4, "02F": 3, "02M": 3}
    assert "Ses01F_impro01_F001" not in recs and "Ses01F_impro01_F002" not in recs
    assert len(c.report) == 0


def test_iemocap_paper_protocol_and_dedup(tmp_path):
    root, _ = make_iemocap(tmp_path)
    c = load_corpus("iemocap", root, protocol="paper")
    assert len(c) == 9
    assert all(r.extras["utterance_type"] == "improvised" for r in c.records)
    assert "Ses01F_impro01_M000" not in by_id(c)           # exc dropped, not merged
    assert c.class_counts() == {"neutral": 3, "happy": 2, "sad": 2, "angry": 2}
    d = load_corpus("iemocap", root, protocol="paper", dedup_takes=True)
    assert {r.extras["dialog"] for r in d.records} == {"Ses01F_impro01", "Ses02F_impro02", "Ses02M_impro05a"}
    assert len(d) == 6
    s = load_corpus("iemocap", root, utterance_type="scripted")
    assert {r.extras["utterance_type"] for r in s.records} == {"scripted"} and len(s) == 3
    six = load_corpus("iemocap", root, classes=("neutral", "happy", "sad", "angry", "frustrated"))
    assert len(six) == 14


def test_iemocap_root_variants(tmp_path):
    base, _ = make_iemocap(tmp_path / "a")
    n = len(load_corpus("iemocap", base))
    assert len(load_corpus("iemocap", base.parent)) == n   # parent of the release folder
    renamed = tmp_path / "b"
    renamed.mkdir()
    shutil.move(str(base), renamed / "IEMOCAP")            # torchaudio-style root/IEMOCAP
    assert len(load_corpus("iemocap", renamed)) == n
    assert len(load_corpus("iemocap", renamed / "IEMOCAP", sessions=[2])) == 6
    with pytest.raises(CorpusError, match="Session3"):
        load_corpus("iemocap", renamed, sessions=[3])


def test_iemocap_unknown_label_and_missing_audio(tmp_path):
    turns = IEMOCAP_TURNS + [(2, "Ses02F_impro02", "F001", "zzz")]
    root, _ = make_iemocap(tmp_path, turns=turns, write_audio_for=lambda u: u != "Ses01M_impro01_M000")
    with pytest.raises(CorpusError, match=r"Ses01M_impro01\.txt:\d+: audio file .* missing"):
        load_corpus("iemocap", root)
    c = load_corpus("iemocap", root, skip_bad=True)
    reasons = [r for _, r in c.report.skipped]
    assert len(c.report) == 2
    assert any("unknown emotion code 'zzz'" in r for r in reasons)
    assert any(w.endswith("Ses02F_impro02.txt:" + w.rsplit(":", 1)[1]) for w, _ in c.report.skipped)
    assert len(c) == 12


# --------------------------------------------------------------------------------------------- MSP-IMPROV
def test_msp_improv_standard(tmp_path):
    root, _ = make_msp_improv(tmp_path)
    c = load_corpus("msp_improv", root.parent)             # parent of MSP-IMPROV
    assert len(c) == 15                                   # X and O dropped
    recs = by_id(c)
    r = recs["MSP-IMPROV-S02H-M01-S-MF01"]
    assert (r.label, r.speaker, r.gender, r.session) == ("sad", "M01", "M", "1")   # consensus, not acted
    assert r.extras["acted"] == "H" and r.extras["condition"] == "S"
    assert recs["MSP-IMPROV-S01A-F01-R-FM01"].extras["naturalness"] == 3.2
    assert recs["MSP-IMPROV-S02H-M01-S-MF01"].extras["naturalness"] is None          # NaN field
    assert "MSP-IMPROV-S01A-F01-S-FM02" not in recs                                   # X
    assert Counter(r.session for r in c.records) == {"1": 6, "2": 3, "3": 2, "4": 1, "5": 2, "6": 1}
    only_t = load_corpus("msp_improv", root, conditions=["T"])
    assert [r.utt_id for r in only_t.records] == ["MSP-IMPROV-S01A-F01-T-FM01"]


def test_msp_improv_paper_and_evaluation_spelling(tmp_path):
    root, _ = make_msp_improv(tmp_path, label_name="Evaluation.txt")
    c = load_corpus("msp_improv", root, protocol="paper")
    assert len(c) == 8 and {r.extras["condition"] for r in c.records} == {"R"}
    assert all(r.label == {"A": "angry", "H": "happy", "S": "sad", "N": "neutral"}[r.extras["acted"]]
               for r in c.records)
    assert len(load_corpus("msp_improv", root)) == 15


def test_msp_improv_missing_audio_and_bad_code(tmp_path):
    lines = [("S01A-F01-R-FM01", "A", "3.0"), ("S01A-F01-S-FM01", "Q", "3.0"), ("S02H-M01-R-MF01", "H", "3.0")]
    root, _ = make_msp_improv(tmp_path, lines=lines, skip_audio={"S02H-M01-R-MF01"})
    with pytest.raises(CorpusError, match=r"Evalution\.txt:\d+: unknown emotion code 'Q'"):
        load_corpus("msp_improv", root)
    c = load_corpus("msp_improv", root, skip_bad=True)
    assert len(c) == 1 and len(c.report) == 2
    assert any("MSP-IMPROV-S02H-M01-R-MF01.wav is missing" in r for _, r in c.report.skipped)


# --------------------------------------------------------------------------------------------- MSP-Podcast
def test_msp_podcast_standard(tmp_path):
    root, _ = make_msp_podcast(tmp_path)
    c = load_corpus("msp_podcast", tmp_path)               # parent of the release folder
    assert len(c) == 14                                   # X, O and U (not 4-class) dropped
    assert Counter(r.session for r in c.records) == {"Train": 7, "Development": 2, "Test1": 2, "Test2": 2, "Test3": 1}
    recs = by_id(c)
    unk = recs["MSP-PODCAST_0002_0003"]
    assert (unk.speaker, unk.gender, unk.extras["speaker_known"]) == ("Unknown-Train", None, False)
    assert recs["MSP-PODCAST_0006_0002"].speaker == "Unknown-Test2"
    r = recs["MSP-PODCAST_0001_0003"]
    assert (r.label, r.speaker, r.gender, r.extras["podcast"]) == ("angry", "127", "F", "0001")
    assert len(load_corpus("msp_podcast", root, classes="podcast8")) == 15   # + surprise
    assert len(load_corpus("msp_podcast", root, splits=["Validation"])) == 2


def test_msp_podcast_paper(tmp_path):
    root, _ = make_msp_podcast(tmp_path)
    c = load_corpus("msp_podcast", root, protocol="paper")
    assert len(c) == 9
    assert {r.session for r in c.records} == {"Train"}
    assert all(r.extras["speaker_known"] for r in c.records)
    assert {r.extras["split_original"] for r in c.records} == {"Train", "Test1", "Test2"}
    assert sorted(c.speakers) == ["10", "127", "2", "51", "61"]


def test_msp_podcast_18_spelling_and_errors(tmp_path):
    root, _ = make_msp_podcast(tmp_path, spelling="1.8", folder="MSP-PODCAST-1.8")
    assert (root / "Labels" / "labels_concensus.csv").is_file()
    c = load_corpus("msp_podcast", root)
    assert len(c) == 13
    dev = [r for r in c.records if r.session == "Development"]
    assert len(dev) == 2 and {r.extras["split_original"] for r in dev} == {"Validation"}
    bad_rows = [("MSP-PODCAST_0001_0001", "Q", "10", "Male", "Train")]
    bad, _ = make_msp_podcast(tmp_path / "bad", rows=bad_rows)
    with pytest.raises(CorpusError, match=r"labels_consensus\.csv:2: unknown emotion code 'Q'"):
        load_corpus("msp_podcast", bad)
    (bad / "Audios" / "MSP-PODCAST_0001_0001.wav").unlink()
    (bad / "Labels" / "labels_consensus.csv").write_text(
        "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n"
        "MSP-PODCAST_0001_0001.wav,N,1,1,1,10,Male,Train\n")
    with pytest.raises(CorpusError, match="missing"):
        load_corpus("msp_podcast", bad)
    assert len(load_corpus("msp_podcast", bad, skip_bad=True).report) == 1


# --------------------------------------------------------------------------------------------- RAVDESS
@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_ravdess(tmp_path, ext):
    root, _ = make_ravdess(tmp_path, ext=ext)
    c = load_corpus("ravdess", root)
    assert c.classes == CLASS_SETS["ravdess8"]
    assert len(c) == 54                                   # the song file is skipped
    assert c.speakers == ["01", "02", "03", "04", "05", "06"]
    assert {r.speaker: r.gender for r in c.records} == {"01": "M", "02": "F", "03": "M", "04": "F",
                                                         "05": "M", "06": "F"}
    r = by_id(c)["03-01-05-02-02-01-03"]
    assert (r.label, r.extras["intensity"], r.extras["statement"]) == ("angry", "strong", "02")
    assert r.path.suffix == f".{ext}"
    merged = load_corpus("ravdess", root, calm="neutral", classes="4class")
    assert merged.class_counts() == {"neutral": 12, "happy": 6, "sad": 6, "angry": 12}
    dropped = load_corpus("ravdess", root, calm="drop")
    assert len(dropped) == 48 and "calm" not in dropped.classes
    assert len(load_corpus("ravdess", root, include_song=True)) == 55
    assert len(load_corpus("ravdess", root, classes=("angry", "sad"))) == 18


def test_ravdess_bad_code(tmp_path):
    root, _ = make_ravdess(tmp_path, actors=("01",))
    write_audio(root / "Actor_01" / "03-01-09-01-01-01-01.wav")
    with pytest.raises(CorpusError, match=r"03-01-09-01-01-01-01\.wav: unknown emotion code '09'"):
        load_corpus("ravdess", root)
    c = load_corpus("ravdess", root, skip_bad=True)
    assert len(c) == 9 and len(c.report) == 1


# --------------------------------------------------------------------------------------------- CREMA-D, EmoDB
def test_crema_d(tmp_path):
    root, _ = make_crema_d(tmp_path)
    c = load_corpus("crema_d", tmp_path)
    assert len(c) == 30 and c.classes == CLASS_SETS["crema6"]
    assert {r.speaker: r.gender for r in c.records} == {"1001": "M", "1002": "F", "1003": "F",
                                                         "1004": "M", "1005": "M"}
    r = by_id(c)["1001_DFA_ANG_HI"]
    assert (r.label, r.extras["sentence"], r.extras["level"]) == ("angry", "DFA", "HI")
    assert len(load_corpus("crema_d", root, exclude=())) == 31
    (root / "VideoDemographics.csv").unlink()
    assert {r.gender for r in load_corpus("crema_d", root).records} == {None}


@pytest.mark.parametrize("wav_dir", ["wav", "wav_corpus"])
def test_emodb(tmp_path, wav_dir):
    make_emodb(tmp_path, wav_dir=wav_dir)
    c = load_corpus("emodb", tmp_path)
    assert len(c) == 70 and c.classes == CLASS_SETS["emodb7"]
    assert Counter(r.gender for r in c.records) == {"M": 35, "F": 35}
    assert {r.speaker for r in c.records if r.gender == "M"} == {"03", "10", "11", "12", "15"}
    r = by_id(c)["03a01Wa"]
    assert (r.label, r.extras["text"], r.extras["version"]) == ("angry", "a01", "a")
    assert by_id(c)["08a01La"].label == "boredom"
    assert load_corpus("emodb", tmp_path, classes="4class").class_counts() == {
        "neutral": 10, "happy": 10, "sad": 10, "angry": 10}


# --------------------------------------------------------------------------------------------- TESS
def test_tess(tmp_path):
    import soundfile as sf

    root, quirks = make_tess(tmp_path)
    c = load_corpus("tess", root)             # the archive folder: the data folder is found below
    assert len(c) == 42 and c.classes == CLASS_SETS["tess7"]
    assert c.speakers == ["OAF", "YAF"] and {r.gender for r in c.records} == {"F"}
    assert set(c.class_counts().values()) == {6}
    # the label comes from the file name, whatever the folder's case or spelling
    r = by_id(c)["YAF_back_ps"]
    assert r.label == "surprised" and r.path.parent.name == "YAF_pleasant_surprised"
    assert by_id(c)["OAF_bar_fear"].label == "fearful" and by_id(c)["OAF_bar_fear"].path.parent.name == "OAF_Fear"
    # "OA_bite_neutral.wav" belongs to OAF
    r = by_id(c)["OAF_bite_neutral"]
    assert (r.speaker, r.path) == ("OAF", quirks["short_prefix"]) and r.extras["age"] == 64
    # the AIFF file behind a .wav name and the 96 kHz file are loaded like the others
    assert sf.info(str(quirks["aiff"])).format == "AIFF" and by_id(c)["YAF_bar_fear"].path == quirks["aiff"]
    assert sf.info(str(quirks["96k"])).samplerate == 96000
    assert load_corpus("tess", root, classes="shared6").class_counts() == {
        "neutral": 6, "happy": 6, "sad": 6, "angry": 6, "fearful": 6, "disgust": 6}
    # two speakers leave no validation speaker beside a training one: a test set only
    from emodarts_core.data.folds import make_folds

    with pytest.raises(ValueError, match="cannot hold out 1 for validation"):
        make_folds(c)


def test_tess_bad_entries(tmp_path):
    root, _ = make_tess(tmp_path)
    top = root / TESS_TOP
    write_audio(top / "OAF_angry" / "._OAF_back_angry.wav")          # macOS resource fork: ignored
    assert len(load_corpus("tess", top)) == 42
    write_audio(top / "OAF_angry" / "OAF_back_calm.wav")
    with pytest.raises(CorpusError, match=r"OAF_back_calm\.wav: unknown emotion code 'calm'"):
        load_corpus("tess", top)
    (top / "OAF_angry" / "OAF_back_calm.wav").unlink()
    write_audio(top / "OAF_angry" / "YAF_bed_angry.wav")               # the other speaker's name
    with pytest.raises(CorpusError, match="speaker 'YAF' in the name but folder OAF_angry"):
        load_corpus("tess", top)
    (top / "OAF_angry" / "YAF_bed_angry.wav").unlink()
    shutil.copytree(top / "OAF_angry", top / "OAF_Angry")               # a folder copied twice
    with pytest.raises(CorpusError, match="same utterance also stored"):
        load_corpus("tess", top)
    c = load_corpus("tess", top, skip_bad=True)
    assert len(c) == 42 and len(c.report) == 3
    with pytest.raises(CorpusError, match="OAF_<emotion>"):
        load_corpus("tess", tmp_path / "tess" / TESS_TOP / "OAF_angry")
