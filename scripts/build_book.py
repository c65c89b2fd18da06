"""Execute the book's notebooks with papermill and build the Jupyter Book into ``_build/html``.

The overlay pattern: ``notebooks/*.ipynb`` in git are clean sources (no outputs). This script

1. copies what the book needs (``_config.yml``, ``_toc.yml``, ``book/``, ``notebooks/``,
   ``emodarts_core/``, ``CITATION.cff``) into a throwaway build tree;
2. runs every notebook listed in ``_toc.yml``, in that order, with papermill and one parameter set
   (``--params book``: the book's run; ``--params smoke``: seconds per notebook), kernel
   ``python3``, an execution timeout, and the notebook's folder as working directory; an unknown
   parameter name is an error here (papermill itself only warns);
3. tags papermill's injected-parameters cell ``remove-cell`` and the ``parameters`` cell
   ``hide-input``, strips papermill's volatile metadata (paths, timestamps, durations) and keeps the
   parameters under ``metadata.emodarts_run``;
4. writes the "which data each page ran on" table into ``book/data_provenance.md`` (from the
   ``Data source:`` line every notebook prints);
5. builds with ``jupyter-book build <tree> -W -n --keep-going`` (execution is off in
   ``_config.yml``: the book shows exactly the papermill outputs) and copies the HTML to
   ``_build/html``; the executed notebooks are kept under ``_build/executed/``.

Any failure (a cell error, a timeout, an unknown parameter, a Sphinx warning) gives a non-zero
exit status and leaves the previous ``_build/html`` untouched.

Usage::

    python scripts/build_book.py --params book            # the main job
    python scripts/build_book.py --params smoke           # quick end-to-end check
    python scripts/build_book.py --params smoke --only 03_search   # some notebooks only
    python scripts/build_book.py --skip-execute           # rebuild prose on _build/executed/
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
PARAM_SETS = ("book", "smoke")
# What the build tree needs; everything else (runs, data, venvs, .git) stays out.
BOOK_INPUTS = ("_config.yml", "_toc.yml", "book", "notebooks", "emodarts_core", "CITATION.cff",
               "benchmarks/records",           # the kept records chapters 6-8 read
               "tests/fixtures/cross-corpus")  # chapter 7's smoke run (synthetic evaluations)
IGNORE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".ipynb_checkpoints", "runs", "data", "_build", ".*", "*.egg-info"
)
# The library's own sub-package data/ is code, not a data folder: copied whole.
IGNORE_IN_LIBRARY = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "*.egg-info")
PROVENANCE_PAGE = Path("book/data_provenance.md")
PROVENANCE_MARKER = "<!-- provenance-table -->"
DATA_LINE = re.compile(r"^Data source:\s*(.+)$", re.MULTILINE)


@dataclass
class NotebookRun:
    """The outcome of one papermill execution."""

    name: str                      # toc path without suffix, e.g. "notebooks/03_search"
    parameters: dict[str, Any]
    seconds: float = 0.0
    ok: bool = False
    error: str = ""
    data_source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
def toc_notebooks(root: Path = ROOT) -> list[str]:
    """Notebook entries of ``_toc.yml`` (paths without suffix) in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            file = node.get("file")
            if file and (root / f"{file}.ipynb").exists():
                found.append(str(file))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def param_file(notebook: str, params: str, root: Path = ROOT) -> Path:
    """``notebooks/params/<set>/<stem>.yaml`` for a toc notebook entry."""
    return root / "notebooks" / "params" / params / f"{Path(notebook).name}.yaml"


def load_params(notebook: str, params: str, root: Path = ROOT) -> dict[str, Any]:
    """The parameter set of one notebook, checked against the notebook's ``parameters`` cell."""
    import papermill as pm

    path = param_file(notebook, params, root)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no '{params}' parameter file for {notebook}.ipynb")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of parameter names to values")
    known = set(pm.inspect_notebook(str(root / f"{notebook}.ipynb")))
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"{path}: unknown parameter(s) {unknown} for {notebook}.ipynb; "
            f"its parameters cell defines {sorted(known)}"
        )
    return values


def default_ravdess(root: Path = ROOT) -> str:
    """RAVDESS location: $EMODARTS_RAVDESS, else ``../shared/data/ravdess`` when it holds RAVDESS
    (the rule of :func:`emodarts_core.data.source.default_ravdess`, which the notebooks share)."""
    from emodarts_core.data.source import default_ravdess as _default

    return _default(root)


# ---------------------------------------------------------------------------------------------
def postprocess(nb: nbformat.NotebookNode, run: NotebookRun, params: str) -> None:
    """Hide papermill's injected cell, fold the parameters cell, drop volatile metadata."""
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if "parameters" in tags and "hide-input" not in tags:
            tags.append("hide-input")
        if not tags:
            del cell.metadata["tags"]
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nb.metadata.pop("papermill", None)
    nb.metadata["emodarts_run"] = {"parameter_set": params, "parameters": run.parameters}


def data_source(nb: nbformat.NotebookNode) -> str:
    """The first ``Data source: ...`` line a notebook printed ("" if none)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                match = DATA_LINE.search(out.get("text", ""))
                if match:
                    return match.group(1).strip()
    return ""


def execute(notebook: str, params: str, tree: Path, timeout: int) -> NotebookRun:
    """Run one notebook from the clean source into the build tree; never raises for cell errors."""
    import papermill as pm

    values = load_params(notebook, params)
    run = NotebookRun(name=notebook, parameters=values)
    src = ROOT / f"{notebook}.ipynb"
    dst = tree / f"{notebook}.ipynb"
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(src), str(dst), parameters=values, kernel_name="python3",
            execution_timeout=timeout, start_timeout=180, cwd=str(dst.parent),
            progress_bar=False, log_output=False,
        )
        run.ok = True
    except Exception as exc:  # papermill wraps cell errors; timeouts and dead kernels differ
        run.error = f"{type(exc).__name__}: {str(exc).strip()[-2000:]}"
    run.seconds = time.perf_counter() - start
    if dst.exists():
        nb = nbformat.read(dst, as_version=4)
        run.data_source = data_source(nb)
        postprocess(nb, run, params)
        nbformat.write(nb, dst)
    return run


def provenance_table(runs: list[NotebookRun], params: str) -> str:
    """Markdown for the provenance page: one row per notebook, plus the machine it ran on."""
    import torch

    import emodarts_core

    lines = [
        f"These pages were executed with the **`{params}`** parameter set "
        f"(`notebooks/params/{params}/`).",
        "",
        "| chapter | data it ran on | parameters | run time |",
        "|---|---|---|---|",
    ]
    for run in runs:
        shown = ", ".join(f"`{k}={v!r}`" for k, v in run.parameters.items()) or "defaults"
        source = run.data_source or "(the notebook printed no data source)"
        lines.append(f"| {{doc}}`/{run.name}` | {source} | {shown} | {run.seconds:.0f} s |")
    lines += [
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores; Python "
        f"{platform.python_version()}, torch {torch.__version__}, emodarts_core "
        f"{emodarts_core.__version__}; built {time.strftime('%Y-%m-%d %H:%M %Z')}.",
    ]
    return "\n".join(lines)


def write_provenance(tree: Path, runs: list[NotebookRun], params: str) -> None:
    page = tree / PROVENANCE_PAGE
    if not page.exists():
        return
    text = page.read_text()
    if PROVENANCE_MARKER not in text:
        raise ValueError(f"{PROVENANCE_PAGE}: marker {PROVENANCE_MARKER!r} is missing")
    page.write_text(text.replace(PROVENANCE_MARKER, provenance_table(runs, params)))


INLINE_SCRIPT = re.compile(r"<script>[^<]*</script>")


def dedupe_inline_scripts(html_root: Path) -> int:
    """Drop repeated identical inline ``<script>`` elements from every page; return pages fixed.

    Jupyter Book 1 emits sphinx-thebe's inline configuration twice per page, and the second
    ``const THEBE_JS_URL`` is a SyntaxError in the browser (even with thebe off).
    """
    fixed = 0
    for page in html_root.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        seen: set[str] = set()

        def keep_first(match: re.Match[str]) -> str:
            if match.group(0) in seen:
                return ""
            seen.add(match.group(0))
            return match.group(0)

        new = INLINE_SCRIPT.sub(keep_first, text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            fixed += 1
    return fixed


def jupyter_book() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if not found:
        raise FileNotFoundError("jupyter-book is not installed (pip install 'jupyter-book==1.0.4.post1')")
    return [found]


def build_html(tree: Path, log: Path) -> bool:
    """``jupyter-book build`` with warnings as errors; the full log goes to ``log``."""
    cmd = jupyter_book() + ["build", str(tree), "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write_text(proc.stdout)
    warnings = [ln for ln in proc.stdout.splitlines() if "WARNING" in ln or "ERROR" in ln]
    if proc.returncode != 0 or warnings:
        print(f"jupyter-book build failed (exit {proc.returncode}); full log: {log}", flush=True)
        for ln in (warnings or proc.stdout.splitlines()[-30:])[:60]:
            print("   ", ln, flush=True)
        return False
    return True


# ---------------------------------------------------------------------------------------------
def prune_stale_executed(executed_dir: Path, stems: list[str]) -> list[Path]:
    """Delete executed copies of notebooks that are not in the book any more (renamed or
    removed since the last build), so that no page is expected for them; returns them."""
    stale = [p for p in sorted(executed_dir.glob("*.ipynb")) if p.stem not in set(stems)]
    for p in stale:
        p.unlink()
    return stale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", choices=PARAM_SETS, default="book", help="parameter set to run")
    ap.add_argument("--ravdess", default=None,
                    help="RAVDESS folder for the notebooks (default: $EMODARTS_RAVDESS, then "
                         "../shared/data/ravdess; none found = the generated corpus)")
    ap.add_argument("--out", type=Path, default=ROOT / "_build", help="output folder (default _build)")
    ap.add_argument("--timeout", type=int, default=1800, help="per-cell execution timeout, seconds")
    ap.add_argument("--only", nargs="*", default=None,
                    help="execute only these notebooks (stems); the others are taken from "
                         "<out>/executed/ when present, else shown unexecuted")
    ap.add_argument("--skip-execute", action="store_true",
                    help="execute nothing: build from the notebooks in <out>/executed/")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the throwaway build tree")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads in the notebooks ($EMODARTS_THREADS; default 1: on a small "
                         "shared machine more threads spin instead of computing)")
    args = ap.parse_args(argv)

    out: Path = args.out.resolve()
    executed_dir = out / "executed"
    ravdess = args.ravdess if args.ravdess is not None else default_ravdess()
    if ravdess:
        os.environ["EMODARTS_RAVDESS"] = str(Path(ravdess).resolve())
    else:
        os.environ.pop("EMODARTS_RAVDESS", None)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ["EMODARTS_THREADS"] = str(args.threads)

    notebooks = toc_notebooks()
    if not notebooks:
        print("no notebooks found in _toc.yml", file=sys.stderr)
        return 1
    if args.only is not None:
        unknown = sorted(set(args.only) - {Path(n).name for n in notebooks})
        if unknown:
            print(f"--only: {unknown} are not notebooks of _toc.yml", file=sys.stderr)
            return 2
    # Fail on bad parameter files before spending minutes on execution.
    try:
        for nb in notebooks:
            load_params(nb, args.params)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    tree = Path(tempfile.mkdtemp(prefix="emodarts-book-"))
    t0 = time.perf_counter()
    print(f"build tree: {tree}\nparameter set: {args.params}; RAVDESS: "
          f"{os.environ.get('EMODARTS_RAVDESS') or 'not found (generated corpus)'}", flush=True)
    try:
        for item in BOOK_INPUTS:
            src = ROOT / item
            if src.is_dir():
                shutil.copytree(src, tree / item, ignore=IGNORE_IN_LIBRARY
                                if item == "emodarts_core" else IGNORE)
            elif src.exists():
                shutil.copy2(src, tree / item)
        executed_dir.mkdir(parents=True, exist_ok=True)
        for stale in prune_stale_executed(executed_dir, [Path(nb).name for nb in notebooks]):
            print(f"removed {stale}: its notebook is no longer in _toc.yml", flush=True)

        runs: list[NotebookRun] = []
        for i, nb in enumerate(notebooks, 1):
            stem = Path(nb).name
            cached = executed_dir / f"{stem}.ipynb"
            if args.skip_execute or (args.only is not None and stem not in args.only):
                if cached.exists():
                    shutil.copy2(cached, tree / f"{nb}.ipynb")
                    old = nbformat.read(cached, as_version=4)
                    runs.append(NotebookRun(nb, old.metadata.get("emodarts_run", {}).get("parameters", {}),
                                            ok=True, data_source=data_source(old)))
                    print(f"[{i}/{len(notebooks)}] {stem}: reused {cached}", flush=True)
                else:
                    print(f"[{i}/{len(notebooks)}] {stem}: not executed (no {cached})", flush=True)
                continue
            print(f"[{i}/{len(notebooks)}] {stem}: executing ...", flush=True)
            run = execute(nb, args.params, tree, args.timeout)
            runs.append(run)
            if (tree / f"{nb}.ipynb").exists():
                shutil.copy2(tree / f"{nb}.ipynb", cached)
            status = "ok" if run.ok else "FAILED"
            print(f"[{i}/{len(notebooks)}] {stem}: {status} in {run.seconds:.1f} s"
                  f"{' — ' + run.data_source if run.data_source else ''}", flush=True)
            if not run.ok:
                print(f"    {run.error}\n    executed copy: {cached}", flush=True)
        failed = [r for r in runs if not r.ok]
        if failed:
            print(f"{len(failed)} notebook(s) failed: {[Path(r.name).name for r in failed]}; "
                  "the book was not built", flush=True)
            return 1

        write_provenance(tree, runs, args.params)
        print("building the book (jupyter-book build -W -n --keep-going) ...", flush=True)
        tb = time.perf_counter()
        out.mkdir(parents=True, exist_ok=True)
        if not build_html(tree, out / "book-build.log"):
            return 1
        html = out / "html"
        if html.exists():
            shutil.rmtree(html)
        shutil.copytree(tree / "_build" / "html", html)
        dedupe_inline_scripts(html)
        (out / "build-summary.json").write_text(json.dumps({
            "params": args.params,
            "ravdess": os.environ.get("EMODARTS_RAVDESS", ""),
            "notebooks": [{"name": r.name, "seconds": round(r.seconds, 1), "data_source": r.data_source,
                           "parameters": r.parameters} for r in runs],
            "build_seconds": round(time.perf_counter() - tb, 1),
            "total_seconds": round(time.perf_counter() - t0, 1),
        }, indent=2))
        print(f"book built in {time.perf_counter() - tb:.1f} s (total {time.perf_counter() - t0:.1f} s): "
              f"{html / 'index.html'}", flush=True)
        return 0
    finally:
        if args.keep_tmp:
            print(f"kept build tree {tree}")
        else:
            shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
