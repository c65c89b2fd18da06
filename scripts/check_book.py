"""Open every page of the built book in headless Chromium and fail on anything a reader would see
break.

For each HTML page under the book's output folder (``_build/html`` by default) this script

- loads the page from disk (``file://``) and waits for its load event;
- fails on JavaScript exceptions, ``console.error`` calls, and local resources that do not load
  (a missing image, script or stylesheet of the book itself);
- blocks every request to the internet, and fails on any request to a host other than the few
  CDNs the theme uses on purpose (MathJax and the Jupyter widget loader from ``cdn.jsdelivr.net``,
  require.js from ``cdnjs.cloudflare.com``, Colab's badge image): the check is the same offline and
  online, and it lists what a reader's browser will fetch;
- checks the figures the notebooks produced: every ``to_jshtml`` animation (``<div
  class="animation">``) and every image output of an executed notebook (``_build/executed/``,
  e.g. the genotype graphs) must be present and visible on its page, and so must whatever a
  notebook declares in its metadata as ``emodarts: {book_expects: ["animation", "graph"]}``;
- checks what a reader sees as text: no paragraph of raw Markdown pipe-table rows (``| a | b |``:
  a notebook's table that was not rendered), no raw ``$...$``, ``\\(``/``\\[`` or literal TeX such
  as ``c_{k-2}`` outside code and rendered math, and no code or output block wider than its
  container (a line a reader would have to scroll sideways to read);
- saves a screenshot of the top of every page, and one of every animation and graph, under
  ``_build/screenshots/``.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``), so
nothing but the Python standard library and the Debian ``chromium`` package is needed
(``apt-get install -y chromium``).

Usage::

    python scripts/check_book.py _build/html
    python scripts/check_book.py _build/html --pages intro notebooks/03_search
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

# maxcdn.bootstrapcdn.com: the Font Awesome stylesheet of matplotlib's to_jshtml animation player
# (its button icons; the frames and the player work without it).
ALLOWED_EXTERNAL_HOSTS = ("cdn.jsdelivr.net", "cdnjs.cloudflare.com", "colab.research.google.com",
                          "maxcdn.bootstrapcdn.com")
SKIP_DIRS = ("_static", "_sources", "_images", "_sphinx_design_static", "_panels_static")
VIEWPORT = (1280, 900)

FIGURES_JS = r"""
(() => {
  const visible = el => {
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return r.width > 1 && r.height > 1 && s.display !== 'none' && s.visibility !== 'hidden'
           && parseFloat(s.opacity || '1') > 0;
  };
  const loaded = img => img.complete && img.naturalWidth > 0;
  const anims = [...document.querySelectorAll('div.animation')].map(d => {
    const img = d.querySelector('img');
    return {visible: visible(d) && !!img && visible(img) && loaded(img)};
  });
  const outputs = [...document.querySelectorAll('.cell_output img, .output img, .cell_output svg')]
    .filter(el => !el.closest('div.animation') && !el.closest('button'))
    .map(el => ({visible: visible(el) && (el.tagName !== 'IMG' || loaded(el)),
                 src: el.tagName === 'IMG' ? el.getAttribute('src').slice(0, 80) : 'inline svg'}));
  return {title: document.title, main: !!document.querySelector('main, article, [role=main]'),
          animations: anims, images: outputs};
})()
"""

# What a reader sees as text. Text inside code (pre, code, kbd, samp), scripts, styles and math that
# was rendered (or is waiting for MathJax: class "math") is left out; so are the API pages' type
# signatures. Each finding carries a short excerpt of the text.
TEXT_JS = r"""
(() => {
  const SKIP = 'pre, code, kbd, samp, script, style, textarea, .math, mjx-container, .MathJax, '
             + 'svg, .sig, .highlight';
  const root = document.querySelector('main, article, [role=main]') || document.body;
  const short = t => t.replace(/\s+/g, ' ').trim().slice(0, 100);
  const pipeRow = /^\s*\|.*\|.*\|\s*$/;
  const pipeRule = /\|\s*:?-{3,}:?\s*\|/;
  const pipes = [];
  for (const el of root.querySelectorAll('p, li, td, dd, div.output_markdown, .cell_output div')) {
    if (el.closest(SKIP) || el.querySelector('p, li, table')) continue;
    const text = el.innerText || '';
    const rows = text.split('\n').filter(l => pipeRow.test(l)).length;
    if (pipeRule.test(text) || rows >= 2) pipes.push(short(text));
  }
  const tex = [];
  const dollar = /\$[^$\n]{0,120}[\\_^{}][^$\n]{0,120}\$/;
  const paren = /\\[(\[]|\\[)\]]/;
  const literal = /[A-Za-z0-9]_\{[^}\s]{1,20}\}|\\(frac|mathrm|mathbf|alpha|beta|sum|cdot|times|in|leq|geq)\b/;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(SKIP)) continue;
    const text = node.textContent;
    if (dollar.test(text) || paren.test(text) || literal.test(text)) tex.push(short(text));
  }
  const clipped = [];
  for (const el of root.querySelectorAll('pre')) {
    const s = getComputedStyle(el);
    if (el.clientWidth === 0 || s.display === 'none') continue;
    if (el.scrollWidth > el.clientWidth + 2) {
      const line = (el.textContent || '').split('\n')
        .reduce((a, b) => (b.length > a.length ? b : a), '');
      clipped.push({shown: el.clientWidth, needed: el.scrollWidth, line: short(line)});
    }
  }
  return {pipes, tex, clipped};
})()
"""


class ChromiumError(RuntimeError):
    """Chromium could not be started or stopped answering."""


# ---------------------------------------------------------------------------------------------
class Browser:
    """A headless Chromium driven over ``--remote-debugging-pipe`` (NUL-separated JSON)."""

    def __init__(self, binary: str | None = None, timeout: float = 30.0) -> None:
        exe = binary or shutil.which("chromium") or shutil.which("chromium-browser") \
            or shutil.which("google-chrome")
        if not exe:
            raise ChromiumError("chromium not found: install it with `apt-get install -y chromium`")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="emodarts-chromium-")
        # Pipes moved to fds >= 10 so that the child can dup2 them onto 3 and 4 safely.
        to_child_r, to_child_w = self._high_pipe()
        from_child_r, from_child_w = self._high_pipe()

        def child_fds() -> None:
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        args = [exe, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
                "--mute-audio", f"--user-data-dir={self.profile}",
                f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=child_fds,
                                     pass_fds=(3, 4, to_child_r, from_child_w))
        os.close(to_child_r)
        os.close(from_child_w)
        self._out = os.fdopen(to_child_w, "wb", buffering=0)
        self._in = os.fdopen(from_child_r, "rb", buffering=0)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: "queue.Queue[dict[str, Any]]" = queue.Queue()
        self._cond = threading.Condition()
        threading.Thread(target=self._reader, daemon=True).start()
        self.session = ""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            self.call(method)
        self.call("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*"]})
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False})

    @staticmethod
    def _high_pipe() -> tuple[int, int]:
        r, w = os.pipe()
        hr, hw = fcntl.fcntl(r, fcntl.F_DUPFD, 10), fcntl.fcntl(w, fcntl.F_DUPFD, 10)
        os.close(r)
        os.close(w)
        return hr, hw

    def _reader(self) -> None:
        buf = b""
        while True:
            chunk = self._in.read(65536)
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self.events.put(msg)

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one DevTools command (to the page session once attached) and wait for its reply."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session:
            msg["sessionId"] = self.session
        self._out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while self._next_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise ChromiumError(f"no reply to {method} within {self.timeout:.0f} s")
                self._cond.wait(left)
            reply = self._replies.pop(self._next_id)
        if "error" in reply:
            raise ChromiumError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        try:
            self.session = ""
            self.call("Browser.close")
        except (ChromiumError, OSError, BrokenPipeError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
@dataclass
class PageResult:
    """What one page did in the browser."""

    page: str
    errors: list[str] = field(default_factory=list)
    external: set[str] = field(default_factory=set)
    animations: int = 0
    images: int = 0
    screenshots: list[str] = field(default_factory=list)


def _is_external(url: str) -> bool:
    return urlparse(url).scheme in ("http", "https", "ws", "wss")


def expectations(executed: Path | None) -> dict[str, dict[str, int]]:
    """Per page (e.g. ``notebooks/03_search``): minimum animations and images to be found there.

    Derived from the executed notebooks' outputs (each to_jshtml animation, each image output
    not shadowed by HTML) and from ``metadata.emodarts.book_expects``.
    """
    if executed is None or not executed.is_dir():
        return {}
    need: dict[str, dict[str, int]] = {}
    for nb_path in sorted(executed.glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        anim = imgs = 0
        for cell in nb.get("cells", []):
            tags = cell.get("metadata", {}).get("tags", [])
            if "remove-output" in tags or "remove-cell" in tags:
                continue
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                html = data.get("text/html", "")
                html = "".join(html) if isinstance(html, list) else html
                if 'class="animation"' in html:
                    anim += 1
                elif "application/vnd.jupyter.widget-view+json" not in data and "text/html" not in data \
                        and any(k in data for k in ("image/png", "image/svg+xml", "image/jpeg")):
                    imgs += 1
        declared = nb.get("metadata", {}).get("emodarts", {}).get("book_expects", [])
        anim = max(anim, 1 if "animation" in declared else 0)
        imgs = max(imgs, 1 if "graph" in declared or "image" in declared else 0)
        need[f"notebooks/{nb_path.stem}"] = {"animations": anim, "images": imgs}
    return need


def check_page(browser: Browser, html_root: Path, page: Path, shots: Path,
               need: dict[str, int], allowed: tuple[str, ...]) -> PageResult:
    rel = page.relative_to(html_root).with_suffix("").as_posix()
    res = PageResult(page=rel)
    browser.drain()
    browser.call("Page.navigate", {"url": page.resolve().as_uri()})
    deadline = time.monotonic() + browser.timeout
    loaded = False
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            ev = browser.events.get(timeout=0.2)
        except queue.Empty:
            continue
        events.append(ev)
        if ev.get("method") == "Page.loadEventFired":
            loaded = True
            break
    if not loaded:
        res.errors.append(f"no load event within {browser.timeout:.0f} s")
    time.sleep(0.7)  # late scripts (animation set-up, theme) report their errors here
    events += browser.drain()
    for ev in events:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = d.get("exception", {}).get("description") or d.get("text", "")
            res.errors.append(f"JS exception: {text.splitlines()[0] if text else d}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            res.errors.append(f"console.{p.get('type')}: {args[:300]}")
        elif method == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            if _is_external(url):
                res.external.add(urlparse(url).netloc)
        elif method == "Log.entryAdded":
            entry = p.get("entry", {})
            url = entry.get("url", "")
            if entry.get("level") == "error":
                if _is_external(url) and entry.get("source") == "network":
                    res.external.add(urlparse(url).netloc)   # blocked on purpose
                else:
                    res.errors.append(f"console ({entry.get('source')}): {entry.get('text', '')[:300]} {url}")
        elif method == "Network.loadingFailed" and not p.get("blockedReason"):
            res.errors.append(f"failed to load: {p.get('errorText')} (request {p.get('requestId')})")
    for host in sorted(res.external):
        if host not in allowed:
            res.errors.append(f"requests an unexpected external host: {host}")

    found = browser.call("Runtime.evaluate", {"expression": FIGURES_JS, "returnByValue": True})
    info = found.get("result", {}).get("value") or {}
    if not info.get("title"):
        res.errors.append("page has no title")
    if not info.get("main"):
        res.errors.append("page has no main content element")
    anims = info.get("animations", [])
    imgs = info.get("images", [])
    res.animations = sum(a["visible"] for a in anims)
    res.images = sum(i["visible"] for i in imgs)
    for k, a in enumerate(anims):
        if not a["visible"]:
            res.errors.append(f"animation {k} is not visible (or its frame image did not load)")
    for k, i in enumerate(imgs):
        if not i["visible"]:
            res.errors.append(f"output image {k} ({i['src']}) is not visible or did not load")
    if res.animations < need.get("animations", 0):
        res.errors.append(f"expected {need['animations']} visible animation(s), found {res.animations}")
    if res.images < need.get("images", 0):
        res.errors.append(f"expected {need['images']} visible output image(s), found {res.images}")
    res.errors += text_problems(browser)

    # Screenshots: the top of the page, then each animation and output image scrolled into view.
    stem = rel.replace("/", "__")
    _shot(browser, shots / f"{stem}.png", res)
    for kind, selector, n in (("animation", "div.animation", len(anims)),
                              ("image", ".cell_output img:not(button *), .output img:not(button *), .cell_output svg:not(button *)", len(imgs))):
        for k in range(n):
            browser.call("Runtime.evaluate", {"expression":
                         f"document.querySelectorAll({selector!r})[{k}].scrollIntoView({{block: 'center'}})"})
            time.sleep(0.1)
            _shot(browser, shots / f"{stem}--{kind}-{k}.png", res)
    return res


def text_problems(browser: Browser) -> list[str]:
    """What the page shows as text that a reader should never see (see ``TEXT_JS``)."""
    found = browser.call("Runtime.evaluate", {"expression": TEXT_JS, "returnByValue": True})
    info = found.get("result", {}).get("value") or {}
    errors = [f"raw Markdown table shown as text: {t!r}" for t in info.get("pipes", [])]
    errors += [f"raw TeX shown as text: {t!r}" for t in info.get("tex", [])]
    errors += [f"code block clipped horizontally ({c['needed']} px of text in {c['shown']} px): "
               f"{c['line']!r}" for c in info.get("clipped", [])]
    return errors


def _shot(browser: Browser, path: Path, res: PageResult) -> None:
    data = browser.call("Page.captureScreenshot", {"format": "png"})["data"]
    path.write_bytes(base64.b64decode(data))
    res.screenshots.append(path.name)


def pages_of(html_root: Path, only: list[str] | None) -> list[Path]:
    pages = [p for p in sorted(html_root.rglob("*.html"))
             if not any(part in SKIP_DIRS for part in p.relative_to(html_root).parts)]
    if only:
        wanted = {o.removesuffix(".html") for o in only}
        pages = [p for p in pages if p.relative_to(html_root).with_suffix("").as_posix() in wanted]
        missing = wanted - {p.relative_to(html_root).with_suffix("").as_posix() for p in pages}
        if missing:
            raise FileNotFoundError(f"pages not found under {html_root}: {sorted(missing)}")
    return pages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", type=Path, nargs="?", default=Path("_build/html"), help="built book")
    ap.add_argument("--executed", type=Path, default=None,
                    help="executed notebooks (default: <html>/../executed)")
    ap.add_argument("--screenshots", type=Path, default=None,
                    help="screenshot folder (default: <html>/../screenshots)")
    ap.add_argument("--pages", nargs="*", default=None, help="only these pages (e.g. intro)")
    ap.add_argument("--allow-external", nargs="*", default=[], help="more allowed external hosts")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per page load")
    ap.add_argument("--chromium", default=None, help="browser binary (default: chromium on PATH)")
    args = ap.parse_args(argv)

    html_root: Path = args.html.resolve()
    if not (html_root / "index.html").exists():
        print(f"error: {html_root} holds no built book (no index.html)", file=sys.stderr)
        return 2
    executed = (args.executed or html_root.parent / "executed")
    shots = (args.screenshots or html_root.parent / "screenshots")
    if shots.exists():
        shutil.rmtree(shots)
    shots.mkdir(parents=True)
    need = expectations(executed)
    try:
        pages = pages_of(html_root, args.pages)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    allowed = ALLOWED_EXTERNAL_HOSTS + tuple(args.allow_external)

    t0 = time.perf_counter()
    browser = Browser(args.chromium, timeout=args.timeout)
    results: list[PageResult] = []
    try:
        for page in pages:
            rel = page.relative_to(html_root).with_suffix("").as_posix()
            res = check_page(browser, html_root, page, shots, need.get(rel, {}), allowed)
            results.append(res)
            status = "ok" if not res.errors else "FAIL"
            extra = f" animations={res.animations} images={res.images}" if res.animations or res.images else ""
            print(f"{status:4} {rel}{extra}", flush=True)
            for err in res.errors:
                print(f"     {err}", flush=True)
    finally:
        browser.close()
    for rel, want in need.items():
        if rel not in {r.page for r in results} and not args.pages:
            print(f"FAIL {rel}: executed notebook has no page in the built book")
            results.append(PageResult(page=rel, errors=["no page"]))
    failed = [r for r in results if r.errors]
    hosts = sorted(set().union(*(r.external for r in results))) if results else []
    summary = {
        "pages": len(results), "failed": [r.page for r in failed],
        "external_hosts_blocked": hosts,
        "animations": {r.page: r.animations for r in results if r.animations},
        "images": {r.page: r.images for r in results if r.images},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (shots / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{len(results) - len(failed)} pages ok, {len(failed)} failed in {summary['seconds']} s; "
          f"external hosts a reader's browser would use (blocked here): {', '.join(hosts) or 'none'}; "
          f"screenshots in {shots}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
