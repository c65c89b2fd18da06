"""Feature-chapter helpers: example picking, the stages of one utterance, three-way MFCC agreement."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emodarts_core.config import FeatureConfig
from emodarts_core.data.corpora import load_corpus
from emodarts_core.data.corpora.generated import generate_corpus
from emodarts_core.results.feature_plots import (compare_implementations, feature_stages,
                                                 pick_examples, plot_agreement,
                                                 plot_feature_stages, standardize_rows,
                                                 torchaudio_mfcc)

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


def test_standardize_rows_scales_each_coefficient_on_its_own():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(4, 30)) * np.array([[100.0], [1.0], [0.01], [0.0]]) + np.array([[-400.0], [5], [0], [2]])
    z = standardize_rows(img)
    np.testing.assert_allclose(z[:3].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(z[:3].std(axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(z[3], 0)                        # a constant row is only shifted
    shifted = standardize_rows(img + 1e-3, img)                 # another image on img's scale
    assert abs(float(shifted[2].mean())) > 0.05 > abs(float(shifted[0].mean()))
    with pytest.raises(ValueError, match="one shape"):
        standardize_rows(img, img[:2])


def test_feature_images_are_not_flat(corpus):
    """The drawn MFCC image spreads over the colour scale, even with coefficient 0 near -400."""
    fig = plot_feature_stages(corpus.records[:1], CFG)
    shown = fig.axes[2].images[0].get_array()
    assert float(np.std(shown)) > 0.5 and fig.axes[2].images[0].get_clim() == (-3, 3)


def test_three_implementations_agree(corpus):
    agreement = compare_implementations(corpus.records[:3], CFG)
    summary = agreement.summary()
    assert summary["emodarts_core.data.mfcc.MFCC"]["max"] < 1e-3
    assert summary["torchaudio.transforms.MFCC"]["max"] < 1e-3
    assert agreement.librosa_images.shape == (3, *CFG.shape)
    fig = plot_agreement(agreement, 1)
    assert "relative error" in fig.axes[-2].get_title() or any(
        "relative error" in ax.get_title() for ax in fig.axes)
    diff = next(ax for ax in fig.axes if "ours - librosa" in ax.get_title()).images[0]
    lo, hi = diff.get_clim()                                   # scaled to the differences, not blank
    assert hi > 0 and lo == -hi and float(np.mean(np.abs(diff.get_array()) > 0.1 * hi)) > 0.05
    with pytest.raises(ValueError, match="expected"):
        torchaudio_mfcc(np.zeros(10, dtype=np.float32), CFG)


def test_speaker_means_show_what_per_speaker_normalisation_removes():
    from emodarts_core.data.normalization import Normalizer, normalize_per_speaker
    from emodarts_core.results.feature_plots import plot_speaker_means, speaker_means

    g = torch.Generator().manual_seed(3)
    speakers = ["b", "a", "b", "c", "a", "c"]
    offset = {"a": -2.0, "b": 0.5, "c": 3.0}
    x = torch.randn(6, 4, 10, generator=g) + torch.tensor([offset[s] for s in speakers])[:, None, None]
    names, m = speaker_means(x, speakers)
    assert names == ["a", "b", "c"] and m.shape == (3, 4)
    torch.testing.assert_close(m[0], (x[1].mean(dim=1) + x[4].mean(dim=1)) / 2)
    plain, per_speaker = Normalizer.fit(x)(x), normalize_per_speaker(x, speakers)
    assert speaker_means(plain, speakers)[1].std(dim=0).mean() > 0.5       # stripes per speaker
    assert speaker_means(per_speaker, speakers)[1].abs().max() < 1e-5       # gone
    fig = plot_speaker_means({"one normaliser": plain, "per speaker": per_speaker}, speakers)
    assert len(fig.axes) == 3                                              # two maps + colour bar
    assert "spread" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="speaker names"):
        speaker_means(x, speakers[:-1])
