"""A small Sphinx extension for the book: the API reference's type aliases, and the book's CSS.

Type aliases (``History = Mapping[str, Any]``) are documented as module data, but annotations
refer to them as classes; this resolves such ``py:class`` references to the documented alias
instead of reporting them as broken under ``-n``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"


def _resolve_alias(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py" or node.get("reftype") != "class":
        return None
    domain = env.get_domain("py")
    target = node.get("reftarget", "")
    entry = domain.objects.get(target)
    if entry is None or entry.objtype not in ("data", "attribute"):
        return None
    return domain.resolve_xref(env, node["refdoc"], app.builder, "data", target, node, contnode)


def _add_static(app: Any) -> None:
    app.config.html_static_path.append(str(STATIC))


def setup(app: Any) -> dict[str, Any]:
    app.connect("missing-reference", _resolve_alias)
    app.connect("builder-inited", _add_static)
    app.add_css_file("emodarts.css")   # book/_ext/static/emodarts.css
    return {"parallel_read_safe": True, "parallel_write_safe": True}
