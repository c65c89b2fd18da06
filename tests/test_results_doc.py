"""benchmarks/RESULTS.md and the README agree with the committed records (benchmarks/records).

Every results block of RESULTS.md between ``<!-- records: NAME -->`` and ``<!-- /records -->`` is
rebuilt from the records by ``scripts/results_tables.py`` and must equal what the document
prints, to the printed precision; the README's quoted ``mean ± std`` and ``p = ...`` figures
must be among those the records give. Needs no audio and no ../shared: the records are in git.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from notebook_runs import load_script

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "benchmarks" / "RESULTS.md"
SESSION_WORDS = re.compile(r"\b(first|second|third|[a-z]+th|[a-z]+teenth) session", re.I)


@pytest.fixture(scope="module")
def tables():
    return load_script("results_tables")


def test_every_marked_block_matches_its_records(tables):
    text = DOC.read_text()
    blocks = list(tables.BLOCK.finditer(text))
    assert {m["name"] for m in blocks} == set(tables.TABLES), "a TABLES entry is not in RESULTS.md"
    rebuilt = tables.render(text)
    for old, new in zip(blocks, tables.BLOCK.finditer(rebuilt)):
        assert old["body"] == new["body"], (f"RESULTS.md block {old['name']!r} differs from the "
                                           "records: run python scripts/results_tables.py")


def test_a_changed_record_is_caught(tables, tmp_path):
    """The check can fail: one emodarts run's UA changed in a copy of the records changes the
    evidence table that the document prints."""
    root = tmp_path / "records"
    shutil.copytree(ROOT / "benchmarks" / "records" / tables.WHOLE_JOBS, root / tables.WHOLE_JOBS)
    metrics = root / tables.WHOLE_JOBS / "ravdess" / "fold0" / "seed0" / "train" / "metrics.json"
    text = metrics.read_text()
    ua = re.search(r'"ua": ([0-9.]+)', text)
    metrics.write_text(text.replace(ua.group(0), f'"ua": {float(ua.group(1)) - 0.05}', 1))
    original = tables.whole_jobs(ROOT / "benchmarks" / "records")
    assert tables.whole_jobs(root) != original


def test_every_results_table_of_the_evidence_is_generated():
    """Every pipe table from the evidence section on sits inside a records block."""
    text = DOC.read_text()
    evidence = text[text.index("## The RAVDESS evidence"):text.index("## Cross-corpus")]
    outside = re.sub(r"<!-- records: [\w-]+ -->\n.*?<!-- /records -->", "", evidence, flags=re.S)
    outside = re.sub(r"```.*?```", "", outside, flags=re.S)          # commands, not tables
    assert not re.search(r"^\|.*\|\s*$", outside, re.M), "a typed table in the evidence section"


def test_an_unclosed_block_is_an_error(tables):
    with pytest.raises(ValueError, match="closed"):
        tables.render("<!-- records: seeds -->\n| a |\n")


def test_readme_quotes_only_figures_the_records_give(tables):
    """Every quoted mean ± std, p-value and "k of n folds / jobs" count is one the records give,
    the paired ones at the fold level (:func:`quoted_figures`)."""
    readme = (ROOT / "README.md").read_text()
    figures = tables.quoted_figures()
    flat = re.sub(r"\s+", " ", readme)                    # a figure may wrap across lines
    quoted = (re.findall(r"[+-]?\d+\.\d\d ± \d+\.\d\d", flat)
              + re.findall(r"p = [0-9.e-]+\d", flat) + re.findall(r"\d+ of \d+ (?:folds|jobs)", flat))
    assert quoted, "the README quotes no figure (then this test checks nothing)"
    for q in quoted:
        assert q in figures.values(), f"README quotes {q!r}, which the records do not give"
    for what in ("emodarts UA", "random UA", "emodarts ensemble UA", "emodarts ahead of random",
                 "emodarts - random p"):
        assert figures[what] in flat, f"README no longer quotes {what} ({figures[what]})"


def test_the_product_is_not_a_diary():
    """No "the sixteenth session's code" in the product: what and when by topic, date or commit."""
    patterns = ("book/*.md", "notebooks/*.ipynb", "benchmarks/*.md", "benchmarks/results/*.md",
                "benchmarks/*.py",
                "benchmarks/*.sh", "scripts/*.py", "emodarts_core/**/*.py")
    paths = [ROOT / "README.md"] + [p for pattern in patterns for p in sorted(ROOT.glob(pattern))]
    assert len(paths) > 30
    for path in paths:
        found = SESSION_WORDS.search(path.read_text())
        assert not found, f"{path.name}: {found.group(0)!r}"
    assert "## Search quality (issue 25)" in DOC.read_text()
    assert "## Bad input" in DOC.read_text()


def test_results_is_a_short_document():
    """RESULTS.md gives the current numbers in a few screens (issue 26: about 250 lines); the
    long tables and commands live in benchmarks/results/, and every file it links there exists."""
    text = DOC.read_text()
    assert len(text.splitlines()) <= 270, "RESULTS.md has grown: move detail to benchmarks/results/"
    linked = set(re.findall(r"benchmarks/results/[\w.-]+\.md", text))
    assert linked, "RESULTS.md links no detail document"
    for path in linked:
        assert (ROOT / path).is_file(), f"RESULTS.md links {path}, which does not exist"
