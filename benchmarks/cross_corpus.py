"""Cross-corpus evaluation of a finished batch: each network on the other corpus and on its own
test speakers, over the classes both corpora share; then a table per direction.

    python benchmarks/cross_corpus.py --runs RUNS/speaker \
        --root ravdess=../shared/data/ravdess --root emodb=../shared/data/emodb \
        --out benchmarks/records/cross-corpus/speaker

``RUNS`` is a ``reproduce`` output root (``RUNS/<corpus>/fold0/seed<S>/...``). For every corpus
given with ``--root`` that has runs there, every finished network of the methods in
:data:`emodarts_core.results.cross_corpus.METHOD_DIRS` is evaluated (``run_evaluate``) on every
other ``--root`` corpus whole, and on its own fold's test speakers over the same classes
(``--classes``, default ``shared6``), into ``OUT/<source>-to-<target>/<method>-seed<S>.json``
and ``OUT/<source>-in-corpus/<method>-seed<S>.json``. Existing files are kept, so a stopped run
goes on where it was. The plan and reading rules: ``benchmarks/cross_corpus_plan.md``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emodarts_core.common.threads import configure_threads  # noqa: E402
from emodarts_core.results.cross_corpus import (METHOD_DIRS, direction_table,  # noqa: E402
                                                load_evaluations)
from emodarts_core.train.evaluate import run_evaluate  # noqa: E402


def finished(run: Path) -> bool:
    return (run / "metrics.json").is_file()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, help="a reproduce output root")
    ap.add_argument("--root", action="append", required=True, metavar="CORPUS=PATH")
    ap.add_argument("--out", required=True)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--classes", default="shared6")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    configure_threads()
    roots = dict(item.split("=", 1) for item in args.root)
    runs, out = Path(args.runs), Path(args.out)
    for source, source_root in roots.items():
        for seed_dir in sorted((runs / source / f"fold{args.fold}").glob("seed*")):
            seed = int(seed_dir.name.removeprefix("seed"))
            for method, sub in METHOD_DIRS.items():
                run = seed_dir / sub
                if not finished(run):
                    print(f"not finished, left out: {run}", file=sys.stderr)
                    continue
                jobs = [(target, root, None, out / f"{source}-to-{target}")
                        for target, root in roots.items() if target != source]
                jobs.append((source, source_root, args.fold, out / f"{source}-in-corpus"))
                for target, root, fold, folder in jobs:
                    dest = folder / f"{method}-seed{seed}.json"
                    if dest.is_file():
                        continue
                    m = run_evaluate(run, target, root, fold=fold, out=dest, device=args.device,
                                     classes=args.classes)
                    print(f"{source} {method} seed {seed} -> {target}"
                          f"{'' if fold is None else f' fold {fold} test'}: "
                          f"UA {100 * m['ua']:.2f} %, WA {100 * m['wa']:.2f} % ({m['n']} files)")
    evals = load_evaluations(out)
    for source in roots:
        for target in roots:
            if source != target and any(e.source == source and e.target == target
                                        for e in evals):
                print(f"\n{source} -> {target}\n" + direction_table(evals, source, target))


if __name__ == "__main__":
    main()
