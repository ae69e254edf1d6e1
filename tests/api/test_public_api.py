"""The public surface: a sorted, complete `__all__`, and a light import."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

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
        for name in dir(models)
        if not name.startswith("_")
        and isinstance(value := getattr(models, name), type)
        and issubclass(value, models.Model)
    }
    assert len(public) > 30
    assert public == set(models.__all__) - {"go_duration"}
    assert public <= set(flyk.api.__all__)
    for name in public:  # each module of the models package defines what it is asked for
        assert getattr(flyk.api, name) is getattr(models, name)
        assert getattr(models, name).__name__ == name


def test_import_is_light() -> None:
    code = (
        "import sys, flyk.api; "
        "heavy = {'typer', 'rich', 'yaml', 'cryptography', 'lightkube', 'flyk.local', 'flyk.cli'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _loaded_after(code: str, *modules: str) -> list[str]:
    """Which of `modules` a fresh interpreter has imported after running `code`."""
    probe = f"import sys\n{code}\nprint(sorted(set({list(modules)!r}) & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(out.stdout.strip()))


HEAVY_PARTS = ("httpx", "flyk.api.client", "flyk.api.machines", "flyk.api.models._machines")


def test_names_are_imported_on_first_use() -> None:
    assert _loaded_after("import flyk.api", *HEAVY_PARTS, "flyk.api.models") == []
    # a model needs neither httpx nor the other models
    assert _loaded_after("from flyk.api import App, Regions", *HEAVY_PARTS) == []
    assert _loaded_after("import flyk.api.models as m; m.Secret", *HEAVY_PARTS) == []
    # listing apps needs the client, not the machines resource nor the machine models
    code = "from flyk.api import FlyClient\nFlyClient(base_url='http://x').apps.list"
    assert _loaded_after(code, *HEAVY_PARTS) == ["flyk.api.client", "httpx"]
    code = "from flyk.api import FlyClient\nc = FlyClient(base_url='http://x')\n"
    code += "c.volumes.list, c.platform.regions, c.secrets.list, c.ips.list, c.tokens.current"
    assert _loaded_after(code, *HEAVY_PARTS) == ["flyk.api.client", "httpx"]
    code = "from flyk.api import FlyClient\nFlyClient(base_url='http://x').machines.list"
    assert _loaded_after(code, *HEAVY_PARTS) == sorted(HEAVY_PARTS)


def test_submodules_stay_reachable_as_attributes() -> None:
    code = "import flyk.api\nprint(flyk.api.machine_sizes.preset('shared-cpu-1x').memory_mb)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "256"
    with pytest.raises(AttributeError, match="no_such_name"):
        flyk.api.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        from flyk.api.models import NoSuchModel  # noqa: F401
