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

from emodarts_core.report import (_mean_pm_std, ensemble_records,  # noqa: E402
                                  ensemble_table, head_to_head, seed_table, selection_table,
                                  setting_effects)
from emodarts_core.reproduce import collect, format_table, summarize  # noqa: E402

RECORDS = ROOT / "benchmarks" / "records"
DOC = ROOT / "benchmarks" / "RESULTS.md"
BOOK_PARAMS = ROOT / "notebooks" / "params" / "book" / "06_evidence.yaml"   # its settings list
BLOCK = re.compile(r"(<!-- records: (?P<name>[\w-]+) -->\n)"
                   r"(?P<body>(?:(?!<!-- records:).)*?)(<!-- /records -->)", re.S)

# The batches, by what they are (directories below benchmarks/records).
WHOLE_JOBS = "ravdess-cpu-speaker-norm"                       # the evidence table's batch
WIDE = "ravdess-cpu-speaker-norm-init-channels-8"
FIT_VALID = "ravdess-cpu-speaker-norm-fit-valid"
ENSEMBLES = {"4 channels": "ravdess-cpu-speaker-norm-ensembles/whole-jobs",
             "8 channels": "ravdess-cpu-speaker-norm-ensembles/init-channels-8",
             "`fit_valid`": "ravdess-cpu-speaker-norm-ensembles/fit-valid"}
DEFAULT_FEATURES = "ravdess-cpu"                              # the first grid, default features
METHOD_NAMES = {"emodarts": "emodarts (searched)", "random": "random search",
                "cnn_lstm": "CNN-LSTM", "cnn_lstm+head_norm": "CNN-LSTM + head norm"}


def _rows(root: Path, name: str) -> list:
    return collect(root / name)


def setting_comparisons(root: Path = RECORDS) -> list[tuple[str, list, list]]:
    """``(label, rows before, rows after)`` for every setting changed on the same jobs: the
    ``settings`` of chapter 6's book parameters (one list for the book and this document)."""
    import yaml

    from emodarts_core.records import resolve

    settings = yaml.safe_load(BOOK_PARAMS.read_text())["settings"]
    return [(label, collect(resolve(before, root)), collect(resolve(after, root)))
            for label, (before, after) in settings.items()]


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


def seeds(root: Path = RECORDS) -> str:
    parts = []
    for label, name in (("4 channels (the whole jobs)", WHOLE_JOBS), ("8 channels", WIDE)):
        parts.append(f"{label}, test UA:\n\n" + seed_table(_rows(root, name), "emodarts", "random"))
    return "\n\n".join(parts)


def ensembles(root: Path = RECORDS) -> str:
    first, *others = ENSEMBLES.items()
    lines = [f"{first[0]}, test UA:", "", ensemble_table(root / first[1], per_fold=False), ""]
    for label, path in others:         # its last line: emodarts' ensemble against random's
        lines.append(f"- {label}: " + ensemble_table(root / path, per_fold=False).split("\n")[-1])
    return "\n".join(lines)


def settings(root: Path = RECORDS) -> str:
    return setting_effects(setting_comparisons(root))


def cnn_lstm_masks(root: Path = RECORDS) -> str:
    whole = _rows(root, WHOLE_JOBS)
    return setting_effects([
        ("masks", whole, _rows(root, "ravdess-cpu-speaker-norm-cnn-lstm-masks")),
        ("masks, lr 0.025", whole, _rows(root, "ravdess-cpu-speaker-norm-cnn-lstm-masks-lr-0.025")),
        ("masks, lr 0.01", whole, _rows(root, "ravdess-cpu-speaker-norm-cnn-lstm-masks-lr-0.01"))],
        methods=("cnn_lstm",))


def stuck_at_chance(root: Path = RECORDS) -> str:
    """How many CNN-LSTM trainings ended at chance (test UA 12.50 % for 8 classes) per batch."""
    lines = ["| batch | method | runs | at chance (12.50 % UA) |", "|---|---|---|---|"]
    for name in (WHOLE_JOBS, FIT_VALID, "ravdess-cpu-speaker-norm-cnn-lstm-masks",
                 "ravdess-cpu-speaker-norm-cnn-lstm-masks-lr-0.025",
                 "ravdess-cpu-speaker-norm-cnn-lstm-masks-lr-0.01"):
        rows = _rows(root, name)
        for method in ("cnn_lstm", "cnn_lstm+head_norm"):
            mine = [r for r in rows if r.method == method]
            if mine:
                stuck = sum(f"{100 * r.ua:.2f}" == "12.50" for r in mine)
                lines.append(f"| `{name}` | {method} | {len(mine)} | {stuck} |")
    return "\n".join(lines)


def selection(root: Path = RECORDS) -> str:
    return selection_table(_rows(root, "ravdess-cpu-select-last"))


def default_features(root: Path = RECORDS) -> str:
    rows = _rows(root, DEFAULT_FEATURES)
    return (format_table(summarize(rows), with_paper=False) + "\n\n"
            + head_to_head(rows, "emodarts", "random"))


def quoted_figures(root: Path = RECORDS) -> dict[str, str]:
    """The figures README.md quotes, by what they are, as the records give them (the README's
    ``mean ± std`` and ``p = ...`` figures must be among these: tests/test_results_doc.py)."""
    from emodarts_core.report import paired_jobs, paired_p_value, format_p

    rows = _rows(root, WHOLE_JOBS)
    means = {s.method: f"{s.ua_mean:.2f} ± {s.ua_std:.2f}" for s in summarize(rows)}
    both = paired_jobs(rows, "emodarts", "random")
    diffs = [a - b for a, b in both.values()]
    ens = ensemble_records(root / ENSEMBLES["4 channels"])
    out = {f"{m} UA": v for m, v in means.items()}
    out["emodarts ahead of random"] = f"{sum(d > 0 for d in diffs)} of {len(diffs)} jobs"
    out["emodarts - random p"] = f"p = {format_p(paired_p_value(diffs))}"
    for m in ("emodarts", "random"):
        out[f"{m} ensemble UA"] = _mean_pm_std([100 * x["ua"] for x in ens[m].values()])
    return out


TABLES: dict[str, Callable[[Path], str]] = {
    "evidence-summary": evidence_summary,
    "ensemble-summary": ensemble_summary,
    "whole-jobs": whole_jobs,
    "seeds": seeds,
    "ensembles": ensembles,
    "settings": settings,
    "cnn-lstm-masks": cnn_lstm_masks,
    "stuck-at-chance": stuck_at_chance,
    "selection": selection,
    "default-features": default_features,
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
