import json

import pytest

from emodarts_core.config import (PROFILES, FeatureConfig, Profile, SearchConfig, from_dict,
                                  get_profile, override, seq_primitives, to_dict)


def test_paper_profile_is_the_papers_square_input():
    f = get_profile("paper").features
    assert (f.sample_rate, f.duration_s, f.n_mfcc, f.n_fft, f.hop_length, f.time_pool) == (
        32750, 8.0, 128, 2048, 512, 4)
    assert f.shape == (128, 128)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profiles_round_trip_through_json(name):
    p = PROFILES[name]
    again = from_dict(Profile, json.loads(json.dumps(to_dict(p))))
    assert again == p


def test_unknown_fields_and_names_are_errors():
    with pytest.raises(ValueError, match="unknown FeatureConfig"):
        from_dict(FeatureConfig, {"sample_rate": 16000, "bogus": 1})
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("gpu-xl")
    with pytest.raises(ValueError, match="unknown SearchConfig"):
        override(SearchConfig(), epoch=3)
    assert override(SearchConfig(), epochs=3).epochs == 3


def test_seq_op_sets_end_with_none():
    assert len(seq_primitives("all")) == 14
    for name in ("lstm", "rnn", "lstm_att", "rnn_att", "attention"):
        ops = seq_primitives(name)
        assert ops[-1] == "none" and "skip_connect" in ops
    with pytest.raises(ValueError):
        seq_primitives(("lstm_1", "skip_connect"))


def test_a_profile_testing_the_last_epoch_runs_its_whole_schedule():
    # "last" means the end of the cosine schedule; with early stopping on it would test whatever
    # epoch the stopping happened to hit
    for name, profile in PROFILES.items():
        assert profile.train.select in ("best", "last"), name
        if profile.train.select == "last":
            assert profile.train.patience == 0, name
    assert PROFILES["cpu"].train.select == "last"     # chosen on RAVDESS (benchmarks/RESULTS.md)
