"""The library's layering holds: each sub-package imports only those below it (import-linter
contracts in ``.importlinter``), no module takes part in an import cycle, and the job notebook
that batches run ships inside the package."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("common", "data", "fast", "nas", "train", "search", "results", "batch")
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--config", str(root / ".importlinter"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True)


def test_the_layer_contracts_are_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The check can fail: the data layer importing the batch layer is reported."""
    shutil.copytree(ROOT / "emodarts_core", tmp_path / "emodarts_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    audio = tmp_path / "emodarts_core" / "data" / "audio.py"
    audio.write_text(audio.read_text() + "\nimport emodarts_core.batch.reproduce  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "emodarts_core.data.audio -> emodarts_core.batch.reproduce" in result.stdout


def _cycles(graph) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in modules:
        if m not in index:
            visit(m)
    return found


def test_no_import_cycles():
    graph = grimp.build_graph("emodarts_core", cache_dir=None)
    assert len(graph.modules) > 50
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    graph = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(m)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.c", imported="p.a")
    assert _cycles(graph) == [{"p.a", "p.b"}]


def test_each_subpackage_says_what_it_holds_and_may_import():
    for name in SUBPACKAGES:
        doc = (ROOT / "emodarts_core" / name / "__init__.py").read_text()
        assert doc.startswith('"""') and "May import" in doc, name
        modules = sorted(p.stem for p in (ROOT / "emodarts_core" / name).glob("*.py")
                         if p.stem != "__init__")
        missing = [m for m in modules if f"``{m}``" not in doc and f"``{m}_*``" not in doc]
        assert not missing, f"{name}/__init__.py does not name {missing}"


def test_the_job_notebook_ships_in_the_wheel(tmp_path):
    """``reproduce`` runs from a pip install: the wheel carries batch/job.ipynb."""
    from emodarts_core.batch.reproduce import DEFAULT_NOTEBOOK

    assert DEFAULT_NOTEBOOK.is_file() and DEFAULT_NOTEBOOK.parent.name == "batch"
    build = tmp_path / "src"
    shutil.copytree(ROOT, build, ignore=shutil.ignore_patterns(
        ".git", "_build", "benchmarks", "notebooks", "tests", "book", "__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(build)], check=True,
                   capture_output=True)
    wheel = next((tmp_path / "dist").glob("*.whl"))
    assert "emodarts_core/batch/job.ipynb" in zipfile.ZipFile(wheel).namelist()
