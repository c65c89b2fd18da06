"""Does the search decide? Searches of named settings over folds x seeds, judged by the gate.

    python benchmarks/search_gate.py --corpus generated --data-root data/generated \
        --profile cpu --folds 0,1 --seeds 0,1,2 --split-seed 0 --out runs/gate \
        --setting darts= --setting accumulate-4=search.alpha_accumulate=4 [...]

Each ``--setting NAME=OVERRIDES`` (overrides ``;``-separated ``section.field=value``, empty for
the profile as it is) runs one search per fold and seed into ``OUT/NAME/fold<k>/seed<s>``, all
with ``search.split_seed`` fixed, so the seeds vary the search (initial alphas and weights,
batch order, dropout) and not the data. Finished searches are kept and reused, a killed one
resumes. Then a table: per setting the final entropy as a fraction of uniform (normal /
reduce / seq), the top-2 margin, the flip rate of the second half of the epochs, the
cross-seed (edge, op) agreement of the chosen genotypes beside its exact chance level, the
supernet's final validation UA (alpha split), the minutes per search and the gate's verdict
(agreement >= 0.4 and mean entropy <= 0.75; ``emodarts_core.search.quality``). The JSON of the
table goes to ``OUT/summary.json``.

With ``--perturbation`` every finished search is also read by perturbation-based selection
(``emodarts_core.search.perturbation``: each operation and edge taken out of the final supernet
in turn, its strength the rise of the loss on the alpha split; ``perturbation.json`` in the run
directory), and the table gains a row ``NAME+pt`` judging those genotypes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpus_args import add_corpus_arguments  # noqa: E402  (benchmarks/corpus_args.py)

from emodarts_core.batch.reproduce import export_records  # noqa: E402
from emodarts_core.common.threads import configure_threads  # noqa: E402
from emodarts_core.config import apply_overrides, get_profile  # noqa: E402
from emodarts_core.search.loop import run_search  # noqa: E402
from emodarts_core.search.perturbation import select_by_perturbation  # noqa: E402
from emodarts_core.search.quality import (PT_FILE, PT_SUFFIX, comparable,  # noqa: E402
                                          gate_table, load_record, summarise_setting)
from emodarts_core.train.fit import load_data  # noqa: E402
from emodarts_core.train.runs import RunConfig, RunDir  # noqa: E402


def parse_setting(text: str) -> tuple[str, list[str]]:
    name, sep, rest = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"--setting {text!r}: expected NAME=OVERRIDES (OVERRIDES may be empty)")
    return name, [o.strip() for o in rest.split(";") if o.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(ap)
    ap.add_argument("--set", dest="common", action="append", default=[],
                    help="an override every setting gets (repeatable)")
    ap.add_argument("--folds", default="0,1")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--setting", action="append", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--summary-only", action="store_true", help="tabulate existing runs only")
    ap.add_argument("--export", default=None, metavar="DIR",
                    help="copy each finished search's record (its small JSON files) to "
                         "DIR/<setting>/fold<k>/seed<s> (for benchmarks/records); searches "
                         "still running are left out")
    ap.add_argument("--perturbation", action="store_true",
                    help="also select each search's genotype by perturbation (row NAME+pt)")
    args = ap.parse_args()
    configure_threads()                  # $EMODARTS_THREADS, as the command line honours it
    folds = [int(f) for f in args.folds.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = [parse_setting(s) for s in args.setting]
    data_root = str(Path(args.data_root).resolve())

    summaries, finished = {}, []
    for name, overrides in settings:
        items = [*args.common, *overrides, f"search.split_seed={args.split_seed}"]
        profile = apply_overrides(get_profile(args.profile), items)
        records, pt_records = [], []
        for fold in folds:
            data = None
            for seed in seeds:
                out = Path(args.out) / name / f"fold{fold}" / f"seed{seed}"
                cfg = RunConfig(kind="search", corpus=args.corpus, data_root=data_root,
                                out_dir=str(out), protocol=args.protocol, fold=fold, seed=seed,
                                profile=profile, device="cpu", overrides=tuple(items),
                                cache_dir=args.cache_dir)
                steps = []                   # what this search still needs, in order
                if not (out / RunDir.GENOTYPE).is_file():
                    steps.append(("", lambda d: run_search(cfg, progress=False, data=d)))
                if args.perturbation and not (out / PT_FILE).is_file():
                    steps.append((" perturbation",
                                  lambda d: select_by_perturbation(out, progress=False, data=d)))
                for what, step in [] if args.summary_only else steps:
                    data = data if data is not None else load_data(cfg, progress=False)
                    t0 = time.perf_counter()
                    step(data)
                    print(f"[gate] {name} fold {fold} seed {seed}{what}: "
                          f"{(time.perf_counter() - t0) / 60:.1f} min", flush=True)
                if not (out / RunDir.GENOTYPE).is_file():
                    continue
                finished.append(out)
                records.append(load_record(out))
                if args.perturbation and (out / PT_FILE).is_file():
                    pt_records.append(load_record(out, "perturbation"))
        if not comparable(records):      # a row needs two seeds of one fold
            print(f"[gate] {name}: {len(records)} finished search(es), no two of one fold "
                  "yet: no row", flush=True)
            continue
        summaries[name] = (overrides, summarise_setting(records, profile.space))
        if comparable(pt_records):
            summaries[name + PT_SUFFIX] = (overrides,
                                           summarise_setting(pt_records, profile.space))

    print()
    print(gate_table({name: summary for name, (_, summary) in summaries.items()}))
    if args.export:    # each finished search's small JSON files, as reproduce exports them
        for run in finished:
            export_records(run, Path(args.export) / run.relative_to(args.out))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(
        {n: {"overrides": o, **s.to_dict()} for n, (o, s) in summaries.items()}, indent=2))


if __name__ == "__main__":
    main()
