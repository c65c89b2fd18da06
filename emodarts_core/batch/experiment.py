"""One experiment, fold by fold: search, then final training of the derived network, then the
baselines, each in its own run directory, resumable at every step.

This is the driver behind the experiments chapter (``notebooks/05_experiments.ipynb``) and the
job notebook of :mod:`emodarts_core.batch.reproduce`'s grid jobs (``batch/job.ipynb``). For each fold it

1. loads the fold once (features from the cache, normalisation fitted on the training side);
2. runs the DARTS search (:func:`emodarts_core.search.loop.run_search`) in ``<fold dir>/search``;
3. trains the network of the search's genotype (:func:`emodarts_core.train.fit.run_train`) in
   ``<fold dir>/train`` (config kind ``"train"``);
4. trains each baseline (:func:`emodarts_core.train.baselines.run_baseline`) in
   ``<fold dir>/baseline_<name>`` (config kind ``"baseline"``, ``options["baseline"] = name``).

The fold directory is ``<out_dir>/<corpus>/fold<k>/seed<s>``, so :func:`emodarts_core.results.collect.collect`
finds every result below ``out_dir``. Every step writes checkpoints, and a step whose run
directory already holds a finished run only re-reads it: calling :func:`run_fold` again after a
dropped Colab session (or a killed job) continues where it stopped and ends with the same numbers.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from emodarts_core.config import Profile, apply_overrides, get_profile
from emodarts_core.data.datasets import FoldData
from emodarts_core.search.loop import run_search
# BASELINES: the baselines run_fold knows (the kinds baselines.run_baseline runs)
from emodarts_core.train.baselines import KINDS as BASELINES
from emodarts_core.train.baselines import run_baseline
from emodarts_core.train.fit import load_data, run_train
from emodarts_core.train.runs import RunConfig, RunDir

if TYPE_CHECKING:
    from emodarts_core.search.loop import SearchResult

__all__ = ["FoldRuns", "fold_dir", "parse_folds", "make_profile", "run_fold", "run_experiment",
           "is_finished", "search_grid", "BASELINES"]


@dataclass
class FoldRuns:
    """The run directories (and headline numbers) of one fold of one experiment."""

    corpus: str
    fold: int
    seed: int
    fold_name: str
    search_dir: Path
    train_dir: Path
    baseline_dirs: dict[str, Path] = field(default_factory=dict)
    genotype: dict = field(default_factory=dict)
    test: dict[str, dict[str, float]] = field(default_factory=dict)   # method -> {"wa", "ua"}

    def run_dirs(self) -> list[Path]:
        return [self.search_dir, self.train_dir, *self.baseline_dirs.values()]


def fold_dir(out_dir: str | Path, corpus: str, fold: int, seed: int) -> Path:
    """``<out_dir>/<corpus>/fold<fold>/seed<seed>``."""
    return Path(out_dir) / corpus / f"fold{int(fold)}" / f"seed{int(seed)}"


def parse_folds(spec: str | int | Sequence[int], n_folds: int) -> list[int]:
    """Fold numbers from ``"all"`` / ``-1`` (every fold), an int, ``"0,2"`` or a list.

    Raises ``ValueError`` naming the bad entry when a fold is outside ``0 .. n_folds - 1``.
    """
    if n_folds < 1:
        raise ValueError(f"parse_folds: n_folds must be >= 1, got {n_folds}")
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in ("all", "-1", ""):
            return list(range(n_folds))
        try:
            folds = [int(t) for t in text.split(",") if t.strip()]
        except ValueError:
            raise ValueError(f"folds={spec!r}: expected 'all' or comma-separated fold numbers") from None
    elif isinstance(spec, int):
        folds = list(range(n_folds)) if spec == -1 else [spec]
    else:
        folds = [int(f) for f in spec]
    bad = [f for f in folds if not 0 <= f < n_folds]
    if bad:
        raise ValueError(f"folds={spec!r}: fold(s) {bad} out of range 0..{n_folds - 1}")
    return sorted(dict.fromkeys(folds))


def make_profile(profile: str | Profile, overrides: Sequence[str] = ()) -> Profile:
    """A named profile (or a given one) with ``section.field=value`` overrides applied (a bad
    one raises :class:`~emodarts_core.config.UsageError`, a ``ValueError``)."""
    base = get_profile(profile) if isinstance(profile, str) else profile
    return apply_overrides(base, list(overrides))


def is_finished(run_dir: str | Path) -> bool:
    """True when ``run_dir`` holds a run that wrote its final ``metrics.json``."""
    return (Path(run_dir) / RunDir.CONFIG).exists() and (Path(run_dir) / RunDir.METRICS).exists()


def baseline_options(name: str, out_dir: Path, search_dir: Path) -> dict[str, Any]:
    """The options of one fold's baseline run. Random search spends the wall time its fold's
    search spent (:func:`emodarts_core.train.baselines.random_search_budget`); a random search
    started before budgets were matched (its ``config.json`` names no budget) keeps its fixed
    ``k`` so that it resumes."""
    if name != "random":
        return {"baseline": name}
    old = out_dir / RunDir.CONFIG
    if old.exists() and "budget" not in RunDir(out_dir).config.options:
        return dict(RunDir(out_dir).config.options)
    # relative to the random-search run, so that a moved batch root still resumes
    match = os.path.relpath(search_dir, out_dir)
    return {"baseline": name, "budget": "seconds", "match_search": match}


def run_fold(corpus: str, data_root: str | None, fold: int, seed: int, profile: str | Profile,
             out_dir: str | Path, *, protocol: str | None = None, device: str = "auto",
             progress: bool = False, baselines: Sequence[str] = ("cnn_lstm",),
             overrides: Sequence[str] = (), cache_dir: str | None = None,
             data: FoldData | None = None, log: Callable[[str], None] | None = print) -> FoldRuns:
    """Search, final training and baselines for one fold (see the module docstring).

    Args:
        corpus, data_root, protocol: the data (``data_root`` ``None``/"" for the generated
            corpus's default location).
        fold, seed: which fold, and the seed of every run of it.
        profile: profile name or :class:`Profile`; ``overrides`` (``"search.epochs=3"`` ...) are
            applied on top and recorded in every run's config.
        out_dir: experiment root; this fold goes to :func:`fold_dir`.
        baselines: names from :data:`BASELINES` to train after the searched network.
        data: an already loaded fold (else loaded from ``corpus`` / ``data_root``).
        log: called with one line per finished step (``None``: silent).
    """

    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"run_fold: unknown baseline(s) {unknown}; choose from {BASELINES}")
    prof = make_profile(profile, overrides)
    root = fold_dir(out_dir, corpus, fold, seed)
    base = RunConfig(kind="search", corpus=corpus, data_root=str(data_root or ""),
                     out_dir=str(root / "search"), protocol=protocol or None, fold=int(fold),
                     seed=int(seed), profile=prof, device=device, overrides=tuple(overrides),
                     cache_dir=cache_dir)
    if not data_root:
        base = dataclasses.replace(base, data_root=None)   # the generated corpus's default place
    say = log or (lambda _msg: None)
    data = data if data is not None else load_data(base, progress)

    search = run_search(base, progress=progress, data=data)
    say(f"{corpus} fold {fold} seed {seed}: search done ({search.epochs_run} epochs, genotype of "
        f"epoch {search.best_epoch}) -> {search.run_dir}")
    train_cfg = dataclasses.replace(base, kind="train", out_dir=str(root / "train"))
    trained = run_train(train_cfg, search.genotype, progress=progress, data=data)
    say(f"{corpus} fold {fold} seed {seed}: final training done -> {trained.run_dir}")
    runs = FoldRuns(corpus=corpus, fold=int(fold), seed=int(seed), fold_name=data.fold_name,
                    search_dir=Path(search.run_dir), train_dir=Path(trained.run_dir),
                    genotype=search.genotype.to_dict(),
                    test={"emodarts": {"wa": trained.wa, "ua": trained.ua}})
    for name in baselines:
        out = root / f"baseline_{name}"
        cfg = dataclasses.replace(base, kind="baseline", out_dir=str(out),
                                  options=baseline_options(name, out, Path(search.run_dir)))
        res = run_baseline(cfg, progress=progress, data=data)
        runs.baseline_dirs[name] = Path(res.run_dir)
        runs.test[name] = {"wa": res.wa, "ua": res.ua}
        say(f"{corpus} fold {fold} seed {seed}: baseline {name} done -> {res.run_dir}")
    return runs


def run_experiment(corpus: str, data_root: str | None, folds: str | int | Sequence[int],
                   seeds: Sequence[int], profile: str | Profile, out_dir: str | Path, *,
                   protocol: str | None = None, device: str = "auto", progress: bool = False,
                   baselines: Sequence[str] = ("cnn_lstm",), overrides: Sequence[str] = (),
                   cache_dir: str | None = None,
                   log: Callable[[str], None] | None = print) -> list[FoldRuns]:
    """:func:`run_fold` for every fold in ``folds`` (``"all"``, ``"0,2"``, an int, ``-1``, a list)
    and every seed; folds are counted from the corpus itself, so ``"all"`` means all of them."""

    prof = make_profile(profile, overrides)
    probe = RunConfig(kind="search", corpus=corpus, data_root=data_root or None, out_dir=str(out_dir),
                      protocol=protocol or None, fold=0, profile=prof, cache_dir=cache_dir)
    first = load_data(probe, progress)
    results = []
    for k in parse_folds(folds, first.n_folds):
        for seed in seeds:
            data = first if k == 0 else None
            results.append(run_fold(corpus, data_root, k, seed, profile, out_dir, protocol=protocol,
                                    device=device, progress=progress, baselines=baselines,
                                    overrides=overrides, cache_dir=cache_dir, data=data, log=log))
    return results


def search_grid(corpus: str, data_root: str | None, profile: str | Profile, out_dir: str | Path,
                seeds: Sequence[int], folds: Sequence[int], *, protocol: str | None = None,
                overrides: Sequence[str] = (), device: str = "auto", progress: bool = False,
                cache_dir: str | None = None) -> list[tuple[str, "SearchResult"]]:
    """Searches for genotype stability: every seed on the first fold, then every further fold
    with the first seed. Run directories ``<out_dir>/fold<k>-seed<s>`` (resumed when present).

    Returns ``[(label, SearchResult)]`` with labels like ``"fold 0, seed 1"``.
    """

    if not seeds or not folds:
        raise ValueError("search_grid: need at least one seed and one fold")
    prof = make_profile(profile, overrides)
    pairs = [(folds[0], s) for s in seeds] + [(f, seeds[0]) for f in folds[1:]]
    loaded: dict[int, FoldData] = {}
    out = []
    for fold, seed in dict.fromkeys(pairs):
        cfg = RunConfig(kind="search", corpus=corpus, data_root=data_root or None,
                        out_dir=str(Path(out_dir) / f"fold{fold}-seed{seed}"),
                        protocol=protocol or None, fold=int(fold), seed=int(seed), profile=prof,
                        device=device, overrides=tuple(overrides), cache_dir=cache_dir)
        if fold not in loaded:
            loaded[fold] = load_data(cfg, progress)
        out.append((f"fold {fold}, seed {seed}", run_search(cfg, progress=progress, data=loaded[fold])))
    return out
