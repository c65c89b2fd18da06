"""A generated speech-emotion corpus: offline, license-free and fully deterministic from a seed.

It lets every test, notebook and CI job run the whole pipeline without downloading anything. The
signals are not speech, but they have what an MFCC front end sees in speech: a voiced glottal
source at a speaker-specific pitch, vowel formants that change from syllable to syllable,
syllable-like loudness envelopes, short noise bursts between syllables, breath and background
noise. Emotion classes shift, *on average*, the acoustic cues known to carry emotion in speech:
pitch level, pitch range and slope, loudness, speaking rate, spectral tilt (vocal effort), jitter
and breathiness. Every cue also varies from utterance to utterance and, a lot, from speaker to
speaker (each speaker has habitual offsets and a recording gain), so classes overlap: a small
model learns the task well above chance on held-out speakers, but not perfectly.

Layout written by :func:`generate_corpus`::

    root/manifest.json                     generator parameters + one entry per file
    root/spk_<SS>/<SS>_<class>_<NN>.wav    16-bit PCM mono, e.g. spk_03/03_happy_07.wav

Speakers ``"00"``, ``"01"``, ... alternate female / male (even = F, odd = M). Durations are
1.0-3.0 s. Each file is generated from its own ``numpy`` generator seeded with
``(seed, speaker, class, n)``, so the audio does not depend on generation order.

Rerunning with the same parameters does nothing (the manifest matches and every file is there).
If ``root`` holds a manifest written with *different* parameters, :func:`generate_corpus` raises
:class:`~emodarts_core.data.corpora.common.CorpusError` unless ``overwrite=True``, which deletes the
files that manifest lists and generates the new corpus in their place; nothing else in ``root`` is
touched.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import soundfile as sf
from scipy.signal import lfilter, sosfilt

from emodarts_core.data.corpora.common import Builder, CorpusError, check_protocol, reject_options
from emodarts_core.data.corpora.record import Corpus, Utterance
from emodarts_core.data.emotions import CANONICAL, MAPPINGS
from emodarts_core.common.files import atomic_write_text

NAME = "generated"
FORMAT = "emodarts-generated-corpus"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: Default scale of the class effects. Measured on the default corpus (8 speakers x 4 classes x 8,
#: 4 folds of 2 held-out speakers, chance 25 %): logistic regression on the mean and std of 20
#: librosa MFCCs, and a 2-layer CNN on the 20 x 63 MFCC image (first 2 s), seeds 0 / 1:
#: strength 1.0 -> LR 53 % / 42 %; 1.5 -> LR 68 % / 51 %, CNN 54 % / 55 %;
#: 2.0 -> LR 76 % / 64 %, CNN 64 % / 72 %.
DEFAULT_STRENGTH = 2.0


@dataclass(frozen=True)
class Style:
    """Mean acoustic effect of one emotion class, relative to the speaker's neutral voice.

    ``pitch`` semitones of level shift, ``range`` semitones of accent excursion, ``slope``
    semitones of declination over the utterance, ``energy`` dB of loudness, ``rate`` syllables per
    second, ``tilt`` dB per octave of the glottal source (less negative = more vocal effort),
    ``jitter`` relative period-to-period deviation, ``breath`` noise-to-voice ratio.
    """

    pitch: float
    range: float
    slope: float
    energy: float
    rate: float
    tilt: float
    jitter: float
    breath: float


#: Class -> mean style. Values follow the direction of the classic acoustic-correlate findings
#: (high-arousal classes: higher, wider pitch, louder, faster, flatter tilt; sad: low, narrow,
#: slow, soft, breathy). The differences from neutral are multiplied by ``strength``
#: (:data:`DEFAULT_STRENGTH`); the spreads below make classes overlap.
STYLES: dict[str, Style] = {
    "neutral":   Style(pitch=0.0,  range=2.5, slope=-1.5, energy=0.0,  rate=4.2, tilt=-12.0, jitter=0.010, breath=0.06),
    "calm":      Style(pitch=-0.8, range=2.0, slope=-1.2, energy=-2.0, rate=3.8, tilt=-13.0, jitter=0.008, breath=0.08),
    "happy":     Style(pitch=2.5,  range=5.0, slope=0.5,  energy=3.0,  rate=4.8, tilt=-10.0, jitter=0.014, breath=0.05),
    "sad":       Style(pitch=-1.5, range=1.5, slope=-2.5, energy=-4.0, rate=3.4, tilt=-14.0, jitter=0.012, breath=0.12),
    "angry":     Style(pitch=2.0,  range=4.0, slope=-2.0, energy=5.0,  rate=5.0, tilt=-8.0,  jitter=0.022, breath=0.04),
    "fearful":   Style(pitch=4.0,  range=3.0, slope=1.0,  energy=1.0,  rate=5.4, tilt=-10.5, jitter=0.025, breath=0.10),
    "disgust":   Style(pitch=-0.5, range=3.5, slope=-1.0, energy=0.5,  rate=3.6, tilt=-11.0, jitter=0.016, breath=0.08),
    "surprised": Style(pitch=4.5,  range=6.0, slope=2.5,  energy=2.5,  rate=4.6, tilt=-9.5,  jitter=0.015, breath=0.06),
    "boredom":   Style(pitch=-1.0, range=1.2, slope=-1.0, energy=-2.5, rate=3.7, tilt=-13.5, jitter=0.009, breath=0.07),
}

#: Per-utterance standard deviation of each style field (the within-class spread).
UTTERANCE_SD = Style(pitch=1.5, range=1.2, slope=1.2, energy=2.5, rate=0.6, tilt=1.8, jitter=0.005, breath=0.03)
#: Per-speaker standard deviation of the habitual offsets (the between-speaker spread).
SPEAKER_SD = Style(pitch=1.0, range=0.8, slope=0.8, energy=3.0, rate=0.5, tilt=1.5, jitter=0.004, breath=0.03)

# Vowel formants (F1, F2, F3 in Hz, adult male reference) that syllables cycle through at random.
VOWELS = np.array([
    [730, 1090, 2440],   # a
    [530, 1840, 2480],   # e
    [270, 2290, 3010],   # i
    [570, 840, 2410],    # o
    [300, 870, 2240],    # u
    [660, 1720, 2410],   # ae
], dtype=float)
BANDWIDTHS = np.array([80.0, 110.0, 160.0])


@dataclass(frozen=True)
class GeneratorParams:
    """Everything the corpus is a function of (stored in ``manifest.json``)."""

    n_speakers: int
    per_class: int
    classes: tuple[str, ...]
    sample_rate: int
    seed: int
    strength: float
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d


def _style_vector(style: Style) -> np.ndarray:
    return np.array([style.pitch, style.range, style.slope, style.energy, style.rate, style.tilt,
                     style.jitter, style.breath])


def _speaker(seed: int, index: int, sample_rate: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, index, 7919])
    gender = "F" if index % 2 == 0 else "M"
    f0 = rng.uniform(175.0, 245.0) if gender == "F" else rng.uniform(92.0, 140.0)
    formant = rng.uniform(1.08, 1.2) if gender == "F" else rng.uniform(0.92, 1.04)
    offsets = rng.normal(0.0, 1.0, 8) * _style_vector(SPEAKER_SD)
    return {"gender": gender, "f0": float(f0), "formant_scale": float(formant),
            "offsets": offsets, "gain_db": float(rng.uniform(-6.0, 6.0)),
            "snr_db": float(rng.uniform(25.0, 40.0))}


def _formant_filter(signal: np.ndarray, freqs: np.ndarray, bws: np.ndarray, sr: int) -> np.ndarray:
    """A cascade of two-pole resonators (unit gain at 0 Hz), one per formant."""
    r = np.exp(-np.pi * bws / sr)
    a1, a2 = -2.0 * r * np.cos(2.0 * np.pi * freqs / sr), r * r
    sos = np.stack([1.0 + a1 + a2, np.zeros_like(r), np.zeros_like(r), np.ones_like(r), a1, a2], axis=1)
    return sosfilt(sos, signal)


def synthesize(
    speaker: dict[str, Any], label: str, rng: np.random.Generator, sample_rate: int, strength: float,
) -> np.ndarray:
    """One utterance (float64 in [-1, 1]) for ``speaker`` (from the generator's speaker table)
    expressing ``label`` with class effects scaled by ``strength`` (1 = the :data:`STYLES` values)."""
    sr = sample_rate
    neutral = _style_vector(STYLES["neutral"])
    style = neutral + strength * (_style_vector(STYLES[label]) - neutral)
    v = style + speaker["offsets"] + rng.normal(0.0, 1.0, 8) * _style_vector(UTTERANCE_SD)
    pitch, prange, slope, energy, rate, tilt, jitter, breath = v
    prange, rate = max(prange, 0.3), float(np.clip(rate, 2.0, 8.0))
    jitter, breath = float(np.clip(jitter, 0.0, 0.06)), float(np.clip(breath, 0.0, 0.4))

    duration = rng.uniform(1.0, 3.0)
    n = int(round(duration * sr))
    t = np.arange(n) / sr
    lead, trail = rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.2)
    speech = max(duration - lead - trail, 0.4)
    n_syl = max(2, int(round(speech * rate)))
    lengths = rng.gamma(6.0, 1.0, n_syl)
    bounds = lead + np.concatenate([[0.0], np.cumsum(lengths / lengths.sum() * speech)])

    # Syllable index of every sample (-1 outside speech) and position inside the syllable.
    syl = np.searchsorted(bounds, t, side="right") - 1
    inside = (syl >= 0) & (syl < n_syl)
    syl_c = np.clip(syl, 0, n_syl - 1)
    start, length = bounds[syl_c], np.diff(bounds)[syl_c]
    pos = np.where(inside, (t - start) / length, 0.0)

    # Loudness: a voiced nucleus per syllable (rise, hold, fall) with a random per-syllable level.
    nucleus = np.clip(np.minimum(pos / 0.25, (1.0 - pos) / 0.35), 0.0, 1.0)
    nucleus = np.sin(0.5 * np.pi * nucleus) ** 2 * inside
    syl_level = rng.uniform(0.5, 1.0, n_syl)
    syl_level[rng.integers(n_syl)] = 1.0
    env = nucleus * syl_level[syl_c]

    # Pitch contour: speaker base, class level, declination slope and accents on some syllables.
    accents = rng.uniform(-0.4, 1.0, n_syl) * (rng.random(n_syl) < 0.6)
    accent = accents[syl_c] * np.sin(np.pi * pos) * inside
    semitones = pitch + slope * (t / duration - 0.5) + prange * accent
    f0 = speaker["f0"] * 2.0 ** (semitones / 12.0)

    # Glottal pulses with jitter and shimmer: one pulse per cycle of the pitch contour, each moved
    # by a random fraction (jitter) of its period and scaled by a random amplitude (shimmer).
    phase = np.cumsum(f0) / sr
    idx = np.flatnonzero(np.diff(np.floor(phase))) + 1
    idx = idx[idx >= int(lead * sr * 0.5)]
    moved = idx + np.rint(rng.normal(0.0, jitter, idx.size) * sr / f0[idx]).astype(int)
    pulses = np.zeros(n)
    np.add.at(pulses, np.clip(moved, 0, n - 1), 1.0 + rng.normal(0.0, 2.0 * jitter, idx.size))
    # Spectral tilt: two one-pole low-passes (-12 dB/octave above the corner); more vocal effort
    # (a less negative `tilt`) moves the corner up, so more energy reaches the high harmonics.
    corner = 250.0 * 2.0 ** ((tilt + 12.0) / 4.0)
    pole = float(np.exp(-2.0 * np.pi * min(corner, 0.3 * sr) / sr))
    source = lfilter([1.0 - pole], [1.0, -pole], lfilter([1.0 - pole], [1.0, -pole], pulses))
    source = lfilter([1.0, -1.0], [1.0, -0.995], source)   # no DC (the glottal flow derivative)
    source /= np.sqrt(np.mean(source ** 2)) + 1e-12
    source += breath * rng.normal(0.0, 1.0, n) * 3.0

    # Vowel formants: filter the source once per vowel, then use each syllable's vowel.
    scale = speaker["formant_scale"]
    vowels = rng.integers(len(VOWELS), size=n_syl)
    voiced = np.zeros(n)
    for idx in np.unique(vowels):
        y = _formant_filter(source, np.minimum(VOWELS[idx] * scale, 0.45 * sr), BANDWIDTHS, sr)
        mask = (vowels[syl_c] == idx) & inside
        voiced[mask] = y[mask]
    voiced /= np.sqrt(np.mean(voiced[inside] ** 2)) + 1e-12

    # Consonant-like noise bursts at syllable onsets (high-passed noise).
    onset = np.clip(1.0 - pos / 0.12, 0.0, 1.0) * inside * (rng.random(n_syl) < 0.7)[syl_c]
    hiss = lfilter([1.0, -0.95], [1.0], rng.normal(0.0, 1.0, n))
    signal = env * voiced + 0.25 * onset * hiss

    level = 10 ** ((energy + speaker["gain_db"] - 26.0) / 20.0)
    signal = signal / (np.sqrt(np.mean(signal[inside] ** 2)) + 1e-12) * level
    noise_level = level * 10 ** (-speaker["snr_db"] / 20.0)
    signal = signal + noise_level * rng.normal(0.0, 1.0, n)
    peak = np.max(np.abs(signal))
    if peak > 0.98:
        signal *= 0.98 / peak
    return signal




def _read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CorpusError(f"generated: {path} is not valid JSON ({exc})") from None
    if data.get("format") != FORMAT:
        raise CorpusError(f"generated: {path} is not a generated-corpus manifest (format {FORMAT!r})")
    return data


def generate_corpus(
    root: str | Path,
    *,
    n_speakers: int = 8,
    per_class: int = 8,
    classes: Sequence[str] = ("neutral", "happy", "sad", "angry"),
    sample_rate: int = 16000,
    seed: int = 0,
    strength: float = DEFAULT_STRENGTH,
    overwrite: bool = False,
) -> Path:
    """Write the generated corpus under ``root`` (created if needed) and return ``root``.

    ``n_speakers`` speakers (alternating F/M) x ``len(classes)`` classes x ``per_class`` files.
    ``classes`` are canonical names with a style in :data:`STYLES`. ``strength`` scales every class
    effect (0 = all classes identical, 1 = the :data:`STYLES` values; default
    :data:`DEFAULT_STRENGTH`). See the module docstring for
    the layout and the rerun rules.
    """
    classes = tuple(classes)
    unknown = [c for c in classes if c not in STYLES]
    if unknown:
        raise ValueError(f"generate_corpus: classes {unknown} have no style; choose from {list(STYLES)}")
    if len(set(classes)) != len(classes) or not classes:
        raise ValueError(f"generate_corpus: classes must be distinct and non-empty, got {classes}")
    if n_speakers < 1 or per_class < 1 or sample_rate < 8000:
        raise ValueError("generate_corpus: need n_speakers >= 1, per_class >= 1, sample_rate >= 8000")
    if n_speakers > 100:
        raise ValueError("generate_corpus: n_speakers must be <= 100 (two-digit speaker ids)")
    params = GeneratorParams(n_speakers, per_class, classes, int(sample_rate), int(seed), float(strength))
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)

    old = _read_manifest(root)
    if old is not None:
        if old["params"] == params.to_json():
            if all((root / f["path"]).is_file() for f in old["files"]):
                return root
        elif not overwrite:
            raise CorpusError(
                f"generated: {root} already holds a corpus generated with {old['params']}, not "
                f"{params.to_json()}; use another root or pass overwrite=True"
            )
        for f in old["files"]:
            (root / f["path"]).unlink(missing_ok=True)
        for d in {(root / f["path"]).parent for f in old["files"]}:
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        (root / MANIFEST).unlink()

    files = []
    speakers = {}
    for s in range(n_speakers):
        spk = _speaker(seed, s, sample_rate)
        sid = f"{s:02d}"
        speakers[sid] = {"gender": spk["gender"], "f0": round(spk["f0"], 2)}
        folder = root / f"spk_{sid}"
        folder.mkdir(exist_ok=True)
        for c_idx, label in enumerate(classes):
            class_key = CANONICAL.index(label)
            for i in range(per_class):
                rng = np.random.default_rng([seed, s, class_key, i])
                audio = synthesize(spk, label, rng, sample_rate, strength)
                rel = f"spk_{sid}/{sid}_{label}_{i:02d}.wav"
                sf.write(root / rel, audio, sample_rate, subtype="PCM_16")
                files.append({"path": rel, "speaker": sid, "gender": spk["gender"], "label": label,
                              "seconds": round(len(audio) / sample_rate, 4)})
    atomic_write_text(root / MANIFEST, json.dumps({
        "format": FORMAT, "params": params.to_json(), "speakers": speakers, "files": files,
    }, indent=1))
    return root


def load_generated(
    root: str | Path,
    *,
    protocol: str = "standard",
    classes: str | Sequence[str] | None = None,
    skip_bad: bool = False,
    **options: Any,
) -> Corpus:
    """Read a corpus written by :func:`generate_corpus` (labels, speakers and genders from
    ``manifest.json``). Default classes: those the corpus was generated with, in that order.
    Records: ``speaker`` ``"00"``.., ``gender``, ``extras`` ``seconds``."""
    reject_options(NAME, options)
    check_protocol(NAME, protocol, ("standard", "paper"))
    root = Path(root).expanduser()
    manifest = _read_manifest(root) if root.is_dir() else None
    if manifest is None:
        raise CorpusError(f"generated: {str(root)!r} has no {MANIFEST}; expected a folder written "
                          "by emodarts_core.data.corpora.generated.generate_corpus "
                          "(manifest.json + spk_<SS>/<SS>_<class>_<NN>.wav)")
    builder = Builder(NAME, MAPPINGS[NAME], skip_bad)
    for i, entry in enumerate(manifest["files"]):
        where = f"{root / MANIFEST}: files[{i}]"
        ok, label = builder.label(entry["label"], where)
        if not ok or label is None:
            continue
        path = root / entry["path"]
        if not builder.audio(path, where):
            continue
        builder.add(Utterance(
            path=path, label=label, speaker=entry["speaker"], corpus=NAME, utt_id=path.stem,
            gender=entry["gender"], session=None, extras={"seconds": entry["seconds"]},
        ))
    return builder.finish(classes, tuple(manifest["params"]["classes"]))
