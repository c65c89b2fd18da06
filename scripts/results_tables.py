"""The results tables of ``benchmarks/RESULTS.md``, rebuilt from ``benchmarks/records``.

Every block of RESULTS.md that comes from the records sits between a marker line
``<!-- records: NAME -->`` and ``<!-- /records -->``; NAME is a key of :data:`TABLES`, whose
function builds the block's text from the committed records with the library's report functions
(no number is typed). ``python scripts/results_tables.py`` rewrites every marked block in place;
``--check`` changes nothing and exits 1 when a block differs from what the records give
(``tests/test_results_doc.py`` runs the same check, and checks the README's quoted figures).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from emodarts_core.results.collect import collect, summarize  # noqa: E402
from emodarts_core.results.evidence_tables import (_mean_pm_std, ensemble_records, ensemble_table,
                                                   head_to_head, setting_effects)

RECORDS = ROOT / "benchmarks" / "records"
DOC = ROOT / "benchmarks" / "RESULTS.md"
BLOCK = re.compile(r"(<!-- records: (?P<name>[\w-]+) -->\n)"
                   r"(?P<body>(?:(?!<!-- records:).)*?)(<!-- /records -->)", re.S)

# The batches, by what they are (directories below benchmarks/records).
WHOLE_JOBS = "ravdess-cpu-speaker-norm"                       # the evidence table's batch
WIDE = "ravdess-cpu-speaker-norm-init-channels-8"
FIT_VALID = "ravdess-cpu-speaker-norm-fit-valid"
ENSEMBLES = {"4 channels": "ravdess-cpu-speaker-norm-ensembles/whole-jobs",
             "8 channels": "ravdess-cpu-speaker-norm-ensembles/init-channels-8",
             "`fit_valid`": "ravdess-cpu-speaker-norm-ensembles/fit-valid"}
METHOD_NAMES = {"emodarts": "emodarts (searched)", "random": "random search",
                "cnn_lstm": "CNN-LSTM", "cnn_lstm+head_norm": "CNN-LSTM + head norm"}


def _rows(root: Path, name: str) -> list:
    return collect(root / name)


def evidence_summary(root: Path = RECORDS) -> str:
    """Per method, test UA over the jobs of the whole-job batch and of its two retrainings."""
    batches = {"4 channels (the profile)": WHOLE_JOBS, "8 channels (`train.init_channels=8`)": WIDE,
               "validation speakers trained on (`train.fit_valid=true`)": FIT_VALID}
    means = {label: {s.method: s for s in summarize(_rows(root, name))}
             for label, name in batches.items()}
    lines = ["| method | " + " | ".join(batches) + " |", "|---|" + "---|" * len(batches)]
    for method, shown in METHOD_NAMES.items():
        cells = [f"{m[method].ua_mean:.2f} ± {m[method].ua_std:.2f} ({m[method].n_runs})"
                 if method in m else "–" for m in means.values()]
        lines.append(f"| {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ensemble_summary(root: Path = RECORDS) -> str:
    """Per method, the three-seed ensembles' test UA over the folds, per batch."""
    recs = {label: ensemble_records(root / path) for label, path in ENSEMBLES.items()}
    lines = ["| method | " + " | ".join(recs) + " |", "|---|" + "---|" * len(recs)]
    for method, shown in METHOD_NAMES.items():
        cells = []
        for by_method in recs.values():
            folds = by_method.get(method)
            cells.append("–" if not folds else
                         f"{_mean_pm_std([100 * m['ua'] for m in folds.values()])} ({len(folds)})")
        lines.append(f"| {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def whole_jobs(root: Path = RECORDS) -> str:
    rows = _rows(root, WHOLE_JOBS)
    pairs = [("emodarts", "random"), ("emodarts", "cnn_lstm"), ("emodarts", "cnn_lstm+head_norm"),
             ("random", "cnn_lstm"), ("random", "cnn_lstm+head_norm")]
    return "```\n" + "\n".join(head_to_head(rows, a, b) for a, b in pairs) + "\n```"


def ensembles(root: Path = RECORDS) -> str:
    """Per batch, emodarts' three-seed ensembles against random search's, fold by fold, and in
    how many folds each method's ensemble was ahead of its own members' mean."""
    lines = []
    for label, path in ENSEMBLES.items():
        against = ensemble_table(root / path, per_fold=False).split("\n")[-1]   # its last line
        ahead = []
        for method, folds in ensemble_records(root / path).items():
            gains = [f["ua"] - sum(m["ua"] for m in f["members"]) / len(f["members"])
                     for f in folds.values()]
            ahead.append(f"{method} {sum(g > 0 for g in gains)} of {len(gains)}")
        lines.append(f"- {label}: {against}; ensemble ahead of its members' mean in: "
                     + ", ".join(ahead) + " folds")
    return "\n".join(lines)


CNN_LSTM_BATCHES = {"`train.fit_valid=true`": FIT_VALID,
                    "masks": "ravdess-cpu-speaker-norm-cnn-lstm-masks",
                    "masks, lr 0.025": "ravdess-cpu-speaker-norm-cnn-lstm-masks-lr-0.025",
                    "masks, lr 0.01": "ravdess-cpu-speaker-norm-cnn-lstm-masks-lr-0.01"}


def _at_chance(rows: list, method: str) -> int:
    """How many of ``method``'s runs tested at chance (12.50 % UA for RAVDESS's 8 classes)."""
    return sum(f"{100 * r.ua:.2f}" == "12.50" for r in rows if r.method == method)


def cnn_lstm(root: Path = RECORDS) -> str:
    """The CNN-LSTMs' batches against the whole jobs, paired job by job, with how many runs
    before and after tested at chance."""
    whole = _rows(root, WHOLE_JOBS)
    batches = {label: _rows(root, name) for label, name in CNN_LSTM_BATCHES.items()}
    table = setting_effects([(label, whole, rows) for label, rows in batches.items()],
                            methods=("cnn_lstm", "cnn_lstm+head_norm")).split("\n")
    lines = [table[0] + " at chance (12.50 % UA): before / after |", table[1] + "---|"]
    for line in table[2:]:
        label, method = (cell.strip() for cell in line.split("|")[1:3])
        lines.append(f"{line} {_at_chance(whole, method)} / {_at_chance(batches[label], method)} |")
    return "\n".join(lines)


GATE = "gate-ravdess"                     # benchmarks/search_gate.py --export of the gate


def gate(root: Path = RECORDS) -> str:
    """The RAVDESS gate's table (emodarts_core.search.quality.gate_table), one row per setting
    that has searches on record, in the plan's order."""
    from emodarts_core.search.quality import gate_table, summarise_gate

    return gate_table(summarise_gate(root / GATE))


CROSS_CORPUS = "cross-corpus/speaker"     # benchmarks/cross_corpus.py --out, primary grid


def cross_corpus(root: Path = RECORDS) -> str:
    """Every direction of the cross-corpus grid in one table: chance, the in-corpus UA, the
    fall (emodarts_core.results.cross_corpus.summary_table)."""
    from emodarts_core.results import cross_corpus as xc

    return xc.summary_table(xc.load_evaluations(root / CROSS_CORPUS))


CROSS_CORPUS_ARMS = "cross-corpus"       # one benchmarks/cross_corpus.py --out per arm below it


def cross_corpus_arms(root: Path = RECORDS) -> str:
    """The cross-corpus plan's arms side by side (per speaker, training side, per corpus, the
    2-s cut), with each arm against its reference by the plan's rule
    (emodarts_core.results.cross_corpus.arms_table)."""
    from emodarts_core.results import cross_corpus as xc

    return xc.arms_table(xc.load_arms(root / CROSS_CORPUS_ARMS))


ARCHITECTURE_EFFECT = "architecture-effect"   # benchmarks/architecture_effect.py --export


def architecture_effect(root: Path = RECORDS) -> str:
    """Genotypes x seeds on one fold: the genotype's share of a brief training's score and the
    searched genotypes against random ones (emodarts_core.results.architecture_effect)."""
    from emodarts_core.results.architecture_effect import effect_table, load_architecture_scores

    return effect_table(load_architecture_scores(root / ARCHITECTURE_EFFECT))


def quoted_figures(root: Path = RECORDS) -> dict[str, str]:
    """The figures README.md quotes, by what they are, as the records give them (the README's
    ``mean ± std`` and ``p = ...`` figures must be among these: tests/test_results_doc.py).
    Paired comparisons take the fold as the unit (each fold the mean of its seeds, which share
    its test speakers); the job counts are descriptive."""
    from emodarts_core.results.evidence_tables import (format_p, paired_folds, paired_jobs,
                                                       paired_p_value)

    rows = _rows(root, WHOLE_JOBS)
    means = {s.method: f"{s.ua_mean:.2f} ± {s.ua_std:.2f}" for s in summarize(rows)}
    ens = ensemble_records(root / ENSEMBLES["4 channels"])
    out = {f"{m} UA": v for m, v in means.items()}
    for other in ("random", "cnn_lstm"):
        folds = [a - b for a, b in paired_folds(rows, "emodarts", other).values()]
        jobs = [a - b for a, b in paired_jobs(rows, "emodarts", other).values()]
        out[f"emodarts ahead of {other}"] = f"{sum(d > 0 for d in folds)} of {len(folds)} folds"
        out[f"emodarts ahead of {other}, jobs"] = f"{sum(d > 0 for d in jobs)} of {len(jobs)} jobs"
        out[f"emodarts - {other} p"] = f"p = {format_p(paired_p_value(folds))}"
        out[f"emodarts - {other} (folds)"] = _mean_pm_std(folds, signed=True)
    for m in ("emodarts", "random"):
        out[f"{m} ensemble UA"] = _mean_pm_std([100 * x["ua"] for x in ens[m].values()])
    return out


TABLES: dict[str, Callable[[Path], str]] = {
    "evidence-summary": evidence_summary,
    "ensemble-summary": ensemble_summary,
    "whole-jobs": whole_jobs,
    "ensembles": ensembles,
    "cnn-lstm": cnn_lstm,
    "gate-ravdess": gate,
    "cross-corpus": cross_corpus,
    "cross-corpus-arms": cross_corpus_arms,
    "architecture-effect": architecture_effect,
}


def render(text: str, root: Path = RECORDS) -> str:
    """``text`` with every marked block rebuilt from the records under ``root``."""
    def rebuild(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise KeyError(f"RESULTS.md marks an unknown block {name!r}; known: {sorted(TABLES)}")
        return match.group(1) + TABLES[name](root) + "\n" + match.group(4)
    markers = re.findall(r"^<!-- records: [\w-]+ -->$", text, re.M)
    if len(markers) != len(BLOCK.findall(text)):
        raise ValueError(f"{len(markers)} records markers but {len(BLOCK.findall(text))} closed "
                         "blocks: every '<!-- records: NAME -->' needs its '<!-- /records -->'")
    return BLOCK.sub(rebuild, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    new = render(text)
    if args.check:
        stale = [m["name"] for m, n in zip(BLOCK.finditer(text), BLOCK.finditer(new)) if m["body"] != n["body"]]
        if stale:
            print(f"stale blocks in {DOC.name}: {', '.join(stale)} (run scripts/results_tables.py)")
            return 1
        print(f"{DOC.name}: every marked block matches the records")
        return 0
    DOC.write_text(new)
    print(f"rewrote {len(BLOCK.findall(text))} blocks of {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
