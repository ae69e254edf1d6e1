"""Layers point one way (DESIGN.md "Layers"): a module imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flyk"

# layer -> the flyk layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_version": set(),
    "config": {"errors", "_version"},
    "api": {"errors", "_version"},
    "local": set(),  # written from the spec, never from the client
    "k8s": {"api", "errors", "_version"},
    "kubelet": {"api", "errors", "k8s", "_version"},
    "cli": {"errors", "config", "api", "local", "k8s", "kubelet", "_version"},
}
# third-party packages only some layers may use
CONFINED = {"typer": {"cli"}, "rich": {"cli"}, "lightkube": {"kubelet"}}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


# the package root's __init__/__main__ are the library surface and the entry point, not a layer
MODULES = sorted(
    p
    for p in PACKAGE.rglob("*.py")
    if p.parent != PACKAGE or p.name not in {"__init__.py", "__main__.py"}
)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_lower_layers(path: Path) -> None:
    layer = _layer(path)
    if layer not in ALLOWED:
        pytest.fail(f"{path.relative_to(PACKAGE)} is in no layer of DESIGN.md; add it to ALLOWED")
    for name in _imports(path):
        top, _, rest = name.partition(".")
        if top == "flyk":
            target = rest.partition(".")[0]
            if target and target != layer:
                assert target in ALLOWED[layer], (
                    f"{layer} must not import flyk.{target} ({path.name})"
                )
        elif top in CONFINED:
            assert layer in CONFINED[top], (
                f"{top} may be imported only in {CONFINED[top]} ({path.name})"
            )
