"""Last or best epoch, judged on the validation speakers only (``emodarts_core.train.selection``).

    python benchmarks/selection_rule.py --runs RUNS

For every tested network of a batch (``RUNS`` as ``reproduce`` writes it: the searched
network's training, random search's final training, each baseline's training), the cross-selected
validation UA of the "best epoch" rule (picked on the other validation speakers, scored on the
held-out one) and of the "last epoch" rule, then a table per method with the rule each would
adopt. No test figure is read. Trainings recorded before epochs kept per-speaker validation
confusions, or with fewer than two validation speakers, are listed as left out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emodarts_core.batch.reproduce import evaluated_run  # noqa: E402
from emodarts_core.results.collect import collect  # noqa: E402
from emodarts_core.train.runs import RunDir  # noqa: E402
from emodarts_core.train.selection import rule_estimate, rule_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, help="a reproduce output root")
    args = ap.parse_args()
    groups: dict[str, list] = {}
    left_out = 0
    for row in collect(args.runs):
        run = evaluated_run(row.run_dir)
        est = rule_estimate(RunDir(run).history()["epochs"], str(run))
        if est is None:
            left_out += 1
            continue
        groups.setdefault(row.method, []).append(est)
    if not groups:
        sys.exit(f"no training below {args.runs} can be judged ({left_out} left out: no "
                 "per-speaker validation records, or fewer than two validation speakers)")
    print(rule_table(dict(sorted(groups.items()))))
    print(f"\n{left_out} training(s) left out.")


if __name__ == "__main__":
    main()
