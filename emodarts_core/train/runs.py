"""Run directories: the unit every loop, notebook, plot and reproduction exchanges.

A run directory holds

- ``config.json``: the :class:`RunConfig` (kind, corpus, data root, protocol, fold, seed, the
  profile's name and its full dataclass, device, overrides and extra options);
- ``environment.json``: library, torch, Python, NumPy and librosa versions, the device, the git
  commit when there is one, and the start time (plus the times of any resumes);
- ``history.json``: one record per epoch (and, for searches, optionally per step);
- ``genotype.json`` (searches), ``metrics.json`` (trainings), ``best.pt`` (best weights);
- ``checkpoint.pt``: the latest full state for an exact resume;
- ``data_report.json``: the corpus files the data loading skipped or noted, with the reasons;
- ``.emodarts.lock``: while a command works in the directory, its lock
  (:mod:`emodarts_core.common.locks`).

Every file is written atomically (a temporary file in the same directory, then ``os.replace``), so
a run killed at any moment leaves either the old or the new version of a file, never half of one.
Checkpoints hold only tensors, numbers, strings, lists and dicts, so they load with
``torch.load(weights_only=True)``: nothing in them can run code when read.

Resuming never mixes runs: opening an existing directory with a *different* configuration is
refused with :class:`RunConfigMismatch`. A file that cannot be read (truncated, not JSON, a
pickle ``weights_only`` refuses) raises :class:`RunFileError` naming it and the way out
(:data:`RESTART_HINT`).
"""
from __future__ import annotations

import datetime as _dt
import json
import pickle
import platform
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emodarts_core import __version__
from emodarts_core.common.files import (RESTART_HINT, RunFileError, jsonable, atomic_torch_save,
                                        atomic_write_json, read_json)
from emodarts_core.config import Profile, from_dict, get_profile, to_dict
from emodarts_core.data.datasets import DataError
from emodarts_core.fast.branches import branch_threads

RUN_KINDS = ("search", "train", "baseline")
NORMALIZER = "normalizer.pt"          # the training side's normalisation (train.save_normalizer)
DATA_REPORT = "data_report.json"      # what the data loading skipped or noted

# Fields of RunConfig that may differ between an interrupted run and its resume.
_RESUME_FREE_FIELDS = ("out_dir", "cache_dir", "skip_bad")


class RunConfigMismatch(ValueError):
    """An existing run directory holds a different configuration than the one asked for."""


@dataclass
class RunConfig:
    """Everything that defines a run (and nothing that merely describes where it ran).

    ``profile`` is the full (possibly overridden) profile; ``overrides`` records the
    ``section.field=value`` strings that changed it, for the reader. ``options`` holds
    kind-specific extras that are part of the run's identity (the genotype of a training, the
    baseline kind, random-search settings, AMP choice), all JSON-ready. ``out_dir`` and
    ``cache_dir`` (the feature cache) do not change results and may differ on resume.
    """

    kind: str
    corpus: str
    data_root: str
    out_dir: str
    protocol: str | None = None
    fold: int = 0
    seed: int = 0
    profile: Profile = field(default_factory=lambda: get_profile("smoke"))
    device: str = "cpu"
    overrides: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = None
    skip_bad: bool = False           # skip bad corpus entries (recorded in data_report.json)

    def __post_init__(self) -> None:
        if self.kind not in RUN_KINDS:
            raise ValueError(f"RunConfig.kind must be one of {RUN_KINDS}, got {self.kind!r}")
        if self.fold < 0:
            raise ValueError(f"RunConfig.fold must be >= 0, got {self.fold}")
        self.overrides = tuple(self.overrides)

    @property
    def profile_name(self) -> str:
        return self.profile.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "corpus": self.corpus, "data_root": str(self.data_root),
            "out_dir": str(self.out_dir), "protocol": self.protocol, "fold": int(self.fold),
            "seed": int(self.seed), "profile_name": self.profile.name,
            "profile": to_dict(self.profile), "device": self.device,
            "overrides": list(self.overrides), "options": jsonable(self.options),
            "cache_dir": None if self.cache_dir is None else str(self.cache_dir),
            "skip_bad": bool(self.skip_bad),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        data = dict(data)
        data.pop("profile_name", None)
        profile = from_dict(Profile, data.pop("profile"))
        return cls(profile=profile, **data)

    def identity(self) -> dict[str, Any]:
        """The fields a resume must match (everything except the output location)."""
        d = self.to_dict()
        for k in _RESUME_FREE_FIELDS:
            d.pop(k, None)
        return json.loads(json.dumps(d))


# ---------------------------------------------------------------------------------------------
# Environment and RNG state
def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
        return str(getattr(mod, "__version__", "unknown"))
    except Exception:  # an optional library that fails to import is simply absent
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def device_name(device: str | torch.device) -> str:
    """A readable name for a device (the GPU model on CUDA, the processor on CPU)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""

    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataError("device 'cuda' was asked for but no CUDA GPU is available")
    return dev


def environment_info(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Versions, device, git commit and start time of the current process."""

    return {
        "emodarts_core": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "librosa": _version("librosa"),
        "torchaudio": _version("torchaudio"),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": device_name(resolve_device(device)),
        "torch_threads": torch.get_num_threads(),
        "branch_threads": branch_threads(),
        "cuda": torch.version.cuda,
        "git_commit": _git_commit(),
        "start_time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random state a loop depends on, as tensors (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "python_version": int(py_state[0]),
        "python_state": torch.tensor(py_state[1], dtype=torch.int64),
        "python_gauss": py_state[2],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    np.random.set_state((
        "MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(state["numpy_pos"]),
        int(state["numpy_has_gauss"]), float(state["numpy_gauss"]),
    ))
    random.setstate((int(state["python_version"]),
                     tuple(int(v) for v in state["python_state"].tolist()),
                     state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunCost:
    """Compute a run spent: wall seconds of its epochs and its optimiser updates.

    ``steps`` counts the batches the weights or the alphas were stepped on: a search's alpha step
    over an accumulated batch counts once per batch it averages; the extra passes of a
    second-order alpha step are not counted. ``steps`` is ``None`` for a run recorded before
    epochs counted their steps.
    """

    seconds: float
    steps: int | None
    epochs: int

    @classmethod
    def of_history(cls, history: dict[str, list]) -> "RunCost":
        epochs = history.get("epochs", [])
        seconds = float(sum(float(e.get("seconds", 0.0)) for e in epochs))
        known = all("steps" in e for e in epochs)
        steps = (sum(int(e["steps"]) + int(e.get("alpha_batches", 0)) for e in epochs)
                 if known else None)
        return cls(seconds=seconds, steps=steps, epochs=len(epochs))

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "steps": self.steps, "epochs": self.epochs}


class RunDir:
    """One run directory on disk.

    Use :meth:`create` to start or resume a run (it writes ``config.json`` and
    ``environment.json`` and refuses a different existing config) and :meth:`open` to read a
    finished or running one.
    """

    CONFIG = "config.json"
    ENVIRONMENT = "environment.json"
    HISTORY = "history.json"
    GENOTYPE = "genotype.json"
    METRICS = "metrics.json"
    CHECKPOINT = "checkpoint.pt"
    BEST = "best.pt"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    # -- creation ------------------------------------------------------------------------------
    @classmethod
    def create(cls, cfg: RunConfig, path: str | Path | None = None) -> "RunDir":
        """Start a run in ``path`` (default ``cfg.out_dir``), or reopen it to resume.

        A directory that already holds a ``config.json`` must hold the same configuration
        (apart from ``out_dir``); otherwise :class:`RunConfigMismatch` names the differing fields.
        Reopening an unfinished run (no ``metrics.json`` yet) adds the time to
        ``environment.json``'s ``resumed`` list; reopening a finished one (a batch run again)
        leaves the file as it is.
        """
        run = cls(path if path is not None else cfg.out_dir)
        run.path.mkdir(parents=True, exist_ok=True)
        cfg_file = run.file(cls.CONFIG)
        if cfg_file.exists():
            old = run.config
            diff = _diff(old.identity(), cfg.identity())
            if diff:
                raise RunConfigMismatch(
                    f"{run.path} already holds a different run ({'; '.join(diff[:5])}); "
                    f"choose another output directory or delete it"
                )
            if not run.file(cls.METRICS).exists():      # a finished run reopened resumes nothing
                env = read_json(run.file(cls.ENVIRONMENT)) if run.file(cls.ENVIRONMENT).exists() \
                    else environment_info(cfg.device)
                env.setdefault("resumed", []).append(
                    _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
                atomic_write_json(run.file(cls.ENVIRONMENT), env)
        else:
            atomic_write_json(run.file(cls.ENVIRONMENT), environment_info(cfg.device))
            atomic_write_json(cfg_file, cfg.to_dict())
        return run

    def has_progress(self) -> bool:
        """True once the run holds anything worth resuming or reading: a checkpoint, best
        weights, results, or runs of its own (random search's candidates)."""
        if any(self.file(n).exists() for n in (self.CHECKPOINT, self.BEST, self.METRICS)):
            return True
        return any((d / self.CONFIG).exists() for d in self.path.iterdir() if d.is_dir())

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """An existing run directory (it must hold ``config.json``)."""
        run = cls(path)
        if not run.file(cls.CONFIG).exists():
            raise FileNotFoundError(f"{run.path} is not a run directory (no {cls.CONFIG})")
        return run

    # -- JSON files ----------------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        data = read_json(self.file(self.CONFIG))
        try:
            return RunConfig.from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RunFileError(f"{self.file(self.CONFIG)} is not a run configuration this "
                               f"version can read ({type(e).__name__}: {e}); {RESTART_HINT}"
                               ) from None

    def write_data_report(self, report: Any, n_files: int) -> str:
        """Write what the data loading skipped or noted (``report``, a
        :class:`~emodarts_core.data.corpora.record.LoadReport`) to ``data_report.json``; return the
        one-line summary (empty when there is nothing to say)."""
        self.write_json(DATA_REPORT, report.to_dict(n_files))
        line = report.line(n_files)
        return f"{line}; the list is in {self.file(DATA_REPORT)}" if line else ""

    def write_json(self, name: str, obj: Any) -> Path:
        atomic_write_json(self.file(name), obj)
        return self.file(name)

    def read_json(self, name: str) -> Any:
        return read_json(self.file(name))

    def history(self) -> dict[str, list]:
        """``{"epochs": [...], "steps": [...]}`` (empty lists for a run that has not started)."""
        if not self.file(self.HISTORY).exists():
            return {"epochs": [], "steps": []}
        hist = self.read_json(self.HISTORY)
        hist.setdefault("epochs", [])
        hist.setdefault("steps", [])
        return hist

    def write_history(self, history: dict[str, list]) -> None:
        atomic_write_json(self.file(self.HISTORY), history)

    def cost(self) -> "RunCost":
        """The compute this run has spent so far, summed over its ``history.json`` epochs."""
        return RunCost.of_history(self.history())

    def append_epoch(self, record: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> None:
        """Append one epoch record (and that epoch's step records) to ``history.json``."""
        hist = self.history()
        hist["epochs"].append(record)
        if steps:
            hist["steps"].extend(steps)
        self.write_history(hist)

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any], name: str = CHECKPOINT) -> None:
        atomic_torch_save(state, self.file(name))

    def load_checkpoint(self, name: str = CHECKPOINT, map_location: str | torch.device = "cpu"
                        ) -> dict[str, Any] | None:
        """The saved state, or ``None`` when there is none; always ``weights_only=True``."""
        path = self.file(name)
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            raise RunFileError(f"{path} was refused by torch.load(weights_only=True): it holds "
                               f"objects that could run code when loaded, so emodarts did not "
                               f"write it and will not load it; {RESTART_HINT}") from None
        except Exception as e:  # truncated, empty, not a torch file: torch raises several types
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            raise RunFileError(f"{path} is damaged ({first}); {RESTART_HINT}") from None
        if not isinstance(state, dict):
            raise RunFileError(f"{path} holds a {type(state).__name__}, not a checkpoint "
                               f"dictionary; {RESTART_HINT}")
        return state

    def damaged(self, name: str, error: BaseException) -> RunFileError:
        """The error for a checkpoint that loaded but lacks what the loop needs."""
        return RunFileError(f"{self.file(name)} does not fit this run ({type(error).__name__}: "
                            f"{error}); {RESTART_HINT}")


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Human-readable differences between two JSON-like values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in a or k not in b:
                out.append(f"{key}: {a.get(k, '<absent>')!r} vs {b.get(k, '<absent>')!r}")
            else:
                out.extend(_diff(a[k], b[k], key))
        return out
    return [] if a == b else [f"{prefix}: {a!r} (existing) vs {b!r} (requested)"]
