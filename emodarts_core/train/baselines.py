"""Baselines the searched architecture is compared with.

1. **CNN-LSTM** (:class:`CNNLSTM`): the paper's hand-designed CNN-LSTM in the layout of its
   public code (a single small conv, 2 x 2 max-pool, a bidirectional LSTM with 128 units, FC 32,
   dropout 0.3, a linear output), with two corrections. *Time stays time*: the conv feature map
   ``(B, C, F', T')`` becomes a sequence of ``T'`` frames of ``C * F'`` features (the public code
   flattens the whole map into one vector per utterance and its LSTM then runs across the batch).
   *Same training as the searched model*: it goes through :func:`emodarts_core.train.engine.fit`, so it
   gets the class-weighted cross-entropy on logits, the SGD / cosine / clipping optimiser and the
   epoch budget of the profile's ``train`` section (the public baselines used MSE on a softmax
   normalised over the batch).
2. **Random search** (:func:`run_random_search`): ``k`` genotypes drawn uniformly (seeded) from
   the same space as the DARTS search (every node: 2 distinct inputs among the earlier states,
   each with a uniformly drawn operation other than ``none``), each trained briefly, the best by
   validation UA then trained with the full budget and tested. Every candidate is recorded in
   ``candidates.json``. The brief trainings use the search space's width, as the DARTS supernet
   does; ``train.init_channels``, when set, widens the winner's final training only, and
   ``train.fit_valid`` adds the validation speakers to it only (they chose the winner). Random
   search with the same budget is the standard sanity check of a NAS method (Li & Talwalkar 2019;
   Yu et al. 2020). *The budget*: in a batch (:func:`emodarts_core.batch.experiment.run_fold`)
   random search spends the **wall time** its fold's search spent (candidates are drawn while
   the next fits, at the mean cost so far), and records the **steps** of both beside it. Wall
   time, not steps, is the matched quantity because a supernet step costs several times a
   fixed network's, so at equal steps random search would get a fraction of the search's
   compute; the price is that ``k`` depends on the machine's speed, so ``candidates.json``
   records it. Alone (``baseline --kind random``) it draws a fixed ``k``, or matches a search
   run given with ``--match-search``.

3. **CNN-BiLSTM with attention** (:func:`run_cnn_bilstm_att`,
   :class:`emodarts_core.train.handdesigned.CNNBiLSTMAtt`): a strong hand-designed MFCC network whose
   width is matched to the size of the searched networks
   (:func:`emodarts_core.train.handdesigned.match_size`; the target is ``options["target_parameters"]`` or, by default, the mean size of
   the profile's networks for a few uniformly drawn genotypes), trained through the same
   :func:`emodarts_core.train.engine.fit` loop. Its conv blocks, dropout and learning rate are
   tuned on the validation speakers only (:data:`TUNE_GRID`, ``tuning.json``).
4. **eGeMAPS + linear SVM** (:func:`emodarts_core.train.egemaps.run_egemaps_svm`): openSMILE's
   eGeMAPS functionals per utterance and a class-balanced linear SVM whose ``C`` is chosen on the
   validation speakers: the classical baseline users try first.

All are run by :func:`run_baseline`, which ``python -m emodarts_core baseline --kind ...`` calls.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from emodarts_core.common.files import atomic_write_json
from emodarts_core.common.seeding import seed_everything
from emodarts_core.config import Profile, override
from emodarts_core.data.datasets import FoldData
from emodarts_core.nas.genotype import Genotype, sample_genotype
from emodarts_core.train.egemaps import run_egemaps_svm
from emodarts_core.train.engine import TrainResult, fit
from emodarts_core.train.fit import load_data, run_train, save_normalizer, start_run
from emodarts_core.train.handdesigned import (CNNLSTM, CNNBiLSTMAtt, match_size, size_of,
                                              typical_searched_size)
from emodarts_core.train.runs import RunConfig, RunCost, RunDir, resolve_device

#: The baselines :func:`run_baseline` knows (``baseline --kind``).
KINDS = ("cnn_lstm", "random", "cnn_bilstm_att", "egemaps_svm")


# ---------------------------------------------------------------------------------------------
# Random search's winner is trained in full in this subdirectory of the random-search run.
FINAL_DIR = "final"


def run_cnn_lstm(cfg: RunConfig, progress: bool = True, data: FoldData | None = None) -> TrainResult:
    """Train and test the CNN-LSTM baseline with the profile's ``train`` settings."""
    device = resolve_device(cfg.device)
    announce = data is None
    data = data if data is not None else load_data(cfg, progress)   # bad data: no run dir
    run = start_run(cfg, data, announce)
    save_normalizer(run, data)
    seed_everything(cfg.seed)
    model = CNNLSTM(data.n_classes, data.input_shape, **cfg.options.get("cnn_lstm", {}))
    return fit(model, data, cfg.profile.train, run, device, cfg.seed, progress=progress,
               amp=cfg.options.get("amp"), desc=f"cnn_lstm {cfg.corpus} fold {cfg.fold}",
               extra_metrics={"corpus": cfg.corpus, "kind": "baseline", "baseline": "cnn_lstm"})


#: The CNN-BiLSTM-attention baseline's default tuning grid: every combination is trained on the
#: training speakers and scored on the validation speakers; the test speakers are not looked at.
TUNE_GRID: dict[str, tuple[Any, ...]] = {"blocks": (2, 3), "dropout": (0.1, 0.3),
                                         "lr": (0.01, 0.05)}
#: Where the tuning trainings of a tuned baseline live inside its run directory.
TUNING_DIR = "tuning"


def tuning_points(grid: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``grid`` (``blocks``, ``dropout``: the network; ``lr``: the
    training's learning rate), in a fixed order: the first key varies slowest."""
    unknown = sorted(set(grid) - set(TUNE_GRID))
    if unknown:
        raise ValueError(f"cnn_bilstm_att tuning: unknown setting(s) {unknown}; "
                         f"tunable: {sorted(TUNE_GRID)}")
    if any(len(values) == 0 for values in grid.values()):
        raise ValueError("cnn_bilstm_att tuning: every setting needs at least one value")
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def _size_target(cfg: RunConfig, data: FoldData) -> tuple[int, str]:
    """The parameter count the CNN-BiLSTM-attention is matched to, and the rule that gave it."""
    target = cfg.options.get("target_parameters")
    if target:
        return int(target), "options.target_parameters"
    return (typical_searched_size(cfg.profile, data.n_classes, data.input_shape),
            "mean size of the profile's networks for 5 uniformly drawn genotypes (seed 0)")


def _bilstm_config(cfg: RunConfig, data: FoldData, point: dict[str, Any],
                   size: tuple[int, str]) -> RunConfig:
    """``cfg`` for one CNN-BiLSTM-attention training: the network settings of ``point`` with the
    width matched to the target ``size`` (:func:`_size_target`), its learning rate in the
    profile; both recorded."""
    arch = dict(cfg.options.get("cnn_bilstm_att", {}))
    arch.pop("width", None)
    arch.update({k: v for k, v in point.items() if k in ("blocks", "dropout")})
    target, rule = size
    width = match_size(target, data.n_classes, data.input_shape, **arch)
    size = size_of(width, data.n_classes, data.input_shape, **arch)
    options = {k: v for k, v in cfg.options.items() if k != "tune"}
    options["cnn_bilstm_att"] = {**arch, "width": width}
    options["size_match"] = {"target_parameters": target, "rule": rule, "parameters": size}
    profile = cfg.profile
    if "lr" in point:
        profile = dataclasses.replace(profile, train=override(profile.train, lr=float(point["lr"])))
    return dataclasses.replace(cfg, options=options, profile=profile)


def _fit_bilstm(cfg: RunConfig, data: FoldData, progress: bool, announce: bool) -> TrainResult:
    device = resolve_device(cfg.device)
    run = start_run(cfg, data, announce)
    save_normalizer(run, data)
    seed_everything(cfg.seed)
    arch = cfg.options["cnn_bilstm_att"]
    model = CNNBiLSTMAtt(data.n_classes, data.input_shape, **arch)
    return fit(model, data, cfg.profile.train, run, device, cfg.seed, progress=progress,
               amp=cfg.options.get("amp"), desc=f"cnn_bilstm_att {cfg.corpus} fold {cfg.fold}",
               extra_metrics={"corpus": cfg.corpus, "kind": "baseline",
                              "baseline": "cnn_bilstm_att", "width": arch["width"],
                              "target_parameters": cfg.options["size_match"]["target_parameters"]})


def run_cnn_bilstm_att(cfg: RunConfig, progress: bool = True,
                       data: FoldData | None = None) -> TrainResult:
    """Train and test the size-matched CNN-BiLSTM with attention (see the module docstring).

    *Tuned on the validation speakers* (``options["tune"]``: a grid as :data:`TUNE_GRID`, the
    default; ``False``: the network's defaults): every grid point is trained in full in
    ``tuning/point_XX/`` on the training speakers, scored on the validation speakers by the
    validation UA of the epoch the profile's ``train.select`` rule would test, and the best
    point (ties: the earlier) is trained again as this run. ``tuning.json`` records every point.
    The width is matched to the target size for each point before its run directory is made and
    recorded in the run's options (``options["cnn_bilstm_att"]``, the target under
    ``options["size_match"]``), so :func:`emodarts_core.train.evaluate.build_model` rebuilds the
    same network for ``evaluate``.
    """

    announce = data is None
    data = data if data is not None else load_data(cfg, progress)   # bad data: no run dir
    tune = cfg.options.get("tune", TUNE_GRID)
    size = _size_target(cfg, data)          # once: it builds the profile's sample networks
    if not tune:
        return _fit_bilstm(_bilstm_config(cfg, data, {}, size), data, progress, announce)
    if cfg.profile.train.fit_valid:
        raise ValueError("cnn_bilstm_att: tuning scores the validation speakers, which "
                         "train.fit_valid trains on; set options tune=False or fit_valid=false")
    points = tuning_points(tune)
    scored = []
    for i, point in enumerate(points):
        sub = _bilstm_config(cfg, data, point, size)
        sub = dataclasses.replace(sub, out_dir=str(Path(cfg.out_dir) / TUNING_DIR / f"point_{i:02d}"))
        res = _fit_bilstm(sub, data, progress, False)
        history = RunDir(res.run_dir).history()["epochs"]
        rule = cfg.profile.train.select
        valid_ua = (history[-1]["valid_ua"] if rule == "last" else res.best_valid_ua)
        scored.append({"index": i, "point": point, "valid_ua": float(valid_ua),
                       "selection": rule, "width": sub.options["cnn_bilstm_att"]["width"],
                       "cost": RunDir(res.run_dir).cost().to_dict(), "run_dir": str(res.run_dir)})
    best = min(scored, key=lambda c: (-c["valid_ua"], c["index"]))
    chosen = _bilstm_config(cfg, data, best["point"], size)
    chosen = dataclasses.replace(chosen, options={**chosen.options, "tuned": best["point"]})
    res = _fit_bilstm(chosen, data, progress, announce)
    run = RunDir(res.run_dir)
    atomic_write_json(run.file("tuning.json"),
                      {"grid": {k: list(v) for k, v in tune.items()}, "best_index": best["index"],
                       "selection": f"validation UA of the {best['selection']} epoch",
                       "points": scored})
    return res


def brief_profile(profile: Profile, epochs: int) -> Profile:
    """``profile`` for random search's brief trainings: ``epochs`` epochs without early stopping,
    at the search space's width like the DARTS supernet (``train.init_channels`` widens only the
    winner's final training) and without the validation speakers (they choose the winner)."""
    return dataclasses.replace(
        profile, train=override(profile.train, epochs=epochs, patience=0,
                                init_channels=None, fit_valid=False))


def random_search_budget(options: dict[str, Any],
                         run_dir: str | Path = ".") -> tuple[str, float, RunCost | None]:
    """What stops random search's candidate draws: ``("k", k, None)`` for a fixed number, or
    ``(unit, limit, search_cost)`` with ``unit`` ``"seconds"`` or ``"steps"`` to spend what the
    search in ``options["match_search"]`` (a path, relative to ``run_dir`` when not absolute)
    spent (its :class:`~emodarts_core.train.runs.RunCost`)."""
    unit = options.get("budget", "k")
    if unit == "k":
        k = int(options.get("k", 8))
        if k < 1:
            raise ValueError(f"random search needs k >= 1 candidates, got {k}")
        return "k", float(k), None
    if unit not in ("seconds", "steps"):
        raise ValueError(f"random search's budget must be 'k', 'seconds' or 'steps', got {unit!r}")
    if not options.get("match_search"):
        raise ValueError(f"random search's budget {unit!r} needs options['match_search'], the "
                         "search run whose cost it matches")
    # normpath: the run's own directory need not exist yet; an absolute path stays as it is
    search = Path(os.path.normpath(Path(run_dir) / options["match_search"]))
    if not (search / RunDir.HISTORY).exists():
        raise ValueError(f"random search's budget: {search} holds no search history to match")
    cost = RunDir(search).cost()
    limit = cost.seconds if unit == "seconds" else cost.steps
    if not cost.epochs or not limit:
        raise ValueError(f"{search}: no finished search epoch with its {unit} "
                         f"recorded to match (rerun the search, or use budget 'k')")
    return unit, float(limit), cost


def run_random_search(cfg: RunConfig, progress: bool = True,
                      data: FoldData | None = None) -> TrainResult:
    """Random-search baseline; candidates and the final model live under ``cfg.out_dir``.

    Candidates are drawn one after the other from one seeded stream, so the first ``k`` are the
    same whatever the budget. The budget (:func:`random_search_budget`) is a fixed ``k``
    (``options["k"]``, default 8) or the cost of a search run (``options["budget"]`` =
    ``"seconds"`` or ``"steps"``, ``options["match_search"]`` = its directory): then candidates
    are drawn while the next one, at the mean cost of those so far, still fits (at least one, at
    most ``options["k_max"]``, default 64). A resumed run reads each finished candidate's cost
    from its ``history.json``, so it takes the same decisions.

    Layout: ``candidates/cand_XX/`` (one brief training run each, resumable),
    ``candidates.json`` (genotype, validation UA / WA, best epoch and cost of every candidate, the
    budget and what was spent), ``final/`` (the full training of the winner), and the winner's
    ``genotype.json`` and ``metrics.json`` copied to the top level.
    """

    unit, limit, search_cost = random_search_budget(cfg.options, cfg.out_dir)
    k_max = int(limit) if unit == "k" else int(cfg.options.get("k_max", 64))
    brief = cfg.options.get("brief_epochs")
    brief = int(brief) if brief else max(1, cfg.profile.train.epochs // 10)
    announce = data is None
    data = data if data is not None else load_data(cfg, progress)   # bad data: no run dir
    run = start_run(cfg, data, announce)
    gen = torch.Generator().manual_seed(int(cfg.seed) + 104729)

    brief_prof = brief_profile(cfg.profile, brief)
    candidates: list[dict[str, Any]] = []
    spent = {"seconds": 0.0, "steps": 0}
    while len(candidates) < k_max:
        if unit != "k" and candidates:
            mean = spent[unit] / len(candidates)
            if spent[unit] + mean > limit:
                break
        i = len(candidates)
        geno = sample_genotype(cfg.profile.space, gen)
        sub = dataclasses.replace(
            cfg, kind="train", profile=brief_prof,
            out_dir=str(Path(cfg.out_dir) / "candidates" / f"cand_{i:02d}"),
            options={k_: v for k_, v in cfg.options.items() if k_ in ("amp",)})
        res = run_train(sub, geno, progress=progress, data=data)
        cost = RunDir(res.run_dir).cost()
        spent["seconds"] += cost.seconds
        spent["steps"] += cost.steps or 0
        candidates.append({"index": i, "genotype": geno.to_dict(), "brief_epochs": brief,
                           "valid_ua": res.best_valid_ua, "best_epoch": res.best_epoch,
                           "cost": cost.to_dict(), "run_dir": str(res.run_dir)})
    best = min(candidates, key=lambda c: (-c["valid_ua"], c["index"]))
    budget = {"unit": unit, "limit": limit, "spent": spent,
              "search": search_cost.to_dict() if search_cost else None,
              "search_run": cfg.options.get("match_search")}
    atomic_write_json(run.file("candidates.json"),
                      {"k": len(candidates), "brief_epochs": brief, "budget": budget,
                       "selection": "best validation UA", "best_index": best["index"],
                       "candidates": candidates})
    final_cfg = dataclasses.replace(
        cfg, kind="train", out_dir=str(Path(cfg.out_dir) / FINAL_DIR),
        options={k_: v for k_, v in cfg.options.items() if k_ in ("amp",)})
    winner = Genotype.from_dict(best["genotype"])
    res = run_train(final_cfg, winner, progress=progress, data=data)
    run.write_json(RunDir.GENOTYPE, winner.to_dict())
    metrics = dict(res.metrics)
    metrics.update({"kind": "baseline", "baseline": "random", "k": len(candidates),
                    "budget": budget, "chosen_candidate": best["index"],
                    "final_run": str(res.run_dir)})
    run.write_json(RunDir.METRICS, metrics)
    return dataclasses.replace(res, run_dir=run.path, metrics=metrics)


def run_baseline(cfg: RunConfig, progress: bool = True, data: FoldData | None = None) -> TrainResult:
    """Dispatch on ``cfg.options["baseline"]``, one of :data:`KINDS`."""
    kind = cfg.options.get("baseline")
    if kind == "cnn_lstm":
        return run_cnn_lstm(cfg, progress, data)
    if kind == "random":
        return run_random_search(cfg, progress, data)
    if kind == "cnn_bilstm_att":
        return run_cnn_bilstm_att(cfg, progress, data)
    if kind == "egemaps_svm":
        return run_egemaps_svm(cfg, progress)
    raise ValueError(f"unknown baseline {kind!r}; choose from {', '.join(KINDS)}")
