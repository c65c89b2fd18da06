"""Evaluating finished runs: their weights rebuilt, one run or an ensemble scored on a corpus
(its own test fold or another corpus over the shared classes).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from emodarts_core.common.files import RESTART_HINT, RunFileError, atomic_write_json
from emodarts_core.config import final_space
from emodarts_core.data.corpora.record import LoadReport
from emodarts_core.data.datasets import (DataError, _resolve_root, corpus_names, features_for,
                                         load_records, split_roots)
from emodarts_core.data.emotions import resolve_class_set
from emodarts_core.data.folds import make_folds
from emodarts_core.data.normalization import Normalizer, speaker_step
from emodarts_core.nas.genotype import Genotype
from emodarts_core.nas.network import Network
from emodarts_core.train.baselines import FINAL_DIR
from emodarts_core.train.engine import predict
from emodarts_core.train.handdesigned import CNNLSTM, CNNBiLSTMAtt
from emodarts_core.train.metrics import evaluate_predictions
from emodarts_core.train.runs import NORMALIZER, RunDir, resolve_device


def build_model(run: RunDir, n_classes: int, input_shape: tuple[int, int]) -> nn.Module:
    """The model a finished training or baseline run trained (architecture only)."""
    cfg = run.config
    if cfg.kind == "baseline" and cfg.options.get("baseline") == "cnn_lstm":
        return CNNLSTM(n_classes, input_shape, **cfg.options.get("cnn_lstm", {}))
    if cfg.kind == "baseline" and cfg.options.get("baseline") == "cnn_bilstm_att":
        return CNNBiLSTMAtt(n_classes, input_shape, **cfg.options["cnn_bilstm_att"])

    genotype = Genotype.load(run.file(RunDir.GENOTYPE))
    return Network(genotype, final_space(cfg.profile), n_classes, input_shape,
                   aux=cfg.profile.train.aux_weight > 0)


def selected_weights(run: RunDir) -> dict[str, torch.Tensor]:
    """The weights a finished training run tests under its ``train.select`` rule: ``best.pt``'s
    for "best", the last epoch's (``checkpoint.pt``) for "last"."""
    cfg = run.config
    if cfg.kind == "baseline" and cfg.options.get("baseline") == "egemaps_svm":
        raise DataError(f"{run.path} is an eGeMAPS + SVM baseline: it holds no network to "
                        f"evaluate (its test metrics are in {RunDir.METRICS})")
    select = cfg.profile.train.select
    name = RunDir.BEST if select == "best" else RunDir.CHECKPOINT
    ckpt = run.load_checkpoint(name)
    if ckpt is None or not run.file(RunDir.METRICS).exists():
        hint = (f"; evaluate its final model, {run.path / FINAL_DIR}"
                if cfg.options.get("baseline") == "random" else "; train it to the end first")
        raise DataError(f"{run.path} holds no finished training ({name}, {RunDir.METRICS}){hint}")
    if not isinstance(ckpt.get("model"), dict):
        raise RunFileError(f"{run.file(name)} holds no model weights; {RESTART_HINT}")
    return ckpt["model"]


def run_classes(run: RunDir) -> tuple[str, ...]:
    """The classes a finished run was trained on, in its output order."""
    metrics = run.read_json(RunDir.METRICS)
    if not isinstance(metrics, dict) or not isinstance(metrics.get("classes"), list):
        raise RunFileError(f"{run.file(RunDir.METRICS)} holds no class list; {RESTART_HINT}")
    return tuple(str(c) for c in metrics["classes"])


def member_probabilities(run: RunDir, crp, indices: Sequence[int], scored: Sequence[str],
                         cache_dir: str | Path | None, device: torch.device,
                         report: LoadReport | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """One trained run's view of the utterances ``crp.records[indices]`` whose label is one of
    ``scored`` (a subset of the run's classes): its softmax probabilities
    ``(n_kept, len(scored))`` over the logits of ``scored`` alone, in that order (so its
    decision is the argmax among those classes' logits), the labels as indices into ``scored``,
    and the positions (into ``indices``) of the utterances scored (label in ``scored``, audio
    readable).

    Features use the run's profile and the normalisation fitted on the run's own training side;
    with ``normalization="speaker"`` each evaluated speaker is first standardised by the
    statistics of all their utterances in ``indices`` (whatever their class: audio only), with
    ``"corpus"`` each corpus by the statistics of all its loaded utterances (``crp.records``,
    whatever the fold or class). Files skipped or noted on the way are added to ``report``."""

    cfg = run.config
    fcfg = cfg.profile.features
    weights = selected_weights(run)
    norm = run.load_checkpoint(NORMALIZER)
    if norm is None:
        raise DataError(f"{run.path} holds no {NORMALIZER}; it was not written by run_train")
    try:
        normalizer = Normalizer.from_state_dict(norm)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise run.damaged(NORMALIZER, e) from None
    classes = run_classes(run)
    missing = [c for c in scored if c not in classes]
    if missing:
        raise DataError(f"the run {run.path} was trained on {list(classes)}, without {missing}")
    records = [crp.records[i] for i in indices]
    if fcfg.normalization == "corpus":
        every, kept_all = features_for(crp.records, fcfg, cache_dir, report=report)
        every = speaker_step(every, [], fcfg, corpora=[crp.records[i].corpus for i in kept_all])
        row = {idx: r for r, idx in enumerate(kept_all)}
        kept = [j for j, i in enumerate(indices) if int(i) in row]
        feats = every[[row[int(indices[j])] for j in kept]]
    else:
        feats, kept = features_for(records, fcfg, cache_dir, report=report)
        feats = speaker_step(feats, [records[i].speaker for i in kept], fcfg)
    chosen = [r for r, j in enumerate(kept) if records[j].label in scored]
    feats, kept = feats[chosen], [kept[r] for r in chosen]
    try:
        x = normalizer(feats).unsqueeze(1)
    except ValueError as e:
        raise run.damaged(NORMALIZER, e) from None
    remap = {c: i for i, c in enumerate(scored)}
    y = torch.tensor([remap[records[i].label] for i in kept], dtype=torch.int64)
    model = build_model(run, len(classes), (x.shape[-2], x.shape[-1]))
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        name = RunDir.BEST if cfg.profile.train.select == "best" else RunDir.CHECKPOINT
        raise run.damaged(name, e) from None
    model.to(device)
    logits = predict(model, x, cfg.profile.train.batch_size, device)
    columns = [classes.index(c) for c in scored]
    return torch.softmax(logits[:, columns], dim=1), y, kept


def scored_classes(run_class_lists: Sequence[Sequence[str]], corpus_classes: Sequence[str],
                   classes: str | Sequence[str] | None = None, corpus: str = "the corpus"
                   ) -> tuple[str, ...]:
    """The classes an evaluation scores: ``classes`` when given (a set name or names, each of
    which every run and the corpus must have), else every class of the first run that the
    corpus and the other runs also have; in the first run's order. DataError when none."""
    first = list(run_class_lists[0])
    if classes is not None:
        try:
            wanted = set(resolve_class_set(classes))
        except ValueError as e:
            raise DataError(str(e)) from None
        for c in sorted(wanted):
            if c not in corpus_classes:
                raise DataError(f"class {c!r} is not among {corpus}'s classes {list(corpus_classes)}")
            if any(c not in rc for rc in run_class_lists):
                raise DataError(f"class {c!r} is not among the run's classes {first}")
    else:
        wanted = set(corpus_classes).intersection(*map(set, run_class_lists))
    scored = tuple(c for c in first if c in wanted)
    if not scored:
        raise DataError(f"no shared class: the run was trained on {first}, {corpus} has "
                        f"{list(corpus_classes)}")
    return scored


def evaluation_name(corpus: str, root: str | Path | Sequence[str | Path], fold: int | None) -> str:
    """The default file name of one run's evaluation:
    ``evaluate-<corpus>-<8 hex digits of the resolved data root(s)>[-fold<k>].json`` (several
    corpora joined by ``+``), so that evaluating a run on two copies of a corpus (two data
    roots) keeps both results."""

    roots = [root] if isinstance(root, (str, Path)) else list(root)
    key = os.pathsep.join(str(Path(r).expanduser().resolve()) for r in roots)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    name = corpus.replace(",", "+")
    return f"evaluate-{name}-{digest}" + ("" if fold is None else f"-fold{fold}") + ".json"


def run_evaluate(run_dir: str | Path | Sequence[str | Path], corpus: str,
                 root: str | Path | Sequence[str | Path] | None, protocol: str | None = None,
                 fold: int | None = None, cache_dir: str | Path | None = None,
                 out: str | Path | None = None, device: str = "cpu",
                 classes: str | Sequence[str] | None = None, skip_bad: bool = False
                 ) -> dict[str, Any]:
    """Evaluate a trained run's selected weights (:func:`selected_weights`), or an ensemble of
    several runs, on a corpus, over the classes the runs and the corpus share.

    ``run_dir`` is one run directory or a list of them. The scored classes are those of the
    first run that the corpus (and every other run) also has, or ``classes`` when given
    (:func:`scored_classes`); utterances of the corpus's other classes are left out, and each
    run decides among the scored classes' logits alone. Each run is featurised and normalised
    as it was trained (:func:`member_probabilities`); an ensemble predicts the class of the
    highest mean softmax probability over its runs, and one run predicts exactly its own
    argmax. The runs must keep the same utterances. ``fold=None`` evaluates every utterance of
    the corpus; an integer evaluates that fold's test side. The metrics (WA, UA, confusion,
    per-class recall over the scored classes; what was dropped on each side under
    ``dropped``; each run's own WA / UA under ``members``) are written to ``out`` and returned;
    for one run ``out`` defaults to ``<run>/`` :func:`evaluation_name`, an ensemble must name
    it. ``n_files`` is how many utterances were asked for and ``n`` how many were scored;
    ``skipped`` and ``notes`` list the others and the remarks (files, reasons).
    """

    runs = [RunDir.open(p) for p in ([run_dir] if isinstance(run_dir, (str, Path)) else run_dir)]
    if not runs:
        raise ValueError("run_evaluate needs at least one run directory")
    if len(runs) > 1 and out is None:
        raise ValueError("an ensemble of several runs needs an output path (out=...)")
    crp = load_records(corpus, root, protocol, skip_bad=skip_bad)
    names = corpus_names(corpus)
    resolved_roots = [str(_resolve_root(n, r).resolve())
                      for n, r in zip(names, split_roots(root, len(names)))]
    indices = list(range(len(crp.records)))
    if fold is not None:
        try:
            folds = make_folds(crp, protocol=protocol or "standard")
        except ValueError as e:
            raise DataError(f"cannot split corpus {corpus!r} into folds: {e}") from e
        if not 0 <= fold < len(folds):
            raise DataError(f"fold {fold} is out of range: corpus {corpus!r} has {len(folds)} fold(s)")
        indices = [int(i) for i in folds[fold].test]
    lists = [run_classes(run) for run in runs]
    scored = scored_classes(lists, crp.classes, classes, corpus=f"corpus {corpus!r}")
    dropped_files: dict[str, int] = {}
    for i in indices:
        if crp.records[i].label not in scored:
            dropped_files[crp.records[i].label] = dropped_files.get(crp.records[i].label, 0) + 1
    if not any(crp.records[i].label in scored for i in indices):
        raise DataError(f"corpus {corpus!r} has no utterance of the scored classes {list(scored)}"
                        + ("" if fold is None else f" in fold {fold}'s test side"))
    dev = resolve_device(device)
    total, y, kept, members = None, None, None, []
    report = LoadReport(skipped=list(crp.report.skipped) if fold is None else [],
                        notes=list(crp.report.notes))
    for k, run in enumerate(runs):
        probs, m_y, m_kept = member_probabilities(run, crp, indices, scored, cache_dir, dev,
                                                  report if k == 0 else LoadReport())
        if total is None:
            total, y, kept = torch.zeros_like(probs), m_y, m_kept
        elif m_kept != kept:
            raise DataError(f"{run.path} keeps {len(m_kept)} of the utterances and "
                            f"{runs[0].path} keeps {len(kept)}: their features differ, so they "
                            "cannot be averaged")
        total += probs
        own = evaluate_predictions(y.numpy(), probs.argmax(1).numpy(), scored)
        members.append({"run": str(run.path), "wa": own.wa, "ua": own.ua})
    pred = (total / len(runs)).argmax(1).numpy()
    metrics = evaluate_predictions(y.numpy(), pred, scored).to_dict()
    run_dropped = [c for c in dict.fromkeys(c for rc in lists for c in rc) if c not in scored]
    metrics.update({"runs": [m["run"] for m in members], "members": members,
                    "combine": "single run" if len(runs) == 1 else "mean softmax probability",
                    "corpus": corpus, "data_root": resolved_roots[0] if len(resolved_roots) == 1
                    else resolved_roots, "protocol": protocol,
                    "fold": fold, "split": "all" if fold is None else "test",
                    "run_classes": list(lists[0]), "corpus_classes": list(crp.classes),
                    "chance_ua": 1.0 / len(scored),
                    "dropped": {"run_classes": run_dropped,
                                "corpus_classes": [c for c in crp.classes if c not in scored],
                                "corpus_files": {c: dropped_files[c] for c in crp.classes
                                                 if c in dropped_files},
                                "n_corpus_files": sum(dropped_files.values())},
                    "n_files": len(indices) + (len(crp.report) if fold is None else 0)})
    data = report.to_dict(metrics["n_files"])
    metrics.update(skipped=data["skipped"], notes=data["notes"])
    if len(runs) == 1:
        metrics["run"] = members[0]["run"]
    out = Path(out) if out is not None else runs[0].file(
        evaluation_name(corpus, resolved_roots, fold))
    atomic_write_json(out, metrics)
    metrics["written_to"] = str(out)
    return metrics
