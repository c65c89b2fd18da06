"""Final training of a network derived from a genotype, its evaluation, and exact resume.

:func:`fit` is the one training loop. The searched network (:func:`run_train`) and the
hand-designed CNN-LSTM baseline (:mod:`emodarts_core.train.baselines`) both go through it, so they share
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
import sys

from emodarts_core.common.seeding import seed_everything
from emodarts_core.config import final_space
from emodarts_core.data.datasets import FoldData, load_fold_data
from emodarts_core.nas.genotype import Genotype
from emodarts_core.nas.network import Network
from emodarts_core.train.engine import TrainResult, fit
from emodarts_core.train.runs import NORMALIZER, RunConfig, RunDir, resolve_device


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


