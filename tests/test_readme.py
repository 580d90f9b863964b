"""The README as a newcomer follows it: the two set-up commands first, placeholders refused.

.ci/run takes the test command from under its marker, so the marker and the line must stay
as it parses them; and a key copied from a snippet as it stands must be refused at start,
never sent.
"""

from __future__ import annotations

import re
from pathlib import Path

from ttapi_mcp.keycheck import is_placeholder

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _sh_commands() -> list[str]:
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", README, re.S)]


def test_the_two_set_up_commands_come_first() -> None:
    first, second = _sh_commands()[:2]
    assert first.startswith("python3 -m venv .venv") and "ttapi-mcp demo" in first
    assert second == ("python3 -m venv .venv && . .venv/bin/activate && "
                      "pip install -e '.[dev]' && python -m pytest")


def test_the_test_command_is_where_ci_looks_for_it() -> None:
    lines = README.splitlines()
    marker = next(i for i, line in enumerate(lines) if "<!-- test-command" in line)
    found = [m.group(1) for line in lines[marker:marker + 3]
             if (m := re.match(r"^ *(python3 -m venv .*)$", line))]
    assert found == [_sh_commands()[1]]


def test_every_key_shown_in_a_snippet_is_refused_if_copied_as_is() -> None:
    shown = re.findall(r'"TTAPI_API_KEY": "([^"]*)"', README)
    assert shown, "the snippets show where the key goes"
    for value in shown:
        assert value.startswith("${input:") or is_placeholder(value), value
