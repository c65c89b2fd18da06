"""Run directories: config round trip, atomic writes, history, checkpoints, RNG state, refusal."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from emodarts_core.common.files import atomic_torch_save, atomic_write_json, read_json
from emodarts_core.config import get_profile, override
from emodarts_core.train.runs import (RunConfig, RunConfigMismatch, RunDir, environment_info,
                                      rng_state, set_rng_state)


def _cfg(tmp_path: Path, **kw) -> RunConfig:
    base = dict(kind="search", corpus="generated", data_root=str(tmp_path / "data"),
                out_dir=str(tmp_path / "run"), seed=3, profile=get_profile("smoke"))
    base.update(kw)
    return RunConfig(**base)


def test_run_config_json_round_trip(tmp_path):
    cfg = _cfg(tmp_path, options={"genotype": {"a": (1, 2)}}, overrides=("search.epochs=1",))
    d = json.loads(json.dumps(cfg.to_dict()))
    back = RunConfig.from_dict(d)
    assert back.profile == cfg.profile
    assert back.to_dict() == cfg.to_dict()
    assert d["profile_name"] == "smoke" and d["profile"]["search"]["epochs"] == 2


def test_run_config_rejects_bad_kind(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        _cfg(tmp_path, kind="fly")


def test_atomic_write_json_leaves_no_temp_and_refuses_nan(tmp_path):
    p = tmp_path / "a" / "x.json"
    atomic_write_json(p, {"t": (1, 2), "p": Path("/x")})
    assert read_json(p) == {"t": [1, 2], "p": "/x"}
    with pytest.raises(ValueError):
        atomic_write_json(p, {"bad": float("nan")})
    assert read_json(p) == {"t": [1, 2], "p": "/x"}          # the old file survives a failed write
    assert sorted(os.listdir(p.parent)) == ["x.json"]


def test_atomic_torch_save_loads_weights_only(tmp_path):
    p = tmp_path / "c.pt"
    atomic_torch_save({"w": torch.arange(3), "s": "x", "l": [1.5, {"k": 2}]}, p)
    back = torch.load(p, weights_only=True)
    assert torch.equal(back["w"], torch.arange(3)) and back["l"][1]["k"] == 2
    assert os.listdir(tmp_path) == ["c.pt"]


def test_environment_info_fields():
    env = environment_info("cpu")
    for key in ("emodarts_core", "torch", "python", "numpy", "librosa", "device_name", "start_time"):
        assert key in env
    assert env["torch"] == torch.__version__
    assert env["torch_threads"] == torch.get_num_threads()
    assert env["branch_threads"] == 1


def test_environment_info_resolves_auto_device():
    """The CLI's and notebooks' default device "auto" is recorded with the device it resolves to."""
    env = environment_info("auto")
    assert env["device"] == "auto"
    assert env["device_name"] == environment_info(
        "cuda" if torch.cuda.is_available() else "cpu")["device_name"]


def test_rundir_create_history_and_checkpoint(tmp_path):
    cfg = _cfg(tmp_path)
    run = RunDir.create(cfg)
    assert (run.path / "config.json").exists() and (run.path / "environment.json").exists()
    assert run.config.to_dict() == cfg.to_dict()
    assert run.history() == {"epochs": [], "steps": []}
    run.append_epoch({"epoch": 0, "valid_ua": 0.5}, steps=[{"step": 1, "epoch": 0}])
    run.append_epoch({"epoch": 1, "valid_ua": 0.6})
    h = run.history()
    assert [e["epoch"] for e in h["epochs"]] == [0, 1] and len(h["steps"]) == 1
    assert run.load_checkpoint() is None
    run.save_checkpoint({"epoch": 2, "w": torch.ones(2)})
    assert run.load_checkpoint()["epoch"] == 2
    # reopening with the same config (another out_dir spelling) resumes and records it
    again = RunDir.create(_cfg(tmp_path, out_dir=str(run.path) + "/"), path=run.path)
    assert len(again.read_json("environment.json")["resumed"]) == 1
    # once finished, reopening it (a batch run again) resumes nothing and records nothing
    again.write_json("metrics.json", {"ua": 0.5})
    env = again.read_json("environment.json")
    RunDir.create(cfg, path=run.path)
    assert again.read_json("environment.json") == env


def test_rundir_refuses_a_different_config(tmp_path):
    RunDir.create(_cfg(tmp_path))
    with pytest.raises(RunConfigMismatch, match="seed"):
        RunDir.create(_cfg(tmp_path, seed=4))
    prof = get_profile("smoke")
    other = _cfg(tmp_path, profile=type(prof)(name="smoke", features=prof.features, space=prof.space,
                                              search=override(prof.search, epochs=9), train=prof.train))
    with pytest.raises(RunConfigMismatch, match="profile.search.epochs"):
        RunDir.create(other)


def test_open_needs_a_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        RunDir.open(tmp_path)


def test_rng_state_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    torch.randn(3), np.random.rand(), random.random(), torch.rand(2, generator=gen)
    atomic_torch_save(rng_state(gen), tmp_path / "r.pt")
    expect = (torch.randn(4), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    torch.manual_seed(99), np.random.seed(99), random.seed(99), gen.manual_seed(99)
    set_rng_state(torch.load(tmp_path / "r.pt", weights_only=True), gen)
    got = (torch.randn(4), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    assert torch.equal(expect[0], got[0]) and np.array_equal(expect[1], got[1])
    assert expect[2] == got[2] and torch.equal(expect[3], got[3])
