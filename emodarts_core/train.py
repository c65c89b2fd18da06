"""Final training of a network derived from a genotype, its evaluation, and exact resume.

:func:`fit` is the one training loop. The searched network (:func:`run_train`) and the
hand-designed CNN-LSTM baseline (:mod:`emodarts_core.baselines`) both go through it, so they share
the loss, the head, the optimiser and the budget:

- SGD (``TrainConfig.lr``, momentum, weight decay), learning rate cosine-annealed over the epochs
  to ``lr_min``, gradients clipped to ``grad_clip``;
- optionally SpecAugment-style masks on each training batch (``freq_mask``, ``time_mask``;
  off by default, as in the paper): :func:`mask_batch`;
- drop-path probability ramped linearly from 0 to ``drop_path`` over the epochs (set on the model
  as ``drop_path_prob`` before each epoch);
- cross-entropy weighted by inverse class frequency on the training side
  (``class_weighted``), plus ``aux_weight`` times the same loss on the auxiliary head's logits
  when the model has one;
- after every epoch: loss, WA and UA on the validation speakers (whole speakers from the training
  side, disjoint from the test speakers); ``best.pt`` keeps the weights of the best validation UA;
  training stops after ``patience`` epochs without a better validation UA (0 = never);
- at the end: the weights of the best validation UA and those of the last epoch are each
  evaluated once on the test speakers -> ``metrics.json``, whose top-level WA / UA are the ones
  of the rule ``TrainConfig.select`` names ("best" or "last"), the other in
  ``test_by_selection``;
- with ``TrainConfig.fit_valid`` the validation speakers join the training batches instead (the
  DARTS practice of retraining on the whole training side once nothing is left to choose): no
  validation pass, no ``best.pt``, only the last epoch is tested.

The test fold never chooses anything: the rule is fixed before the run, and "best" chooses the
epoch on validation UA (the public emoDARTS code picked the best epoch on the fold it reported).
A checkpoint after every epoch holds the weights, optimiser, scheduler, RNG states (torch, NumPy,
Python and the batch generator), the early-stopping state and the history, so a killed run
resumed with the same command ends in the same numbers (bit-identical on CPU).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TrainConfig, final_space
from .corpora.record import LoadReport
from .datasets import DataError, FoldData, batch_indices, class_weights, load_fold_data
from .genotype import Genotype
from .metrics import Metrics, evaluate_predictions, ua as ua_score, wa as wa_score
from .progress import progress as progress_bar
from .runs import (NORMALIZER, RESTART_HINT, RunConfig, RunDir, RunFileError, resolve_device,
                   rng_state, set_rng_state)
from .seeding import seed_everything


@dataclass
class TrainResult:
    """What a finished training produced (everything is also in its run directory)."""

    run_dir: Path
    metrics: dict[str, Any]          # test metrics (see metrics.json)
    best_epoch: int                  # -1 with ``fit_valid`` (no validation side)
    best_valid_ua: float | None      # None with ``fit_valid``
    epochs_run: int
    stopped_early: bool

    @property
    def wa(self) -> float:
        return float(self.metrics["wa"])

    @property
    def ua(self) -> float:
        return float(self.metrics["ua"])


# ---------------------------------------------------------------------------------------------
# Devices and precision
def autocast_context(device: torch.device, amp: str | None):
    """``torch.autocast`` on CUDA with ``amp`` in {"bf16", "fp16"}; a no-op context otherwise."""
    if device.type != "cuda" or not amp or amp == "off":
        return torch.autocast(device_type="cpu", enabled=False)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type="cuda", dtype=dtype)


def make_scaler(device: torch.device, amp: str | None) -> torch.amp.GradScaler:
    """A GradScaler that is active only for fp16 on CUDA (bf16 needs none)."""
    return torch.amp.GradScaler("cuda", enabled=(device.type == "cuda" and amp == "fp16"))


def sgd_cosine(params, lr: float, momentum: float, weight_decay: float, epochs: int,
               lr_min: float) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.CosineAnnealingLR]:
    """SGD with momentum and weight decay, its lr cosine-annealed from ``lr`` to ``lr_min`` over
    ``epochs`` (stepped once per epoch): the weight optimiser of the search and of training."""
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs), eta_min=lr_min)
    return opt, sched


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch; 4-D images go channels_last on CUDA."""
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


# ---------------------------------------------------------------------------------------------
# Evaluation
@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device,
            amp: str | None = None) -> torch.Tensor:
    """Logits (float32, on CPU) of ``model`` in eval mode, in batches, in input order."""
    was_training = model.training
    model.eval()
    out = []
    for idx in batch_indices(len(x), batch_size, shuffle=False):
        with autocast_context(device, amp):
            out.append(model(to_device(x[idx], device)).float().cpu())
    model.train(was_training)
    if not out:
        return torch.zeros(0, 0)
    return torch.cat(out)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int,
                          device: torch.device, amp: str | None = None) -> int:
    """Re-estimate the running statistics of ``model``'s BatchNorm layers on ``x``, with dropout
    off, as evaluation will see their inputs.

    Every cell of this library's networks ends in dropout (as in emoDARTS) and the next cell's
    preprocessing, or the head norm, normalises it, so the running statistics a training run
    keeps are those of dropout-noised activations; evaluation switches dropout off and each
    BatchNorm then normalises activations of another spread, a shift that compounds through the
    layers (Li et al. 2019, the "variance shift" of dropout before batch norm). Here the model
    runs in evaluation mode except its BatchNorm layers, which normalise by batch statistics and
    accumulate their plain average (``momentum=None``) over the batches of ``x`` (in order,
    ``batch_size`` at a time). Weights are untouched; training flags and momenta are restored.
    Returns the number of layers re-estimated (0: nothing to do).
    """
    layers = [m for m in model.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not layers or len(x) == 0:
        return 0
    modes = {m: m.training for m in model.modules()}
    momenta = [m.momentum for m in layers]
    try:
        model.eval()
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        for idx in batch_indices(len(x), batch_size, shuffle=False):
            with autocast_context(device, amp):
                model(to_device(x[idx], device))
    finally:
        for m, mom in zip(layers, momenta):
            m.momentum = mom
        for m, flag in modes.items():
            m.train(flag)
    return len(layers)


def evaluate_split(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int,
                   batch_size: int, device: torch.device, weight: torch.Tensor | None = None,
                   amp: str | None = None) -> dict[str, float]:
    """Loss, WA and UA of ``model`` on one split."""
    logits = predict(model, x, batch_size, device, amp)
    loss = F.cross_entropy(logits, y, weight=weight).item()
    pred = logits.argmax(1).numpy()
    return {"loss": float(loss), "wa": wa_score(y.numpy(), pred),
            "ua": ua_score(y.numpy(), pred, n_classes)}


def _forward_train(model: nn.Module, x: torch.Tensor):
    fwa = getattr(model, "forward_with_aux", None)
    if fwa is not None:
        return fwa(x)
    return model(x), None


def mask_batch(x: torch.Tensor, freq_mask: int, time_mask: int) -> torch.Tensor:
    """SpecAugment-style masks on a ``(B, 1, n_mfcc, n_frames)`` batch: for each utterance on its
    own, a band of ``U(0, freq_mask)`` coefficients and a span of ``U(0, time_mask)`` frames, at
    random places, set to 0 (the mean after normalisation). Draws from torch's global RNG (which
    checkpoints keep); 0 turns a mask off."""
    if freq_mask <= 0 and time_mask <= 0:
        return x
    from torchaudio.functional import mask_along_axis_iid

    if freq_mask > 0:
        x = mask_along_axis_iid(x, min(freq_mask, x.shape[2]), 0.0, axis=2)
    if time_mask > 0:
        x = mask_along_axis_iid(x, min(time_mask, x.shape[3]), 0.0, axis=3)
    return x


# ---------------------------------------------------------------------------------------------
def fit(model: nn.Module, data: FoldData, tcfg: TrainConfig, run: RunDir, device: torch.device,
        seed: int, progress: bool = True, amp: str | None = None, desc: str = "train",
        extra_metrics: dict[str, Any] | None = None) -> TrainResult:
    """Train ``model`` on ``data`` as the module docstring describes; resume from ``run``'s
    checkpoint when there is one. Writes history.json, best.pt (not with ``fit_valid``),
    checkpoint.pt and metrics.json.
    """
    if len(data.y_valid) == 0 and not tcfg.fit_valid:
        raise DataError(f"fold {data.fold_name!r} has no validation utterances to choose epochs on")
    if len(data.y_test) == 0:
        raise DataError(f"fold {data.fold_name!r} has no test utterances")
    x_fit, y_fit = data.x_train, data.y_train
    if tcfg.fit_valid:
        x_fit, y_fit = torch.cat([data.x_train, data.x_valid]), torch.cat([data.y_train, data.y_valid])
    gen = seed_everything(seed)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    opt, sched = sgd_cosine(model.parameters(), tcfg.lr, tcfg.momentum, tcfg.weight_decay,
                            tcfg.epochs, tcfg.lr_min)
    scaler = make_scaler(device, amp)
    weight = class_weights(y_fit, data.n_classes) if tcfg.class_weighted else None
    weight_dev = weight.to(device) if weight is not None else None
    state = {"epoch": 0, "best_ua": -1.0, "best_epoch": -1, "bad_epochs": 0, "stopped": False,
             "finished": False}
    history: dict[str, list] = {"epochs": [], "steps": []}

    ckpt = run.load_checkpoint()
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            scaler.load_state_dict(ckpt["scaler"])
            state = dict(ckpt["state"])
            history = json.loads(ckpt["history"])
            set_rng_state(ckpt["rng"], gen)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise run.damaged(RunDir.CHECKPOINT, e) from None
    run.write_history(history)

    epochs = range(int(state["epoch"]), tcfg.epochs)
    if state["stopped"] or state["finished"]:
        epochs = range(0)
    for epoch in progress_bar(epochs, desc=desc, enabled=progress, initial=int(state["epoch"]),
                              total=tcfg.epochs):
        t0 = time.perf_counter()
        if hasattr(model, "drop_path_prob"):
            model.drop_path_prob = tcfg.drop_path * epoch / max(1, tcfg.epochs)
        lr = opt.param_groups[0]["lr"]
        model.train()
        tot_loss, n_seen, correct = 0.0, 0, 0
        for idx in batch_indices(len(y_fit), tcfg.batch_size, gen):
            x, y = to_device(x_fit[idx], device), y_fit[idx].to(device)
            x = mask_batch(x, tcfg.freq_mask, tcfg.time_mask)
            with autocast_context(device, amp):
                logits, aux = _forward_train(model, x)
                loss = F.cross_entropy(logits.float(), y, weight=weight_dev)
                if aux is not None and tcfg.aux_weight > 0:
                    loss = loss + tcfg.aux_weight * F.cross_entropy(aux.float(), y, weight=weight_dev)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            tot_loss += float(loss.detach()) * len(idx)
            n_seen += len(idx)
            correct += int((logits.argmax(1) == y).sum())
        sched.step()
        if tcfg.recalibrate_bn:           # evaluation-condition statistics (dropout off)
            recalibrate_batchnorm(model, x_fit, tcfg.batch_size, device, amp)
        record = {"epoch": epoch, "lr": lr, "train_loss": tot_loss / max(1, n_seen),
                  "train_wa": correct / max(1, n_seen)}
        if not tcfg.fit_valid:
            val = evaluate_split(model, data.x_valid, data.y_valid, data.n_classes,
                                 tcfg.batch_size, device, weight, amp)
            record.update(valid_loss=val["loss"], valid_wa=val["wa"], valid_ua=val["ua"])
            if val["ua"] > state["best_ua"]:
                state.update(best_ua=val["ua"], best_epoch=epoch, bad_epochs=0)
                run.save_checkpoint({"model": model.state_dict(), "epoch": epoch,
                                     "valid_ua": val["ua"]}, RunDir.BEST)
            else:
                state["bad_epochs"] += 1
        record.update(drop_path_prob=float(getattr(model, "drop_path_prob", 0.0)),
                      seconds=time.perf_counter() - t0)
        history["epochs"].append(record)
        run.write_history(history)
        state["epoch"] = epoch + 1
        if tcfg.patience and state["bad_epochs"] >= tcfg.patience:
            state["stopped"] = True
        run.save_checkpoint({
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "state": state,
            "history": json.dumps(history), "rng": rng_state(gen),
        })
        if state["stopped"]:
            break

    # final evaluation on the test speakers: the weights of both rules, the configured one on top
    # (with fit_valid there is no "best": nothing was held out to choose it)
    last_epoch = len(history["epochs"]) - 1
    if last_epoch < 0:
        raise RuntimeError(f"{run.path}: no epoch was trained")
    by_epoch = {"last": (last_epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})}
    if not tcfg.fit_valid:
        best = run.load_checkpoint(RunDir.BEST)
        if best is None or "model" not in best:
            raise RunFileError(f"{run.file(RunDir.BEST)} is missing or holds no weights; "
                               f"{RESTART_HINT}")
        by_epoch["best"] = (int(state["best_epoch"]), best["model"])
    by_rule: dict[str, Metrics] = {}
    for rule in by_epoch:
        try:
            model.load_state_dict(by_epoch[rule][1])
        except RuntimeError as e:
            raise run.damaged(RunDir.BEST if rule == "best" else RunDir.CHECKPOINT, e) from None
        logits = predict(model, data.x_test, tcfg.batch_size, device, amp)
        by_rule[rule] = evaluate_predictions(data.y_test.numpy(), logits.argmax(1).numpy(),
                                             data.classes)
    model.load_state_dict(by_epoch[tcfg.select][1])
    best_valid_ua = None if tcfg.fit_valid else float(state["best_ua"])
    metrics = by_rule[tcfg.select].to_dict()
    metrics.update({"split": "test", "fold": data.fold_name, "selection": tcfg.select,
                    "selected_epoch": by_epoch[tcfg.select][0],
                    "test_by_selection": {rule: {"epoch": by_epoch[rule][0], "wa": m.wa, "ua": m.ua}
                                          for rule, m in by_rule.items()},
                    "best_epoch": int(state["best_epoch"]),
                    "best_valid_ua": best_valid_ua,
                    "epochs_run": len(history["epochs"]), "stopped_early": bool(state["stopped"]),
                    "fit_valid": bool(tcfg.fit_valid), "n_fit": len(y_fit),
                    "speakers_test": data.speakers_test,
                    "n_parameters": int(sum(p.numel() for p in model.parameters()))})
    metrics.update(extra_metrics or {})
    run.write_json(RunDir.METRICS, metrics)
    return TrainResult(run_dir=run.path, metrics=metrics, best_epoch=int(state["best_epoch"]),
                       best_valid_ua=best_valid_ua, epochs_run=len(history["epochs"]),
                       stopped_early=bool(state["stopped"]))


# ---------------------------------------------------------------------------------------------
def load_data(cfg: RunConfig, progress: bool = False) -> FoldData:
    """The fold a run config names (features from its profile, cached)."""
    return load_fold_data(cfg.corpus, cfg.data_root, cfg.profile.features, cfg.protocol, cfg.fold,
                          cache_dir=cfg.cache_dir, progress=progress, skip_bad=cfg.skip_bad)


def start_run(cfg: RunConfig, data: FoldData, announce: bool = True) -> RunDir:
    """Create (or reopen) the run directory once the data has loaded, write what the loading
    skipped or noted to its ``data_report.json`` and, with ``announce``, print that as one line
    on stderr (a run given an already loaded fold, such as random search's candidates, only
    writes it)."""
    run = RunDir.create(cfg)
    line = run.write_data_report(data.report, data.n_files)
    if announce and line:
        print(line, file=sys.stderr, flush=True)
    return run


def save_normalizer(run: RunDir, data: FoldData) -> None:
    """Keep the training-side normalisation with the run, so :func:`run_evaluate` can reuse it."""
    if data.norm_stats is not None:
        run.save_checkpoint(dict(data.norm_stats), NORMALIZER)


def run_train(cfg: RunConfig, genotype: Genotype, progress: bool = True,
              data: FoldData | None = None) -> TrainResult:
    """Train the network of ``genotype`` on the fold ``cfg`` names; see :func:`fit`.

    The genotype becomes part of the run's identity (``cfg.options["genotype"]``) and is written
    to the run directory's ``genotype.json``.
    """
    from .network import Network

    options = dict(cfg.options)
    options["genotype"] = genotype.to_dict()
    cfg = dataclasses.replace(cfg, options=options)
    device = resolve_device(cfg.device)
    announce = data is None
    data = data if data is not None else load_data(cfg, progress)   # bad data: no run dir
    run = start_run(cfg, data, announce)
    run.write_json(RunDir.GENOTYPE, genotype.to_dict())
    save_normalizer(run, data)
    seed_everything(cfg.seed)
    model = Network(genotype, final_space(cfg.profile), data.n_classes, data.input_shape,
                    aux=cfg.profile.train.aux_weight > 0)
    return fit(model, data, cfg.profile.train, run, device, cfg.seed, progress=progress,
               amp=cfg.options.get("amp"), desc=f"train {cfg.corpus} fold {cfg.fold}",
               extra_metrics={"corpus": cfg.corpus, "kind": cfg.kind})


def build_model(run: RunDir, n_classes: int, input_shape: tuple[int, int]) -> nn.Module:
    """The model a finished training or baseline run trained (architecture only)."""
    cfg = run.config
    if cfg.kind == "baseline" and cfg.options.get("baseline") == "cnn_lstm":
        from .baselines import CNNLSTM

        return CNNLSTM(n_classes, input_shape, **cfg.options.get("cnn_lstm", {}))
    if cfg.kind == "baseline" and cfg.options.get("baseline") == "cnn_bilstm_att":
        from .handdesigned import CNNBiLSTMAtt

        return CNNBiLSTMAtt(n_classes, input_shape, **cfg.options["cnn_bilstm_att"])
    from .network import Network

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
        from .baselines import FINAL_DIR

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
    from .datasets import features_for
    from .features import Normalizer, speaker_step

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
        from .emotions import resolve_class_set

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
    import hashlib

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
    from .datasets import _resolve_root, corpus_names, load_records, split_roots
    from .runs import atomic_write_json

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
        from .folds import make_folds

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
