"""The search loop: DARTS' bi-level optimisation of the supernet, with a run directory and resume.

Every step takes one batch from each half of the fold's training side (split once, by a seeded
generator, ``SearchConfig.weight_fraction`` for the weights and the rest for the alphas):

1. **alpha step** (:class:`~emodarts_core.search.architect.Architect`): Adam on the alphas from the
   alpha-batch's loss (first order, or second order unrolled through one virtual weight step);
2. **weight step**: SGD (momentum, weight decay, gradient clipping) on the weights from the
   w-batch's loss; the learning rate is cosine-annealed from ``w_lr`` to ``w_lr_min`` over the
   epochs.

With ``alpha_warmup_epochs = k > 0`` the first ``k`` epochs skip step 1 (the weights train
alone, the alphas keep their initial values; their records have ``alpha_step_loss`` null).

The split's seed is the run's seed unless ``search.split_seed`` fixes it (then seeds vary the
search alone: initial alphas and weights, batch order, dropout). Four remedies for a search that
does not decide are options of :class:`~emodarts_core.config.SearchConfig`: ``alpha_accumulate``
(each alpha step averages that many alpha batches), ``relaxation="dirichlet"`` (DrNAS),
``smoothing_eps`` (SDARTS-RS noise on the operation weights of the weight steps, rising over the
epochs: :func:`remedy_schedule`) and ``beta_decay`` (beta-DARTS' regulariser on the alphas).

Before each epoch's evaluation the supernet's BatchNorm statistics are re-estimated on the
weights' half with dropout off (:func:`~emodarts_core.train.engine.recalibrate_batchnorm`); the running
statistics of training are those of dropout-noised activations and made the supernet score
chance on its own alpha split.

After each epoch the history records losses, WA and UA on the alpha split (the search's
validation data: the weights never train on it; it is an utterance-level split of the training
speakers, and the fold's validation and test speakers are never seen by the search), the softmaxed alphas, the derived genotype, the
number of ``skip_connect`` (and parameter-free) edges in each derived cell, the entropy of each
alpha matrix (:mod:`emodarts_core.search.guards`) and whether the search decides (``quality``: entropy
as a fraction of uniform, top-2 margin and flip rate, :mod:`emodarts_core.search.quality`).
With ``collapse_guard="darts+"`` the search stops early once the normal cell holds ``max_skips`` or more skip connections (DARTS+); the genotype of
that epoch is still recorded. The guard's state is part of the checkpoint.

**The final genotype** is the genotype of the epoch with the best validation UA (ties: the lower
validation loss, then the earlier epoch; warm-up epochs are not candidates), not simply the last
epoch's. Long DARTS searches drift
towards parameter-free cells (skip-connect collapse) while the supernet's validation accuracy
falls, so the best-UA epoch is the natural early-stopping point; every epoch's genotype stays in
``history.json`` for anyone who prefers another rule. With ``search.selection="perturbation"``
the genotype is instead read off the final supernet by perturbation-based selection
(:mod:`~emodarts_core.search.perturbation`, written to ``perturbation.json``).

A checkpoint after every epoch (and every ``options["checkpoint_every"]`` steps) holds the
weights and alphas, both optimisers, the scheduler, the gradient scaler, the step and epoch
counters, the batch order of the current epoch, every RNG state and the history; rerunning the
same command resumes exactly (bit-identical on CPU).

On CUDA the weight step and the evaluations run under ``torch.autocast`` (``options["amp"]``:
bf16 by default, fp16 with a GradScaler, or off) with channels_last images; the architect's step
stays in float32, since the finite-difference Hessian-vector product does not survive half
precision. Nothing CUDA-specific happens on CPU.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from emodarts_core.common.progress import progress as progress_bar
from emodarts_core.common.seeding import seed_everything
from emodarts_core.config import SearchConfig, UsageError
from emodarts_core.data.datasets import FoldData, batch_indices, split_search
from emodarts_core.fast.branches import cores_to_branches
from emodarts_core.fast.memory import return_freed_blocks_to_os
from emodarts_core.nas.genotype import Genotype
from emodarts_core.nas.supernet import SuperNet
from emodarts_core.search.architect import Architect
from emodarts_core.search.guards import collapse_stats, make_guard
from emodarts_core.search.perturbation import perturbation_scores
from emodarts_core.search.quality import PT_FILE, epoch_quality
from emodarts_core.train.engine import (autocast_context, make_scaler, predict,
                                        recalibrate_batchnorm, sgd_cosine, to_device)
from emodarts_core.train.fit import load_data, start_run
from emodarts_core.train.metrics import ua as ua_score
from emodarts_core.train.metrics import wa as wa_score
from emodarts_core.train.runs import RunConfig, RunDir, resolve_device, rng_state, set_rng_state


@dataclass
class SearchResult:
    """What a finished search produced (everything is also in its run directory)."""

    run_dir: Path
    genotype: Genotype
    best_epoch: int
    best_valid_wa: float
    best_valid_ua: float
    epochs_run: int
    stopped_early: bool
    history: dict[str, list]


# ---------------------------------------------------------------------------------------------
def remedy_schedule(search: SearchConfig, epoch: int) -> tuple[float, float]:
    """This epoch's SDARTS-RS noise half-width and beta-DARTS weight (both 0 when off).

    The noise rises linearly from ``smoothing_eps / 10`` in the first epoch to ``smoothing_eps``
    in the last; the beta weight from ``beta_decay / n`` in the first epoch after the warm-up to
    ``beta_decay`` in the last (``n`` the epochs after the warm-up)."""
    span = max(1, search.epochs - 1)
    smoothing = search.smoothing_eps * (0.1 + 0.9 * min(epoch, span) / span)
    after = search.epochs - search.alpha_warmup_epochs
    done = epoch - search.alpha_warmup_epochs + 1
    beta = search.beta_decay * min(1.0, max(0, done) / max(1, after))
    return smoothing, beta


def _select_best(epochs: list[dict[str, Any]], warmup: int = 0) -> dict[str, Any]:
    """The epoch record with the best valid UA (ties: lower valid loss, then earlier), among the
    epochs after the first ``warmup`` (all of them if the search stopped before that)."""
    after = [r for r in epochs if r["epoch"] >= warmup] or epochs
    return min(after, key=lambda r: (-r["valid_ua"], r["valid_loss"], r["epoch"]))


def _alphas_json(net: nn.Module) -> dict[str, list]:
    return {k: v.detach().float().cpu().tolist() for k, v in net.alpha_weights().items()}


# ---------------------------------------------------------------------------------------------
def run_search(cfg: RunConfig, progress: bool = True, data: FoldData | None = None) -> SearchResult:
    """Run (or resume) the search that ``cfg`` describes; see the module docstring.

    ``data`` can be passed to reuse an already loaded fold (notebooks); by default the fold is
    loaded from ``cfg``. Returns a :class:`SearchResult`; writes ``genotype.json`` (the final
    genotype), ``metrics.json`` (its selection: epoch, validation WA / UA), ``history.json`` and
    ``checkpoint.pt`` to the run directory.

    On CPU with two or more torch threads the supernet's nodes run their branches on two
    threads (:func:`~emodarts_core.fast.branches.cores_to_branches`; not with ``memory_efficient``,
    whose checkpointed edges do not branch); the numbers are the same.
    """

    threads = (contextlib.nullcontext() if cfg.profile.search.memory_efficient
               else cores_to_branches(resolve_device(cfg.device)))
    with threads:
        return _run_search(cfg, progress, data)


def _run_search(cfg: RunConfig, progress: bool, data: FoldData | None) -> SearchResult:
    if cfg.kind != "search":
        raise ValueError(f"run_search needs a RunConfig of kind 'search', got {cfg.kind!r}")
    scfg, space = cfg.profile.search, cfg.profile.space
    if not 0 <= scfg.alpha_warmup_epochs < max(1, scfg.epochs):
        raise UsageError(f"search.alpha_warmup_epochs must lie in [0, search.epochs), got "
                         f"{scfg.alpha_warmup_epochs} with {scfg.epochs} epochs")
    device = resolve_device(cfg.device)
    amp = cfg.options.get("amp") if device.type == "cuda" else None
    ckpt_every = int(cfg.options.get("checkpoint_every", 0) or 0)
    announce = data is None
    data = data if data is not None else load_data(cfg, progress)   # bad data: no run dir
    run = start_run(cfg, data, announce)
    split_seed = cfg.seed if scfg.split_seed is None else scfg.split_seed
    x_w, y_w, x_a, y_a = split_search(data.x_train, data.y_train, scfg.weight_fraction, split_seed)

    gen = seed_everything(cfg.seed)
    net = SuperNet(space, data.n_classes, data.input_shape,
                   memory_efficient=scfg.memory_efficient, relaxation=scfg.relaxation).to(device)
    if device.type == "cuda":
        net.to(memory_format=torch.channels_last)
    elif scfg.memory_efficient:
        return_freed_blocks_to_os()                  # the resident peak is the CPU's limit
    w_opt, sched = sgd_cosine(net.weights(), scfg.w_lr, scfg.w_momentum, scfg.w_weight_decay,
                              scfg.epochs, scfg.w_lr_min)
    architect = Architect(net, scfg)
    scaler = make_scaler(device, amp)
    guard = make_guard(scfg)

    state: dict[str, Any] = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "stopped": False,
                             "stop_reason": None}
    partial: dict[str, Any] = {}
    history: dict[str, list] = {"epochs": [], "steps": []}
    ckpt = run.load_checkpoint()
    if ckpt is not None:
        try:
            net.load_state_dict(ckpt["net"])
            w_opt.load_state_dict(ckpt["w_optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            architect.load_state_dict(ckpt["architect"])
            scaler.load_state_dict(ckpt["scaler"])
            if guard is not None:
                guard.load_state_dict(json.loads(ckpt["guard"]))
            state = dict(ckpt["state"])
            partial = dict(ckpt.get("partial") or {})
            history = json.loads(ckpt["history"])
            set_rng_state(ckpt["rng"], gen)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise run.damaged(RunDir.CHECKPOINT, e) from None
    run.write_history(history)

    def checkpoint(partial_epoch: dict[str, Any] | None) -> None:
        run.save_checkpoint({
            "net": net.state_dict(), "w_optimizer": w_opt.state_dict(),
            "scheduler": sched.state_dict(), "architect": architect.state_dict(),
            "scaler": scaler.state_dict(), "state": state, "partial": partial_epoch or {},
            "history": json.dumps(history), "rng": rng_state(gen),
            "guard": json.dumps(guard.state_dict() if guard is not None else None),
        })

    epochs = range(int(state["epoch"]), scfg.epochs) if not state["stopped"] else range(0)
    for epoch in progress_bar(epochs, desc=f"search {cfg.corpus} fold {cfg.fold}",
                              enabled=progress, initial=int(state["epoch"]), total=scfg.epochs):
        t0 = time.perf_counter()
        if partial:                                  # resuming in the middle of this epoch
            w_batches = list(partial["w_order"])
            a_batches = list(partial["a_order"])
            acc = dict(partial["acc"])
            steps_log = json.loads(partial["steps_log"])
            t0 -= float(acc.get("seconds", 0.0))
        else:
            w_batches = batch_indices(len(y_w), scfg.batch_size, gen)
            a_batches = batch_indices(len(y_a), scfg.batch_size, gen)
            acc = {"loss": 0.0, "n": 0, "correct": 0, "valid_loss": 0.0, "n_alpha": 0,
                   "seconds": 0.0}
            steps_log = []
        partial = {}
        lr = sched.get_last_lr()[0]
        smoothing, beta = remedy_schedule(scfg, epoch)
        net.train()
        n_steps = len(w_batches)
        k = scfg.alpha_accumulate
        for step in range(int(state["step_in_epoch"]), n_steps):
            wi = w_batches[step]
            ai = torch.cat([a_batches[(step * k + i) % len(a_batches)] for i in range(k)])
            xw, yw = to_device(x_w[wi], device), y_w[wi].to(device)
            xa, ya = to_device(x_a[ai], device), y_a[ai].to(device)
            if epoch >= scfg.alpha_warmup_epochs:
                acc["valid_loss"] += architect.step(xw, yw, xa, ya, lr, w_opt, chunks=k,
                                                    beta_weight=beta) * len(ai)
                acc["n_alpha"] += len(ai)
            net.smoothing_eps = smoothing
            with autocast_context(device, amp):
                logits = net(xw)
                loss = F.cross_entropy(logits.float(), yw)
            net.smoothing_eps = 0.0
            w_opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(w_opt)
            nn.utils.clip_grad_norm_(net.weights(), scfg.grad_clip)
            scaler.step(w_opt)
            scaler.update()
            w_opt.zero_grad(set_to_none=True)   # free the gradients before the next unrolled step
            acc["loss"] += float(loss.detach()) * len(wi)
            acc["n"] += len(wi)
            acc["correct"] += int((logits.argmax(1) == yw).sum())
            state["global_step"] += 1
            state["step_in_epoch"] = step + 1
            if scfg.alpha_log_every and state["global_step"] % scfg.alpha_log_every == 0:
                steps_log.append({"step": state["global_step"], "epoch": epoch,
                                  "alphas": _alphas_json(net)})
            if ckpt_every and state["global_step"] % ckpt_every == 0 and step + 1 < n_steps:
                acc["seconds"] = time.perf_counter() - t0
                checkpoint({"w_order": w_batches, "a_order": a_batches, "acc": acc,
                            "steps_log": json.dumps(steps_log)})
        sched.step()

        # evaluation-condition BatchNorm statistics from the weights' half (dropout off): the
        # statistics kept in training are those of dropout-noised activations
        recalibrate_batchnorm(net, x_w, scfg.batch_size, device, amp)
        logits_a = predict(net, x_a, scfg.batch_size, device, amp)
        pred = logits_a.argmax(1).numpy()
        geno = net.genotype()
        weights = {k: v.detach().float().cpu() for k, v in net.alpha_weights().items()}
        stats = collapse_stats(geno, weights)
        previous = history["epochs"][-1]["genotype"] if history["epochs"] else None
        quality = epoch_quality(weights, geno, previous)
        record = {
            "epoch": epoch, "lr": lr,
            "train_loss": acc["loss"] / max(1, acc["n"]),
            "train_wa": acc["correct"] / max(1, acc["n"]),
            "valid_loss": float(F.cross_entropy(logits_a, y_a)),
            "valid_wa": wa_score(y_a.numpy(), pred),
            "valid_ua": ua_score(y_a.numpy(), pred, data.n_classes),
            "alpha_step_loss": acc["valid_loss"] / acc["n_alpha"] if acc["n_alpha"] else None,
            "seconds": time.perf_counter() - t0,
            # updates (RunCost): weight steps, and the alpha batches the architect stepped on
            "steps": n_steps,
            "alpha_batches": n_steps * scfg.alpha_accumulate if epoch >= scfg.alpha_warmup_epochs else 0,
            "alphas": {k: v.tolist() for k, v in weights.items()},
            "genotype": geno.to_dict(),
            "skip_count": stats.skip_count,
            "param_free_count": stats.param_free_count,
            "alpha_entropy": stats.alpha_entropy,
            "quality": quality.to_dict(),
        }
        history["epochs"].append(record)
        history["steps"].extend(steps_log)
        run.write_history(history)
        state["epoch"] = epoch + 1
        state["step_in_epoch"] = 0
        if guard is not None and guard.update(epoch, geno):
            state["stopped"] = True
            state["stop_reason"] = f"{scfg.collapse_guard} after epoch {epoch}: {guard.reason}"
        checkpoint(None)
        if state["stopped"]:
            break

    if not history["epochs"]:
        raise RuntimeError(f"{run.path}: the search ran no epoch (search.epochs = {scfg.epochs})")
    best = _select_best(history["epochs"], scfg.alpha_warmup_epochs)
    genotype = Genotype.from_dict(best["genotype"])
    if scfg.selection == "perturbation":            # read off the final supernet instead
        if run.file(PT_FILE).exists():               # a finished run reopened
            genotype = Genotype.from_dict(run.read_json(PT_FILE)["genotype"])
        else:
            chosen = perturbation_scores(net, x_a, y_a, scfg.batch_size, device, progress)
            run.write_json(PT_FILE, chosen.to_dict())
            genotype = chosen.genotype
    run.write_json(RunDir.GENOTYPE, genotype.to_dict())
    run.write_json(RunDir.METRICS, {
        "kind": "search",
        "selection": ("best validation UA (alpha split); ties: lower loss"
                      if scfg.selection == "alphas" else
                      "perturbation of the final supernet (perturbation.json); best_epoch: "
                      "the best validation UA's, for the supernet's figures"),
        "best_epoch": best["epoch"], "valid_wa": best["valid_wa"], "valid_ua": best["valid_ua"],
        "valid_loss": best["valid_loss"], "epochs_run": len(history["epochs"]),
        "stopped_early": bool(state["stopped"]), "stop_reason": state["stop_reason"],
        "final_epoch_genotype": history["epochs"][-1]["genotype"], "genotype": genotype.to_dict(),
        "classes": list(data.classes), "n_w": int(len(y_w)), "n_alpha": int(len(y_a)),
        "fold": data.fold_name, "split_seed": int(split_seed),
        "quality": history["epochs"][-1]["quality"],
    })
    return SearchResult(run_dir=run.path, genotype=genotype, best_epoch=int(best["epoch"]),
                        best_valid_wa=float(best["valid_wa"]), best_valid_ua=float(best["valid_ua"]),
                        epochs_run=len(history["epochs"]), stopped_early=bool(state["stopped"]),
                        history=history)
