"""Does the architecture matter? Genotypes x seeds, each trained briefly on one fold.

    python benchmarks/architecture_effect.py --corpus ravdess --data-root ../shared/data/ravdess \
        --profile cpu --set features.normalization=speaker --fold 0 --random 8 \
        --searched runs/gate/long/fold0/seed0 [...] --seeds 0,1,2 --epochs 6 --out runs/arch

Trains ``--random`` genotypes drawn uniformly from the profile's space (one seeded stream,
``--draw-seed``) and the genotype of each ``--searched`` run (its ``genotype.json``), each with
every seed of ``--seeds``, as random search trains its candidates (``brief_profile``: ``--epochs``
epochs at the space's width). Runs go to ``OUT/<genotype>/seed<s>`` (finished ones are kept, a
killed one resumes); ``OUT/genotypes.json`` names the genotypes. Then the analysis of variance
of ``emodarts_core.results.architecture_effect`` over the random genotypes (how much of a
training's score is its architecture), the searched genotypes against them, and the table as
JSON in ``OUT/summary.json``. ``--export DIR`` copies the runs' small JSON files there.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpus_args import add_corpus_arguments  # noqa: E402  (benchmarks/corpus_args.py)

from emodarts_core.batch.reproduce import export_records  # noqa: E402
from emodarts_core.common.files import atomic_write_json  # noqa: E402
from emodarts_core.common.threads import configure_threads  # noqa: E402
from emodarts_core.config import apply_overrides, get_profile  # noqa: E402
from emodarts_core.nas.genotype import Genotype, sample_genotype  # noqa: E402
from emodarts_core.results.architecture_effect import (  # noqa: E402
    GENOTYPES_FILE, METRICS, effect_of, effect_reading, effect_table, load_architecture_scores)
from emodarts_core.train.baselines import brief_profile  # noqa: E402
from emodarts_core.train.fit import load_data, run_train  # noqa: E402
from emodarts_core.train.runs import RunConfig, RunDir  # noqa: E402


def genotype_list(args, profile) -> list[dict]:
    """The experiment's genotypes, the same on every call with the same arguments."""
    gen = torch.Generator().manual_seed(args.draw_seed)
    entries = [{"name": f"random-{i:02d}", "kind": "random",
                "source": f"draw {i} of the stream seeded {args.draw_seed}",
                "genotype": sample_genotype(profile.space, gen).to_dict()}
               for i in range(args.random)]
    for k, run in enumerate(args.searched):
        path = Path(run) / RunDir.GENOTYPE
        if not path.is_file():
            raise SystemExit(f"--searched {run}: no {RunDir.GENOTYPE} (not a finished search)")
        entries.append({"name": f"searched-{k}", "kind": "searched", "source": str(run),
                        "genotype": Genotype.from_dict(json.loads(path.read_text())).to_dict()})
    return entries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(ap)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--random", type=int, default=8, help="random genotypes to draw")
    ap.add_argument("--draw-seed", type=int, default=0)
    ap.add_argument("--searched", action="append", default=[], metavar="RUN",
                    help="a finished search run whose genotype joins (repeatable)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=6, help="epochs of each brief training")
    ap.add_argument("--out", required=True)
    ap.add_argument("--summary-only", action="store_true", help="tabulate existing runs only")
    ap.add_argument("--export", default=None, metavar="DIR")
    args = ap.parse_args()
    if args.random < 2:
        raise SystemExit("--random: the analysis of variance needs at least 2 random genotypes")
    seeds = [int(s) for s in args.seeds.split(",")]
    if len(seeds) < 2:
        raise SystemExit("--seeds: at least two seeds, or the seed noise cannot be measured")
    configure_threads()
    profile = brief_profile(apply_overrides(get_profile(args.profile), args.overrides),
                            args.epochs)
    out = Path(args.out)
    entries = genotype_list(args, profile)
    index = out / GENOTYPES_FILE
    spec = {"corpus": args.corpus, "fold": args.fold, "epochs": args.epochs,
            "profile": args.profile, "overrides": args.overrides, "seeds": seeds,
            "genotypes": entries}
    if index.is_file() and json.loads(index.read_text())["genotypes"] != entries:
        raise SystemExit(f"{index} names other genotypes: use another --out")
    atomic_write_json(index, spec)

    data = None
    for entry in [] if args.summary_only else entries:
        for seed in seeds:
            run = out / entry["name"] / f"seed{seed}"
            if (run / RunDir.METRICS).is_file():
                continue
            cfg = RunConfig(kind="train", corpus=args.corpus,
                            data_root=str(Path(args.data_root).resolve()), out_dir=str(run),
                            protocol=args.protocol, fold=args.fold, seed=seed, profile=profile,
                            device="cpu", overrides=tuple(args.overrides),
                            cache_dir=args.cache_dir)
            data = data if data is not None else load_data(cfg, progress=False)
            t0 = time.perf_counter()
            res = run_train(cfg, Genotype.from_dict(entry["genotype"]), progress=False,
                            data=data)
            print(f"[arch] {entry['name']} seed {seed}: valid UA {100 * res.best_valid_ua:.1f} "
                  f"%, {(time.perf_counter() - t0) / 60:.1f} min", flush=True)

    scores = load_architecture_scores(out)
    print()
    print(effect_table(scores))
    print()
    print(effect_reading(scores))
    summary = {"epochs": args.epochs, "fold": args.fold,
               "effect": {m: effect_of(scores, m).to_dict() for m in METRICS},
               "genotypes": [dataclasses.asdict(g) for g in scores.genotypes]}
    atomic_write_json(out / "summary.json", summary)
    if args.export:
        export_records(args.out, args.export)
        atomic_write_json(Path(args.export) / GENOTYPES_FILE, spec)


if __name__ == "__main__":
    main()
