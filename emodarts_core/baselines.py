"""Baselines the searched architecture is compared with.

1. **CNN-LSTM** (:class:`CNNLSTM`): the paper's hand-designed CNN-LSTM in the layout of its
   public code (a single small conv, 2 x 2 max-pool, a bidirectional LSTM with 128 units, FC 32,
   dropout 0.3, a linear output), with two corrections. *Time stays time*: the conv feature map
   ``(B, C, F', T')`` becomes a sequence of ``T'`` frames of ``C * F'`` features (the public code
   flattens the whole map into one vector per utterance and its LSTM then runs across the batch).
   *Same training as the searched model*: it goes through :func:`emodarts_core.train.fit`, so it
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
   Yu et al. 2020).

3. **CNN-BiLSTM with attention** (:func:`run_cnn_bilstm_att`,
   :class:`emodarts_core.handdesigned.CNNBiLSTMAtt`): a strong hand-designed MFCC network whose
   width is matched to the size of the searched networks
   (:func:`emodarts_core.handdesigned.match_size`; the target is ``options["target_parameters"]`` or, by default, the mean size of
   the profile's networks for a few uniformly drawn genotypes), trained through the same
   :func:`emodarts_core.train.fit` loop, so its epoch is chosen on the validation speakers only.
4. **eGeMAPS + linear SVM** (:func:`emodarts_core.egemaps.run_egemaps_svm`): openSMILE's
   eGeMAPS functionals per utterance and a class-balanced linear SVM whose ``C`` is chosen on the
   validation speakers: the classical baseline users try first.

All are run by :func:`run_baseline`, which ``python -m emodarts_core baseline --kind ...`` calls.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from .config import SearchSpaceConfig, override
from .datasets import FoldData
from .genotype import CellGenotype, Genotype
from .runs import RunConfig, RunDir, atomic_write_json
from .seeding import seed_everything
from .supernet import check_input_shape
from .train import TrainResult, fit, load_data, resolve_device, save_normalizer, start_run


class CNNLSTM(nn.Module):
    """Hand-designed CNN-LSTM over MFCC images, with time kept as time.

    Layout: ``Conv2d(1, conv_channels, kernel 2, stride 2, padding 2)`` -> ReLU -> ``MaxPool2d(2)``
    (ceil mode, so tiny inputs keep a frame) -> per frame: the ``conv_channels * F'`` values ->
    ``LSTM(hidden, bidirectional)`` -> mean over frames -> ``Linear(2 * hidden, fc)`` -> ReLU ->
    ``Dropout(dropout)`` -> ``Linear(fc, n_classes)`` (logits). With ``head_norm`` a
    ``BatchNorm1d`` normalises the pooled vector before the first linear layer: the same help the
    ``cpu`` profile's searched networks get (``SearchSpaceConfig.head_norm``), not part of the
    paper's layout, so it is off by default (``baseline --kind cnn_lstm --head-norm``).

    Args:
        n_classes: number of emotion classes.
        input_shape: ``(n_mfcc, n_frames)``.
        conv_channels: conv output channels (the public code uses 1).
        hidden: LSTM units per direction (public: 128).
        fc: width of the hidden fully connected layer (public: 32).
        dropout: dropout before the output layer (public: 0.3).
        head_norm: a ``BatchNorm1d`` on the pooled vector (not in the paper's layout).
    """

    def __init__(self, n_classes: int, input_shape: tuple[int, int], conv_channels: int = 1,
                 hidden: int = 128, fc: int = 32, dropout: float = 0.3,
                 head_norm: bool = False) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"CNNLSTM: n_classes must be >= 1, got {n_classes}")
        self.input_shape = check_input_shape(tuple(int(v) for v in input_shape), "CNNLSTM")
        n_mfcc, n_frames = self.input_shape
        self.drop_path_prob = 0.0                 # the training loop sets it; unused here
        self.conv = nn.Sequential(
            nn.Conv2d(1, conv_channels, kernel_size=2, stride=2, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        with torch.no_grad():
            _, c, f, _ = self.conv(torch.zeros(1, 1, n_mfcc, n_frames)).shape
        self.lstm = nn.LSTM(c * f, hidden, batch_first=True, bidirectional=True)
        self.head_norm = nn.BatchNorm1d(2 * hidden) if head_norm else nn.Identity()
        self.head = nn.Sequential(nn.Linear(2 * hidden, fc), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(fc, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for ``x`` of shape ``(B, 1, n_mfcc, n_frames)``."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"CNNLSTM: expected input (B, 1, n_mfcc, n_frames), got {tuple(x.shape)}")
        h = self.conv(x)                                   # (B, C, F', T')
        b, c, f, t = h.shape
        seq = h.permute(0, 3, 1, 2).reshape(b, t, c * f)   # (B, T', C * F'): one step per frame
        out, _ = self.lstm(seq)
        return self.head(self.head_norm(out.mean(dim=1)))

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """``(logits, None)``: no auxiliary head."""
        return self.forward(x), None


#: The baselines :func:`run_baseline` knows (``baseline --kind``).
KINDS = ("cnn_lstm", "random", "cnn_bilstm_att", "egemaps_svm")


# ---------------------------------------------------------------------------------------------
# Random search's winner is trained in full in this subdirectory of the random-search run.
FINAL_DIR = "final"


def sample_cell(primitives: Sequence[str], n_nodes: int, generator: torch.Generator) -> CellGenotype:
    """One cell drawn uniformly: each node gets 2 distinct earlier states, each with an op drawn
    uniformly from ``primitives`` without ``none``."""
    ops = [p for p in primitives if p != "none"]
    if not ops:
        raise ValueError("sample_cell: no operation other than 'none' to sample")
    nodes = []
    for j in range(n_nodes):
        n_inputs = j + 2
        inputs = sorted(torch.randperm(n_inputs, generator=generator)[:2].tolist())
        picks = torch.randint(len(ops), (len(inputs),), generator=generator).tolist()
        nodes.append(tuple((ops[k], int(src)) for k, src in zip(picks, inputs)))
    return CellGenotype(nodes=tuple(nodes), concat=tuple(range(2, 2 + n_nodes)))


def sample_genotype(space: SearchSpaceConfig, generator: torch.Generator) -> Genotype:
    """A genotype drawn uniformly from ``space`` (see :func:`sample_cell`)."""
    return Genotype(
        normal=sample_cell(space.cnn_ops, space.cnn_nodes, generator),
        reduce=sample_cell(space.cnn_ops, space.cnn_nodes, generator),
        seq=sample_cell(space.seq_primitives, space.seq_nodes, generator),
    )


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


def run_cnn_bilstm_att(cfg: RunConfig, progress: bool = True,
                       data: FoldData | None = None) -> TrainResult:
    """Train and test the size-matched CNN-BiLSTM with attention (see the module docstring).

    The width is chosen before the run directory is made and recorded in the run's options
    (``options["cnn_bilstm_att"]["width"]``, with the target under ``options["size_match"]``),
    so :func:`emodarts_core.train.build_model` rebuilds the same network for ``evaluate``.
    """
    from .handdesigned import CNNBiLSTMAtt, match_size, size_of, typical_searched_size

    device = resolve_device(cfg.device)
    announce = data is None
    data = data if data is not None else load_data(cfg, progress)   # bad data: no run dir
    arch = dict(cfg.options.get("cnn_bilstm_att", {}))
    arch.pop("width", None)
    target = cfg.options.get("target_parameters")
    rule = ("options.target_parameters" if target else
            "mean size of the profile's networks for 5 uniformly drawn genotypes (seed 0)")
    target = int(target) if target else typical_searched_size(cfg.profile, data.n_classes,
                                                              data.input_shape)
    width = match_size(target, data.n_classes, data.input_shape, **arch)
    options = dict(cfg.options)
    options["cnn_bilstm_att"] = {**arch, "width": width}
    options["size_match"] = {"target_parameters": target, "rule": rule,
                             "parameters": size_of(width, data.n_classes, data.input_shape,
                                                   **arch)}
    cfg = dataclasses.replace(cfg, options=options)
    run = start_run(cfg, data, announce)
    save_normalizer(run, data)
    seed_everything(cfg.seed)
    model = CNNBiLSTMAtt(data.n_classes, data.input_shape, **options["cnn_bilstm_att"])
    return fit(model, data, cfg.profile.train, run, device, cfg.seed, progress=progress,
               amp=cfg.options.get("amp"), desc=f"cnn_bilstm_att {cfg.corpus} fold {cfg.fold}",
               extra_metrics={"corpus": cfg.corpus, "kind": "baseline",
                              "baseline": "cnn_bilstm_att", "width": width,
                              "target_parameters": target})


def run_random_search(cfg: RunConfig, progress: bool = True,
                      data: FoldData | None = None) -> TrainResult:
    """Random-search baseline; candidates and the final model live under ``cfg.out_dir``.

    Layout: ``candidates/cand_XX/`` (one brief training run each, resumable),
    ``candidates.json`` (genotype, validation UA / WA and best epoch of every candidate),
    ``final/`` (the full training of the winner), and the winner's ``genotype.json`` and
    ``metrics.json`` copied to the top level.
    """
    from .train import run_train

    k = int(cfg.options.get("k", 8))
    brief = cfg.options.get("brief_epochs")
    brief = int(brief) if brief else max(1, cfg.profile.train.epochs // 10)
    if k < 1:
        raise ValueError(f"random search needs k >= 1 candidates, got {k}")
    announce = data is None
    data = data if data is not None else load_data(cfg, progress)   # bad data: no run dir
    run = start_run(cfg, data, announce)
    gen = torch.Generator().manual_seed(int(cfg.seed) + 104729)
    genotypes = [sample_genotype(cfg.profile.space, gen) for _ in range(k)]

    # the brief trainings are random search's search: at the search space's width, like the
    # DARTS supernet; only the winner's final training takes ``train.init_channels``
    brief_profile = dataclasses.replace(
        cfg.profile, train=override(cfg.profile.train, epochs=brief, patience=0,
                                    init_channels=None, fit_valid=False))
    candidates: list[dict[str, Any]] = []
    for i, geno in enumerate(genotypes):
        sub = dataclasses.replace(
            cfg, kind="train", profile=brief_profile,
            out_dir=str(Path(cfg.out_dir) / "candidates" / f"cand_{i:02d}"),
            options={k_: v for k_, v in cfg.options.items() if k_ in ("amp",)})
        res = run_train(sub, geno, progress=progress, data=data)
        candidates.append({"index": i, "genotype": geno.to_dict(), "brief_epochs": brief,
                           "valid_ua": res.best_valid_ua, "best_epoch": res.best_epoch,
                           "run_dir": str(res.run_dir)})
    best = min(candidates, key=lambda c: (-c["valid_ua"], c["index"]))
    atomic_write_json(run.file("candidates.json"),
                      {"k": k, "brief_epochs": brief, "selection": "best validation UA",
                       "best_index": best["index"], "candidates": candidates})
    final_cfg = dataclasses.replace(
        cfg, kind="train", out_dir=str(Path(cfg.out_dir) / FINAL_DIR),
        options={k_: v for k_, v in cfg.options.items() if k_ in ("amp",)})
    winner = Genotype.from_dict(best["genotype"])
    res = run_train(final_cfg, winner, progress=progress, data=data)
    run.write_json(RunDir.GENOTYPE, winner.to_dict())
    metrics = dict(res.metrics)
    metrics.update({"kind": "baseline", "baseline": "random", "k": k,
                    "chosen_candidate": best["index"], "final_run": str(res.run_dir)})
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
        from .egemaps import run_egemaps_svm

        return run_egemaps_svm(cfg, progress)
    raise ValueError(f"unknown baseline {kind!r}; choose from {', '.join(KINDS)}")
