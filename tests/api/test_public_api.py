"""The public surface: a sorted, complete `__all__`, and a light import."""

from __future__ import annotations

import subprocess
import sys

import flyk.api


def _isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions; each alphabetical."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_resolves() -> None:
    assert flyk.api.__all__ == sorted(flyk.api.__all__, key=_isort_key)
    assert len(set(flyk.api.__all__)) == len(flyk.api.__all__)
    for name in flyk.api.__all__:
        assert hasattr(flyk.api, name), name


def test_every_public_model_is_exported() -> None:
    from flyk.api import models

    public = {
        name
        for name, value in vars(models).items()
        if isinstance(value, type) and issubclass(value, models.Model) and not name.startswith("_")
    }
    assert public <= set(flyk.api.__all__)


def test_import_is_light() -> None:
    code = (
        "import sys, flyk.api; "
        "heavy = {'typer', 'rich', 'yaml', 'cryptography', 'lightkube', 'flyk.local', 'flyk.cli'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
