"""The training engine: devices and precision, prediction, evaluation of a split and the one
training loop (:func:`fit`) that the searched network and the hand-designed baselines share.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.common.files import RESTART_HINT, RunFileError
from emodarts_core.common.progress import progress as progress_bar
from emodarts_core.common.seeding import seed_everything
from emodarts_core.config import TrainConfig
from emodarts_core.data.datasets import DataError, FoldData, batch_indices, class_weights
from emodarts_core.train.metrics import Metrics, confusion, evaluate_predictions
from emodarts_core.train.metrics import ua as ua_score
from emodarts_core.train.metrics import wa as wa_score
from emodarts_core.train.runs import RunDir, rng_state, set_rng_state


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
    """Loss, WA and UA of ``model`` on one split, and its predicted classes (``pred``)."""
    logits = predict(model, x, batch_size, device, amp)
    loss = F.cross_entropy(logits, y, weight=weight).item()
    pred = logits.argmax(1).numpy()
    return {"loss": float(loss), "wa": wa_score(y.numpy(), pred),
            "ua": ua_score(y.numpy(), pred, n_classes), "pred": pred}


def confusion_by_speaker(y: torch.Tensor, pred: np.ndarray, speakers: list[str],
                         n_classes: int) -> dict[str, list[list[int]]]:
    """One confusion matrix (rows true, columns predicted) per speaker of a split: what
    :mod:`emodarts_core.train.selection` needs to judge an epoch rule on validation speakers."""
    who = np.asarray(speakers)
    truth = y.numpy()
    return {spk: confusion(truth[who == spk], pred[who == spk], n_classes).tolist()
            for spk in sorted(set(speakers))}


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
        batches = batch_indices(len(y_fit), tcfg.batch_size, gen)
        for idx in batches:
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
            if len(data.valid_speaker_of) == len(data.y_valid):
                record["valid_confusion_by_speaker"] = confusion_by_speaker(
                    data.y_valid, val["pred"], data.valid_speaker_of, data.n_classes)
            if val["ua"] > state["best_ua"]:
                state.update(best_ua=val["ua"], best_epoch=epoch, bad_epochs=0)
                run.save_checkpoint({"model": model.state_dict(), "epoch": epoch,
                                     "valid_ua": val["ua"]}, RunDir.BEST)
            else:
                state["bad_epochs"] += 1
        record.update(drop_path_prob=float(getattr(model, "drop_path_prob", 0.0)),
                      steps=len(batches), seconds=time.perf_counter() - t0)
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
