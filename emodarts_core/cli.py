"""The command line: ``python -m emodarts_core search|train|evaluate|baseline|reproduce ...``.

Examples::

    python -m emodarts_core search --corpus generated --profile smoke --out runs/s0
    python -m emodarts_core train --genotype runs/s0 --corpus generated --profile smoke --out runs/t0
    python -m emodarts_core evaluate --run runs/t0 --corpus generated --data-root DATA
    python -m emodarts_core evaluate --run runs/ravdess-run --corpus emodb --data-root EMODB \
        --classes neutral,happy,sad,angry     # another corpus, over (some of) the shared classes
    python -m emodarts_core baseline --kind cnn_lstm --corpus ravdess,emodb \
        --data-root RAVDESS --data-root EMODB --out runs/b1   # two corpora, their shared classes
    python -m emodarts_core evaluate --run runs/t0 --run runs/t1 --corpus generated \
        --data-root DATA --fold 0 --json-out runs/ensemble.json      # mean softmax of both
    python -m emodarts_core baseline --kind cnn_lstm --corpus generated --out runs/b0
    python -m emodarts_core baseline --kind cnn_bilstm_att --corpus generated --out runs/b2
    python -m emodarts_core baseline --kind egemaps_svm --corpus generated --out runs/b3
    python -m emodarts_core search ... --set search.epochs=3 --set space.seq_ops=lstm
    python -m emodarts_core reproduce --corpus iemocap=/data/IEMOCAP --protocol paper \\
        --profile paper --seeds 0,1,2 --out runs/batch --backend ray

Rerunning a command with the same ``--out`` resumes the run from its last checkpoint (a finished
run is only re-summarised); a different configuration in an existing ``--out`` is refused, and
``--restart`` starts the run again from scratch (e.g. after a damaged checkpoint). One command
at a time works in an ``--out``: a second one is refused, naming the first (a lock that the
kernel drops when its process dies). A command that fails before its first checkpoint leaves no
run directory behind. Bad arguments, bad data and damaged run files end with a one-line message
and exit status 2, never a traceback; audio files skipped or noted are counted on one line and
listed in the run's ``data_report.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import typing
from pathlib import Path
from typing import Any, Iterator, Sequence

from emodarts_core.batch import reproduce
from emodarts_core.common.files import RunFileError
from emodarts_core.common.locks import RUN_LOCK, LockHeld, run_lock
from emodarts_core.common.threads import configure_threads
from emodarts_core.config import PROFILES, UsageError, apply_overrides, get_profile
from emodarts_core.data import corpora
from emodarts_core.data.datasets import DataError, corpus_names, default_cache_dir, join_roots
from emodarts_core.data.emotions import resolve_class_set
from emodarts_core.nas.genotype import Genotype
from emodarts_core.nas.network import check_genotype
from emodarts_core.results.collect import collect, format_report, method_of
from emodarts_core.results.evidence_tables import ensemble_table
from emodarts_core.search.loop import run_search
from emodarts_core.train.baselines import KINDS, run_baseline
from emodarts_core.train.evaluate import run_evaluate
from emodarts_core.train.fit import run_train
from emodarts_core.train.runs import RunConfig, RunConfigMismatch, RunDir, resolve_device

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # one line, no usage dump
        raise UsageError(message)


# ---------------------------------------------------------------------------------------------
def known_corpora() -> tuple[str, ...]:
    """Corpus names ``load_corpus`` accepts (from the corpora package's registry)."""

    for attr in ("CORPORA", "LOADERS", "CORPUS_NAMES"):
        names = getattr(corpora, attr, None)
        if names:
            return tuple(sorted(names))
    return ()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m emodarts_core",
                     description="emoDARTS: joint CNN + SeqNN DARTS search for speech emotion "
                                 "recognition (search, train, evaluate, baselines)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def common(p: argparse.ArgumentParser, out: bool = True) -> None:
        p.add_argument("--corpus", default="generated",
                       help="corpus name (default: generated), or several comma-separated "
                            "(ravdess,emodb: trained over their shared classes)")
        p.add_argument("--data-root", default=None, action="append",
                       help="corpus root directory (the generated corpus is created there); "
                            "repeat it for several corpora, one each, in --corpus order")
        p.add_argument("--protocol", default=None, help="the corpus protocol (default: standard)")
        p.add_argument("--profile", default="smoke", help=f"one of {', '.join(sorted(PROFILES))}")
        p.add_argument("--fold", type=int, default=0, help="fold index (default 0)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
        p.add_argument("--cache-dir", default=None, help="feature cache directory")
        p.add_argument("--amp", default="bf16", choices=("bf16", "fp16", "off"),
                       help="mixed precision on CUDA (ignored on CPU)")
        p.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="SECTION.FIELD=VALUE", help="override a profile field, repeatable")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.add_argument("--skip-bad", action="store_true",
                       help="skip corpus entries the loader cannot use (unknown label code, "
                            "missing audio) instead of stopping; they are counted, printed and "
                            "listed in the run's data_report.json")
        if out:
            p.add_argument("--out", default=None, help="run directory (default runs/<kind>-...)")
            p.add_argument("--restart", action="store_true",
                           help="start the run in --out again from scratch: delete its "
                                "checkpoints and results first (e.g. after a damaged checkpoint)")

    p = sub.add_parser("search", help="search a genotype (DARTS)")
    common(p)
    p.add_argument("--checkpoint-every", type=int, default=0,
                   help="also checkpoint every N search steps (0: once per epoch)")

    p = sub.add_parser("train", help="train the network of a genotype and test it")
    common(p)
    p.add_argument("--genotype", required=True,
                   help="a genotype JSON file, or a search or random-search run directory")

    p = sub.add_parser("evaluate", help="evaluate a trained run, or an ensemble of runs, on a "
                                        "corpus")
    p.add_argument("--run", required=True, action="append", dest="runs", metavar="RUN",
                   help="a training or baseline run directory; repeat it to evaluate an "
                        "ensemble (mean softmax probability of the runs; needs --json-out)")
    p.add_argument("--corpus", required=True,
                   help="the test corpus; it may have other classes than the run (only the "
                        "shared ones are scored)")
    p.add_argument("--data-root", default=None, action="append",
                   help="the corpus root (repeat it for a comma-separated --corpus)")
    p.add_argument("--protocol", default=None)
    p.add_argument("--fold", type=int, default=None,
                   help="evaluate this fold's test side (default: every utterance)")
    p.add_argument("--classes", default=None, metavar="A,B,C",
                   help="score these classes (comma-separated canonical names, or a class set "
                        "such as shared6); default: every class the run and the corpus share")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--json-out", default=None,
                   help="where to write the metrics JSON (default, one run: "
                        "RUN/evaluate-<corpus>-<hash of the data root>[-fold<k>].json)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip corpus entries the loader cannot use instead of stopping")

    p = sub.add_parser("baseline", help="a baseline: the CNN-LSTM, random search, a size-matched "
                                        "CNN-BiLSTM with attention, or eGeMAPS + linear SVM")
    common(p)
    p.add_argument("--kind", required=True,
                   choices=("cnn_lstm", "random", "cnn_bilstm_att", "egemaps_svm"))
    p.add_argument("--head-norm", action="store_true",
                   help="cnn_lstm: BatchNorm1d on the pooled vector (not in the paper's layout)")
    p.add_argument("--k", type=int, default=8, help="random search: number of sampled genotypes")
    p.add_argument("--match-search", default=None, metavar="SEARCH_RUN",
                   help="random search: spend what this search run spent (--budget) instead "
                        "of drawing --k candidates")
    p.add_argument("--budget", choices=("seconds", "steps"), default="seconds",
                   help="random search with --match-search: the search's wall seconds "
                        "(default) or its steps")
    p.add_argument("--brief-epochs", type=int, default=None,
                   help="random search: epochs per candidate (default max(1, train.epochs // 10))")
    p.add_argument("--no-tune", action="store_true",
                   help="cnn_bilstm_att: train the network's defaults instead of tuning blocks, "
                        "dropout and learning rate on the validation speakers")
    p.add_argument("--target-params", type=int, default=None,
                   help="cnn_bilstm_att: parameter count to match (default: the mean size of "
                        "the profile's networks for 5 uniformly drawn genotypes)")

    p = sub.add_parser("reproduce", help="a batch over corpora x folds x seeds (the job notebook "
                                         "via papermill, locally or on Ray), then the results table")
    p.add_argument("--corpus", dest="corpora", action="append", default=[], metavar="NAME=ROOT",
                   help="a corpus and its data root, repeatable")
    p.add_argument("--folds", default="all", help="comma-separated fold indices, or 'all'")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--profile", default="paper", help=f"one of {', '.join(sorted(PROFILES))}")
    p.add_argument("--protocol", default=None, help="corpus protocol (default: standard)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", required=True, help="root directory of the batch's runs")
    p.add_argument("--baselines", default="cnn_lstm",
                   help="baselines per fold, comma-separated: cnn_lstm, random, "
                        "cnn_bilstm_att, egemaps_svm (default cnn_lstm)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.FIELD=VALUE",
                   help="override a profile field in every job, repeatable")
    p.add_argument("--backend", default="local", choices=("local", "ray"))
    p.add_argument("--ray-address", default=None, help="join this Ray cluster (default: local)")
    p.add_argument("--gpus-per-job", type=float, default=0.0)
    p.add_argument("--cpus-per-job", type=float, default=1.0)
    p.add_argument("--table-only", action="store_true",
                   help="do not run anything: build the table from the runs already under --out")
    p.add_argument("--ensembles", action="store_true",
                   help="also evaluate each fold's runs of a method over the seeds together "
                        "(mean softmax) into OUT/ensembles/ and print their table; reads the "
                        "audio again, so --corpus NAME=ROOT is needed even with --table-only")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="also copy every run's small JSON record (config, environment, metrics, "
                        "genotype, history; no checkpoints) to DIR, e.g. to keep it in git")
    return parser


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0:
        raise UsageError(f"{flag}: expected non-negative integers, got {text!r}")
    return values


def run_reproduce(args: argparse.Namespace) -> int:
    """``reproduce``: run the grid (unless --table-only), then print and save the table."""

    out = Path(args.out)
    corpora: dict[str, str] = {}
    for item in args.corpora:
        name, sep, root = item.partition("=")
        if not sep or not name or not root:
            raise UsageError(f"--corpus {item!r}: expected NAME=ROOT")
        if known_corpora() and name not in known_corpora():
            raise UsageError(f"--corpus: unknown corpus {name!r}; choose one of "
                             f"{', '.join(known_corpora())}")
        if name != "generated" and not Path(root).is_dir():
            raise UsageError(f"--corpus {item}: no such directory {root}")
        corpora[name] = str(Path(root).resolve())
    if not args.table_only:
        try:
            profile = get_profile(args.profile)
        except ValueError as e:
            raise UsageError(f"--profile: {e}") from None
        apply_overrides(profile, args.overrides)     # a bad --set stops here, before any job
        if not corpora:
            raise UsageError("--corpus NAME=ROOT is required (repeat it for several corpora)")
        seeds = _int_list(args.seeds, "--seeds")
        baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip())

        unknown = set(baselines) - set(KINDS)
        if unknown:
            raise UsageError(f"--baselines: unknown baseline(s) {sorted(unknown)}; "
                             f"choose from {', '.join(KINDS)}")
        # counting the folds reads every corpus (and writes a generated one) once, here,
        # before any job starts: jobs never race to make a shared corpus
        n_folds = {name: reproduce.count_folds(name, root, args.protocol)
                   for name, root in corpora.items()}
        if args.folds == "all":
            folds: Any = {name: list(range(n)) for name, n in n_folds.items()}
        else:
            folds = _int_list(args.folds, "--folds")
            for name, n in n_folds.items():
                bad = [k for k in folds if k >= n]
                if bad:
                    raise UsageError(f"--folds {args.folds}: corpus {name!r} has {n} fold(s) "
                                     f"(0..{n - 1}); fold(s) {bad} do not exist")
        jobs = reproduce.make_grid(corpora, folds, seeds, args.profile, out,
                                   protocol=args.protocol, device=args.device,
                                   baselines=baselines, overrides=args.overrides)
        print(f"reproduce: {len(jobs)} jobs ({args.backend})")
        with run_lock(out):
            reproduce.run_grid(jobs, backend=args.backend, ray_address=args.ray_address,
                               cpus_per_job=args.cpus_per_job, gpus_per_job=args.gpus_per_job)
    try:
        rows = collect(out)
    except ValueError as e:
        raise UsageError(f"--out: {e}") from None
    if not rows:
        raise UsageError(f"--out {out}: no finished training or baseline runs found")
    table = format_report(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    print(table)
    if args.ensembles:
        try:
            dirs = reproduce.evaluate_ensembles(out, corpora, protocol=args.protocol,
                                                device=args.device)
        except ValueError as e:
            raise UsageError(f"--ensembles: {e}") from None
        if not dirs:
            print("reproduce: no fold has runs of one method for two or more seeds; no ensembles")
        for corpus, path in dirs.items():
            ens = ensemble_table(path)
            (path / "table.md").write_text(ens + "\n")
            print(f"\nEnsembles over the seeds, {corpus} ({path}):\n\n{ens}")
    if args.export:
        try:
            written = reproduce.export_records(out, args.export)
        except ValueError as e:
            raise UsageError(f"--export: {e}") from None
        print(f"reproduce: exported {len(written)} record files to {args.export}")
    return 0


def genotype_source(path: Path) -> dict[str, str]:
    """Where a genotype file came from, kept in a training's config: its absolute path and the
    method of the run directory holding it (``emodarts`` for a search, ``random`` for a random
    search; ``file`` outside a run). Tables label the training with that method."""

    method = "file"
    cfg_path = path.parent / "config.json"
    if cfg_path.exists():
        try:
            run_cfg = json.loads(cfg_path.read_text())
        except (OSError, json.JSONDecodeError):
            run_cfg = {}
        method = "emodarts" if run_cfg.get("kind") == "search" else (method_of(run_cfg) or "file")
    return {"path": str(path.resolve()), "method": method}


def load_genotype(source: str):
    """A genotype from a JSON file or a run directory holding one (a search, or a random search's
    winner), and its :func:`genotype_source`."""

    path = Path(source)
    if path.is_dir():
        path = path / "genotype.json"
        if not path.exists():
            raise UsageError(f"--genotype {source}: the directory holds no genotype.json "
                             f"(is the search finished?)")
    if not path.exists():
        raise UsageError(f"--genotype {source}: no such file or directory")

    try:
        genotype = Genotype.load(path)
        check_genotype(genotype)
        return genotype, genotype_source(path)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise UsageError(f"--genotype {path}: not a valid genotype ({e})") from None


def check_runs(runs: Sequence[str]) -> None:
    """``evaluate --run``: each a run directory whose ``config.json`` this version can read."""

    for run in runs:
        if not Path(run).is_dir() or not (Path(run) / "config.json").exists():
            raise UsageError(f"--run {run}: not a run directory (no config.json)")
        try:
            RunDir(run).config
        except RunFileError as e:
            raise UsageError(f"--run {run}: {e}") from None


def clear_run(out: Path) -> None:
    """``--restart``: empty the run directory ``out`` (all but its lock file); refuse a
    directory that is not a run directory, so a mistyped ``--out`` deletes nothing."""

    entries = [e for e in out.iterdir() if e.name != RUN_LOCK]
    if entries and not (out / "config.json").exists():
        raise UsageError(f"--restart: {out} is not a run directory (no config.json); "
                         f"nothing was deleted")
    for e in entries:
        if e.is_dir() and not e.is_symlink():
            shutil.rmtree(e)
        else:
            e.unlink()


@contextlib.contextmanager
def claim_out(out: Path, restart: bool = False) -> Iterator[None]:
    """Work in the run directory ``out``: locked against a second command
    (:func:`~emodarts_core.common.locks.run_lock`), emptied first with ``restart``, and removed again
    when this command created it and fails before anything worth resuming was written."""

    existed = out.exists()
    try:
        with run_lock(out):
            if restart:
                clear_run(out)
            yield
    except LockHeld:
        raise
    except BaseException:
        if not existed and out.is_dir() and not RunDir(out).has_progress():
            shutil.rmtree(out, ignore_errors=True)
        raise


def corpus_roots(corpus: str, data_roots: Sequence[str] | None) -> tuple[list[str], str | None]:
    """The corpus names of ``--corpus`` (one, or several comma-separated) and their roots as the
    one string a run config keeps (absolute; several joined by ``os.pathsep``), or ``None`` for
    the generated corpus's default place. UsageError for an unknown name or missing, surplus or
    absent roots."""

    try:
        names = corpus_names(corpus)
    except DataError as e:
        raise UsageError(f"--corpus: {e}") from None
    corpora = known_corpora()
    for name in names:
        if corpora and name not in corpora:
            raise UsageError(f"--corpus: unknown corpus {name!r}; choose one of "
                             f"{', '.join(corpora)}")
    roots = list(data_roots or [])
    if not roots:
        if names != ["generated"]:
            need = f"one per corpus ({', '.join(names)})" if len(names) > 1 else ""
            raise UsageError(f"--data-root is required for corpus {corpus!r}" + (f": {need}" if need else ""))
        return names, None
    if len(roots) != len(names):
        raise UsageError(f"--corpus {corpus} names {len(names)} corpora but --data-root is given "
                         f"{len(roots)} time(s); give one root per corpus, in order")
    for name, root in zip(names, roots):
        if name != "generated" and not Path(root).is_dir():
            raise UsageError(f"--data-root {root}: no such directory")
    try:
        return names, join_roots([str(Path(r).resolve()) for r in roots])
    except DataError as e:
        raise UsageError(f"--data-root: {e}") from None


def make_run_config(args: argparse.Namespace, kind: str, options: dict[str, Any]):
    """A :class:`~emodarts_core.train.runs.RunConfig` from parsed arguments (validated)."""

    try:
        profile = get_profile(args.profile)
    except ValueError as e:
        raise UsageError(f"--profile: {e}") from None
    profile = apply_overrides(profile, args.overrides)
    names, data_root = corpus_roots(args.corpus, args.data_root)
    if args.fold < 0:
        raise UsageError(f"--fold must be >= 0, got {args.fold}")
    try:
        device = str(resolve_device(args.device))
    except ValueError as e:
        raise UsageError(f"--device: {e}") from None
    if device.startswith("cuda"):
        options = {**options, "amp": None if args.amp == "off" else args.amp}
    if data_root is None:
        data_root = str((default_cache_dir() / "generated").resolve())
    corpus = ",".join(names)
    out = args.out or (f"runs/{kind}-{corpus.replace(',', '+')}-{profile.name}-fold{args.fold}"
                       f"-seed{args.seed}")
    return RunConfig(kind=kind, corpus=corpus, data_root=data_root,
                     out_dir=str(out), protocol=args.protocol, fold=args.fold, seed=args.seed,
                     profile=profile, device=device, overrides=tuple(args.overrides),
                     options=options, cache_dir=args.cache_dir, skip_bad=args.skip_bad)


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def run_command(args: argparse.Namespace) -> int:
    try:                                 # $EMODARTS_THREADS caps torch's threads, as in the book
        configure_threads()
    except ValueError as e:
        raise UsageError(str(e)) from None
    progress = not getattr(args, "no_progress", False)
    if args.command == "search":
        cfg = make_run_config(args, "search", {"checkpoint_every": args.checkpoint_every}
                              if args.checkpoint_every else {})
        with claim_out(Path(cfg.out_dir), args.restart):
            res = run_search(cfg, progress=progress)
        print(f"search finished: {res.run_dir}; best epoch {res.best_epoch} "
              f"(valid WA {_pct(res.best_valid_wa)}, UA {_pct(res.best_valid_ua)}); "
              f"genotype -> {Path(res.run_dir) / 'genotype.json'}")
    elif args.command == "train":
        genotype, source = load_genotype(args.genotype)
        cfg = make_run_config(args, "train", {"genotype_source": source})
        with claim_out(Path(cfg.out_dir), args.restart):
            res = run_train(cfg, genotype, progress=progress)
        chosen = ("trained on the training and validation speakers" if res.best_valid_ua is None
                  else f"best valid UA {_pct(res.best_valid_ua)} at epoch {res.best_epoch}")
        print(f"train finished: {res.run_dir}; test WA {_pct(res.wa)}, UA {_pct(res.ua)} "
              f"({res.metrics['selection']} epoch {res.metrics['selected_epoch']}; {chosen})")
    elif args.command == "evaluate":
        check_runs(args.runs)
        if len(args.runs) > 1 and args.json_out is None:
            raise UsageError(f"an ensemble of {len(args.runs)} runs needs --json-out (where to "
                             "write its metrics)")
        names, root = corpus_roots(args.corpus, args.data_root)
        classes = None
        if args.classes is not None:
            parts = [c.strip() for c in args.classes.split(",") if c.strip()]
            try:
                classes = resolve_class_set(parts[0] if len(parts) == 1 else parts,
                                            argument="--classes")
            except (ValueError, IndexError) as e:
                raise UsageError(f"--classes {args.classes!r}: "
                                 f"{e if parts else 'name at least one class'}") from None
        try:
            m = run_evaluate(args.runs, ",".join(names), root, protocol=args.protocol,
                             fold=args.fold, cache_dir=args.cache_dir, out=args.json_out,
                             device=args.device, classes=classes, skip_bad=args.skip_bad)
        except DataError as e:
            raise UsageError(str(e)) from None
        scored = f"evaluate: scored {m['n']} of {m['n_files']} files"
        if m["skipped"]:
            shown = "; ".join(f"{Path(s['file']).name} ({s['reason']})" for s in m["skipped"][:3])
            scored += f"; skipped {len(m['skipped'])}: {shown}"
            scored += " ..." if len(m["skipped"]) > 3 else ""
        if m["notes"]:
            scored += f"; {len(m['notes'])} noted"
        print(f"{scored} (all listed in {m['written_to']})", file=sys.stderr)
        keys = ("wa", "ua", "n", "n_files", "classes", "per_class_recall", "confusion",
                "chance_ua", "dropped", "written_to")
        print(json.dumps({k: m[k] for k in keys + (("members",) if len(args.runs) > 1 else ())}))
    elif args.command == "reproduce":
        return run_reproduce(args)
    elif args.command == "baseline":
        if args.k < 1:
            raise UsageError(f"--k must be >= 1, got {args.k}")
        opts: dict[str, Any] = {"baseline": args.kind}
        if args.kind == "random":
            opts.update(k=args.k, brief_epochs=args.brief_epochs)
            if args.match_search:
                search = Path(args.match_search).resolve()
                if not (search / RunDir.HISTORY).is_file():
                    raise UsageError(f"--match-search {args.match_search}: no search run there "
                                     f"(no {RunDir.HISTORY})")
                opts.update(budget=args.budget, match_search=str(search))
            if args.head_norm:
                raise UsageError("--head-norm applies to --kind cnn_lstm only (random search's "
                                 "networks take theirs from the profile's space.head_norm)")
        elif args.head_norm:
            if args.kind != "cnn_lstm":
                raise UsageError(f"--head-norm applies to --kind cnn_lstm only, not {args.kind}")
            opts["cnn_lstm"] = {"head_norm": True}
        if args.no_tune:
            if args.kind != "cnn_bilstm_att":
                raise UsageError("--no-tune applies to --kind cnn_bilstm_att only")
            opts["tune"] = False
        if args.target_params is not None:
            if args.kind != "cnn_bilstm_att":
                raise UsageError("--target-params applies to --kind cnn_bilstm_att only")
            if args.target_params < 1:
                raise UsageError(f"--target-params must be >= 1, got {args.target_params}")
            opts["target_parameters"] = args.target_params
        cfg = make_run_config(args, "baseline", opts)
        with claim_out(Path(cfg.out_dir), args.restart):
            res = run_baseline(cfg, progress=progress)
        print(f"baseline {args.kind} finished: {res.run_dir}; test WA {_pct(res.wa)}, "
              f"UA {_pct(res.ua)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad arguments or data)."""

    try:
        args = build_parser().parse_args(argv)
        return run_command(args)
    except (UsageError, DataError, RunConfigMismatch, RunFileError, LockHeld) as e:
        msg = " ".join(str(e).split())
        print(f"emodarts: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("emodarts: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
