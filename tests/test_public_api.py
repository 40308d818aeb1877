"""The public API: what `imagejobs` exports, and who may import what."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import imagejobs
import imagejobs.testing

PACKAGE = Path(imagejobs.__file__).parent


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(imagejobs).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    # Client and its constant load on first use (imagejobs._LAZY), to spare aiohttp's import.
    assert set(imagejobs.__all__) == public | {"__version__", *imagejobs._LAZY}
    # Order is kept by ruff (RUF022); here only that nothing is listed twice.
    assert len(set(imagejobs.__all__)) == len(imagejobs.__all__)
    for name in imagejobs.__all__:
        assert getattr(imagejobs, name) is not None


def test_testing_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(imagejobs.testing).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert set(imagejobs.testing.__all__) == public


def test_testing_uses_only_the_public_api() -> None:
    """The fake server is a user of the library, like the CLI: no private imports."""
    for path in (PACKAGE / "testing").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and (node.module or "").startswith("imagejobs")
            ):
                assert node.module in {"imagejobs", "imagejobs.testing"}, (path, node.module)
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                assert path.parent.name == "testing", path


def test_version_is_a_string() -> None:
    assert imagejobs.__version__.count(".") == 2
