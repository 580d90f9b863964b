"""Edit one member of a JSON (or JSON-with-comments) file in place, keeping everything else.

A client's configuration file holds other servers, settings and, in VS Code, comments and
trailing commas. Loading and dumping it would lose the comments and the user's layout, so
the text is parsed into spans and only the member that changes is rewritten; every other
byte stays as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class JSONEditError(ValueError):
    """The text is not valid JSON (or JSONC); the message says where."""


@dataclass
class Node:
    """A value in the text: ``text[start:end]``, and for objects, its members in order."""

    start: int
    end: int
    value: Any
    members: list[Member] = field(default_factory=list)

    def member(self, key: str) -> Member | None:
        return next((m for m in self.members if m.key == key), None)


@dataclass
class Member:
    key: str
    key_start: int
    node: Node
    comma: int | None = None
    """Offset of the comma after the member's value, if any."""


class _Parser:
    def __init__(self, text: str, comments: bool) -> None:
        self.text, self.comments, self.pos = text, comments, 0

    def fail(self, what: str) -> JSONEditError:
        line = self.text.count("\n", 0, self.pos) + 1
        column = self.pos - (self.text.rfind("\n", 0, self.pos) + 1) + 1
        return JSONEditError(f"{what} at line {line}, column {column}")

    def skip(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r\n\ufeff":
                self.pos += 1
            elif self.comments and text.startswith("//", self.pos):
                newline = text.find("\n", self.pos)
                self.pos = len(text) if newline < 0 else newline + 1
            elif self.comments and text.startswith("/*", self.pos):
                close = text.find("*/", self.pos + 2)
                if close < 0:
                    raise self.fail("unclosed comment")
                self.pos = close + 2
            else:
                return

    def value(self) -> Node:
        self.skip()
        if self.pos >= len(self.text):
            raise self.fail("unexpected end of file")
        char = self.text[self.pos]
        if char == "{":
            return self.obj()
        if char == "[":
            return self.array()
        return self.scalar()

    def scalar(self) -> Node:
        start = self.pos
        if self.text[start] == '"':
            self.pos = self._string_end(start)
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in ",]} \t\r\n/":
                self.pos += 1
        try:
            return Node(start, self.pos, json.loads(self.text[start:self.pos]))
        except json.JSONDecodeError:
            self.pos = start
            raise self.fail("not a JSON value") from None

    def _string_end(self, start: int) -> int:
        pos = start + 1
        while pos < len(self.text):
            char = self.text[pos]
            if char == "\\":
                pos += 2
            elif char == '"':
                return pos + 1
            elif char == "\n":
                break
            else:
                pos += 1
        self.pos = start
        raise self.fail("unterminated string")

    def _items(self, close: str, item: Any) -> None:
        """Comma-separated items up to ``close``; a trailing comma only with comments on."""
        self.pos += 1
        self.skip()
        if self.text.startswith(close, self.pos):
            self.pos += 1
            return
        while True:
            comma_slot = item()
            self.skip()
            if self.text.startswith(",", self.pos):
                comma_slot(self.pos)
                self.pos += 1
                self.skip()
                if self.text.startswith(close, self.pos):
                    if not self.comments:
                        raise self.fail("trailing comma")
                    self.pos += 1
                    return
                continue
            if self.text.startswith(close, self.pos):
                self.pos += 1
                return
            raise self.fail(f"expected ',' or '{close}'")

    def obj(self) -> Node:
        node = Node(self.pos, self.pos, {})

        def member() -> Any:
            self.skip()
            if not self.text.startswith('"', self.pos):
                raise self.fail("expected a quoted key")
            key_start = self.pos
            key = self.scalar().value
            self.skip()
            if not self.text.startswith(":", self.pos):
                raise self.fail("expected ':'")
            self.pos += 1
            item = Member(key, key_start, self.value())
            node.members.append(item)
            node.value[key] = item.node.value

            def set_comma(at: int) -> None:
                item.comma = at
            return set_comma

        self._items("}", member)
        node.end = self.pos
        return node

    def array(self) -> Node:
        node = Node(self.pos, self.pos, [])

        def element() -> Any:
            node.value.append(self.value().value)
            return lambda at: None

        self._items("]", element)
        node.end = self.pos
        return node


def parse(text: str, comments: bool = False) -> Node:
    """The root value of ``text`` with the spans needed to edit it."""
    parser = _Parser(text, comments)
    root = parser.value()
    parser.skip()
    if parser.pos != len(text):
        raise parser.fail("unexpected text after the end")
    return root


def _indent_of(text: str, offset: int) -> str:
    line_start = text.rfind("\n", 0, offset) + 1
    prefix = text[line_start:offset]
    return prefix if not prefix.strip() else ""


def _render(value: Any, indent: str, unit: str) -> str:
    """``value`` as JSON whose continuation lines start at ``indent``."""
    lines = json.dumps(value, indent=len(unit), ensure_ascii=False).splitlines()
    return "\n".join([lines[0], *(indent + line for line in lines[1:])])


def _same_line_ends(original: str, edited: str) -> str:
    """A file written on Windows keeps its CRLF line ends in the lines added to it."""
    if "\r\n" not in original:
        return edited
    return edited.replace("\r\n", "\n").replace("\n", "\r\n")


def _unit(text: str) -> str:
    """The file's indentation step (two spaces when it has none)."""
    for line in text.splitlines():
        stripped = line.lstrip(" \t")
        if stripped and len(stripped) < len(line):
            return line[: len(line) - len(stripped)]
    return "  "


def set_member(text: str, path: list[str], value: Any, comments: bool = False) -> str:
    """``text`` with the member at ``path`` (keys from the root) set to ``value``.

    Missing objects on the way are created; everything outside the changed member is kept
    byte for byte.
    """
    if not text.strip():
        text = "{}\n"
    return _same_line_ends(text, _set(text, path, value, comments))


def _set(text: str, path: list[str], value: Any, comments: bool) -> str:
    root = parse(text, comments)
    unit = _unit(text)
    node = root
    for depth, key in enumerate(path):
        if not isinstance(node.value, dict):
            raise JSONEditError(f"'{'.'.join(path[:depth])}' is not a JSON object")
        member = node.member(key)
        rest = path[depth + 1:]
        if member is None:
            nested: Any = value
            for outer in reversed(rest):
                nested = {outer: nested}
            return _insert(text, node, key, nested, unit)
        if not rest:
            indent = _indent_of(text, member.key_start)
            rendered = _render(value, indent, unit)
            return text[:member.node.start] + rendered + text[member.node.end:]
        node = member.node
    raise JSONEditError("empty path")


def _insert(text: str, obj: Node, key: str, value: Any, unit: str) -> str:
    if obj.members:
        last = obj.members[-1]
        indent = _indent_of(text, last.key_start) or unit
        rendered = _render(value, indent, unit)
        at = last.node.end
        return f'{text[:at]},\n{indent}{json.dumps(key)}: {rendered}{text[at:]}'
    outer = _indent_of(text, obj.start)
    indent = outer + unit
    rendered = _render(value, indent, unit)
    at = obj.start + 1
    closing = text[at:obj.end - 1]
    if closing.strip():  # only comments inside: keep them, after the new member
        return f"{text[:at]}\n{indent}{json.dumps(key)}: {rendered},{text[at:]}"
    return f"{text[:at]}\n{indent}{json.dumps(key)}: {rendered}\n{outer}{text[obj.end - 1:]}"


def remove_member(text: str, path: list[str], comments: bool = False) -> str:
    """``text`` without the member at ``path``; unchanged when it is not there."""
    root = parse(text, comments)
    node = root
    for key in path[:-1]:
        member = node.member(key)
        if member is None or not isinstance(member.node.value, dict):
            return text
        node = member.node
    members = node.members
    index = next((i for i, m in enumerate(members) if m.key == path[-1]), None)
    if index is None:
        return text
    gone = members[index]
    if gone.comma is not None and index + 1 < len(members):
        return text[:gone.key_start] + text[members[index + 1].key_start:]
    end = gone.node.end if gone.comma is None else gone.comma + 1
    if index > 0:
        before = members[index - 1]
        assert before.comma is not None
        # A trailing comma after the removed member stays with the one before it.
        start = before.comma + 1 if gone.comma is not None else before.comma
        return text[:start] + text[end:]
    return text[:node.start + 1] + text[end:]


__all__ = ["JSONEditError", "Node", "parse", "remove_member", "set_member"]
