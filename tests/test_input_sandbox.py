"""The input sandbox and the output folder, through the edit_image and generate_image tools.

tests/test_inputs.py covers the input rules one by one; these are the cases it leaves
out, run end to end: a refused reference is a tool error and nothing reaches TTAPI.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import make_server_settings, mcp_client
from PIL import Image

from ttapi_mcp.emulator import Emulator, EmulatorServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def emulator_server() -> Iterator[EmulatorServer]:
    """An emulator for this module alone (the `emulator` fixture resets it per test).

    These tests count requests and queue faults; a request from a server another test
    left finishing in the background must not land in their log or take their fault.
    """
    with EmulatorServer(Emulator(), host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    """An input root holding one good image, and a secret image outside it."""
    root = tmp_path / "in"
    root.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for folder in (root, outside):
        picture = Image.new("RGBA", (64, 64), (10, 200, 10, 255))
        picture.paste((0, 0, 0, 0), (16, 16, 48, 48))
        picture.save(folder / "pic.png")
    return {"root": root, "outside": outside}


async def _edit(settings: Any, ref: str) -> Any:
    async with mcp_client(settings) as client:
        return await client.call_tool("edit_image", {
            "prompt": "a hat", "images": [ref], "model": "dall-e-2", "size": "256x256"})


async def _refused(emulator: Emulator, settings: Any, ref: str, words: str) -> None:
    with anyio.fail_after(20):  # a FIFO or socket that were opened would hang here
        result = await _edit(settings, ref)
    text = result.content[0].text
    assert result.is_error, text
    assert words in text, text
    assert "nothing was billed" in text
    assert emulator.api_requests() == []


async def test_tilde_leading_outside_the_roots_is_refused(
    emulator: Emulator, tmp_path: Path, folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(folders["outside"]))
    settings = make_server_settings(emulator.base_url, tmp_path, input_roots=[folders["root"]])
    await _refused(emulator, settings, "~/pic.png", "outside the allowed input folders")


async def test_symlinked_folder_inside_a_root_cannot_reach_out(
    emulator: Emulator, tmp_path: Path, folders: dict[str, Path]
) -> None:
    (folders["root"] / "door").symlink_to(folders["outside"], target_is_directory=True)
    settings = make_server_settings(emulator.base_url, tmp_path, input_roots=[folders["root"]])
    await _refused(emulator, settings, str(folders["root"] / "door" / "pic.png"),
                   "outside the allowed input folders")


async def test_a_sibling_folder_sharing_the_roots_name_is_outside(
    emulator: Emulator, tmp_path: Path, folders: dict[str, Path]
) -> None:
    # A string-prefix check would take <root>-evil/... for a path inside <root>.
    sibling = Path(f"{folders['root']}-evil")
    sibling.mkdir()
    (sibling / "pic.png").write_bytes((folders["root"] / "pic.png").read_bytes())
    settings = make_server_settings(emulator.base_url, tmp_path, input_roots=[folders["root"]])
    await _refused(emulator, settings, str(sibling / "pic.png"),
                   "outside the allowed input folders")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets here")
async def test_a_unix_socket_is_refused_without_connecting(
    emulator: Emulator, tmp_path: Path, folders: dict[str, Path]
) -> None:
    path = folders["root"] / "s.png"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen(1)
        listener.setblocking(False)
        settings = make_server_settings(emulator.base_url, tmp_path,
                                        input_roots=[folders["root"]])
        await _refused(emulator, settings, str(path), "a socket")
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected to it
    finally:
        listener.close()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
async def test_a_fifo_through_the_tool_does_not_hang(
    emulator: Emulator, tmp_path: Path, folders: dict[str, Path]
) -> None:
    fifo = folders["root"] / "pipe.png"
    os.mkfifo(fifo)
    settings = make_server_settings(emulator.base_url, tmp_path, input_roots=[folders["root"]])
    await _refused(emulator, settings, str(fifo), "FIFO")


def _case_insensitive(folder: Path) -> bool:
    probe = folder / "CaseProbe"
    probe.write_text("x")
    try:
        return (folder / "caseprobe").exists()
    finally:
        probe.unlink()


async def test_case_variants_do_not_open_a_way_out(
    emulator: Emulator, tmp_path: Path, folders: dict[str, Path]
) -> None:
    if not _case_insensitive(tmp_path):
        pytest.skip("case-sensitive file system: a case variant is simply another name")
    root = folders["root"]
    settings = make_server_settings(emulator.base_url, tmp_path, input_roots=[root])
    variant = root.parent / root.name.upper() / ".." / folders["outside"].name.upper()
    await _refused(emulator, settings, str(variant / "pic.png"), "outside")


async def test_nothing_is_written_outside_the_output_folder_and_the_database(
    emulator: Emulator, tmp_path: Path, folders: dict[str, Path]
) -> None:
    before = {p for p in tmp_path.rglob("*")}
    settings = make_server_settings(emulator.base_url, tmp_path, input_roots=[folders["root"]])
    hostile = "../../" * 20 + "etc/passwd\x00 CON NUL.png 🦊 " + "x" * 3000
    async with mcp_client(settings) as client:
        made = await client.call_tool("generate_image", {
            "prompt": hostile[:1000], "model": "dall-e-2", "size": "256x256"})
        edited = await client.call_tool("edit_image", {
            "prompt": hostile[:1000], "images": [str(folders["root"] / "pic.png")],
            "model": "dall-e-2", "size": "256x256"})
        again = await client.call_tool("edit_image", {
            "prompt": "again", "images": [made.structured_content["images"][0]["uri"]],
            "model": "gpt-image-1", "quality": "low", "preview": "none"})
    for result in (made, edited, again):
        assert not result.is_error, result.content
    out = settings.output_dir.resolve()
    database_dir = settings.store_path.resolve().parent
    created = {p for p in tmp_path.rglob("*")} - before
    strays = [p for p in created if p.is_file() and not (
        p.resolve().is_relative_to(out) or p.resolve().is_relative_to(database_dir))]
    assert strays == []
    for result in (made, edited, again):
        path = Path(result.structured_content["images"][0]["path"])
        assert path.parent == out and path.is_file()
        assert path.name.isascii() and len(path.name) <= 80, path.name
    assert sorted(p.name for p in folders["root"].iterdir()) == ["pic.png"]
    assert sys.platform == "win32" or not any(p.is_symlink() for p in created)


async def test_tilde_of_an_unknown_user_is_a_clear_refusal(
    emulator: Emulator, tmp_path: Path, folders: dict[str, Path]
) -> None:
    # Path.expanduser raises RuntimeError here; it once surfaced as a bare crash.
    settings = make_server_settings(emulator.base_url, tmp_path, input_roots=[folders["root"]])
    await _refused(emulator, settings, "~no-such-user-5d1c/pic.png", "no known user")
