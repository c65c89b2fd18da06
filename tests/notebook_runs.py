"""One smoke execution of every chapter notebook per test session, shared by test_notebooks.py
(cell errors, outputs) and test_book.py (the book built from these very notebooks).

The notebooks run exactly as ``scripts/build_book.py --params smoke`` runs them: in ``_toc.yml``
order, in one throwaway tree (so chapter 4 finds chapter 3's search, as in the book), with the
``smoke`` parameter files, kernel ``python3``, the notebook folder as working directory, the
kept ``benchmarks/records`` beside it, the generated corpus (``EMODARTS_RAVDESS`` unset) and the
build's post-processing.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """Import ``scripts/<name>.py`` as a module (once)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory) -> dict[str, tuple[object, Path]]:
    """``{stem: (NotebookRun, executed notebook path)}`` for every notebook of ``_toc.yml``."""
    build_book = load_script("build_book")
    tree = tmp_path_factory.mktemp("smoke-book")
    (tree / "notebooks").mkdir()
    # the kept records, where build_book's tree has them (chapter 6's smoke run reads the
    # committed ensemble evaluations, which need no audio)
    shutil.copytree(ROOT / "benchmarks" / "records", tree / "benchmarks" / "records",
                    ignore=build_book.IGNORE)
    # chapter 7's smoke run reads the synthetic cross-corpus evaluations
    fixture = "tests/fixtures/cross-corpus"
    shutil.copytree(ROOT / fixture, tree / fixture, ignore=build_book.IGNORE)
    saved = os.environ.pop("EMODARTS_RAVDESS", None)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ.setdefault("EMODARTS_THREADS", os.environ.get("EMODARTS_TEST_THREADS", "1"))
    runs = {}
    try:
        for nb in build_book.toc_notebooks():
            run = build_book.execute(nb, "smoke", tree, timeout=300)
            runs[Path(nb).name] = (run, tree / f"{nb}.ipynb")
    finally:
        if saved is not None:
            os.environ["EMODARTS_RAVDESS"] = saved
    artifacts = ROOT / "_build" / "test-notebooks"
    artifacts.mkdir(parents=True, exist_ok=True)
    for _, path in runs.values():
        if path.exists():
            shutil.copy2(path, artifacts / path.name)
    return runs
