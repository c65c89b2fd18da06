"""The chapter notebooks: clean sources, real parameters, a safe Colab cell, and smoke runs.

The smoke runs execute every notebook with papermill exactly as the book build does (kernel
``python3``, the notebook folder's copy as working directory, ``notebooks/params/smoke``) and fail
on any cell error.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import yaml

import emodarts_core

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*\s*(:[^=]+)?=")


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _parameters_cell(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"expected exactly one cell tagged 'parameters', found {len(cells)}"
    return cells[0]


def test_every_toc_notebook_exists_and_vice_versa():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"file:\s*notebooks/(\S+)", toc))
    assert listed == set(IDS) and len(IDS) == 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_source_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in _code_cells(nb):
        assert cell.outputs == [], f"{path.name}: committed outputs in a code cell"
        assert cell.execution_count is None
    assert "papermill" not in nb.metadata
    assert "widgets" not in nb.metadata
    _parameters_cell(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_colab_cell_installs_only_the_pinned_library(path):
    nb = nbformat.read(path, as_version=4)
    first = _code_cells(nb)[0].source
    assert '"google.colab" in sys.modules' in first
    installs = [ln.strip() for ln in first.splitlines() if "pip install" in ln]
    assert installs, "the Colab cell installs nothing"
    # Every install line sits under the Colab guard (indented below it).
    guard = first.index('"google.colab" in sys.modules')
    assert all(first.index(ln) > guard and first.split(ln)[0].endswith("    ") for ln in installs)
    repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    for ln in installs:
        assert f"emodarts-core @ git+https://github.com/{repo}@v{emodarts_core.__version__}" in ln
        assert not re.search(r"\b(torch|torchaudio|numpy)\b", ln)
        assert not re.search(r"(\s-U\b|--upgrade|--force-reinstall)", ln)
    assert f'check_version("{emodarts_core.__version__}")' in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_colab_badge_points_at_this_notebook_on_the_configured_branch(path):
    nb = nbformat.read(path, as_version=4)
    repo = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    url = (f"https://colab.research.google.com/github/{repo}/blob/"
           f"{CONFIG['repository']['branch']}/notebooks/{path.name}")
    assert any(url in c.source for c in nb.cells if c.cell_type == "markdown")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_papermill_reads_every_parameter_line(path):
    """papermill silently skips a line it cannot parse (e.g. '=' inside the comment)."""
    cell = _parameters_cell(nbformat.read(path, as_version=4))
    lines = [ln for ln in cell.source.splitlines() if ASSIGNMENT.match(ln)]
    found = pm.inspect_notebook(str(path))
    assert [ln.split(":")[0].split("=")[0].strip() for ln in lines] == list(found)
    for name, info in found.items():
        assert info["inferred_type_name"] != "None", f"{name} has no type annotation"
        assert info["help"], f"{name} has no comment"


@pytest.mark.parametrize("params", ["smoke", "book"])
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameter_files_name_real_parameters(path, params):
    pfile = NB_DIR / "params" / params / f"{path.stem}.yaml"
    values = yaml.safe_load(pfile.read_text())
    assert isinstance(values, dict) and values
    unknown = set(values) - set(pm.inspect_notebook(str(path)))
    assert not unknown, f"{pfile.name}: not parameters of {path.name}: {sorted(unknown)}"


def test_no_stray_parameter_files():
    for params in ("smoke", "book"):
        stems = {p.stem for p in (NB_DIR / "params" / params).glob("*.yaml")}
        assert stems == set(IDS), params


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_smoke_run(path, tmp_path, monkeypatch):
    monkeypatch.delenv("EMODARTS_RAVDESS", raising=False)
    work = tmp_path / "notebooks"
    work.mkdir()
    out = work / path.name
    params = yaml.safe_load((NB_DIR / "params" / "smoke" / f"{path.stem}.yaml").read_text())
    pm.execute_notebook(str(path), str(out), parameters=params, kernel_name="python3",
                        execution_timeout=300, start_timeout=120, cwd=str(work),
                        progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in _code_cells(nb) for o in c.outputs
                   if o.output_type == "stream")
    assert "Data source: generated" in text
    errors = [o for c in _code_cells(nb) for o in c.outputs if o.output_type == "error"]
    assert not errors
    artifacts = ROOT / "_build" / "test-notebooks"
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy2(out, artifacts / path.name)
