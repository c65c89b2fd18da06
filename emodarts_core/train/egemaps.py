"""The classical baseline users try first: openSMILE eGeMAPS functionals + a linear SVM.

Per utterance, openSMILE (the ``opensmile`` package, which ships its binary in the wheel, so no
network is needed) computes the 88 eGeMAPS v02 functionals (Eyben et al. 2016) over the whole
utterance, read by :func:`emodarts_core.data.audio.read_audio` at the profile's sample rate (no
padding or cutting: functionals summarise any length). They are cached per file in
``<cache>/egemaps/<settings key>/``, one ``.npy`` per file named by the hash of its absolute
path, size and modification time (a rewritten file gets a new name; the settings key covers the
feature set, the sample rate and the openSMILE version).

Then, on each fold:

1. with ``features.normalization="speaker"`` (or ``"corpus"``) each speaker's (corpus's)
   functionals are standardised by that speaker's own statistics (audio only, no labels; the
   same rule as for the MFCCs, ``emodarts_core.data.normalization.speaker_step``);
2. every functional is standardised by the mean and spread of the training speakers;
3. a linear SVM (``SVC(kernel="linear", class_weight="balanced")``) is fitted on the training
   speakers for each ``C`` of :data:`C_GRID`; the ``C`` of the best UA on the fold's validation
   speakers wins (the smaller ``C`` on a tie). The test speakers choose nothing;
4. the winner (refitted on training + validation speakers, with the standardisation refitted on
   them, when ``train.fit_valid`` is set) is tested once on the test speakers.

:func:`run_egemaps_svm` writes the usual run directory (``config.json``, ``environment.json``,
``data_report.json``, ``metrics.json`` in the format of
:func:`emodarts_core.train.metrics.evaluate_predictions`, with the chosen ``C`` and its validation UA, and a one-entry
``history.json`` holding the wall time). A finished run is only re-read.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from emodarts_core.common.files import atomic_write_bytes, atomic_write_json
from emodarts_core.common.progress import progress as progress_bar
from emodarts_core.data.audio import AudioError, read_audio
from emodarts_core.data.corpora.record import LoadReport
from emodarts_core.data.datasets import DataError, default_cache_dir, load_records
from emodarts_core.data.folds import make_folds
from emodarts_core.data.normalization import Normalizer, speaker_step
from emodarts_core.train.engine import TrainResult
from emodarts_core.train.fit import start_run
from emodarts_core.train.metrics import evaluate_predictions, ua
from emodarts_core.train.runs import RunDir

#: openSMILE's feature set and level.
FEATURE_SET = "eGeMAPSv02"
FEATURE_LEVEL = "Functionals"
N_FUNCTIONALS = 88
#: Bump when the cached values would change.
CACHE_VERSION = 1
#: The ``C`` values tried on the validation speakers.
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def _smile():
    import opensmile

    return opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, FEATURE_SET),
                           feature_level=getattr(opensmile.FeatureLevel, FEATURE_LEVEL))


def opensmile_version() -> str:
    import opensmile

    return str(opensmile.__version__)


def compute_functionals(smile, wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """The eGeMAPS functionals ``(88,)`` float32 of one waveform."""
    out = smile.process_signal(wave, sample_rate)
    return np.asarray(out.values, dtype=np.float32).reshape(-1)


class FunctionalsCache:
    """One ``.npy`` of functionals per audio file, keyed by (absolute path, size, mtime_ns) under
    a directory named by the extraction settings; writes are atomic."""

    def __init__(self, cache_dir: str | Path, sample_rate: int) -> None:
        settings = {"version": CACHE_VERSION, "feature_set": FEATURE_SET,
                    "level": FEATURE_LEVEL, "sample_rate": int(sample_rate),
                    "opensmile": opensmile_version()}
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self.root = Path(cache_dir) / "egemaps" / key
        self.settings = settings

    def entry(self, path: str | Path) -> Path:
        st = os.stat(path)
        name = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
        return self.root / (hashlib.sha256(name.encode()).hexdigest()[:32] + ".npy")

    def load(self, path: str | Path) -> np.ndarray | None:
        try:
            v = np.load(self.entry(path))
        except (OSError, ValueError):
            return None
        if v.shape != (N_FUNCTIONALS,) or v.dtype != np.float32 or not np.isfinite(v).all():
            return None                          # damaged: computed again
        return v

    def save(self, path: str | Path, values: np.ndarray) -> None:
        if not (self.root / "config.json").exists():
            atomic_write_json(self.root / "config.json", self.settings)
        buf = io.BytesIO()
        np.save(buf, values.astype(np.float32))
        atomic_write_bytes(self.entry(path), buf.getvalue())


def functionals(paths: Sequence[str | Path], sample_rate: int, cache_dir: str | Path,
                report: LoadReport | None = None, progress: bool = False
                ) -> tuple[np.ndarray, list[int]]:
    """eGeMAPS functionals ``(N_kept, 88)`` of ``paths`` and the kept positions; files the audio
    reader refuses (or whose functionals are not finite) are skipped and listed in ``report``."""

    cache = FunctionalsCache(cache_dir, sample_rate)
    smile = None
    rows, kept = [], []
    for i, path in enumerate(progress_bar(paths, desc="eGeMAPS functionals", enabled=progress)):
        try:
            values = cache.load(path)
        except OSError:
            values = None
        if values is None:
            try:
                wave = read_audio(path, sample_rate)
            except AudioError as e:
                if report is not None:
                    report.skip(path, str(e.args[0]) if e.args else str(e))
                continue
            smile = smile if smile is not None else _smile()
            values = compute_functionals(smile, wave, sample_rate)
            if values.shape != (N_FUNCTIONALS,) or not np.isfinite(values).all():
                if report is not None:
                    report.skip(path, "eGeMAPS functionals are not finite")
                continue
            cache.save(path, values)
        rows.append(values)
        kept.append(i)
    x = np.stack(rows) if rows else np.zeros((0, N_FUNCTIONALS), np.float32)
    return x, kept


@dataclass
class FunctionalsFold:
    """One fold's functionals (after the per-speaker step, before the training-side
    standardisation) and labels; ``x_*`` are ``(N, 88)`` float32, ``y_*`` int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    speakers_test: list[str]
    fold_name: str
    report: LoadReport
    n_files: int


def load_functionals_fold(cfg, progress: bool = False) -> FunctionalsFold:
    """The functionals of fold ``cfg.fold`` of ``cfg``'s corpus (``cfg`` a
    :class:`emodarts_core.train.runs.RunConfig`), after the per-speaker step when asked for."""

    fcfg = cfg.profile.features
    crp = load_records(cfg.corpus, cfg.data_root, cfg.protocol, skip_bad=cfg.skip_bad)
    n_files = len(crp.records) + len(crp.report)
    try:
        folds = make_folds(crp, protocol=cfg.protocol or "standard")
    except ValueError as e:
        raise DataError(f"cannot split corpus {cfg.corpus!r} into folds: {e}") from e
    if not 0 <= cfg.fold < len(folds):
        raise DataError(f"fold {cfg.fold} is out of range: corpus {cfg.corpus!r} has "
                        f"{len(folds)} fold(s) (0..{len(folds) - 1})")
    f = folds[cfg.fold]
    cache = Path(cfg.cache_dir) if cfg.cache_dir is not None else default_cache_dir() / "features"
    x, kept = functionals([r.path for r in crp.records], fcfg.sample_rate, cache, crp.report,
                          progress)
    feats = speaker_step(torch.from_numpy(x).unsqueeze(-1),
                         [crp.records[i].speaker for i in kept], fcfg,
                         corpora=[crp.records[i].corpus for i in kept]).squeeze(-1).numpy()
    row = {idx: r for r, idx in enumerate(kept)}
    labels = np.asarray(crp.label_indices(), dtype=np.int64)
    parts = {}
    for name in ("train", "valid", "test"):
        idx = [int(i) for i in getattr(f, name) if int(i) in row]
        if not idx:
            raise DataError(f"fold {cfg.fold} of corpus {cfg.corpus!r} has no {name} "
                            "utterances; the eGeMAPS baseline needs all three sides")
        parts[name] = (feats[[row[i] for i in idx]].astype(np.float32), labels[idx], idx)
    return FunctionalsFold(
        x_train=parts["train"][0], y_train=parts["train"][1],
        x_valid=parts["valid"][0], y_valid=parts["valid"][1],
        x_test=parts["test"][0], y_test=parts["test"][1], classes=tuple(crp.classes),
        speakers_test=sorted({crp.records[i].speaker for i in parts["test"][2]}),
        fold_name=str(getattr(f, "name", cfg.fold)), report=crp.report, n_files=n_files)


def standardise(fit_rows: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """``arrays`` standardised per functional by the mean and spread of ``fit_rows``
    (:class:`emodarts_core.data.normalization.Normalizer`, so a constant functional stays finite)."""

    norm = Normalizer.fit(torch.from_numpy(fit_rows).unsqueeze(-1))
    return [norm(torch.from_numpy(a).unsqueeze(-1)).squeeze(-1).numpy() for a in arrays]


def fit_svm(x: np.ndarray, y: np.ndarray, c: float):
    """A class-balanced linear SVM fitted on ``(x, y)``."""
    from sklearn.svm import SVC

    return SVC(kernel="linear", C=float(c), class_weight="balanced").fit(x, y)


def choose_c(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray,
             y_valid: np.ndarray, n_classes: int, grid: Sequence[float] = C_GRID
             ) -> tuple[float, dict[float, float]]:
    """The ``C`` of ``grid`` whose SVM, fitted on the training rows, has the best UA on the
    validation rows (the smaller ``C`` on a tie), and every ``C``'s validation UA."""

    if not grid:
        raise ValueError("choose_c: the grid of C values is empty")
    scores: dict[float, float] = {}
    for c in sorted(float(v) for v in grid):
        scores[c] = ua(y_valid, fit_svm(x_train, y_train, c).predict(x_valid), n_classes)
    best = max(scores, key=lambda c: (scores[c], -c))
    return best, scores


def run_egemaps_svm(cfg, progress: bool = True):
    """Train and test the eGeMAPS + linear SVM baseline on fold ``cfg.fold`` (see the module
    docstring); returns a :class:`emodarts_core.train.engine.TrainResult`."""

    if (Path(cfg.out_dir) / RunDir.CONFIG).exists():     # a finished run is only re-read
        run = RunDir.create(cfg)                          # (a different config is refused)
        if run.file(RunDir.METRICS).exists():
            metrics = run.read_json(RunDir.METRICS)
            return TrainResult(run_dir=run.path, metrics=metrics, best_epoch=0,
                               best_valid_ua=metrics["valid_ua"], epochs_run=1,
                               stopped_early=False)
    t0 = time.perf_counter()
    data = load_functionals_fold(cfg, progress)          # bad data: no run dir
    run = start_run(cfg, data, announce=True)
    grid = tuple(float(c) for c in cfg.options.get("c_grid", C_GRID))
    x_train, x_valid = standardise(data.x_train, data.x_train, data.x_valid)
    best_c, scores = choose_c(x_train, data.y_train, x_valid, data.y_valid,
                              len(data.classes), grid)
    fit_valid = bool(cfg.profile.train.fit_valid)
    if fit_valid:                  # nothing left to choose: fit on both sides, as fit() does
        fit_x = np.concatenate([data.x_train, data.x_valid])
        fit_y = np.concatenate([data.y_train, data.y_valid])
    else:
        fit_x, fit_y = data.x_train, data.y_train
    x_fit, x_test = standardise(fit_x, fit_x, data.x_test)
    model = fit_svm(x_fit, fit_y, best_c)
    pred = model.predict(x_test)
    metrics = evaluate_predictions(data.y_test, pred, data.classes).to_dict()
    metrics.update({
        "split": "test", "fold": data.fold_name, "selection": "C by validation UA",
        "c": best_c, "c_grid": list(grid), "valid_ua": scores[best_c],
        "best_valid_ua": scores[best_c],
        "valid_ua_by_c": {repr(c): s for c, s in scores.items()},
        "fit_valid": fit_valid, "n_fit": int(len(fit_y)),
        "speakers_test": data.speakers_test, "n_features": int(data.x_train.shape[1]),
        "features": f"openSMILE {FEATURE_SET} {FEATURE_LEVEL}",
        "classifier": "SVC(kernel='linear', class_weight='balanced')",
        "normalization": cfg.profile.features.normalization,
        "n_parameters": int(model.coef_.size + model.intercept_.size),
        "opensmile": opensmile_version(), "scikit_learn": _sklearn_version(),
        "corpus": cfg.corpus, "kind": "baseline", "baseline": "egemaps_svm",
    })
    run.write_history({"epochs": [{"epoch": 0, "valid_ua": scores[best_c],
                                   "seconds": time.perf_counter() - t0}], "steps": []})
    run.write_json(RunDir.METRICS, metrics)
    return TrainResult(run_dir=run.path, metrics=metrics, best_epoch=0,
                       best_valid_ua=scores[best_c], epochs_run=1, stopped_early=False)


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)
