"""Feature-chapter helpers: example picking, the stages of one utterance, three-way MFCC agreement."""
from __future__ import annotations

import numpy as np
import pytest

from emodarts_core.config import FeatureConfig
from emodarts_core.corpora import load_corpus
from emodarts_core.corpora.generated import generate_corpus
from emodarts_core.feature_plots import (compare_implementations, feature_stages, pick_examples,
                                         plot_agreement, plot_feature_stages, torchaudio_mfcc)

CFG = FeatureConfig(sample_rate=16000, duration_s=2.0, n_mfcc=20, n_mels=40, n_fft=512,
                    hop_length=256, time_pool=4)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = generate_corpus(tmp_path_factory.mktemp("gen"), n_speakers=2, per_class=2)
    return load_corpus("generated", root)


def test_pick_examples_one_per_class_seeded(corpus):
    ex = pick_examples(corpus, per_class=1, seed=0)
    assert [r.label for r in ex] == list(corpus.classes)
    assert [r.utt_id for r in pick_examples(corpus, 1, seed=0)] == [r.utt_id for r in ex]
    assert len(pick_examples(corpus, per_class=2, classes=["sad"])) == 2
    with pytest.raises(ValueError, match="not in corpus"):
        pick_examples(corpus, classes=["bored"])


def test_feature_stages_shapes_and_padding(corpus):
    st = feature_stages(corpus.records[0].path, CFG)
    assert st.wave.shape == (CFG.n_samples,) and st.mfcc.shape == CFG.shape
    assert st.log_mel.shape[0] == CFG.n_mels and st.mfcc_full.shape[1] == 1 + CFG.n_samples // CFG.hop_length
    assert st.n_real <= CFG.n_samples and np.all(st.wave[st.n_real:] == 0)
    fig = plot_feature_stages(corpus.records[:2], CFG)
    assert len(fig.axes) >= 6


def test_three_implementations_agree(corpus):
    agreement = compare_implementations(corpus.records[:3], CFG)
    summary = agreement.summary()
    assert summary["emodarts_core.features.MFCC"]["max"] < 1e-3
    assert summary["torchaudio.transforms.MFCC"]["max"] < 1e-3
    assert agreement.librosa_images.shape == (3, *CFG.shape)
    fig = plot_agreement(agreement, 1)
    assert "relative error" in fig.axes[-2].get_title() or any(
        "relative error" in ax.get_title() for ax in fig.axes)
    with pytest.raises(ValueError, match="expected"):
        torchaudio_mfcc(np.zeros(10, dtype=np.float32), CFG)
