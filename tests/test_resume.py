"""Exact resume through the command line: SIGKILL a search (mid-epoch) and a training after their
first checkpoint, rerun the same command, and compare with uninterrupted runs of the same seed.

The killed runs are real subprocesses (``python -m emodarts_core``); the uninterrupted reference
runs and the reruns call the same entry point (:func:`emodarts_core.cli.main`) in this process,
which saves the start-up of four more interpreters on a busy machine. Both use one torch thread.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from emodarts_core.cli import main
from emodarts_core.data.corpora.generated import generate_corpus

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}




@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    generate_corpus(root / "data", n_speakers=4, per_class=2, seed=2)
    return root


def cli(cmd: str, data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "emodarts_core", cmd, "--corpus", "generated",
            "--data-root", str(data / "data"), "--cache-dir", str(data / "cache"),
            "--profile", "smoke", "--fold", "0", "--seed", "7", "--device", "cpu",
            "--no-progress", "--out", str(out), "--set", "space.seq_ops=lstm_att", *extra]


def run_to_end(argv: list[str]) -> None:
    """The same command, through the CLI entry point, in this process."""
    assert argv[1:3] == ["-m", "emodarts_core"]
    assert main(argv[3:]) == 0


def run_and_kill(argv: list[str], out: Path) -> dict:
    """Start ``argv``, SIGKILL it as soon as ``out/checkpoint.pt`` exists; return that state."""
    proc = subprocess.Popen(argv, env=ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    ckpt = out / "checkpoint.pt"
    deadline = time.time() + 300
    try:
        while not ckpt.exists():
            assert proc.poll() is None, f"finished before its first checkpoint: {proc.stderr.read()!r}"
            assert time.time() < deadline, "no checkpoint within 300 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return torch.load(ckpt, weights_only=True)["state"]


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def without_times(history: dict) -> dict:
    return {"epochs": [{k: v for k, v in e.items() if k != "seconds"} for e in history["epochs"]],
            "steps": history["steps"]}


def test_killed_search_and_training_resume_exactly(data, tmp_path):
    # -- search: 2 epochs x 2 steps (8 w-utterances, batch 4), a checkpoint after every step
    extra = ["--set", "search.batch_size=4", "--checkpoint-every", "1"]
    ref, cut = tmp_path / "search_ref", tmp_path / "search_cut"
    run_to_end(cli("search", data, ref, *extra))
    state = run_and_kill(cli("search", data, cut, *extra), cut)
    assert state["epoch"] < 2                          # killed before the end
    assert not (cut / "genotype.json").exists()
    run_to_end(cli("search", data, cut, *extra))
    assert read(cut / "genotype.json") == read(ref / "genotype.json")
    assert read(cut / "metrics.json") == read(ref / "metrics.json")
    assert without_times(read(cut / "history.json")) == without_times(read(ref / "history.json"))
    assert len(read(cut / "environment.json")["resumed"]) == 1

    # -- training of the searched genotype: 3 epochs, killed after the first; with SpecAugment
    # masks, whose draws come from the RNG state the checkpoint keeps
    extra = ["--genotype", str(ref), "--set", "train.epochs=3", "--set", "train.freq_mask=4",
             "--set", "train.time_mask=3"]
    ref_t, cut_t = tmp_path / "train_ref", tmp_path / "train_cut"
    run_to_end(cli("train", data, ref_t, *extra))
    state = run_and_kill(cli("train", data, cut_t, *extra), cut_t)
    assert state["epoch"] < 3
    run_to_end(cli("train", data, cut_t, *extra))
    assert read(cut_t / "metrics.json") == read(ref_t / "metrics.json")
    assert without_times(read(cut_t / "history.json")) == without_times(read(ref_t / "history.json"))


def test_resume_refuses_a_different_config(data, tmp_path, capsys):
    out = tmp_path / "s"
    first = ["--set", "search.epochs=1", "--set", "search.order=first"]
    run_to_end(cli("search", data, out, *first))
    assert main(cli("search", data, out, *first, "--seed", "8")[3:]) == 2
    err = capsys.readouterr().err
    assert "different run" in err and "seed" in err and "Traceback" not in err
