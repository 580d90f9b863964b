"""The wheel and sdist carry everything the product needs at run time, and the wheel runs.

Built offline (`python -m build --no-isolation`) from a copy of this checkout. Every file
under ttapi_mcp/, Python or not (pages, fonts, templates added later included), must be in
the wheel; the wheel, installed apart from the checkout, must run the demo.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from ttapi_mcp import __version__

REPO = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc", "*.egg-info", "dist",
                              "build", ".mypy_cache", ".ruff_cache", ".pytest_cache",
                              ".hypothesis")


PROBES = ("ttapi_mcp/server/apps/probe/page.html", "ttapi_mcp/emulator/probe-font.ttf")
"""Non-Python files added to the copy before building, in a folder that is not a package:
they prove the package-data rule catches what later features add."""


def package_files(root: Path) -> set[str]:
    """Every file of the package tree under ``root``, as a path inside the wheel."""
    return {str(p.relative_to(root)) for p in (root / "ttapi_mcp").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("source") / "ttapi-mcp"
    shutil.copytree(REPO, copy, ignore=SKIP)
    for probe in PROBES:
        (copy / probe).parent.mkdir(parents=True, exist_ok=True)
        (copy / probe).write_text("probe", encoding="utf-8")
    return copy


@pytest.fixture(scope="module")
def dist(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                            str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def test_wheel_carries_every_file_of_the_package(source: Path, dist: Path) -> None:
    (wheel,) = dist.glob("ttapi_mcp-*.whl")
    assert wheel.name == f"ttapi_mcp-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(f"ttapi_mcp-{__version__}.dist-info/entry_points.txt")
    expected = package_files(source)
    assert set(PROBES) <= expected and len(expected) > 50
    assert sorted(expected - names) == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert b"ttapi-mcp = ttapi_mcp.cli:main" in entry_points


def test_sdist_carries_the_package_tests_and_packaging(source: Path, dist: Path) -> None:
    (sdist,) = dist.glob("ttapi_mcp-*.tar.gz")
    prefix = f"ttapi_mcp-{__version__}/"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(prefix) for name in archive.getnames()}
    wanted = package_files(source) | {"README.md", "config.example.json", "pyproject.toml",
                                "tests/conftest.py", "packaging/server.json"}
    assert sorted(wanted - names) == []


def test_the_wheel_runs_apart_from_the_checkout(dist: Path, tmp_path: Path) -> None:
    """Installed (not editable) into its own folder; the demo runs from there."""
    (wheel,) = dist.glob("ttapi_mcp-*.whl")
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                                "--no-index", "--target", str(target), str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTAPI_")}
    env["PYTHONPATH"] = str(target)  # dependencies come from this interpreter's site-packages
    env["TTAPI_OUTPUT_DIR"] = str(tmp_path / "out")
    demo = subprocess.run([sys.executable, "-m", "ttapi_mcp", "demo", "a packaged lighthouse"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr
    assert "Saved image:" in demo.stdout and str(tmp_path / "out") in demo.stdout
    where = subprocess.run([sys.executable, "-m", "ttapi_mcp", "--version"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert f"from {target / 'ttapi_mcp'} " in where.stdout
