"""The package's layers: imports point one way, pure layers stay pure, no cycle, small parts.

Read from the source (every import, those under ``TYPE_CHECKING`` and inside
functions included), so a change that breaks the layering fails here, not in review.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import imagejobs

PACKAGE = Path(imagejobs.__file__).parent

# Each internal layer, and the layers below it that it may import (its own package aside).
LAYERS = {
    "core": 0,
    "planning": 1,
    "timing": 2,
    "observability": 2,
    "transport": 3,
    "fleet": 3,
    "scheduling": 4,
}
# The public face: the façade and its configuration, above every layer.
TOP = 5
# Users of the public API only.
USERS = {"cli", "testing"}
PURE = {"core", "planning"}
IMPURE_FOR_PURE = {"asyncio", "aiohttp", "redis", "socket", "multidict", "yarl", "ssl"}

MAX_MODULE_LINES = 700
MAX_CLASS_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """Yield every module ``name`` imports, absolute, as written (no implied parents)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # ``from imagejobs.core import codec`` imports the module codec.
            submodules = [
                f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in MODULES
            ]
            yield from submodules
            if len(submodules) < len(node.names):
                yield module


IMPORTS = {name: set(_imports(name, path)) for name, path in MODULES.items()}


def _layer(name: str) -> str:
    """Return the subpackage a module is in (``core``, ``cli``...), or "" for a top-level one."""
    parts = name.split(".")
    is_subpackage = len(parts) > 2 or (len(parts) == 2 and parts[1] in {*LAYERS, *USERS})
    return parts[1] if is_subpackage else ""


def _rank(name: str) -> int:
    if name == "imagejobs._version":
        return 0  # a constant, read by every layer
    return LAYERS.get(_layer(name), TOP)


def test_every_module_is_in_a_known_place() -> None:
    for name in MODULES:
        parts = name.split(".")
        if len(parts) > 2:
            assert parts[1] in LAYERS or parts[1] in USERS, name


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) in LAYERS))
def test_layers_import_only_downward(name: str) -> None:
    own = _layer(name)
    for target in IMPORTS[name]:
        if not target.startswith("imagejobs"):
            continue
        assert target != "imagejobs", f"{name} imports the package's public face"
        assert _layer(target) == own or _rank(target) < _rank(name), (
            f"{name} (layer {own}) imports {target}: imports point down the layers"
        )


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n) in PURE))
def test_pure_layers_do_no_io(name: str) -> None:
    roots = {target.partition(".")[0] for target in IMPORTS[name]}
    assert not roots & IMPURE_FOR_PURE, f"{name} imports {sorted(roots & IMPURE_FOR_PURE)}"


def test_users_of_the_public_api_import_nothing_else() -> None:
    for name, targets in IMPORTS.items():
        if _layer(name) not in USERS:
            continue
        for target in targets:
            if target.startswith("imagejobs") and _layer(target) != _layer(name):
                assert target in {"imagejobs", "imagejobs.testing"}, (name, target)


def _importers(library: str) -> set[str]:
    """Return the modules outside cli/ and testing/ that import ``library``."""
    return {
        name
        for name, targets in IMPORTS.items()
        if _layer(name) not in USERS
        and any(t == library or t.startswith(f"{library}.") for t in targets)
    }


def test_aiohttp_and_redis_each_have_at_most_two_importers() -> None:
    assert 1 <= len(_importers("aiohttp")) <= 2, _importers("aiohttp")
    assert 1 <= len(_importers("redis")) <= 2, _importers("redis")
    assert all(_layer(name) == "fleet" for name in _importers("redis"))


def test_no_import_cycle() -> None:
    graph = {
        name: {t for t in targets if t in MODULES and t != name}
        for name, targets in IMPORTS.items()
    }
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        path.append(name)
        for target in sorted(graph[name]):
            visit(target)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_no_module_over_700_lines_and_no_class_over_400() -> None:
    for name, path in MODULES.items():
        text = path.read_text()
        assert text.count("\n") <= MAX_MODULE_LINES, f"{name}: {text.count(chr(10))} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                assert size <= MAX_CLASS_LINES, f"{name}.{node.name}: {size} lines"
