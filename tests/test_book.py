"""The book pipeline: build_book's notebook post-processing, check_book's browser checks on small
hand-made pages, and (slow) the whole smoke build checked in headless Chromium."""
from __future__ import annotations

import base64
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from notebook_runs import load_script, smoke_runs  # noqa: F401  (session fixture)

ROOT = Path(__file__).resolve().parents[1]


build_book = load_script("build_book")
check_book = load_script("check_book")
needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None,
                                    reason="chromium is not installed (apt-get install -y chromium)")


def _png(w: int = 40, h: int = 30) -> bytes:
    raw = b"".join(b"\x00" + bytes([200, 30, 30]) * w for _ in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------------------------
def test_toc_order_is_the_execution_order():
    assert [Path(n).name for n in build_book.toc_notebooks()] == [
        "01_features", "02_supernet", "03_search", "04_genotypes", "05_experiments", "06_evidence",
        "07_cross_corpus", "08_appendix_records"]


def test_postprocess_hides_injected_cell_and_drops_volatile_metadata():
    nb = new_notebook(cells=[
        new_code_cell("a = 1", metadata={"tags": ["parameters"], "papermill": {"duration": 1.0}}),
        new_code_cell("a = 2", metadata={"tags": ["injected-parameters"],
                                         "execution": {"iopub.status.idle": "2026-01-01"}}),
        new_code_cell("print(a)", outputs=[new_output("stream", name="stdout",
                                                      text="Data source: generated — synthetic\n")]),
    ])
    nb.metadata["papermill"] = {"input_path": "/tmp/x", "start_time": "now"}
    run = build_book.NotebookRun(name="notebooks/x", parameters={"a": 2})
    build_book.postprocess(nb, run, "smoke")
    assert nb.cells[0].metadata["tags"] == ["parameters", "hide-input"]
    assert nb.cells[1].metadata["tags"] == ["injected-parameters", "remove-cell"]
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in nb.cells)
    assert "papermill" not in nb.metadata
    assert nb.metadata["emodarts_run"] == {"parameter_set": "smoke", "parameters": {"a": 2}}
    assert build_book.data_source(nb) == "generated — synthetic"


def test_unknown_parameter_is_an_error(tmp_path):
    root = tmp_path
    (root / "notebooks" / "params" / "smoke").mkdir(parents=True)
    nb = new_notebook(cells=[new_code_cell("epochs: int = 3  # epochs", metadata={"tags": ["parameters"]})])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "notebooks" / "n.ipynb")
    (root / "notebooks" / "params" / "smoke" / "n.yaml").write_text("epochs: 1\n")
    assert build_book.load_params("notebooks/n", "smoke", root) == {"epochs": 1}
    (root / "notebooks" / "params" / "smoke" / "n.yaml").write_text("epoch: 1\n")
    with pytest.raises(ValueError, match="unknown parameter"):
        build_book.load_params("notebooks/n", "smoke", root)


def test_dedupe_inline_scripts(tmp_path):
    page = tmp_path / "p.html"
    page.write_text("<head><script>const X = 1;</script><script src='a.js'></script>"
                    "<script>const X = 1;</script><script>const Y = 2;</script></head>")
    assert build_book.dedupe_inline_scripts(tmp_path) == 1
    assert page.read_text().count("const X = 1;") == 1 and "const Y = 2;" in page.read_text()


def test_expectations_from_executed_notebooks(tmp_path):
    anim = new_output("display_data", data={"text/html": '<div class="animation">x</div>',
                                            "text/plain": "<Animation>"})
    graph = new_output("display_data", data={"image/svg+xml": "<svg/>", "text/plain": "graph"})
    nb = new_notebook(cells=[new_code_cell("", outputs=[anim, graph])])
    nb.metadata["emodarts"] = {"book_expects": ["animation"]}
    nbformat.write(nb, tmp_path / "03_search.ipynb")
    assert check_book.expectations(tmp_path) == {"notebooks/03_search": {"animations": 1, "images": 1}}


@needs_chromium
def test_browser_check_sees_visible_figures_and_flags_broken_pages(tmp_path):
    src = "data:image/png;base64," + base64.b64encode(_png()).decode()
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(
        "<html><head><title>ok</title></head><body><main>"
        f'<div class="animation"><img src="{src}"></div>'
        f'<div class="cell_output"><img src="{src}"></div></main></body></html>')
    (html / "bad.html").write_text(
        "<html><head><title>bad</title><script>console.error('boom')</script></head><body><main>"
        f'<div class="animation" style="display:none"><img src="{src}"></div>'
        '<div class="cell_output"><img src="missing.png"></div>'
        '<script>undefined_function()</script>'
        '<img src="https://example.org/tracker.png"></main></body></html>')
    shots = tmp_path / "shots"
    shots.mkdir()
    browser = check_book.Browser(timeout=30)
    try:
        good = check_book.check_page(browser, html, html / "index.html", shots,
                                     {"animations": 1, "images": 1}, check_book.ALLOWED_EXTERNAL_HOSTS)
        bad = check_book.check_page(browser, html, html / "bad.html", shots,
                                    {"animations": 1}, check_book.ALLOWED_EXTERNAL_HOSTS)
    finally:
        browser.close()
    assert good.errors == [] and good.animations == 1 and good.images == 1
    assert (shots / "index.png").stat().st_size > 0
    joined = "\n".join(bad.errors)
    assert "console.error: boom" in joined
    assert "undefined_function" in joined
    assert "animation 0 is not visible" in joined
    assert "missing.png" in joined or "output image 0" in joined
    assert "example.org" in joined
    assert "expected 1 visible animation" in joined


_PAGE = ("<html><head><title>{title}</title><style>main {{ width: 600px; }} "
         "pre {{ overflow: auto; font: 14px monospace; }}</style></head><body><main>{body}</main></body></html>")
_READABLE = [
    # a rendered table, rendered (or MathJax-pending) math, TeX and pipes inside code, prose with $ once
    "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>",
    '<p>weights <span class="math notranslate nohighlight">\\(\\alpha_{k-2}\\)</span> of each edge</p>',
    "<p>the input <code>c_{k-2}</code> and <code>| a | b |</code>, which costs $5</p>",
    "<pre>x = 1  # | a | b |\nprint(f'{x}')</pre>",
    '<div class="cell_output"><pre>' + "short output line\n" * 3 + "</pre></div>",
]
_UNREADABLE = {
    "pipes": "<p>| implementation | median |\n|---|---|\n| librosa | 1e-7 |</p>",
    "dollar": "<p>the inputs $c_{k-2}$ and $c_{k-1}$</p>",
    "paren": "<p>a weight \\(\\alpha\\) per edge</p>",
    "literal": "<p>node 0 reads c_{k-2} through a skip</p>",
    "clipped": "<pre>" + "w = torch.zeros(" + ", ".join(["128"] * 40) + ")</pre>",
}


@needs_chromium
def test_text_check_flags_raw_tables_tex_and_clipped_code(tmp_path):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(_PAGE.format(title="ok", body="".join(_READABLE)))
    for name, body in _UNREADABLE.items():
        (html / f"{name}.html").write_text(_PAGE.format(title=name, body=_READABLE[0] + body))
    shots = tmp_path / "shots"
    shots.mkdir()
    browser = check_book.Browser(timeout=30)
    try:
        results = {page.stem: check_book.check_page(browser, html, page, shots, {},
                                                    check_book.ALLOWED_EXTERNAL_HOSTS)
                   for page in sorted(html.glob("*.html"))}
    finally:
        browser.close()
    assert results["index"].errors == []
    expected = {"pipes": "raw Markdown table", "dollar": "raw TeX", "paren": "raw TeX",
                "literal": "raw TeX", "clipped": "clipped horizontally"}
    for name, phrase in expected.items():
        assert len(results[name].errors) == 1, (name, results[name].errors)
        assert phrase in results[name].errors[0], (name, results[name].errors)


@pytest.mark.slow
@pytest.mark.browser
@needs_chromium
def test_smoke_book_builds_and_every_page_passes_the_browser_check(tmp_path, smoke_runs):
    """The book built (execution skipped) from the notebooks the session already executed."""
    out = tmp_path / "_build"
    (out / "executed").mkdir(parents=True)
    for run, executed in smoke_runs.values():
        assert run.ok, run.error
        shutil.copy2(executed, out / "executed" / executed.name)
    build = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_book.py"), "--params", "smoke",
                            "--ravdess", "", "--out", str(out), "--skip-execute"],
                           cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    assert (out / "html" / "notebooks" / "03_search.html").exists()
    assert len(list((out / "executed").glob("*.ipynb"))) == 8
    provenance = (out / "html" / "book" / "data_provenance.html").read_text()
    assert provenance.count("generated by emodarts_core") >= 5
    page = (out / "html" / "notebooks" / "01_features.html").read_text()
    assert "injected-parameters" not in page          # papermill's cell is removed
    assert "colab.research.google.com/github/" in page  # launch button / badge
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_book.py"), str(out / "html")],
                           cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert check.returncode == 0, check.stdout[-6000:] + check.stderr[-2000:]
    assert len(list((out / "screenshots").glob("*.png"))) >= 20
    # Keep the evidence where CI artifacts are looked for.
    dest = ROOT / "_build" / "test-book-screenshots"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(out / "screenshots", dest)


def test_stale_executed_notebooks_are_pruned(tmp_path):
    """An executed copy of a notebook no longer in the toc (renamed, removed) is deleted before a
    build, so the browser check expects no page for it; the others stay."""
    for stem in ("01_features", "07_appendix_records", "08_appendix_records"):
        (tmp_path / f"{stem}.ipynb").write_text("{}")
    (tmp_path / "notes.txt").write_text("kept")
    gone = build_book.prune_stale_executed(tmp_path, ["01_features", "08_appendix_records"])
    assert [p.name for p in gone] == ["07_appendix_records.ipynb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "01_features.ipynb", "08_appendix_records.ipynb", "notes.txt"]
