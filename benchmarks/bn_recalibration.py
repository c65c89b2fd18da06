"""Evaluation-mode accuracy of a run's weights with the BatchNorm statistics kept in training
against the same weights with statistics re-estimated with dropout off.

    python benchmarks/bn_recalibration.py RUN_DIR [RUN_DIR ...]

For a search run: the supernet of its last checkpoint on the alpha split (the search's own
validation data), beside batch-statistics evaluation and a re-estimation with dropout left on.
For a training run: the network of its last checkpoint on the fold's training, validation and
test speakers. Reads the corpus the run was made from (its config.json). Prints a table.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emodarts_core.data.datasets import split_search  # noqa: E402
from emodarts_core.nas.supernet import SuperNet  # noqa: E402
from emodarts_core.train.engine import predict, recalibrate_batchnorm  # noqa: E402
from emodarts_core.train.evaluate import build_model
from emodarts_core.train.fit import load_data
from emodarts_core.train.metrics import ua  # noqa: E402
from emodarts_core.train.runs import RunDir  # noqa: E402

CPU = torch.device("cpu")


def score(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n: int) -> float:
    return 100 * ua(y.numpy(), predict(model, x, 16, CPU).argmax(1).numpy(), n)


def batch_stats_score(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, n: int) -> float:
    """UA with every BatchNorm normalising by the statistics of the whole split at once."""
    model.eval()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.train()
    with torch.no_grad():
        pred = model(x).argmax(1)
    return 100 * ua(y.numpy(), pred.numpy(), n)


def dropout_on_recalibration(model: torch.nn.Module, x: torch.Tensor) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), 16):
            model(x[i:i + 16])
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1


def main() -> None:
    print("| run | kind | epochs | data | kept statistics | re-estimated, dropout off "
          "| re-estimated, dropout on | batch statistics |")
    print("|---|---|---|---|---|---|---|---|")
    for path in sys.argv[1:]:
        run = RunDir.open(path)
        cfg = run.config
        data = load_data(cfg, progress=False)
        n = data.n_classes
        epochs = len(run.history()["epochs"])
        state = run.load_checkpoint()
        if cfg.kind == "search":
            s = cfg.profile.search
            split = cfg.seed if s.split_seed is None else s.split_seed
            x_w, _, x_a, y_a = split_search(data.x_train, data.y_train, s.weight_fraction, split)
            model = SuperNet(cfg.profile.space, n, data.input_shape, relaxation=s.relaxation)
            sets, fit_x = {"alpha split": (x_a, y_a)}, x_w
            weights = state["net"]
        else:
            model = build_model(run, n, data.input_shape)
            sets = {"train": (data.x_train, data.y_train), "valid": (data.x_valid, data.y_valid),
                    "test": (data.x_test, data.y_test)}
            fit_x, weights = data.x_train, state["model"]
        for name, (x, y) in sets.items():
            model.load_state_dict(weights)
            kept = score(model, x, y, n)
            batch = batch_stats_score(model, x, y, n)
            dropout_on_recalibration(model, fit_x)
            noisy = score(model, x, y, n)
            recalibrate_batchnorm(model, fit_x, 16, CPU)
            clean = score(model, x, y, n)
            print(f"| {Path(path).name} | {cfg.kind} | {epochs} | {name} | {kept:.1f} | {clean:.1f} "
                  f"| {noisy:.1f} | {batch:.1f} |", flush=True)


if __name__ == "__main__":
    main()
