"""Is a secret usable as an HTTP header value? Said without ever showing the secret.

Keys are pasted from web pages, `.env` files and chat windows, and arrive with a line
break, a non-breaking space or curly quotes. Sent as a header, such a key either breaks
the request in a way that looks like a network failure or raises an encoding error, and
both would print the value. So every secret is checked once, when the configuration is
read, and the problem is named by kind of character, never by the characters.
"""

from __future__ import annotations

import re

PLACEHOLDERS = frozenset({
    "yourkey", "yourapikey", "yourttapikey", "yourttapiapikey", "apikey", "ttapikey",
    "ttapiapikey", "key", "yoursecret", "yourtoken", "token", "secret", "changeme",
    "xxx", "xxxx", "xxxxx", "...", "…", "sk...", "sk-...", "<key>",
})
"""Normalised forms of the placeholders the README, the help and TTAPI's samples show."""

_QUOTES = ("\"", "'", "`", "\u201c", "\u201d", "\u2018", "\u2019")


def _normalised(value: str) -> str:
    text = value.strip().strip("<>[]{}()").lower()
    return re.sub(r"[\s_\-]+", "", text) or text


def is_placeholder(value: str) -> bool:
    """True for `your-key`, `<your key>`, `YOUR_API_KEY` and the like."""
    return _normalised(value) in PLACEHOLDERS or value.strip().lower() in PLACEHOLDERS


def header_problem(value: str, placeholders: bool = True) -> str | None:
    """What makes ``value`` unusable as a key (after trimming), or None.

    The answer names the kind of character and its rough cause, never the value or
    any part of it, so it can go into an error message as it is. ``placeholders`` also
    refuses the examples' stand-ins (`your-key`), which are sendable but never right.
    """
    if not value:
        return "is empty"
    if value[0] in _QUOTES and value[-1] in _QUOTES:
        return ("is wrapped in quotes (they are part of the value here); remove the quotes "
                "around the key")
    if any(c in "\r\n" for c in value):
        return ("contains a line break inside it (a key copied over two lines, or a second "
                "header pasted after it); copy the key again on one line")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a control character (such as a tab); copy the key again"
    if any(ord(c) > 127 for c in value):
        return ("contains non-ASCII characters (such as curly quotes, a non-breaking space or "
                "an accented letter, often added when copying from a document); copy the key "
                "again from TTAPI's dashboard")
    if placeholders and is_placeholder(value):
        return ("is a placeholder from an example, not a real key; put your own TTAPI key "
                "there (from TTAPI's dashboard)")
    if " " in value:
        return "contains a space inside it; TTAPI keys have none: copy the key again"
    return None


def secret_forms(secret: str) -> set[str]:
    """The secret as it could appear in text: plain, repr/JSON-escaped, percent-encoded.

    Used to scrub logs: a leak in an escaped form is a leak all the same.
    """
    import json
    from urllib.parse import quote

    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1], quote(secret, safe=""),
             secret.encode("unicode_escape").decode("ascii")}
    return {form for form in forms if form}


__all__ = ["PLACEHOLDERS", "header_problem", "is_placeholder", "secret_forms"]
