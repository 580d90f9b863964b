"""The app page: ``app.html`` with its stylesheet and script inlined, read on first use.

Inlined because a ``ui://`` resource is one document and the page may load nothing from
anywhere (its own Content-Security-Policy says so); read lazily because a client that
never renders Apps never needs it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


def _asset(name: str) -> str:
    return (resources.files(__package__) / name).read_text(encoding="utf-8")


@cache
def app_html() -> str:
    """The complete, self-contained HTML document."""
    html = _asset("app.html")
    html = html.replace("/*CSS*/", _asset("app.css"), 1)
    # The script goes last and whole: nothing in it may close the <script> element.
    script = "\n".join(_asset(name) for name in ("bridge.js", "tiles.js", "app.js"))
    assert "</script" not in script.lower()
    return html.replace("/*JS*/", script, 1)
